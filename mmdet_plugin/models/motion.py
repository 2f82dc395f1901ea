"""``LightFlowMotion``: Light Flow as the motion estimator of a video detector (arXiv 1804.05830, Section 3)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from lightflow import LightFlow, estimate_flow
from lightflow.checkpoint import load_lightflow_weights
from lightflow.inference import flow_estimator
from lightflow.pretrained import resolve_weights
from lightflow.runtime import BACKENDS, require_backend

__all__ = ['LightFlowMotion']


@MODELS.register_module()
class LightFlowMotion(BaseModule):
    """Flow between two detector-normalised frames with Light Flow.

    The inputs are the detector's inputs (after its data preprocessor). They are mapped back to RGB 0..255
    (``x * std + mean``, then BGR -> RGB unless ``bgr_to_rgb``), resized by ``flow_scale`` (the paper runs the flow at
    half the detector resolution), padded to /64 and passed to Light Flow. In eval mode without gradients the flow runs
    through the inference ``backend`` (ONNX Runtime / OpenVINO / BN-folded torch, :class:`lightflow.FlowEstimator`).
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
        backend: inference backend in eval mode (``'auto'``, ``'torch'``, ``'onnxruntime'``, ``'openvino'``).
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
        super().__init__(init_cfg=init_cfg)
        if not 0 < flow_scale <= 4:
            raise ValueError(f'flow_scale must be in (0, 4], got {flow_scale}')
        if len(img_mean) != 3 or len(img_std) != 3 or min(img_std) <= 0:
            raise ValueError(f'img_mean/img_std must be 3 values (std > 0), got {img_mean} and {img_std}')
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        require_backend(backend)
        self.backend = backend
        self.flownet = LightFlow(width_mult)
        self.flow_scale = float(flow_scale)
        self.bgr_to_rgb = bool(bgr_to_rgb)
        self.pretrained = pretrained
        self.freeze = bool(freeze)
        self.norm_eval = bool(norm_eval)
        self.resize_to_divisor = bool(resize_to_divisor)
        self.register_buffer('img_mean', torch.tensor(img_mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer('img_std', torch.tensor(img_std, dtype=torch.float32).view(1, 3, 1, 1), False)
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
        """Load a Light Flow checkpoint or shipped pretrained name; ``ValueError`` naming both widths if it holds
        another ``width_mult``."""
        load_lightflow_weights(self.flownet, resolve_weights(path))

    def train(self, mode: bool = True) -> 'LightFlowMotion':
        super().train(mode)
        if self.freeze:
            self.flownet.eval()
        elif mode and self.norm_eval:
            for m in self.flownet.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def to_rgb255(self, img: Tensor) -> Tensor:
        """Undo the detector normalisation: (N, 3, H, W) normalised -> (N, 3, H, W) RGB in 0..255."""
        img = img * self.img_std + self.img_mean
        return img if self.bgr_to_rgb else img.flip(1)

    def forward(self, img: Tensor, ref_img: Tensor) -> Tensor:
        """Flow from ``img`` to ``ref_img``: for every pixel of ``img``, its displacement to ``ref_img``.

        Args:
            img: (N, 3, H, W) detector-normalised frame (the frame whose pixels the flow is defined on).
            ref_img: (N, 3, H, W) detector-normalised frame it points to (the key frame).

        Returns:
            (N, 2, h, w) flow (u, v) in pixels of its own (h, w) grid, which covers the whole frame (h <= H, w <= W;
            resize with :func:`lightflow.resize_flow` to any map of the frame).
        """
        a, b, native = self.flow_inputs(img, ref_img)
        grad = torch.is_grad_enabled() and not self.freeze
        if not self.flownet.training and not (torch.is_grad_enabled() and (grad or img.requires_grad)):
            with torch.no_grad():  # the compiled backend; it returns plain (non-inference) tensors
                return flow_estimator(self.flownet, self.backend, upsample=not native)(a, b)
        with torch.set_grad_enabled(grad):
            if native:
                net = self.flownet
                return net.forward_features(net.normalize(a, b)) * (net.div_flow / 4.0)
            return estimate_flow(self.flownet, a, b)  # (N, 2, h, w) in pixels of the resized frames

    def flow_inputs(self, img: Tensor, ref_img: Tensor) -> tuple[Tensor, Tensor, bool]:
        """The two frames as the flow network sees them: RGB 0..255 at the flow size (``flow_scale``, or the nearest
        /64 size with ``resize_to_divisor``), and whether that size is a multiple of 64 (the network's 1/4 grid then
        covers the frame exactly, so the flow needs no upsampling)."""
        if img.dim() != 4 or img.shape != ref_img.shape or img.shape[1] != 3:
            raise ValueError(f'expected two (N, 3, H, W) frames of one shape, got {tuple(img.shape)} and '
                             f'{tuple(ref_img.shape)}')
        height, width = int(img.shape[-2]), int(img.shape[-1])  # ints: constants when traced for export
        pair = torch.cat([img, ref_img], dim=0)
        size = (max(1, round(height * self.flow_scale)), max(1, round(width * self.flow_scale)))
        div = self.flownet.size_divisor
        if self.resize_to_divisor:
            size = (max(div, div * round(size[0] / div)), max(div, div * round(size[1] / div)))
        if size != (height, width):
            # Resize first: bilinear weights sum to 1, so it commutes with the per-channel affine un-normalisation,
            # which then touches a quarter of the pixels.
            pair = F.interpolate(pair, size=size, mode='bilinear', align_corners=False)
        a, b = self.to_rgb255(pair).chunk(2, dim=0)
        return a, b, size[0] % div == 0 and size[1] % div == 0
