"""Every checkpoint mmengine loads from a local path goes through :func:`lightflow.checkpoint._torch_load`.

mmengine's own local loader retries with ``torch.load(weights_only=False)`` when the safe load fails, so a checkpoint
whose pickle calls ``os.system`` would run code through ``--resume``, ``load_from`` or ``test_vid.py``. Importing
``lightflow.engine`` (every config does, the mmdet plugin too) replaces the loader for local paths with the project's
one: ``weights_only=True`` with mmengine's allow-list of its own safe types, and a one-line ``ValueError`` naming the
file and the refused global otherwise.
"""
from __future__ import annotations

from mmengine.runner.checkpoint import CheckpointLoader

from ..checkpoint import _torch_load

__all__ = ['load_local_checkpoint']


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_local_checkpoint(filename: str, map_location=None):
    """mmengine's scheme loader for local files (``CheckpointLoader``), weights only."""
    return _torch_load(filename, 'cpu' if map_location is None else map_location)
