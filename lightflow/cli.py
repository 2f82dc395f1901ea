"""The command-line contract of every ``tools/*.py``: a user error is ONE line, ``error: <message>``, on stderr.

A tool defines ``main(argv: list[str] | None = None)`` that raises on bad input (tests call it in-process and catch
the exception) and ends with::

    if __name__ == '__main__':
        sys.exit(run_main(main))

and builds its parser with this module's pieces::

    parser = ArgumentParser(description=...)          # argparse errors: one line too, no usage dump
    parser.add_argument('--max-frames', type=positive_int)
    parser.add_argument('--max-flow', type=positive_float)
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={})
    ...
    device = check_device(args.device)                # '--device cuda: CUDA is not available on this machine'
    out = check_output_dir(args.out_dir, '--out-dir')  # '--out-dir x: exists and is a file, not a folder'
    check_not_an_input([args.out], {'checkpoint': args.checkpoint}, '--out')  # never write over an input

Exit status: 0 on success (or the int ``main`` returns), 1 for every user error (bad arguments or bad input files;
the tests pin 1), 130 on Ctrl-C.

Which exceptions are user errors (:data:`USER_ERRORS`): ``ValueError`` (what the project raises for bad input),
``OSError`` (missing, unreadable or unwritable files and folders: ``FileNotFoundError``, ``IsADirectoryError``,
``NotADirectoryError``, ``PermissionError``, a full disk), ``KeyError`` (config and registry lookups) and
``ImportError`` (an optional package that is not installed). Everything else (``TypeError``, ``AttributeError``,
``RuntimeError`` from inside torch, ...) is a bug in the tool or a library and keeps its traceback: hiding it would
make the bug unreportable. The price is that a bug that happens to raise ``ValueError`` loses its traceback too; set
``LIGHTFLOW_TRACEBACK=1`` to get it back for any error.

Pure Python: mmengine and torch are imported only inside the helpers that need them.
"""
from __future__ import annotations

import argparse
import math
import numbers
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NoReturn, Sequence

__all__ = ['USER_ERRORS', 'run_main', 'error_message', 'ArgumentParser', 'CfgOptionsAction', 'positive_int',
           'non_negative_int', 'finite_float', 'positive_float', 'check_device', 'check_output_dir',
           'check_not_an_input', 'finite_json', 'load_fitting_checkpoint', 'metric_value', 'number_or_na']

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, KeyError, ImportError)


def error_message(error: BaseException) -> str:
    """One line describing ``error``: its message with newlines folded, ``path: reason`` for an ``OSError``."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f'{error.filename}: {error.strerror}'
    elif isinstance(error, KeyError) and len(error.args) == 1 and isinstance(error.args[0], str):
        key = error.args[0]  # str(KeyError('x')) is "'x'"; registry errors carry whole sentences
        text = key if ' ' in key.strip() else f'KeyError: {key!r}'
    else:
        text = str(error)
    text = ' '.join(text.split())
    return text or type(error).__name__


def run_main(main: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> int:
    """Run ``main(argv)``; on a user error print ``error: <message>`` (one line) to stderr and return 1.

    Returns:
        the exit status for ``sys.exit``: ``main``'s return value when it is an int, else 0; 1 after a user error
        (:data:`USER_ERRORS`); 130 after Ctrl-C. Other exceptions propagate with their traceback.
    """
    quiet_known_warnings()
    try:
        result = main(argv)
    except USER_ERRORS as e:
        if os.environ.get('LIGHTFLOW_TRACEBACK'):
            raise
        print(f'error: {error_message(e)}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        return 130
    return result if type(result) is int else 0


# Warnings of libraries that say nothing to a user of the tools; each would otherwise print 2 lines before any result
# or error line. mmdet warns when its optional faster_coco_eval metric backend is missing, which the tools never use.
_KNOWN_WARNINGS = ('faster_coco_eval is not installed',)


def quiet_known_warnings() -> None:
    """Silence :data:`_KNOWN_WARNINGS` (called by :func:`run_main`, i.e. where every tool starts)."""
    for message in _KNOWN_WARNINGS:
        warnings.filterwarnings('ignore', message=re.escape(message), category=UserWarning)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line, ``error: --opt: what is wrong`` (exit status 1),
    instead of the usage block plus ``prog: error: argument --opt: ...`` (exit status 2). ``--help`` is unchanged."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r'^argument ', '', message)
        raise SystemExit(f'error: {" ".join(message.split())}')


def _int_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be an integer >= {least}, got {text!r}') from None
    if value < least:
        raise argparse.ArgumentTypeError(f'must be >= {least}, got {value}')
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (e.g. a seed)."""
    return _int_at_least(text, 0)


