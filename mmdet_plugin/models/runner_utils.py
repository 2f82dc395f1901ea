"""Config and evaluation helpers shared by tools/train_vid.py, tools/test_vid.py and tools/benchmark_vid.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lightflow.engine.config import load_config

from .flow_video_detector import FlowVideoDetector, summarize_frame_records

__all__ = ['load_vid_config', 'unwrap_video_detector', 'run_video_test']

# Config loading (with `data_root=` re-pointing every dataset root) is shared with the flow tools.
load_vid_config = load_config


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
