"""Rasterising the layers of synthetic samples in torch, batched: a layer's colour by inverse mapping into its texture
(:func:`sample_layer`), an object's anti-aliased coverage (:func:`coverage`), a layer's exact flow (:func:`layer_flow`),
per-object windows composited back to front (:func:`composite_windows`) and the occlusion mask
(:func:`occlusion_mask`). :class:`lightflow.data.synthetic.SyntheticFlowGenerator` drives them."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .scene import SampleParams
from .shapes import VERTICES

__all__ = ['sample_layer', 'coverage', 'layer_flow', 'projective_points', 'window_to_px', 'composite_windows',
           'occlusion_mask']


def sample_layer(bank: Tensor, inv: Tensor, tex: Tensor, gain: Tensor, bias: Tensor, origin: Tensor, h: int, w: int,
                 projective: bool = False) -> tuple[Tensor, Tensor]:
    """Colour of one layer slot in a batch of (h, w) windows, and the normalised texture coordinates.

    Args:
        bank: (T, 3, S, S) texture bank.
        inv: (B, 3, 3) frame -> texture maps (float64); tex (B,) bank indices; gain/bias (B, 3).
        origin: (B, 2) frame pixel (x, y) of each window's top-left pixel.
        h, w: window size.
        projective: the maps have a perspective row (only the background's homography); else one batched
            ``affine_grid`` gives the coordinates.

    Returns:
        colour (B, 3, h, w) and grid (B, h, w, 2): texture coordinates normalised to [-1, 1] over the texture's
        pixel centres (``grid_sample(align_corners=True)``), unbounded (the texture is mirrored beyond them).
    """
    b, s = inv.shape[0], bank.shape[-1]
    dev = inv.device
    if projective:
        _, _, tx, ty = projective_points(inv, origin, h, w)
        grid = (torch.stack([tx, ty], dim=-1) * (2.0 / (s - 1)) - 1).float()
    else:
        # normalised window coords -> window px -> frame px -> texture px -> normalised texture coords
        to_px = window_to_px(origin, h, w)
        norm = torch.tensor([[2.0 / (s - 1), 0, -1], [0, 2.0 / (s - 1), -1], [0, 0, 1]], device=dev,
                            dtype=torch.float64)
        theta = (norm @ inv @ to_px)[:, :2].float()
        grid = F.affine_grid(theta, [b, 3, h, w], align_corners=True)
    # One sample (the per-pair dataset path) samples its texture in place; a batch gathers its tiles.
    tiles = bank.narrow(0, int(tex[0]), 1) if b == 1 else bank.index_select(0, tex)
    color = F.grid_sample(tiles, grid, mode='bilinear', padding_mode='reflection', align_corners=True)
    color = torch.addcmul(bias[:, :, None, None], color, gain[:, :, None, None])
    return color, grid


def coverage(grid: Tensor, p: dict[str, Tensor], zoom: Tensor, texture_size: int) -> tuple[Tensor, Tensor]:
    """Anti-aliased coverage (B, h, w) in [0, 1] and the hard mask (coverage >= 0.5, i.e. inside the shape).

    The shape is star-shaped about the object centre: a point at radius ``rho`` along a ray is inside when
    ``rho <= boundary`` (the ray's crossing of the outline); ``boundary - rho`` in frame pixels gives a one-pixel
    anti-aliasing ramp. Coordinates are in units of the object radius.
    """
    r = p['r'][:, None, None]
    half = (texture_size - 1) / 2.0  # grid -> texture px: t = (g + 1) * half
    lx = (grid[..., 0] + 1) * (half / r) - p['cx'][:, None, None] / r
    ly = (grid[..., 1] + 1) * (half / r) - p['cy'][:, None, None] / r
    rho = torch.sqrt(lx * lx + ly * ly).clamp_min(1e-6)
    # Polygon: the edge (v0, v1) between the two vertices around the ray's angle; the ray l meets it at
    # boundary = rho * cross(v0, e) / cross(l, e) with e = v1 - v0.
    b, h, w = lx.shape
    theta = torch.atan2(ly, lx).reshape(b, -1)
    theta = torch.where(theta < 0, theta + 2 * math.pi, theta)
    j = torch.searchsorted(p['angles'].contiguous(), theta)  # index of the vertex after theta, 0..V
    i0 = torch.where(j == 0, VERTICES - 1, j - 1)
    i1 = torch.where(j == VERTICES, 0, j)
    vx, vy = p['vx'], p['vy']  # (B, V)
    v0x, v0y = torch.gather(vx, 1, i0).reshape(b, h, w), torch.gather(vy, 1, i0).reshape(b, h, w)
    ex = torch.gather(vx, 1, i1).reshape(b, h, w) - v0x
    ey = torch.gather(vy, 1, i1).reshape(b, h, w) - v0y
    poly = rho * (v0x * ey - v0y * ex) / (lx * ey - ly * ex)
    # Ellipse with axes (a, b) rotated by phi: boundary = rho / sqrt(q), q the implicit form at l.
    c, s_ = p['cos_phi'][:, None, None], p['sin_phi'][:, None, None]
    ex_, ey_ = (lx * c + ly * s_) / p['ea'][:, None, None], (ly * c - lx * s_) / p['eb'][:, None, None]
    ell = rho * torch.rsqrt(ex_ * ex_ + ey_ * ey_).clamp_max(1e6)
    boundary = torch.where(p['ellipse'][:, None, None], ell, poly)
    alpha = ((boundary - rho) * (r * zoom[:, None, None]) + 0.5).clamp_(0, 1)
    alpha = torch.where(p['present'][:, None, None], alpha, torch.zeros_like(alpha))
    return alpha, alpha >= 0.5


def layer_flow(motion: Tensor, origin: Tensor, h: int, w: int, projective: bool = False) -> Tensor:
    """Exact flow ``M(p) - p`` of (B, 3, 3) float64 motions over (h, w) windows at ``origin`` (B, 2): (B, 2, h, w)."""
    b, dev = motion.shape[0], motion.device
    if projective:
        xs, ys, qx, qy = projective_points(motion, origin, h, w)
        return torch.stack([qx - xs, qy - ys], dim=1).float()
    eye = torch.eye(3, device=dev, dtype=torch.float64)
    theta = ((motion - eye) @ window_to_px(origin, h, w))[:, :2].float()
    return F.affine_grid(theta, [b, 2, h, w], align_corners=True).permute(0, 3, 1, 2)


def projective_points(m: Tensor, origin: Tensor, h: int, w: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Frame pixels (xs, ys) of (h, w) windows at ``origin`` (B, 2) and their images under the (B, 3, 3)
    projective maps ``m``, all (B, h, w) float64."""
    ys, xs = torch.meshgrid(torch.arange(h, device=m.device, dtype=torch.float64),
                            torch.arange(w, device=m.device, dtype=torch.float64), indexing='ij')
    xs = xs + origin[:, 0, None, None].double()
    ys = ys + origin[:, 1, None, None].double()
    m = m[:, :, :, None, None]
    w3 = m[:, 2, 0] * xs + m[:, 2, 1] * ys + m[:, 2, 2]
    return (xs, ys, (m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]) / w3,
            (m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]) / w3)