def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a number, got {text!r}') from None
    if value != value or value in (float('inf'), float('-inf')):
        raise argparse.ArgumentTypeError(f'must be a finite number, got {text!r}')
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be > 0, got {text!r}')
    return value


def image_size(min_side: int = 1) -> Callable[[str], tuple[int, int]]:
    """argparse type factory: ``HxW`` (e.g. ``384x512``) -> ``(H, W)``, both sides >= ``min_side``."""
    def parse(text: str) -> tuple[int, int]:
        try:
            height, width = (int(v) for v in text.lower().split('x'))
        except ValueError:
            raise argparse.ArgumentTypeError(f'size must be HxW (e.g. 384x512), got {text!r}') from None
        if height < min_side or width < min_side:
            raise argparse.ArgumentTypeError(f'size must be at least {min_side}x{min_side}, got {text!r}')
        return height, width
    return parse


class CfgOptionsAction(argparse.Action):
    """``--cfg-options KEY=VALUE ...``: mmengine's ``DictAction`` (values parsed the same way, merged into one dict),
    but an item without ``=`` is the one-line ``--cfg-options: 'key' is not KEY=VALUE`` instead of an unpacking
    ``ValueError`` traceback. mmengine is imported only when the option is given."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        from mmengine.config import DictAction

        items = [values] if isinstance(values, str) else list(values or [])
        for item in items:
            if '=' not in item or not item.split('=', 1)[0]:
                raise argparse.ArgumentError(self, f'{item!r} is not KEY=VALUE')
        options = dict(getattr(namespace, self.dest, None) or {})
        for item in items:
            key, value = item.split('=', 1)
            options[key] = DictAction._parse_iterable(value)
        setattr(namespace, self.dest, options)


def check_device(device: str | None, option: str = '--device') -> str | None:
    """``device`` (``None`` passes through) if torch can use it here; else ``ValueError`` naming ``option``.

    ``cuda`` / ``cuda:N`` need a CUDA build and a visible GPU N (otherwise the failure would surface much later,
    e.g. as a checkpoint that cannot be mapped to the device).
    """
    if device is None:
        return None
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f'{option} {device}: not a torch device (e.g. cpu, cuda, cuda:1)') from None
    if parsed.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'{option} {device}: CUDA is not available on this machine')
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f'{option} {device}: this machine has {count} CUDA device(s)')
    elif parsed.type == 'mps' and not torch.backends.mps.is_available():
        raise ValueError(f'{option} {device}: MPS is not available on this machine')
    return device


def check_output_dir(path: str | os.PathLike, option: str) -> Path:
    """``path`` as a ``Path`` if it is a folder or can become one; ``ValueError`` naming ``option`` when it (or a
    parent) exists and is a file. Creates nothing."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = 'exists and is a file, not a folder' if p == path else f'{p} is a file, not a folder'
                raise ValueError(f'{option} {path}: {what}')
            break
    return path


def config_files(config: str | os.PathLike) -> list[str]:
    """``config`` and every ``_base_`` file it inherits from (recursively, resolved next to the file naming it), for
    :func:`check_not_an_input`: writing over a base file changes every config built on it."""
    import ast

    files, todo = [], [Path(config)]
    while todo:
        path = todo.pop()
        if str(path) in files or not path.is_file():
            continue
        files.append(str(path))
        try:
            tree = ast.parse(path.read_text(encoding='utf-8'))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
                try:
                    base = ast.literal_eval(node.value)
                except ValueError:
                    continue
                todo += [path.parent / b for b in ([base] if isinstance(base, str) else base) if isinstance(b, str)]
    return files


def check_not_an_input(outputs: Iterable[str | os.PathLike], inputs: Mapping[str, Any], option: str) -> None:
    """Refuse to write any of ``outputs`` over one of the tool's ``inputs``: ``ValueError`` naming ``option``.

    An output is refused when it resolves (symlinks followed) to an input file, is the same file under another name
    (a hard link), or lies inside an input folder (a folder of frames). ``inputs`` maps a description (``'checkpoint'``,
    ``'config'``, ...) to a path or a list of paths; None entries are skipped.
    """
    resolved = []
    for what, paths in inputs.items():
        for path in paths if isinstance(paths, (list, tuple, set)) else [paths]:
            if path is not None:
                resolved.append((what, Path(path), Path(path).resolve()))
    for out in outputs:
        target = Path(out).resolve()
        for what, path, source in resolved:
            same = target == source or (target.exists() and source.exists() and os.path.samefile(target, source))
            if same or (source.is_dir() and source in target.parents):
                raise ValueError(f'{option} {out}: would overwrite the input {what} {path}; choose another path')


