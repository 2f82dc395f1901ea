"""The texture bank of :class:`~lightflow.data.synthetic.render.SyntheticFlowGenerator`: scikit-image photographs
cropped square, plus procedural textures (smooth noise, stripes, checkers)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .photos import load_photos

__all__ = ['PHOTO_NAMES', 'photo_textures', 'procedural_textures']

# Photographs bundled with scikit-image (no network). 'cat' is the same picture as 'chelsea'.
PHOTO_NAMES = ('astronaut', 'coffee', 'chelsea', 'rocket', 'camera', 'immunohistochemistry', 'hubble_deep_field',
               'coins', 'clock', 'grass', 'gravel', 'brick', 'moon', 'cell', 'colorwheel', 'page', 'text')


def photo_textures(size: int) -> Tensor:
    """The :data:`PHOTO_NAMES` photographs as (P, 3, size, size) float32 0..255 centre squares.

    Raises:
        RuntimeError: scikit-image has none of them.
    """
    photos = load_photos(PHOTO_NAMES)
    if not photos:
        raise RuntimeError('no scikit-image sample photographs could be loaded (skimage.data); check the install')
    return torch.stack([_square(torch.from_numpy(p.astype(np.float32)).permute(2, 0, 1), size) for p in photos])


def _square(img: Tensor, size: int) -> Tensor:
    """Centre square crop of a (3, H, W) image, resized (area / bicubic) to (3, size, size)."""
    h, w = img.shape[-2:]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = img[None, :, y0:y0 + s, x0:x0 + s]
    mode = 'area' if s >= size else 'bicubic'
    out = F.interpolate(crop, size=(size, size), mode=mode, **({} if mode == 'area' else dict(align_corners=False)))
    return out[0].clamp(0, 255)


def procedural_textures(count: int, size: int, seed: int) -> Tensor:
    """``count`` random (3, size, size) textures in 0..255: smooth noise, stripes or checkers, plus fine detail."""
    g = torch.Generator().manual_seed(int(seed))
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing='ij')
    out = torch.empty(count, 3, size, size)
    for i in range(count):
        kind = int(torch.randint(3, (1,), generator=g))
        colors = torch.rand(2, 3, 1, 1, generator=g) * 255
        if kind == 0:
            cells = int(torch.randint(3, 12, (1,), generator=g))
            tex = F.interpolate(torch.rand(1, 3, cells, cells, generator=g), size=(size, size), mode='bicubic',
                                align_corners=True)[0] * 255
        else:
            angle = float(torch.rand(1, generator=g)) * math.pi
            period = 6 + 34 * float(torch.rand(1, generator=g))
            along = xs * math.cos(angle) + ys * math.sin(angle)
            if kind == 1:
                weight = 0.5 + 0.5 * torch.sin(2 * math.pi * along / period)
            else:
                across = -xs * math.sin(angle) + ys * math.cos(angle)
                # Smoothed square wave: sharp edges, yet band-limited enough to resample cleanly.
                weight = 0.5 + 0.5 * torch.tanh(3 * torch.sin(2 * math.pi * along / period) *
                                                torch.sin(2 * math.pi * across / period))
            tex = colors[0] + weight * (colors[1] - colors[0])
        # Fine detail so that no region is flat (flat regions make flow ambiguous).
        detail = F.interpolate(torch.randn(1, 3, size // 4, size // 4, generator=g), size=(size, size),
                               mode='bilinear', align_corners=False)[0]
        out[i] = (tex + 12.0 * detail).clamp(0, 255)
    return out