def window_to_px(origin: Tensor, h: int, w: int) -> Tensor:
    """(B, 3, 3) maps from ``affine_grid``'s normalised window coordinates to frame pixels (float64)."""
    b = origin.shape[0]
    to_px = torch.zeros(b, 3, 3, device=origin.device, dtype=torch.float64)
    to_px[:, 0, 0], to_px[:, 1, 1], to_px[:, 2, 2] = max(w - 1, 1) / 2.0, max(h - 1, 1) / 2.0, 1.0
    to_px[:, 0, 2] = (w - 1) / 2.0 + origin[:, 0].double()
    to_px[:, 1, 2] = (h - 1) / 2.0 + origin[:, 1].double()
    return to_px


def composite_windows(bank: Tensor, motion_scale: float, params: Sequence[SampleParams], inv: Sequence[Tensor],
                      motion: Tensor, texture: Tensor, gain: Tensor, bias: Tensor, obj: dict[str, Tensor],
                      zoom: Tensor, frames: list[Tensor], layers: list[Tensor], flow: Tensor) -> None:
    """Render each object slot only in its bounding square (batched per slot) and composite it per sample, back to
    front, into ``frames``, ``layers`` and ``flow`` (in place; the background is already drawn there)."""
    dev, dtype = motion.device, torch.float32
    height, width = flow.shape[-2:]
    slots = params[0].a1.shape[0]
    growth = 1 + 0.06 * motion_scale
    rendered = {}
    for k in range(1, slots):
        present = np.array([p.present[k] for p in params])
        if not present.any():
            continue
        centers = []
        for f in range(2):
            c = np.stack([(p.a1[k] if f == 0 else p.motion[k] @ p.a1[k]) @ np.array([*p.tex_center[k], 1.0])
                          for p in params])[:, :2]
            centers.append(c)
        radius = np.array([p.frame_radius[k] for p in params]) * growth + 2
        side = int(math.ceil(2 * radius[present].max())) + 2
        for f in range(2):
            origin = np.floor(centers[f] - radius[:, None]).astype(np.int64)  # (N, 2) x0, y0
            o = torch.from_numpy(origin).to(dev, dtype)
            color, grid = sample_layer(bank, inv[f][:, k], texture[:, k], gain[:, k], bias[:, k], o, side, side)
            alpha, hard = coverage(grid, {key: v[:, k] for key, v in obj.items()}, zoom[:, k], bank.shape[-1])
            fl = layer_flow(motion[:, k], o, side, side) if f == 0 else None
            rendered[k, f] = (origin, color, alpha, hard, fl)
    for i, p in enumerate(params):
        for k in np.argsort(p.depth)[1:]:  # back to front, background already drawn
            if not p.present[k]:
                continue
            for f in range(2):
                origin, color, alpha, hard, fl = rendered[k, f]
                x0, y0 = int(origin[i, 0]), int(origin[i, 1])
                side = color.shape[-1]
                fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
                if fx0 >= fx1 or fy0 >= fy1:
                    continue
                win = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
                dst = (slice(fy0, fy1), slice(fx0, fx1))
                a, h = alpha[i][win], hard[i][win]
                target = frames[f][i][(slice(None), *dst)]
                target.copy_(torch.lerp(target, color[i][(slice(None), *win)], a))
                layers[f][i][dst] = torch.where(h, int(k), layers[f][i][dst])
                if f == 0:
                    flow[i][(slice(None), *dst)] = torch.where(h, fl[i][(slice(None), *win)],
                                                               flow[i][(slice(None), *dst)])


def occlusion_mask(flow: Tensor, layers1: Tensor, layers2: Tensor) -> Tensor:
    """Frame-1 pixels whose frontmost layer is not frontmost at the nearest frame-2 pixel, or that leave it."""
    n, height, width = layers1.shape
    dev = flow.device
    qx = torch.round(torch.arange(width, device=dev, dtype=flow.dtype) + flow[:, 0]).long()
    qy = torch.round(torch.arange(height, device=dev, dtype=flow.dtype)[:, None] + flow[:, 1]).long()
    inside = (qx >= 0) & (qx < width) & (qy >= 0) & (qy < height)
    idx = (qy.clamp(0, height - 1) * width + qx.clamp(0, width - 1)).reshape(n, -1)
    there = torch.gather(layers2.reshape(n, -1), 1, idx).reshape(n, height, width)
    return ~inside | (there != layers1)
