"""Every step of a :class:`FlowVideoDetector` as an ONNX graph, plus a manifest: what ``lightflow_deploy`` runs.

The graphs (all float32, batch 1, at the detector's padded input size (Hp, Wp); images are the detector's
normalised inputs (1, 3, Hp, Wp)):

* ``key_feats.onnx``: ``img`` -> ``feat0..L-1`` (backbone + neck, ``detector.detector.extract_feat``).
* ``head.onnx``: ``feat0..L-1`` -> ``cls_score0..``, ``bbox_pred0..`` (the single-stage head's raw outputs).
* ``nonkey.onnx``: ``key_feat0..``, ``key_img``, ``img`` -> head outputs and ``flow`` (1, 2, h, w), the flow
  img -> key_img on the motion grid in pixels of that grid (the adaptive policy's statistic is computed from it).
* with an aggregator, ``gru_init.onnx``: ``feat0..`` -> ``state0..``, ``head_feat0..`` (a chain's first key:
  ``init_state``, ``output``), and ``gru_step.onnx``: ``feat0..``, ``state0..``, ``prev_key_img``, ``key_img`` ->
  ``state0..``, ``head_feat0..`` (flow key_img -> prev_key_img, the state warped by it, one aggregator step).

A single-frame detector (``motion=None``: every frame a key frame) exports ``key_feats`` and ``head`` only; its
manifest says ``motion: false`` and a fixed policy with interval 1.

Decoding and NMS are not graphs: ``lightflow_deploy.postprocess`` does them in numpy from the manifest's anchors,
box coder and ``test_cfg``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from lightflow.inference import OPSET, module_onnx_bytes
from lightflow.io import atomic_write
from lightflow.warp import flow_warp, resize_flow

from .export import NonKeyStep
from .models.flow_video_detector import FlowVideoDetector

__all__ = ['FORMAT', 'FORMAT_VERSION', 'KeyFeatStep', 'HeadStep', 'GruInitStep', 'GruStep', 'export_video_detector',
           'export_trained_detector', 'find_resize_scale', 'video_manifest']

FORMAT, FORMAT_VERSION = 'lightflow-video-detector', 1


def _flat(groups: Any) -> tuple[Tensor, ...]:
    return tuple(t for g in groups for t in ((g,) if isinstance(g, Tensor) else g))


class KeyFeatStep(nn.Module):
    """``img`` (1, 3, Hp, Wp) -> features per level (backbone + neck)."""

    def __init__(self, detector: FlowVideoDetector) -> None:
        super().__init__()
        self.detector = detector.detector

    def forward(self, img: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.detector.extract_feat(img))


class HeadStep(nn.Module):
    """Features per level -> the head's raw outputs, flat: ``(*cls_scores, *bbox_preds)``."""

    def __init__(self, detector: FlowVideoDetector) -> None:
        super().__init__()
        self.head = detector.detector.bbox_head

    def forward(self, *feats: Tensor) -> tuple[Tensor, ...]:
        return _flat(self.head(tuple(feats)))


class GruInitStep(nn.Module):
    """A chain's first key frame: features -> ``(*state, *head_feats)`` (``init_state``, then ``output``)."""

    def __init__(self, detector: FlowVideoDetector) -> None:
        super().__init__()
        self.aggregator = detector.aggregator

    def forward(self, *feats: Tensor) -> tuple[Tensor, ...]:
        state = tuple(self.aggregator.init_state(tuple(feats)))
        return (*state, *self.aggregator.output(state))


class GruStep(nn.Module):
    """A later key frame: ``(*feats, *state, prev_key_img, key_img)`` -> ``(*new_state, *head_feats)``.

    The flow key_img -> prev_key_img (the non-key step's flow path, BN folded) warps the previous state per level
    (as ``FlowWarp`` does, without its zero-flow shortcut, which a trace would freeze); then one aggregator step.
    """

    def __init__(self, detector: FlowVideoDetector) -> None:
        super().__init__()
        if detector.aggregator is None:
            raise ValueError('GruStep needs a detector with an aggregator')
        self.aggregator = detector.aggregator
        self.flow_step = NonKeyStep(detector)
        self.padding_mode, self.fast = detector.warp.padding_mode, getattr(detector.warp, 'fast', True)

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        *levels, prev_key_img, key_img = args
        n = len(levels) // 2
        feats, state = tuple(levels[:n]), tuple(levels[n:])
        flow = self.flow_step.flow(key_img, prev_key_img)
        warped = tuple(flow_warp(s, resize_flow(flow, (int(s.shape[-2]), int(s.shape[-1]))),
                                 padding_mode=self.padding_mode, fast=self.fast) for s in state)
        new = tuple(self.aggregator(feats, warped))
        return (*new, *self.aggregator.output(new))


