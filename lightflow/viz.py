"""Flow visualisation with the standard (Middlebury / Baker et al.) colour wheel, via torchvision."""
from __future__ import annotations

import numpy as np
import torch
from torchvision.utils import flow_to_image

__all__ = ['flow_to_color', 'flow_panels', 'flow_strip']


def flow_to_color(flow: np.ndarray | torch.Tensor, max_flow: float | None = None) -> np.ndarray:
    """Colour-code a flow field.

    Args:
        flow: (H, W, 2) array (the ``.flo`` layout) or (2, H, W) / (N, 2, H, W) tensor, in pixels. Invalid values
            (NaN, inf, |flow| >= 1e9) are drawn as zero motion (white).
        max_flow: flow magnitude mapped to full saturation; default the field's own maximum (torchvision's rule).
            Fix it to compare colours across frames.

    Returns:
        uint8 RGB image (H, W, 3), or (N, H, W, 3) for a batch.
    """
    is_numpy = not isinstance(flow, torch.Tensor)
    t = torch.as_tensor(np.asarray(flow) if is_numpy else flow).detach().float().cpu()
    # numpy input always means the .flo layout (H, W, 2); tensors are channel-first unless clearly (H, W, 2)
    if t.dim() == 3 and (is_numpy or (t.shape[-1] == 2 and t.shape[0] != 2)):
        t = t.permute(2, 0, 1)
    batched = t.dim() == 4
    if not batched:
        t = t.unsqueeze(0)
    if t.dim() != 4 or t.shape[1] != 2:
        raise ValueError(f'flow must be (H, W, 2), (2, H, W) or (N, 2, H, W), got {tuple(np.shape(flow))}')
    t = torch.where(torch.isfinite(t) & (t.abs() < 1e9), t, torch.zeros_like(t))
    if max_flow is not None:
        if max_flow <= 0:
            raise ValueError(f'max_flow must be > 0, got {max_flow}')
        # torchvision normalises by the field's max norm: clip magnitudes to max_flow and append one row holding a
        # vector of exactly max_flow, so the normaliser is max_flow; the row is dropped afterwards.
        norm = t.norm(dim=1, keepdim=True).clamp_min(1e-12)
        t = t * torch.clamp(max_flow / norm, max=1.0)
        pin = t.new_zeros(t.shape[0], 2, 1, t.shape[-1])
        pin[:, 0, 0, 0] = max_flow
        img = flow_to_image(torch.cat([t, pin], dim=2))[:, :, :-1]
    else:
        img = flow_to_image(t)
    out = img.permute(0, 2, 3, 1).contiguous().numpy()
    return out if batched else out[0]


def flow_panels(flows: list[torch.Tensor], names: list[str], max_flow: float | None = None) -> np.ndarray:
    """Colour flows side by side on one colour scale, each named in its top-left corner.

    Args:
        flows: (2, H, W) flows in pixels, all of one size.
        names: one label per flow.
        max_flow: magnitude of full saturation shared by all panels; default the 99th percentile of the largest
            field (at least 1 px), so one outlier does not wash the rest out.

    Returns:
        (H, W * len(flows), 3) uint8 RGB.
    """
    import cv2

    if len(flows) != len(names) or not flows:
        raise ValueError(f'need one name per flow, got {len(flows)} flows and {len(names)} names')
    if max_flow is None:
        max_flow = max(1.0, max(float(f.float().norm(dim=0).flatten().quantile(0.99)) for f in flows))
    h, w = flows[0].shape[-2:]
    panels = []
    for flow, name in zip(flows, names):
        panel = np.ascontiguousarray(flow_to_color(flow, max_flow=max_flow))
        scale = max(0.35, h / 450)
        text_w = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
        scale *= min(1.0, (w - 8) / max(text_w, 1))  # the whole name fits the panel
        cv2.putText(panel, name, (4, round(4 + 22 * max(scale, 0.35))), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                    max(1, round(2 * scale)))
        panels.append(panel)
    return np.concatenate(panels, axis=1)


def flow_strip(flows: list[np.ndarray | torch.Tensor], max_flow: float) -> np.ndarray:
    """Colour flows side by side on one colour scale, 4 white pixels apart.

    Args:
        flows: flows of one size in any layout :func:`flow_to_color` takes ((2, H, W) tensors, (H, W, 2) arrays).
        max_flow: magnitude of full saturation shared by all tiles.

    Returns:
        (H, n * W + 4 * (n - 1), 3) uint8 RGB for n flows.
    """
    tiles = [flow_to_color(f, max_flow=max_flow) for f in flows]
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)
