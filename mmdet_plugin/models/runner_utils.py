"""Config and evaluation helpers shared by tools/train_vid.py, tools/test_vid.py and tools/benchmark_vid.py."""
from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator

from lightflow.engine.config import load_config

from .flow_video_detector import FlowVideoDetector, patched_attributes, summarize_frame_records

__all__ = ['load_vid_config', 'unwrap_video_detector', 'run_video_test', 'timed_predict', 'profiled_parts',
           'summarize_parts', 'PROFILE_PARTS', 'warm_up_motion']

# Config loading (with `data_root=` re-pointing every dataset root) is shared with the flow tools.
load_vid_config = load_config


def unwrap_video_detector(model: Any) -> FlowVideoDetector:
    """The FlowVideoDetector inside a (possibly DDP-wrapped) runner model."""
    model = getattr(model, 'module', model)
    if not isinstance(model, FlowVideoDetector):
        raise ValueError(f'expected a FlowVideoDetector model, got {type(model).__name__}')
    return model


def warm_up_motion(runner: Any, model: FlowVideoDetector) -> None:
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


def _sync(args: tuple, kwargs: dict) -> None:
    """Wait for the GPU when the first tensor among a call's arguments is on CUDA, so a timer measures work, not
    launches."""
    import torch

    t = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
    if t is not None and t.is_cuda:
        torch.cuda.synchronize(t.device)


def _timed(fn: Callable, record: Callable[[float], None]) -> Callable:
    """``fn`` wrapped to pass the seconds of each call (GPU-synchronised) to ``record``."""
    def timed(*args, **kwargs):
        _sync(args, kwargs)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        _sync(args, kwargs)
        record(time.perf_counter() - start)
        return out
    return timed


@contextlib.contextmanager
def timed_predict(model: FlowVideoDetector) -> Iterator[None]:
    """Time every ``model.predict`` call inside the block into its frame's ``FrameRecord.seconds``.

    The wall time of the call: features, flow, warp, head, decoding and NMS (not data loading or the metric). On CUDA
    the device is synchronised before and after, so the time is the frame's work, not its launch.
    """
    def record(seconds: float) -> None:
        model.frame_records[-1].seconds = seconds

    with patched_attributes([(model, 'predict', _timed(model.predict, record))]):
        yield


# The parts of a test frame, in the order they run. 'aggregate' is the GRU step alone (its flow and warp count as
# 'flow' and 'warp'); 'head' is the detector head's forward; 'post-process' its decoding + NMS (``predict_by_feat``).
PROFILE_PARTS = ('features', 'flow', 'warp', 'aggregate', 'head', 'post-process')


def _part_targets(model: FlowVideoDetector) -> list[tuple[str, Any, str]]:
    """(part, object, method name) for each part this model has; a two-stage detector's heads are not split."""
    head = getattr(model.detector, 'bbox_head', None)
    targets = [('features', model.detector, 'extract_feat'), ('flow', model.motion, 'forward'),
               ('warp', model.warp, 'forward'), ('aggregate', model.aggregator, 'forward'),
               ('head', head, 'forward'), ('post-process', head, 'predict_by_feat')]
    return [t for t in targets if t[1] is not None]


@contextlib.contextmanager
def profiled_parts(model: FlowVideoDetector) -> Iterator[list[dict]]:
    """Time the parts of every ``model.predict`` call inside the block (see ``PROFILE_PARTS``).

    Yields a list that gets one dict per frame: ``is_key``, ``total`` and each part's seconds (``other`` = the rest:
    the key-frame policy, caching, un-normalising). Parts are wrapped at the instance level, with a CUDA
    synchronisation around each on GPU; the wrappers cost a few microseconds a call.
    """
    frames: list[dict] = []
    current: dict = {}

    def wrap(name, fn):
        def record(seconds: float) -> None:
            current[name] = current.get(name, 0.0) + seconds
        return _timed(fn, record)

    predict = wrap('total', model.predict)

    def frame(*args, **kwargs):
        current.clear()
        out = predict(*args, **kwargs)
        record = dict(current, is_key=model.frame_records[-1].is_key)
        record['other'] = record['total'] - sum(record.get(p, 0.0) for p in PROFILE_PARTS)
        frames.append(record)
        return out

    patches = [(obj, attr, wrap(name, getattr(obj, attr))) for name, obj, attr in _part_targets(model)]
    with patched_attributes(patches + [(model, 'predict', frame)]):
        yield frames


def summarize_parts(frames: list[dict]) -> dict[str, dict[str, float]]:
    """Mean milliseconds per part over the key frames and over the other frames of a :func:`profiled_parts` run:
    ``{'key': {part: ms}, 'non-key': {part: ms}}`` with every part of ``PROFILE_PARTS``, ``other`` and ``total``;
    NaN for a part that no frame ran (no aggregator; the heads of a two-stage detector, which land in ``other``)."""
    seen = {part for f in frames for part in f}  # a part no frame ran (no GRU; a two-stage head) is NaN, not 0
    out = {}
    for kind, is_key in (('key', True), ('non-key', False)):
        chosen = [f for f in frames if f['is_key'] is is_key]
        out[kind] = {part: 1000.0 * sum(f.get(part, 0.0) for f in chosen) / len(chosen)
                     if chosen and part in seen else float('nan') for part in (*PROFILE_PARTS, 'other', 'total')}
    return out


def run_video_test(runner: Any, key_frame_interval: int | None = None) -> dict:
    """Run ``runner.test()`` once (optionally with another key-frame interval) and add timing to its metrics.

    Returns:
        The metrics of the test evaluator plus ``frames``, ``key_frames``, ``fps`` and ``mean_ms`` / ``key_ms`` /
        ``nonkey_ms`` (wall time inside the detector's ``predict``: features, flow, head, post-processing).
    """
    model = unwrap_video_detector(runner.model)
    if key_frame_interval is not None:
        model.key_frame_interval = key_frame_interval
    warm_up_motion(runner, model)
    model.frame_records.clear()
    with timed_predict(model):
        metrics = dict(runner.test())
    metrics.update(summarize_frame_records(model.frame_records))
    metrics['key_frame_interval'] = model.key_frame_interval
    return metrics