def _policy_dict(detector: FlowVideoDetector) -> dict:
    if detector.motion is None:  # a single-frame detector: every frame is a key frame
        return {'type': 'fixed', 'key_frame_interval': 1}
    policy = detector.key_frame_policy
    names = {'FixedInterval': 'fixed', 'MotionThreshold': 'motion'}
    kind = names.get(type(policy).__name__)
    if kind is None:
        raise ValueError(f'key-frame policy {type(policy).__name__} has no deployed version (fixed, motion)')
    return {'type': kind, **dataclasses.asdict(policy)}


def _head_dict(detector: FlowVideoDetector, levels: int) -> dict:
    head = detector.detector.bbox_head
    gen, coder, cfg = head.prior_generator, head.bbox_coder, head.test_cfg
    if type(coder).__name__ != 'DeltaXYWHBBoxCoder' or not getattr(head, 'use_sigmoid_cls', False):
        raise ValueError(f'deployed decoding supports sigmoid heads with DeltaXYWHBBoxCoder (RetinaNet); got '
                         f'{type(head).__name__} with {type(coder).__name__}')
    nms = dict(cfg.get('nms', {}))
    if nms.get('type', 'nms') != 'nms':
        raise ValueError(f"deployed NMS supports test_cfg.nms.type='nms', got {nms.get('type')!r}")
    return {
        'num_classes': int(head.num_classes), 'num_anchors': int(gen.num_base_priors[0]),
        'strides': [[float(s) for s in st] for st in gen.strides[:levels]],
        'base_anchors': [a.tolist() for a in gen.base_anchors[:levels]],
        'bbox_coder': {'means': [float(v) for v in coder.means], 'stds': [float(v) for v in coder.stds],
                       'clip_border': bool(coder.clip_border), 'add_ctr_clamp': bool(coder.add_ctr_clamp),
                       'ctr_clamp': float(coder.ctr_clamp), 'wh_ratio_clip': 16 / 1000},
        'test_cfg': {'nms_pre': int(cfg.get('nms_pre', -1)), 'score_thr': float(cfg.get('score_thr', 0.0)),
                     'min_bbox_size': float(cfg.get('min_bbox_size', -1)),
                     'iou_threshold': float(nms.get('iou_threshold', 0.5)),
                     'class_agnostic': bool(nms.get('class_agnostic', False)),
                     'max_per_img': int(cfg.get('max_per_img', 100))},
    }


def video_manifest(detector: FlowVideoDetector, frame_size: tuple[int, int], input_size: tuple[int, int],
                   levels: int, classes: list[str], resize_scale: Optional[tuple[int, int]]) -> dict:
    """The manifest's model part (the graphs' digests are added by :func:`export_video_detector`)."""
    pre = detector.data_preprocessor
    agg = detector.aggregator
    return {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'frame_size': list(frame_size), 'input_size': list(input_size),
        'resize': None if resize_scale is None else {'scale': list(resize_scale), 'keep_ratio': True},
        'pad_size_divisor': int(getattr(pre, 'pad_size_divisor', 1)),
        'normalize': {'mean': pre.mean.flatten().tolist(), 'std': pre.std.flatten().tolist(),
                      'bgr_to_rgb': bool(getattr(pre, '_channel_conversion', False))},
        'classes': list(classes), 'levels': levels, 'motion': detector.motion is not None,
        'key_frame_policy': _policy_dict(detector),
        'aggregator': agg is not None, 'aggregator_max_chain': None if agg is None else agg.max_chain,
        'head': _head_dict(detector, levels),
    }


