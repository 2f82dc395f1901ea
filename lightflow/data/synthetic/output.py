"""Where a generated data set goes: an output folder written atomically, that ``overwrite`` may replace only when the
generator wrote it (it holds a marker file), and a memory estimate checked before anything is rendered."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ['MARKER', 'check_out_dir', 'atomic_dir', 'check_memory']

# Written into every generated set; ``overwrite`` replaces only such a folder. Only the marker counts: a folder that
# merely looks like a set (``Data/`` + ``annotations/{train,val}.json``) may be a user's own CocoVID set (issue 22).
MARKER = '.lightflow_synthetic_vid'


def _replaceable(path: Path) -> bool:
    """Whether the folder ``path`` may be replaced: it is empty, or the generator wrote it (it holds :data:`MARKER`)."""
    return (path / MARKER).is_file() or not any(path.iterdir())


def check_out_dir(out_dir: str | os.PathLike, overwrite: bool) -> Path:
    """``out_dir`` resolved (symlinks followed) if a generated set may be written there: nothing is there, or
    ``overwrite`` is set and it is an empty folder or a set generated before.

    Raises:
        FileExistsError: something is there and ``overwrite`` is not set.
        ValueError: ``overwrite`` is set but ``out_dir`` is a file, a folder the generator did not write, or the
            current folder (or one holding it), naming ``out_dir``.
    """
    path = Path(out_dir).resolve()
    if not os.path.lexists(path):
        return path
    if not overwrite:
        raise FileExistsError(f'{out_dir}: output folder exists (pass overwrite=True / --overwrite to replace it)')
    if not path.is_dir():
        raise ValueError(f'{out_dir}: exists and is not a folder; overwrite replaces only a generated set, '
                         f'refusing to delete it')
    if Path.cwd().resolve().is_relative_to(path):
        raise ValueError(f'{out_dir}: is the current folder or holds it; cannot replace it, name another folder')
    if not _replaceable(path):
        raise ValueError(f'{out_dir}: not a generated set (no {MARKER} file); overwrite replaces only a folder this '
                         f'generator wrote, refusing to delete it')
    return path


@contextlib.contextmanager
def atomic_dir(out_dir: Path, info: dict | None = None) -> Iterator[Path]:
    """Yield a temp folder beside ``out_dir`` (resolved, checked by :func:`check_out_dir`); on success it gets the
    :data:`MARKER` (a JSON object holding ``info``: what wrote the set, e.g. the generator's arguments) and replaces
    ``out_dir`` in one rename. Nothing is left behind on failure."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', suffix='.tmp', dir=out_dir.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700 folders; the dataset should get the usual permissions
        yield tmp
        note = 'a synthetic data set written by lightflow; --overwrite may replace this folder'
        (tmp / MARKER).write_text(json.dumps(dict(note=note, **(info or {}))) + '\n')
        if not out_dir.exists():
            os.replace(tmp, out_dir)
            return
        trash = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', suffix='.old', dir=out_dir.parent))
        try:
            os.replace(out_dir, trash / 'old')
            try:
                os.replace(tmp, out_dir)
            except BaseException:
                os.replace(trash / 'old', out_dir)  # put the old set back
                raise
        finally:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``; else the physical memory), None if unknown."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(AttributeError, OSError, ValueError):
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    return None


def check_memory(need: int, what: str) -> None:
    """Refuse up front (``ValueError`` naming ``what``) a job that needs more than the available memory."""
    have = _available_memory()
    if have is not None and need > have:
        raise ValueError(f'{what}: needs about {need / 2 ** 30:,.1f} GiB of memory, {have / 2 ** 30:,.1f} GiB is '
                         f'available; choose a smaller size')
