"""``LightFlowMotion``: Light Flow as the motion estimator of a video detector (arXiv 1804.05830, Section 3)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import torch
from mmdet.registry import MODELS
from torch import Tensor, nn

from lightflow import LightFlow
from lightflow.checkpoint import load_lightflow_weights
from lightflow.inference import FlowGraph, flow_estimator, resolve_backend
from lightflow.models.lightflow import PRED_UPSAMPLE
from lightflow.pretrained import resolve_weights

from .baseline_motion import FrameMotion

__all__ = ['LightFlowMotion']


@MODELS.register_module()
class LightFlowMotion(FrameMotion):
    """Flow between two detector-normalised frames with Light Flow.

    The inputs are the detector's inputs (after its data preprocessor). They are mapped back to RGB 0..255
    (``x * std + mean``, then BGR -> RGB unless ``bgr_to_rgb``), resized by ``flow_scale`` (the paper runs the flow at
    half the detector resolution), as every :class:`FrameMotion` does, then padded to /64 and passed to Light Flow
    (:meth:`lightflow.inference.FlowGraph.pixel_flow`, the one frames -> flow path). In eval mode without gradients the
    flow runs through the inference ``backend`` (ONNX Runtime / OpenVINO / BN-folded torch,
    :class:`lightflow.FlowEstimator`).
    The flow is returned at the resolution it was computed at, in pixels of its own grid: the network's 1/4 output
    grid with ``resize_to_divisor`` (no upsampling at all), else the flow input size. ``FlowWarp`` resizes it once per
    feature level with the values rescaled (:func:`lightflow.resize_flow`), instead of upsampling it to the frame
    size and then downsampling it again.

    Args:
        width_mult: Light Flow width multiplier alpha (1.0, 0.75, 0.5 in Table 2).
        flow_scale: resize factor of the frames before the flow network (0.5 in the paper).
        img_mean: per-channel mean of the detector's data preprocessor, in the channel order of its output.
        img_std: per-channel std of the detector's data preprocessor.
        bgr_to_rgb: the data preprocessor's flag: True -> its outputs are RGB; False -> they keep the loader's order,
            taken to be mmcv's default BGR, and are flipped to RGB here.
        pretrained: a Light Flow checkpoint, or the name of a shipped one (:func:`lightflow.list_pretrained`), to
            load in :meth:`init_weights` (same as ``init_cfg=dict(type='Pretrained', checkpoint=...)``).
        freeze: keep the flow network fixed (no gradients, BN in eval mode).
        norm_eval: keep the flow network's BatchNorm layers in eval mode while training (their running statistics
            fixed, as mmdet backbones do). Detector batches are a few clips: batch statistics from them ruin a
            pretrained flow (measured: propagation fine-tuned with train-mode BN fell from 50 to 10 mAP@50).
        resize_to_divisor: instead of resizing by ``flow_scale`` and padding to /64, resize straight to the multiple
            of 64 nearest to the scaled size (aspect changes a little; the flow is rescaled per axis). Avoids running
            the network on padding: 160x224 frames at scale 0.5 run at 64x128 instead of 128x128 (padded).
        zero_init_flow: without a checkpoint, zero the flow predictors' output convs so the untrained network
            predicts zero flow: propagation then starts as copying the key features and the flow learns from the
            detection loss, instead of large random flows scrambling the warped features early in training.
        backend: inference backend in eval mode: ``'auto'`` or a registered one (``'torch'``, ``'onnxruntime'``,
            ``'openvino'``; :func:`lightflow.inference.backend_names`), kept resolved as :attr:`backend`
            (a :class:`lightflow.inference.Backend`). ``LightFlowModel`` takes the same ``backend``.
        init_cfg: mmengine init config; a ``Pretrained`` entry is read with
            :func:`lightflow.checkpoint.load_lightflow_weights`.
    """

    def __init__(self, width_mult: float = 1.0, flow_scale: float = 0.5,
                 img_mean: Sequence[float] = (123.675, 116.28, 103.53),
                 img_std: Sequence[float] = (58.395, 57.12, 57.375), bgr_to_rgb: bool = True,
                 pretrained: str | None = None, freeze: bool = False, resize_to_divisor: bool = False,
                 zero_init_flow: bool = True, backend: str = 'auto', norm_eval: bool = True,
                 init_cfg: dict | None = None) -> None:
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            if pretrained is not None:
                raise ValueError('give the flow checkpoint as pretrained= or init_cfg=Pretrained, not both')
            pretrained, init_cfg = init_cfg.get('checkpoint'), None
        super().__init__(flow_scale=flow_scale, img_mean=img_mean, img_std=img_std, bgr_to_rgb=bgr_to_rgb,
                         resize_to_divisor=resize_to_divisor, size_divisor=LightFlow.size_divisor, init_cfg=init_cfg)
        self.backend = resolve_backend(backend)  # resolved once; each frame passes the object down
        self.flownet = LightFlow(width_mult)
        self.register_buffer('flow_fields', self._flow_fields())
        self.pretrained = pretrained
        self.freeze = bool(freeze)
        self.norm_eval = bool(norm_eval)
        if zero_init_flow and not pretrained:
            for predictor in self.flownet.predictors:
                nn.init.zeros_(predictor[-1].weight)
                nn.init.zeros_(predictor[-1].bias)
        if self.freeze:
            self.flownet.requires_grad_(False)

    def init_weights(self) -> None:
        """Load ``pretrained`` (if any); Light Flow initialises itself at construction otherwise."""
        if self.pretrained:
            self.load_flow_checkpoint(self.pretrained)
        self._is_init = True

    def load_flow_checkpoint(self, path: str | Path) -> None:
        """Load a Light Flow checkpoint or shipped pretrained name, with the ``div_flow`` / ``pred_upsample`` it was
        trained with; ``ValueError`` naming both widths if it holds another ``width_mult``."""
        load_lightflow_weights(self.flownet, resolve_weights(path), adopt_config=True)

    # The flow fields a trained detector's forward pass reads but its weights' shapes do not show travel in the
    # detector's state dict as the buffer ``motion.flow_fields`` = (div_flow, index in PRED_UPSAMPLE), so every load of
    # it (test, benchmark, demo, export) runs the flow it was trained with, not the constructor's defaults. A tensor,
    # not ``get_extra_state``: torch.jit.trace (ONNX export) cannot trace a module whose state dict holds a dict.
    optional_state_keys = ('flow_fields',)  # detectors saved before the fields travelled keep the model's own

    def _flow_fields(self) -> Tensor:
        config = self.flownet.config
        return torch.tensor([config.div_flow, PRED_UPSAMPLE.index(config.pred_upsample)], dtype=torch.float64)

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        with torch.no_grad():
            self.flow_fields.copy_(self._flow_fields())
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        key = prefix + 'flow_fields'
        value = state_dict.get(key)
        if value is None:
            state_dict = {**state_dict, key: self._flow_fields()}
        else:
            fields = value.reshape(-1).tolist()
            if len(fields) != 2 or not fields[0] > 0 or fields[1] not in range(len(PRED_UPSAMPLE)):
                error_msgs.append(f'{key}: expected (div_flow > 0, pred_upsample index < {len(PRED_UPSAMPLE)}), '
                                  f'got {fields}')
                return
            self.flownet.config = dataclasses.replace(self.flownet.config, div_flow=float(fields[0]),
                                                      pred_upsample=PRED_UPSAMPLE[int(fields[1])])
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def train(self, mode: bool = True) -> 'LightFlowMotion':
        super().train(mode)
        if self.freeze:
            self.flownet.eval()
        elif mode and self.norm_eval:
            for m in self.flownet.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, img: Tensor, ref_img: Tensor, metas: Sequence[tuple[dict, dict]] | None = None) -> Tensor:
        """Flow from ``img`` to ``ref_img``: for every pixel of ``img``, its displacement to ``ref_img``.

        Args:
            img: (N, 3, H, W) detector-normalised frame (the frame whose pixels the flow is defined on).
            ref_img: (N, 3, H, W) detector-normalised frame it points to (the key frame).
            metas: per batch item, the two frames' metainfo (the motion contract; unused here).

        Returns:
            (N, 2, h, w) flow (u, v) in pixels of its own (h, w) grid, which covers the whole frame (h <= H, w <= W;
            resize with :func:`lightflow.resize_flow` to any map of the frame).
        """
        a, b, native = self.flow_inputs(img, ref_img)
        grad = torch.is_grad_enabled() and not self.freeze
        if not self.flownet.training and not (torch.is_grad_enabled() and (grad or img.requires_grad)):
            with torch.no_grad():  # the compiled backend; it returns plain (non-inference) tensors
                return flow_estimator(self.flownet, self.backend, upsample=not native)(a, b)
        with torch.set_grad_enabled(grad):  # the plain differentiable network, through the same code
            return FlowGraph.pixel_flow(self.flownet, a, b, upsample=not native)