def export_video_detector(detector: FlowVideoDetector, out_dir: str | os.PathLike, frame_size: tuple[int, int],
                          classes: list[str], resize_scale: Optional[tuple[int, int]] = None,
                          opset: int = OPSET) -> dict:
    """Write every graph of ``detector`` for (H, W) frames and ``manifest.json`` into ``out_dir``; return the manifest.

    Args:
        detector: a :class:`FlowVideoDetector` around a single-stage sigmoid head (RetinaNet); without a motion
            module (a single-frame detector) only ``key_feats`` and ``head`` are written.
        out_dir: output folder (created; the files are written atomically, the manifest last).
        frame_size: (H, W) of the frames after the test pipeline's resize; the graphs take them padded to the
            preprocessor's ``pad_size_divisor``.
        classes: class names, in label order.
        resize_scale: the test pipeline's ``Resize(scale=(w, h), keep_ratio=True)`` scale (None: no resize).
        opset: ONNX opset (>= 17).
    """
    h, w = (int(v) for v in frame_size)
    if h <= 0 or w <= 0:
        raise ValueError(f'frame_size must be positive (H, W), got {frame_size!r}')
    div = int(getattr(detector.data_preprocessor, 'pad_size_divisor', 1))
    hp, wp = -(-h // div) * div, -(-w // div) * div
    detector = detector.cpu().eval()
    img = torch.zeros(1, 3, hp, wp)
    with torch.no_grad():
        feats = KeyFeatStep(detector)(img)
    levels = len(feats)
    feat_names = [f'feat{i}' for i in range(levels)]
    head_outs = [f'{g}{i}' for g in ('cls_score', 'bbox_pred') for i in range(levels)]
    jobs = [('key_feats', KeyFeatStep(detector), (img,), ['img'], feat_names),
            ('head', HeadStep(detector), feats, feat_names, head_outs)]
    if detector.motion is not None:
        jobs.append(('nonkey', NonKeyStep(detector, with_flow=True), (*feats, img, img),
                     [f'key_feat{i}' for i in range(levels)] + ['key_img', 'img'], [*head_outs, 'flow']))
    if detector.aggregator is not None and detector.motion is not None:
        with torch.no_grad():
            state = GruInitStep(detector)(*feats)[:levels]
        state_names = [f'state{i}' for i in range(levels)]
        head_feat_names = [f'head_feat{i}' for i in range(levels)]
        jobs += [('gru_init', GruInitStep(detector), feats, feat_names, [*state_names, *head_feat_names]),
                 ('gru_step', GruStep(detector), (*feats, *state, img, img),
                  [*feat_names, *(f'prev_{n}' for n in state_names), 'prev_key_img', 'key_img'],
                  [*state_names, *head_feat_names])]
    manifest = video_manifest(detector, (h, w), (hp, wp), levels, classes, resize_scale)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    graphs = {}
    for name, module, example, inputs, outputs in jobs:
        data = module_onnx_bytes(module.eval(), tuple(example), inputs, outputs, opset=opset, check=True,
                                 what=f'the detector ({name})')
        with atomic_write(out_dir / f'{name}.onnx', 'wb') as f:
            f.write(data)
        graphs[name] = {'file': f'{name}.onnx', 'sha256': hashlib.sha256(data).hexdigest(), 'inputs': inputs,
                        'outputs': outputs}
    manifest['graphs'] = graphs
    with atomic_write(out_dir / 'manifest.json', 'w') as f:
        json.dump(manifest, f, indent=1)
    return manifest


def find_resize_scale(pipeline: Any) -> Optional[tuple[int, int]]:
    """The (w, h) scale of the first ``Resize`` in a (nested) test pipeline; None if there is none."""
    if isinstance(pipeline, dict):
        if pipeline.get('type') == 'Resize':
            if not pipeline.get('keep_ratio', False):
                raise ValueError('the test pipeline\'s Resize has keep_ratio=False; the runtime resizes as '
                                 'keep_ratio=True only')
            scale = pipeline.get('scale')
            return (int(scale[0]), int(scale[1])) if scale is not None else None
        pipeline = list(pipeline.values())
    if isinstance(pipeline, (list, tuple)):
        for item in pipeline:
            found = find_resize_scale(item)
            if found is not None:
                return found
    return None


def export_trained_detector(config: str, checkpoint: str, out: str | os.PathLike,
                            frame_size: Optional[tuple[int, int]] = None, cfg_options: Optional[dict] = None) -> dict:
    """:func:`export_video_detector` for a trained detector given as config + checkpoint (``export_video_detector.py``
    and ``benchmark_deploy.py``): the weights checked against the config's model
    (:func:`lightflow.cli.load_fitting_checkpoint`), the frame size from the test pipeline's ``Resize`` unless given
    ((H, W)), the class names from the checkpoint's ``meta`` or the config.

    Returns:
        the manifest written to ``out``.
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    from lightflow.cli import load_fitting_checkpoint
    from lightflow.engine.config import load_config

    cfg = load_config(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    if not isinstance(model, FlowVideoDetector):
        raise ValueError(f'{config}: model is a {type(model).__name__}, not a FlowVideoDetector')
    ckpt = load_fitting_checkpoint(model, checkpoint, config, load=True)
    model.eval()
    pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', [])
    scale = find_resize_scale(pipeline)
    if frame_size is None:
        if scale is None:
            raise ValueError(f'{config}: the test pipeline has no Resize; give --frame-size H W')
        frame_size = (min(scale), max(scale)) if scale[0] >= scale[1] else (max(scale), min(scale))
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    classes = (meta.get('dataset_meta') or {}).get('classes') \
        or cfg.get('test_dataloader', {}).get('dataset', {}).get('metainfo', {}).get('classes') \
        or [str(i) for i in range(model.detector.bbox_head.num_classes)]
    return export_video_detector(model, out, tuple(frame_size), list(classes), resize_scale=scale)
