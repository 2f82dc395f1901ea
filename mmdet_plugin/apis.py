"""Test and benchmark plumbing of the video tools (tools/test_vid.py, tools/benchmark_vid.py, tools/demo_video.py):
run a test with timing, profile the parts of a frame, summarise the records, find a config's input files, pick a
key-frame policy from the command line."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Any, Callable, Iterator, Sequence

from .models.flow_video_detector import FlowVideoDetector, FrameRecord
from .models.key_frame_policy import KEY_FRAME_POLICIES, KeyFramePolicy, build_key_frame_policy, policy_name
from .models.utils import patched_attributes

__all__ = ['unwrap_video_detector', 'run_video_test', 'captured_frame_results', 'timed_predict', 'profiled_parts',
           'summarize_parts', 'summarize_frame_records', 'PROFILE_PARTS', 'warm_up_motion', 'dataset_inputs', 'policy_from_option',
           'policy_config']


def summarize_frame_records(records: Sequence[FrameRecord]) -> dict:
    """Frames, fps and mean latency (ms) over all / key / non-key frames of a run (the timed records), and the mean
    ``motion_px`` over the frames that have one (NaN if none)."""
    def mean_ms(rs):
        return 1000.0 * sum(r.seconds for r in rs) / len(rs) if rs else float('nan')

    timed = [r for r in records if r.seconds is not None]
    keys = [r for r in timed if r.is_key]
    others = [r for r in timed if not r.is_key]
    total = sum(r.seconds for r in timed)
    motion = [r.motion_px for r in records if r.motion_px is not None]
    return dict(frames=len(timed), key_frames=len(keys), fps=len(timed) / total if total > 0 else float('nan'),
                mean_ms=mean_ms(timed), key_ms=mean_ms(keys), nonkey_ms=mean_ms(others),
                mean_motion_px=sum(motion) / len(motion) if motion else float('nan'))


def policy_config(policy: KeyFramePolicy) -> dict:
    """A policy as a plain dict (its registered name as ``type`` and its fields: the config that builds it again),
    e.g. for a metrics file."""
    return dict(type=policy_name(policy), **dataclasses.asdict(policy))


def policy_from_option(items: Sequence[str] | None, option: str = '--key-frame-policy') -> dict | None:
    """The ``test_cfg.key_frame_policy`` dict of a command-line ``TYPE [KEY=VALUE ...]`` (e.g. ``motion threshold=4
    statistic=p90``), checked by building it from :data:`KEY_FRAME_POLICIES` (the model builds it again with its own
    ``key_frame_interval``); None for None. ``ValueError`` naming ``option`` and what is wrong."""
    if not items:
        return None
    from mmengine.config import DictAction

    kind, *pairs = items
    cfg: dict[str, Any] = dict(type=kind)
    for pair in pairs:
        if '=' not in pair or not pair.split('=', 1)[0]:
            raise ValueError(f'{option}: {pair!r} is not KEY=VALUE (after the type, one of '
                             f'{tuple(KEY_FRAME_POLICIES.module_dict)})')
        key, value = pair.split('=', 1)
        cfg[key] = DictAction._parse_iterable(value)
    try:
        build_key_frame_policy(cfg)
    except ValueError as e:
        raise ValueError(f'{option} {" ".join(items)}: {e}') from None
    return cfg


def dataset_inputs(cfg: Any, sections: Sequence[str] = ('test_dataloader', 'test_evaluator')) -> dict[str, list]:
    """The files a test of ``cfg`` reads, for :func:`lightflow.cli.check_not_an_input`: ``annotation`` files and
    ``frames`` folders (``data_root`` joined with ``ann_file`` / ``data_prefix.img_path``) of every dataset and
    evaluator in ``sections``."""
    found: dict[str, list] = dict(annotation=[], frames=[])

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            root = node.get('data_root') or ''
            if isinstance(node.get('ann_file'), str):
                found['annotation'].append(os.path.join(root, node['ann_file']))
            prefix = node.get('data_prefix')
            if isinstance(prefix, dict) and isinstance(prefix.get('img_path'), str) and root:
                found['frames'].append(os.path.join(root, prefix['img_path']))
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    for section in sections:
        walk(cfg.get(section))
    return found


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
        data = model.data_preprocessor(batch, False)
        img, meta = data['inputs'][:, 0], data['data_samples'][0].video_data_samples[0].metainfo
        model.motion(img, img, [(meta, meta)])  # the frame's own metainfo: motions that read it (OracleMotion) run
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


@contextlib.contextmanager
def captured_frame_results() -> Iterator[list[dict]]:
    """Collect the per-frame results (``VIDMotionMetric``'s: boxes, scores, ground truths) that the ``runner.test()``
    calls inside the block compute their mAP from, for splits the metric does not make
    (:mod:`mmdet_plugin.evaluation.key_states`)."""
    from .evaluation.vid_metric import VIDMotionMetric

    captured: list[dict] = []
    original = VIDMotionMetric.compute_metrics

    def compute_metrics(self, results: list) -> dict[str, float]:
        captured.extend(results)
        return original(self, results)

    with patched_attributes([(VIDMotionMetric, 'compute_metrics', compute_metrics)]):
        yield captured


def run_video_test(runner: Any, key_frame_interval: int | None = None,
                   key_frame_policy: KeyFramePolicy | dict | None = None) -> dict:
    """Run ``runner.test()`` once (optionally with another key-frame policy and / or interval) and add timing to its
    metrics.

    Returns:
        The metrics of the test evaluator plus ``frames``, ``key_frames``, ``fps`` and ``mean_ms`` / ``key_ms`` /
        ``nonkey_ms`` (wall time inside the detector's ``predict``: features, flow, head, post-processing),
        ``key_frame_interval`` and ``key_frame_policy`` (:func:`policy_config`).
    """
    model = unwrap_video_detector(runner.model)
    if key_frame_policy is not None:
        model.key_frame_policy = key_frame_policy
    if key_frame_interval is not None:
        model.key_frame_interval = key_frame_interval
    warm_up_motion(runner, model)
    model.frame_records.clear()
    with timed_predict(model):
        metrics = dict(runner.test())
    metrics.update(summarize_frame_records(model.frame_records))
    metrics['key_frame_interval'] = model.key_frame_interval
    metrics['key_frame_policy'] = policy_config(model.key_frame_policy)
    return metrics