def finite_json(value: Any) -> Any:
    """``value`` with every NaN / infinite number replaced by None (``null``): ``json.dump`` would write ``NaN``,
    which is not JSON. Dicts, lists and tuples are converted recursively; use with ``allow_nan=False``."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return float(value) if math.isfinite(value) else None
    return value


def load_fitting_checkpoint(model: Any, checkpoint: str | os.PathLike, config: str | os.PathLike,
                            load: bool = False) -> dict:
    """Load ``checkpoint`` (``torch.load(weights_only=True)``, :func:`lightflow.checkpoint._torch_load`) for
    ``model``, built from ``config``, and refuse one that does not fit it.

    mmengine's loaders load non-strictly and only log what is missing, so e.g. a Light Flow checkpoint given for a
    detector config would run a randomly initialised detector. Here every entry of ``model.state_dict()`` must be in
    the checkpoint (after mmengine's ``module.`` prefix strip) with the same shape; extra entries are ignored, as
    mmengine ignores them. With ``load``, the checked weights are then loaded into ``model`` (extra entries ignored);
    otherwise nothing is.

    Returns:
        the checkpoint as loaded (a dict, usually with ``state_dict`` and ``meta``).
    """
    from .checkpoint import _torch_load

    ckpt = _torch_load(checkpoint, 'cpu')
    hint = f'is it a checkpoint of {config}?'
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'{checkpoint}: not a state dict or an mmengine checkpoint (got {type(ckpt).__name__}); '
                         f'{hint}')
    state = {re.sub(r'^module\.', '', k) if isinstance(k, str) else k: v for k, v in state.items()}
    expected = model.state_dict()
    # Entries a module fills in itself when an older file lacks them (``optional_state_keys``).
    optional = {f'{name}.{key}'.lstrip('.') for name, module in model.named_modules()
                for key in getattr(module, 'optional_state_keys', ())}
    missing = [k for k in expected if k not in state and k not in optional]
    if missing:
        raise ValueError(f'{checkpoint}: {len(missing)} of {len(expected)} model weights missing (e.g. '
                         f'{missing[0]}); {hint}')
    wrong = [k for k, v in expected.items() if k in state and tuple(getattr(state[k], 'shape', ())) != tuple(v.shape)]
    if wrong:
        k = wrong[0]
        got = tuple(getattr(state[k], 'shape', ())) if hasattr(state[k], 'shape') else type(state[k]).__name__
        raise ValueError(f'{checkpoint}: {len(wrong)} of {len(expected)} model weights have another shape (e.g. '
                         f'{k}: {got} in the checkpoint, {tuple(expected[k].shape)} in the model); {hint}')
    # Whole modules the config's model lacks (a + GRU checkpoint given for a propagation config): ignored, but said.
    have = {k.split('.', 1)[0] for k in expected}
    unused = sorted({k.split('.', 1)[0] for k in state if isinstance(k, str) and k.split('.', 1)[0] not in have})
    if unused:
        warnings.warn(f'{checkpoint}: holds {", ".join(unused)} weights that {config}\'s model has no place for; '
                      'they are ignored (a checkpoint of another variant of this detector?)', stacklevel=2)
    if load:
        model.load_state_dict(state, strict=False)  # every weight of the model is there (checked above)
    return ckpt


def metric_value(metrics: Mapping[str, Any], name: str) -> float:
    """The metric whose key ends in ``name`` (``'vid/mAP_fast'`` for ``'mAP_fast'``); NaN if absent or None."""
    value = next((v for k, v in metrics.items() if k.split('/')[-1] == name), None)
    return float('nan') if value is None else float(value)


def number_or_na(value: float | None, fmt: str = '.2f') -> str:
    """``value`` formatted with ``fmt``, or ``'n/a'`` for None / NaN (a metric no sample could score)."""
    return 'n/a' if value is None or math.isnan(value) else format(value, fmt)
