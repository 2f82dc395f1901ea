"""The one backward-warping function used by the whole project (training checks, the mmdet plugin, tests).

Convention, defined once: ``flow = (u, v)`` is in pixels of the map being warped, and
``flow_warp(x, flow)[..., y, x] = x[..., y + v, x + u]`` sampled bilinearly at pixel centres (the semantics of
``grid_sample(align_corners=True)``), so zero flow is the exact identity and integer flows move pixels exactly.
Prior art normalised the grid with ``x / W * 2 - 1`` under ``align_corners=True`` and was off by up to a cell.

Two implementations of that one definition: an exact one (four gathers in the coordinate dtype; zero flow is the
identity bit for bit), used whenever a gradient is needed, and a ``grid_sample`` one for inference (3-6x faster on
feature maps of 128-256 channels, README "Speed"), whose grid normalisation rounds in float32, so zero flow reproduces
the input and integer flows move pixels to within 1e-5 (tested) rather than exactly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['flow_warp', 'resize_flow', 'PADDING_MODES']

PADDING_MODES = ('zeros', 'border', 'reflection')


def resize_flow(flow: Tensor, size: tuple[int, int], mode: str = 'bilinear') -> Tensor:
    """Resize a flow field to ``size`` and rescale its values so they stay in pixels of the new grid.

    Args:
        flow: (N, 2, h, w) flow in pixels of an (h, w) map.
        size: target (H, W).
        mode: ``'bilinear'`` or ``'nearest'`` interpolation.

    Returns:
        (N, 2, H, W) flow in pixels of an (H, W) map (u scaled by W / w, v by H / h).
    """
    if flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f'flow must be (N, 2, H, W), got {tuple(flow.shape)}')
    h, w = flow.shape[-2:]
    height, width = int(size[0]), int(size[1])
    if (h, w) == (height, width):
        return flow
    kwargs = dict(align_corners=False) if mode == 'bilinear' else {}
    out = F.interpolate(flow, size=(height, width), mode=mode, **kwargs)
    scale = out.new_tensor([width / w, height / h]).view(1, 2, 1, 1)
    return out * scale


def _reflect(coord: Tensor, size: int) -> Tensor:
    """Reflect coordinates about the centres of the first and last pixel (grid_sample's align_corners=True rule)."""
    if size == 1:
        return torch.zeros_like(coord)
    period = 2.0 * (size - 1)
    coord = torch.remainder(coord, period)
    return (size - 1) - (coord - (size - 1)).abs()


def _warp_grid_sample(x: Tensor, flow: Tensor, padding_mode: str) -> Tensor:
    """``flow_warp`` through ``grid_sample(align_corners=True)``: pixel p + flow maps to 2 p / (size - 1) - 1."""
    n, _, height, width = x.shape
    if height < 2 or width < 2:
        raise ValueError(f'the grid_sample path needs maps of at least 2x2 pixels, got {height}x{width}')
    # The grid is normalised in float64 (cheap: 2 channels) so that only its final rounding to x's dtype is lost.
    flow = flow.to(torch.float64)
    xs = torch.arange(width, device=x.device, dtype=flow.dtype).view(1, 1, width)
    ys = torch.arange(height, device=x.device, dtype=flow.dtype).view(1, height, 1)
    gx = (xs + flow[:, 0]) * (2.0 / (width - 1))
    gy = (ys + flow[:, 1]) * (2.0 / (height - 1))
    grid = torch.stack((gx - 1.0, gy - 1.0), dim=-1).to(x.dtype)  # (N, H, W, 2), x then y
    return F.grid_sample(x, grid, mode='bilinear', padding_mode=padding_mode, align_corners=True)


def flow_warp(x: Tensor, flow: Tensor, padding_mode: str = 'zeros', resize: bool = False,
              fast: bool | None = None) -> Tensor:
    """Backward-warp ``x`` by ``flow``: ``out[..., y, x] = x[..., y + v, x + u]`` (bilinear).

    Args:
        x: (N, C, H, W) map to warp (image or features).
        flow: (N, 2, H, W) flow (u, v) in pixels of ``x``; with ``resize=True`` any (N, 2, h, w) flow, resized to
            (H, W) with its values rescaled (see :func:`resize_flow`).
        padding_mode: what samples outside ``x`` read, as in ``grid_sample(align_corners=True)``: ``'zeros'``
            (default; the bilinear blend fades to 0 within one pixel beyond the border centres), ``'border'`` (edge
            value repeated) or ``'reflection'`` (mirrored about the edge pixel centres).
        resize: allow a flow of another spatial size.
        fast: use ``grid_sample`` (see the module docstring). ``None`` (default): when no gradient is needed
            (grad mode off, or neither input requires grad) and ``x`` is fp32/fp64 of at least 2x2 pixels.

    Returns:
        (N, C, H, W) warped map, same dtype as ``x``; differentiable in ``x`` and ``flow``.
    """
    if padding_mode not in PADDING_MODES:
        raise ValueError(f'padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}')
    if not x.is_floating_point() or not flow.is_floating_point():
        raise ValueError(f'flow_warp needs floating-point x and flow (bilinear weights), got {x.dtype} and '
                         f'{flow.dtype}; convert with .float()')
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f'expected x (N, C, H, W) and flow (N, 2, H, W), got {tuple(x.shape)} and '
                         f'{tuple(flow.shape)}')
    if flow.shape[0] != x.shape[0]:
        raise ValueError(f'batch sizes differ: x has {x.shape[0]}, flow has {flow.shape[0]}')
    n, c, height, width = x.shape
    if flow.shape[-2:] != x.shape[-2:]:
        if not resize:
            raise ValueError(f'flow size {tuple(flow.shape[-2:])} != map size {(height, width)}; pass resize=True '
                             'to resize the flow (values rescaled)')
        flow = resize_flow(flow, (height, width))
    if fast is None:
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or flow.requires_grad)
        fast = not needs_grad and x.dtype in (torch.float32, torch.float64) and height > 1 and width > 1
    if fast:
        return _warp_grid_sample(x, flow, padding_mode)
    # Bilinear sampling done by hand rather than with grid_sample: normalising the grid to [-1, 1] and back rounds in
    # float32, which puts zero-flow samples an ulp off the pixel centres, so the identity would not be exact.
    coord_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    flow = flow.to(coord_dtype)
    px = torch.arange(width, device=x.device, dtype=coord_dtype).view(1, 1, width) + flow[:, 0]  # (N, H, W)
    py = torch.arange(height, device=x.device, dtype=coord_dtype).view(1, height, 1) + flow[:, 1]
    if padding_mode == 'border':
        px, py = px.clamp(0, width - 1), py.clamp(0, height - 1)
    elif padding_mode == 'reflection':
        px, py = _reflect(px, width), _reflect(py, height)
    x0f, y0f = px.floor(), py.floor()
    wx1, wy1 = px - x0f, py - y0f
    wx0, wy0 = 1 - wx1, 1 - wy1
    x0, y0 = x0f.long(), y0f.long()

    src = x.reshape(n, c, height * width)
    out = None
    for xi, yi, weight in ((x0, y0, wx0 * wy0), (x0 + 1, y0, wx1 * wy0), (x0, y0 + 1, wx0 * wy1),
                           (x0 + 1, y0 + 1, wx1 * wy1)):
        inside = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
        index = (yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)).view(n, 1, height * width)
        value = torch.gather(src, 2, index.expand(n, c, height * width)).view(n, c, height, width)
        term = value * torch.where(inside, weight, torch.zeros_like(weight)).to(x.dtype).unsqueeze(1)
        out = term if out is None else out + term
    return out
