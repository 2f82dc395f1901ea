"""Light Flow training losses in pure PyTorch: L1 against the area-downsampled GT (used by ``lightflow.engine``), and
the label-free photometric terms of the adaptation (census, edge-aware smoothness)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['flow_l1_loss', 'downsample_flow_target', 'census_transform', 'census_loss', 'edge_aware_smoothness',
           'relative_motion_mask']


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


def flow_l1_loss(pred: Tensor, flow: Tensor, valid: Tensor, div_flow: float, motion_gain: float = 0.0) -> Tensor:
    """Light Flow training loss: L1 between the averaged 1/4-res prediction and the area-downsampled GT / div_flow.

    Exact reduction: per 1/4-res cell the L1 of the 2-vector, ``|du| + |dv|``, is taken in units of px / div_flow,
    then averaged (unweighted) over the cells that contain at least one valid GT pixel. Cells without any valid pixel
    (sparse KITTI GT, padding) are left out; with no valid cell at all the loss is 0 (and still differentiable).

    Args:
        pred: (N, 2, h, w) network output (flow / div_flow at 1/4 resolution).
        flow: (N, 2, H, W) GT flow in pixels, H = f * h, W = f * w.
        valid: (N, H, W) bool mask.
        div_flow: the target scale (20 for FlowNet / Light Flow).
        motion_gain: cells whose target moves more than 1 px against the sample's median motion (objects against
            the camera's motion, :func:`relative_motion_mask`) weigh ``1 + motion_gain``; 0 is the plain loss.

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
    weight = cells.to(l1.dtype)
    if motion_gain:
        weight = weight * (1 + motion_gain * relative_motion_mask(target, cells))
    return (l1 * weight).sum() / weight.sum().clamp_min(1)


def relative_motion_mask(flow: Tensor, valid: Tensor, threshold: float = 1.0) -> Tensor:
    """Where ``flow`` moves against the scene: ``|flow - per-sample median over valid cells| > threshold`` px.

    Args:
        flow: (N, 2, h, w) flow in pixels.
        valid: (N, h, w) bool cells that count for the median.

    Returns:
        (N, h, w) float mask (1 where an object moves relative to the camera's motion).
    """
    masked = torch.where(valid.unsqueeze(1), flow, torch.full_like(flow, float('nan')))
    median = masked.flatten(2).nanmedian(dim=2).values.nan_to_num(0.0)[..., None, None]  # (N, 2, 1, 1)
    return ((flow - median).norm(dim=1) > threshold).to(flow.dtype)


def census_transform(img: Tensor, patch_size: int = 7) -> Tensor:
    """Soft census transform of DDFlow / UFlow: per pixel, the ``patch_size**2`` neighbour-minus-centre differences
    of the grey image in 0..1, each squashed by ``d / sqrt(0.81 + d^2)``.

    Args:
        img: (N, 3, H, W) RGB in 0..255.

    Returns:
        (N, patch_size**2, H, W) census signature.
    """
    gray = (0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]) / 255.0
    # Shifted slices of the padded image rather than a conv with a one-hot (p^2, 1, p, p) kernel: p^2 times cheaper.
    r = patch_size // 2
    h, w = gray.shape[-2:]
    padded = F.pad(gray, (r, r, r, r))
    patches = torch.cat([padded[..., dy:dy + h, dx:dx + w] for dy in range(patch_size) for dx in range(patch_size)], 1)
    diff = patches - gray
    return diff / torch.sqrt(0.81 + diff.square())


def census_loss(img1: Tensor, img2_warped: Tensor, mask: Tensor, patch_size: int = 7) -> Tensor:
    """Robust soft-Hamming census distance between ``img1`` and frame 2 warped onto it, averaged over ``mask``.

    Args:
        img1: (N, 3, H, W) RGB 0..255.
        img2_warped: (N, 3, H, W) frame 2 backward-warped by the predicted flow.
        mask: (N, H, W) pixels that count (sample inside frame 2, not occluded); a ``patch_size // 2`` border is
            always left out, where the census patch reads padding.

    Returns:
        scalar loss (0 when nothing counts); equal to the distance of the :func:`census_transform` signatures.
    """
    r = patch_size // 2
    grays = [(0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]) / 255.0 for x in (img1, img2_warped)]
    h, w = grays[0].shape[-2:]
    centre = [g[:, r:h - r, r:w - r] for g in grays]
    hamming = 0
    # One neighbour offset at a time: the (N, p^2, H, W) signatures never exist, ~10x faster than materialising them
    # (forward and backward) on a CPU.
    for dy in range(patch_size):
        for dx in range(patch_size):
            t1, t2 = [(g[:, dy:dy + h - 2 * r, dx:dx + w - 2 * r] - c) for g, c in zip(grays, centre)]
            d = (t1 / torch.sqrt(0.81 + t1.square()) - t2 / torch.sqrt(0.81 + t2.square())).square()
            hamming = hamming + d / (0.1 + d)
    robust = (hamming + 0.01).pow(0.4)
    weight = mask[:, r:h - r, r:w - r].to(robust.dtype)
    return (robust * weight).sum() / weight.sum().clamp_min(1.0)


def edge_aware_smoothness(flow: Tensor, img: Tensor, edge_weight: float = 150.0) -> Tensor:
    """First-order edge-aware smoothness (UFlow): mean ``exp(-edge_weight |dI|) |d flow|`` over both axes, with
    ``|dI|`` the mean absolute RGB gradient in 0..1 and the flow in pixels.

    Args:
        flow: (N, 2, H, W) flow in pixels.
        img: (N, 3, H, W) RGB 0..255 it is defined on.
    """
    img = img / 255.0
    terms = []
    for dim in (-1, -2):
        d_img = torch.diff(img, dim=dim).abs().mean(1, keepdim=True)
        d_flow = torch.diff(flow, dim=dim).abs()
        terms.append((torch.exp(-edge_weight * d_img) * d_flow).mean())
    return sum(terms) / 2
