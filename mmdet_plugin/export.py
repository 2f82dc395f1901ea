"""The non-key-frame step of a :class:`FlowVideoDetector` as one exported graph (what a mobile deployer runs).

``(key-frame features, key image, current image) -> raw head outputs of the current frame``: Light Flow between the
two images (BN folded, at the motion module's flow size), the flow resized once per feature level, the key features
warped by ``grid_sample``, and the wrapped single-stage detector's head (``bbox_head.forward``). Post-processing
(decoding, NMS) stays outside, as in mmdeploy. Images are the detector's normalised inputs (N, 3, H, W); the key-frame
features are what the detector computed on the key frame (``extract_feat``, or the aggregator's output).

    step = NonKeyStep(detector).eval()
    outputs = step(*key_feats, key_img, img)          # flat tuple: cls scores per level, then box deltas per level
    export_nonkey_onnx(detector, 'nonkey.onnx', height=160, width=224)
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from lightflow.inference import OPSET, FlowGraph, module_onnx_bytes
from lightflow.warp import flow_warp, resize_flow

from .models.flow_video_detector import FlowVideoDetector

__all__ = ['NonKeyStep', 'export_nonkey_onnx', 'nonkey_inputs', 'onnx_nonkey_bytes']

_OUTPUT_GROUPS = ('cls_score', 'bbox_pred', 'centerness')  # output names of the head's groups, in its order


class NonKeyStep(nn.Module):
    """Flow + warp + head of a non-key frame of ``detector`` (a single-stage mmdet detector inside), as one module.

    Args:
        detector: a :class:`FlowVideoDetector` with a ``LightFlowMotion`` and a single-stage detector whose head
            returns per-level lists (``(cls_scores, bbox_preds)`` for RetinaNet, plus centernesses for FCOS).
        with_flow: also return the (N, 2, h, w) flow img -> key_img on the motion grid, last (the adaptive
            key-frame policy's motion statistic is computed from it).
    """

    def __init__(self, detector: FlowVideoDetector, with_flow: bool = False) -> None:
        super().__init__()
        self.with_flow = bool(with_flow)
        motion = detector.motion
        if motion is None:
            raise ValueError('NonKeyStep needs a detector with a motion module (a single-frame detector has no '
                             'non-key frames)')
        if not hasattr(detector.detector, 'bbox_head') or hasattr(detector.detector, 'roi_head'):
            raise ValueError(f'NonKeyStep exports single-stage heads (bbox_head.forward); '
                             f'{type(detector.detector).__name__} is not one')
        self.motion = motion
        with torch.no_grad():  # a BN-folded copy of the flow network
            self.flow_graph = FlowGraph(motion.flownet)
        self.padding_mode = detector.warp.padding_mode
        self.head = detector.detector.bbox_head

    def flow(self, img: Tensor, key_img: Tensor) -> Tensor:
        """Flow from ``img`` to ``key_img`` (detector-normalised (N, 3, H, W)) on the motion module's own grid."""
        a, b, native = self.motion.flow_inputs(img, key_img)
        # LightFlowMotion's own choice: no upsampling when the flow size is a multiple of 64.
        return FlowGraph.pixel_flow(self.flow_graph.net, a, b, upsample=not native)

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        """``(*key_feats, key_img, img)`` -> the head's outputs of the current frame, flat: ``(*cls_scores,
        *bbox_preds[, *centernesses])``."""
        *key_feats, key_img, img = args
        flow = self.flow(img, key_img)
        warped = [flow_warp(f, resize_flow(flow, (int(f.shape[-2]), int(f.shape[-1]))), padding_mode=self.padding_mode,
                            fast=True)
                  for f in key_feats]
        # Flatten whatever the head returns: (cls_scores, bbox_preds) for RetinaNet, + centernesses for FCOS.
        out = tuple(t for group in self.head(tuple(warped))
                    for t in ((group,) if isinstance(group, Tensor) else group))
        return (*out, flow) if self.with_flow else out


def nonkey_inputs(detector: FlowVideoDetector, key_img: Tensor, img: Tensor) -> tuple[Tensor, ...]:
    """The inputs of :class:`NonKeyStep` for a key frame and a current frame: ``(*key_feats, key_img, img)``."""
    with torch.no_grad():
        feats = tuple(detector.detector.extract_feat(key_img))
    return (*feats, key_img, img)


def onnx_nonkey_bytes(detector: FlowVideoDetector, height: int, width: int, opset: int = OPSET) -> bytes:
    """The non-key step of ``detector`` for (height, width) detector inputs as validated ONNX model bytes.

    Inputs are named ``key_feat0 .. key_featL-1``, ``key_img``, ``img``; outputs ``cls_score0..``, ``bbox_pred0..``
    (and ``centerness0..`` for FCOS; ``outK_0..`` for any further group a head returns). Exported by
    :func:`lightflow.inference.module_onnx_bytes`, the flow graph's exporter (weights sha256 in the metadata; NaN/inf
    weights and ``opset < 17`` refused).
    """
    for name, v in (('height', height), ('width', width)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f'{name} must be a positive int, got {v!r}')
    step = NonKeyStep(detector).eval().cpu()
    img = torch.zeros(1, 3, height, width)
    example = nonkey_inputs(detector.cpu().eval(), img, img)
    levels = len(example) - 2
    inputs = [f'key_feat{i}' for i in range(levels)] + ['key_img', 'img']
    with torch.no_grad():
        groups = len(step(*example)) // levels
    names = [*_OUTPUT_GROUPS, *(f'out{k}_' for k in range(len(_OUTPUT_GROUPS), groups))][:groups]
    outputs = [f'{name}{i}' for name in names for i in range(levels)]
    return module_onnx_bytes(step, example, inputs, outputs, opset=opset, check=True, what='the detector')


def export_nonkey_onnx(detector: FlowVideoDetector, path: str | os.PathLike, height: int, width: int,
                       opset: int = OPSET) -> Path:
    """Write :func:`onnx_nonkey_bytes` to ``path`` atomically (temp file, then rename)."""
    from lightflow.io import atomic_write
    data = onnx_nonkey_bytes(detector, height, width, opset)
    path = Path(path)
    with atomic_write(path, 'wb') as f:
        f.write(data)
    return path
