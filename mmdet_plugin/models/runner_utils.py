"""Config and evaluation helpers shared by tools/train_vid.py, tools/test_vid.py and tools/benchmark_vid.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from mmengine.config import Config

from .flow_video_detector import FlowVideoDetector, summarize_frame_records

__all__ = ['load_vid_config', 'unwrap_video_detector', 'run_video_test']

_SECTIONS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator')


def _replace_value(node: Any, key: str, old: str, new: str) -> int:
    count = 0
    if isinstance(node, dict):
        for k, value in node.items():
            if k == key and value == old:
                node[k] = new
                count += 1
            else:
                count += _replace_value(value, key, old, new)
    elif isinstance(node, (list, tuple)):
        count += sum(_replace_value(v, key, old, new) for v in node)
    return count


def load_vid_config(path: str, cfg_options: dict | None = None, work_dir: str | None = None) -> Config:
    """``Config.fromfile`` + ``--cfg-options`` + default ``work_dirs/<config name>``.

    ``data_root=DIR`` among the options re-points every dataloader/evaluator ``data_root`` equal to the config's
    ``data_root`` variable (mmengine substitutes base variables when reading, so the variable alone would not).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f'{path}: no such config file')
    cfg = Config.fromfile(path)
    options = dict(cfg_options or {})
    if 'data_root' in options:
        new_root, old_root = str(options.pop('data_root')), cfg.get('data_root')
        if old_root is None:
            raise ValueError(f'data_root: {path} defines no data_root variable')
        for name in _SECTIONS:
            if cfg.get(name) is not None:
                _replace_value(cfg[name], 'data_root', old_root, new_root)
        cfg.data_root = new_root
    if options:
        cfg.merge_from_dict(options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = str(Path('work_dirs') / Path(path).stem)
    return cfg


def unwrap_video_detector(model: Any) -> FlowVideoDetector:
    """The FlowVideoDetector inside a (possibly DDP-wrapped) runner model."""
    model = getattr(model, 'module', model)
    if not isinstance(model, FlowVideoDetector):
        raise ValueError(f'expected a FlowVideoDetector model, got {type(model).__name__}')
    return model


def run_video_test(runner: Any, key_frame_interval: int | None = None) -> dict:
    """Run ``runner.test()`` once (optionally with another key-frame interval) and add timing to its metrics.

    Returns:
        The metrics of the test evaluator plus ``frames``, ``key_frames``, ``fps`` and ``mean_ms`` / ``key_ms`` /
        ``nonkey_ms`` (wall time inside the detector's ``predict``: features, flow, head, post-processing).
    """
    model = unwrap_video_detector(runner.model)
    if key_frame_interval is not None:
        model.key_frame_interval = key_frame_interval
    model.frame_records.clear()
    metrics = dict(runner.test())
    metrics.update(summarize_frame_records(model.frame_records))
    metrics['key_frame_interval'] = model.key_frame_interval
    return metrics
