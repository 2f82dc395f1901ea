"""The graph folder's ``manifest.json``: read, checked against the folder's graphs, refused in one line if wrong."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ['FORMAT', 'FORMAT_VERSION', 'load_manifest']

FORMAT, FORMAT_VERSION = 'lightflow-video-detector', 1
_REQUIRED = ('frame_size', 'input_size', 'normalize', 'classes', 'levels', 'key_frame_policy', 'aggregator',
             'head', 'graphs')


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(folder: str | Path, verify: bool = True) -> dict[str, Any]:
    """The manifest of a graph folder written by ``tools/export_video_detector.py``.

    Raises ``FileNotFoundError`` for a missing folder / manifest / graph and ``ValueError`` (naming the file) for
    another format, a newer format version, a missing field or a graph whose sha256 differs from the manifest's.
    """
    folder = Path(folder)
    path = folder / 'manifest.json'
    if not folder.is_dir():
        raise FileNotFoundError(f'{folder}: no such graph folder (write one with tools/export_video_detector.py)')
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no manifest; is {folder} a folder from tools/export_video_detector.py?')
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f'{path}: not a JSON manifest ({e})') from None
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT:
        raise ValueError(f'{path}: not a {FORMAT} manifest')
    version = manifest.get('format_version')
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f'{path}: format version {version!r} is newer than this runtime reads ({FORMAT_VERSION}); '
                         'update lightflow_deploy')
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise ValueError(f'{path}: missing field(s) {missing}')
    motion = manifest.get('motion', True)  # False: a single-frame detector (every frame a key frame)
    if not motion and (manifest['aggregator'] or manifest['key_frame_policy'].get('type') != 'fixed'
                       or manifest['key_frame_policy'].get('key_frame_interval') != 1):
        raise ValueError(f'{path}: motion is false, but the policy / aggregator needs non-key frames')
    needed = ['key_feats', 'head'] + (['nonkey'] if motion else []) \
        + (['gru_init', 'gru_step'] if manifest['aggregator'] else [])
    for name in needed:
        entry = manifest['graphs'].get(name)
        if entry is None:
            raise ValueError(f'{path}: no {name!r} graph listed')
        graph = folder / entry['file']
        if not graph.is_file():
            raise FileNotFoundError(f'{graph}: graph missing (listed in {path})')
        if verify and _sha256(graph) != entry['sha256']:
            raise ValueError(f'{graph}: sha256 differs from {path}; the graph was changed or comes from another '
                             'export')
    return manifest
