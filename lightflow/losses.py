"""The Light Flow training loss in pure PyTorch: L1 against the area-downsampled GT (used by ``lightflow.engine``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['flow_l1_loss', 'downsample_flow_target']


def downsample_flow_target(flow: Tensor, valid: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Area-downsample GT flow by ``factor``, averaging only valid pixels.

    Args:
        flow: (N, 2, H, W) GT flow in pixels (values are *not* rescaled: FlowNet predicts full-res pixels / div_flow).
        valid: (N, H, W) bool mask.
        factor: integer downsampling factor (4 for Light Flow's 1/4 output); H and W must be multiples of it.

    Returns:
        ``(target, cell_valid)``: (N, 2, H/f, W/f) masked mean ``sum(flow * valid) / sum(valid)`` per f x f cell
        (0 where no pixel is valid) and the (N, H/f, W/f) bool mask of cells with at least one valid pixel.
    """
    if flow.shape[-2] % factor or flow.shape[-1] % factor:
        raise ValueError(f'flow size {tuple(flow.shape[-2:])} is not a multiple of the downsampling factor {factor}')
    v = valid.unsqueeze(1).to(flow.dtype)
    # where() rather than multiply: an invalid pixel may hold NaN or 1e9, and NaN * 0 is NaN.
    flow = torch.where(v > 0, flow, torch.zeros_like(flow))
    frac = F.avg_pool2d(v, factor)  # (N, 1, h, w) fraction of valid pixels per cell
    mean = F.avg_pool2d(flow, factor)  # sum(flow * valid) / f^2
    target = mean / frac.clamp_min(1e-12) * (frac > 0)
    return target, frac[:, 0] > 0


def flow_l1_loss(pred: Tensor, flow: Tensor, valid: Tensor, div_flow: float) -> Tensor:
    """Light Flow training loss: L1 between the averaged 1/4-res prediction and the area-downsampled GT / div_flow.

    Exact reduction: per 1/4-res cell the L1 of the 2-vector, ``|du| + |dv|``, is taken in units of px / div_flow,
    then averaged (unweighted) over the cells that contain at least one valid GT pixel. Cells without any valid pixel
    (sparse KITTI GT, padding) are left out; with no valid cell at all the loss is 0 (and still differentiable).

    Args:
        pred: (N, 2, h, w) network output (flow / div_flow at 1/4 resolution).
        flow: (N, 2, H, W) GT flow in pixels, H = f * h, W = f * w.
        valid: (N, H, W) bool mask.
        div_flow: the target scale (20 for FlowNet / Light Flow).

    Returns:
        scalar loss.
    """
    if pred.dim() != 4 or pred.shape[1] != 2 or flow.shape[:2] != pred.shape[:2]:
        raise ValueError(f'pred must be (N, 2, h, w) matching flow (N, 2, H, W), got {tuple(pred.shape)} and '
                         f'{tuple(flow.shape)}')
    factor = flow.shape[-1] // pred.shape[-1]
    if factor < 1 or flow.shape[-2:] != (pred.shape[-2] * factor, pred.shape[-1] * factor):
        raise ValueError(f'GT size {tuple(flow.shape[-2:])} is not an integer multiple of the prediction size '
                         f'{tuple(pred.shape[-2:])}')
    target, cells = downsample_flow_target(flow, valid, factor)
    l1 = (pred - target / div_flow).abs().sum(dim=1)  # (N, h, w)
    return (l1 * cells).sum() / cells.sum().clamp_min(1)
