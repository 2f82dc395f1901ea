"""Config and evaluation helpers shared by tools/train_vid.py, tools/test_vid.py and tools/benchmark_vid.py."""
from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

from lightflow.engine.config import load_config

from .flow_video_detector import FlowVideoDetector, summarize_frame_records

__all__ = ['load_vid_config', 'unwrap_video_detector', 'run_video_test', 'timed_predict']

# Config loading (with `data_root=` re-pointing every dataset root) is shared with the flow tools.
load_vid_config = load_config


def unwrap_video_detector(model: Any) -> FlowVideoDetector:
    """The FlowVideoDetector inside a (possibly DDP-wrapped) runner model."""
    model = getattr(model, 'module', model)
    if not isinstance(model, FlowVideoDetector):
        raise ValueError(f'expected a FlowVideoDetector model, got {type(model).__name__}')
    return model


def _warm_up_motion(runner: Any, model: FlowVideoDetector) -> None:
    """Compile the flow backend for the test frames' size before timing: the first call per input shape exports and
    compiles the flow graph (and with ``backend='auto'`` races the runtimes), ~0.3-1 s that no frame should carry."""
    if model.motion is None:
        return
    import torch
    batch = next(iter(runner.test_loop.dataloader))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        img = model.data_preprocessor(batch, False)['inputs'][:, 0]
        model.motion(img, img)
    model.train(was_training)


@contextlib.contextmanager
def timed_predict(model: FlowVideoDetector) -> Iterator[None]:
    """Time every ``model.predict`` call inside the block into its frame's ``FrameRecord.seconds``.

    The wall time of the call: features, flow, warp, head, decoding and NMS (not data loading or the metric). On CUDA
    the device is synchronised before and after, so the time is the frame's work, not its launch.
    """
    import torch

    predict = model.predict

    def timed(batch_inputs, *args, **kwargs):
        sync = batch_inputs.is_cuda
        if sync:
            torch.cuda.synchronize(batch_inputs.device)
        start = time.perf_counter()
        out = predict(batch_inputs, *args, **kwargs)
        if sync:
            torch.cuda.synchronize(batch_inputs.device)
        model.frame_records[-1].seconds = time.perf_counter() - start
        return out

    model.predict = timed
    try:
        yield
    finally:
        del model.predict  # back to the class's method


def run_video_test(runner: Any, key_frame_interval: int | None = None) -> dict:
    """Run ``runner.test()`` once (optionally with another key-frame interval) and add timing to its metrics.

    Returns:
        The metrics of the test evaluator plus ``frames``, ``key_frames``, ``fps`` and ``mean_ms`` / ``key_ms`` /
        ``nonkey_ms`` (wall time inside the detector's ``predict``: features, flow, head, post-processing).
    """
    model = unwrap_video_detector(runner.model)
    if key_frame_interval is not None:
        model.key_frame_interval = key_frame_interval
    _warm_up_motion(runner, model)
    model.frame_records.clear()
    with timed_predict(model):
        metrics = dict(runner.test())
    metrics.update(summarize_frame_records(model.frame_records))
    metrics['key_frame_interval'] = model.key_frame_interval
    return metrics
