"""``ResidualGate``: scale propagated key features by how well the warped key image explains the current frame.

Not part of the Light Flow paper: an optional step after the warp of a non-key frame (``FlowVideoDetector(gate=...)``),
measured against plain propagation in the README ("Ghosts of the key frame").
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from lightflow.warp import PADDING_MODES, flow_warp, resize_flow

__all__ = ['ResidualGate', 'area_resize']


def area_resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Average (N, C, H, W) ``x`` down to ``size``: exact box averages where H, W are multiples of it (the padded
    detector input and its feature levels are), bilinear otherwise (both export to ONNX)."""
    (height, width), (h, w) = (int(x.shape[-2]), int(x.shape[-1])), (int(size[0]), int(size[1]))  # static in ONNX
    if (height, width) == (h, w):
        return x
    if height % h == 0 and width % w == 0:
        return F.avg_pool2d(x, (height // h, width // w))
    return F.interpolate(x, size=(h, w), mode='bilinear', align_corners=False)


@MODELS.register_module()
class ResidualGate(nn.Module):
    """A learned per-cell scale of warped key features from the photometric residual of the same warp.

    A backward warp ``F_i = W(F_k, M_{i->k})`` fills every cell of frame i with key features, also cells whose point
    the key does not show: the background an object uncovered since the key reads the object (a ghost detection at
    its old place), and where the flow is wrong (a fast object's motion under-estimated) the features lag behind.
    Both show as a residual between frame i and the key image warped by the same flow. The gate computes
    ``|img - W(key_img, flow)|`` at twice the finest feature level's resolution, averages it over each of its cells, maps it through two 3x3 convolutions to
    ``z`` and scales every level by ``2 * sigmoid(z)`` averaged to its grid. ``z`` starts at 0 (the last convolution
    is zero): the gate starts as the identity, so a detector fine-tuned from a propagation checkpoint starts where
    it was. DFF (Zhu et al., CVPR 2017) predicts such a scale field inside its flow network; this one reads only
    images and flow, so it works with any motion module (Light Flow, DIS, exact motion).

    Args:
        hidden: channels of the hidden convolution.
        padding_mode: how the key image is sampled outside the frame (as :class:`FlowWarp`).
    """

    def __init__(self, hidden: int = 16, padding_mode: str = 'border') -> None:
        super().__init__()
        if int(hidden) <= 0:
            raise ValueError(f'ResidualGate: hidden must be a positive channel count, got {hidden!r}')
        if padding_mode not in PADDING_MODES:
            raise ValueError(f'ResidualGate: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}')
        self.padding_mode = padding_mode
        self.net = nn.Sequential(nn.Conv2d(3, int(hidden), 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(int(hidden), 1, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def residual(self, flow: Tensor, img: Tensor, key_img: Tensor, size: tuple[int, int]) -> Tensor:
        """(N, 3, h, w) ``|img - W(key_img, flow)|`` on a ``size`` grid: both images averaged to twice that grid, the
        key warped there by the flow (any grid, pixels of its own) resized to it, the residual averaged to ``size``."""
        if img.shape != key_img.shape or img.dim() != 4:
            raise ValueError(f'ResidualGate: expected two (N, 3, H, W) images of one shape, got {tuple(img.shape)} '
                             f'and {tuple(key_img.shape)}')
        fine = (min(2 * size[0], int(img.shape[-2])), min(2 * size[1], int(img.shape[-1])))
        img, key_img = area_resize(img, fine), area_resize(key_img, fine)
        warped = flow_warp(key_img, resize_flow(flow, fine), padding_mode=self.padding_mode)
        return area_resize((img - warped).abs(), size)

    def scale(self, flow: Tensor, img: Tensor, key_img: Tensor, size: tuple[int, int]) -> Tensor:
        """(N, 1, h, w) scale on a ``size`` grid (the finest feature level), in (0, 2)."""
        return 2.0 * torch.sigmoid(self.net(self.residual(flow, img, key_img, size)))

    def forward(self, feats: Sequence[Tensor], flow: Tensor, img: Tensor, key_img: Tensor) -> tuple[Tensor, ...]:
        """Gate warped features.

        Args:
            feats: per level (N, C, h_l, w_l) key features already warped to frame ``img``, finest first.
            flow: (N, 2, h, w) the flow ``img -> key_img`` that warped them, in pixels of its own grid.
            img, key_img: (N, 3, H, W) the detector's normalised inputs of the frame and its key frame.

        Returns:
            The levels scaled cell by cell (same shapes).
        """
        feats = tuple(feats)
        finest = (int(feats[0].shape[-2]), int(feats[0].shape[-1]))
        scale = self.scale(flow, img, key_img, finest)
        return tuple(f * area_resize(scale, (int(f.shape[-2]), int(f.shape[-1]))) for f in feats)
