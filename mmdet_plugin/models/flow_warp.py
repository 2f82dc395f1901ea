"""``FlowWarp``: the registered module form of :func:`lightflow.flow_warp` for single or multi-level features."""
from __future__ import annotations

from typing import Sequence, Union

from mmdet.registry import MODELS
import torch
from torch import Tensor, nn

from lightflow import flow_warp
from lightflow.warp import PADDING_MODES

__all__ = ['FlowWarp']

Features = Union[Tensor, Sequence[Tensor]]


@MODELS.register_module()
class FlowWarp(nn.Module):
    """Backward-warp features by a flow field, resizing the flow to every feature level with its values rescaled.

    ``out[..., y, x] = feat[..., y + v, x + u]`` with (u, v) the flow in pixels of the map being warped; the flow may
    come at any resolution (typically the motion module's own grid) and is resized once per level by
    :func:`lightflow.resize_flow` (bilinear, values scaled by the size ratio). Without gradients the warp runs through
    ``grid_sample``, except that an all-zero flow copies the features exactly; with them, the exact path (zero flow is the identity
    bit for bit); see :func:`lightflow.flow_warp`.

    Example:
        >>> import torch
        >>> warp = FlowWarp(padding_mode='zeros')
        >>> feats = (torch.randn(1, 8, 16, 16), torch.randn(1, 8, 8, 8))   # strides 4 and 8 of a 64x64 frame
        >>> flow = torch.zeros(1, 2, 64, 64)
        >>> flow[:, 0] = 16.0                        # every pixel reads 16 px to its right in the source frame
        >>> out = warp(feats, flow)                  # level 0 moves 4 cells, level 1 moves 2 cells
        >>> bool((out[1][..., :, :6] - feats[1][..., :, 2:]).abs().max() < 1e-5)
        True

    Args:
        padding_mode: what samples outside the map read: ``'zeros'``, ``'border'`` or ``'reflection'``.
        fast: force (True) or forbid (False) the ``grid_sample`` path; ``None`` picks it when no gradient is needed.
    """

    def __init__(self, padding_mode: str = 'zeros', fast: bool | None = None) -> None:
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise ValueError(f'padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}')
        self.padding_mode = padding_mode
        self.fast = fast

    def forward(self, feats: Features, flow: Tensor) -> Features:
        """Warp one (N, C, h, w) map or a tuple/list of them by an (N, 2, H, W) flow in pixels of its own grid.

        Returns:
            The same structure as ``feats`` (a tensor, or a tuple for any sequence), every map warped.
        """
        if not (torch.is_grad_enabled() and flow.requires_grad) and not bool(flow.any()):
            # Zero flow (ZeroMotion, a scene at rest) is the identity: copy, rather than resample through grid_sample,
            # which rounds zero-flow samples to 1e-5.
            return feats.clone() if isinstance(feats, Tensor) else tuple(f.clone() for f in feats)
        if isinstance(feats, Tensor):
            return flow_warp(feats, flow, padding_mode=self.padding_mode, resize=True, fast=self.fast)
        if not isinstance(feats, (tuple, list)) or not feats:
            raise ValueError(f'feats must be a tensor or a non-empty tuple/list of tensors, got {type(feats).__name__}')
        return tuple(flow_warp(f, flow, padding_mode=self.padding_mode, resize=True, fast=self.fast)
                     for f in feats)

    def extra_repr(self) -> str:
        return f'padding_mode={self.padding_mode!r}'
