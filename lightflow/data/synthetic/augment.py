"""Batch augmentation of synthetic pairs on their device: photometric jitter, whole-frame blur (the flow stays the
sharp scene's) and flips (the flow follows)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['photometric_augment', 'draw_degradations', 'blur_frames', 'flip_flow_batch']

_GREY = (0.299, 0.587, 0.114)


def photometric_augment(img1: Tensor, img2: Tensor, params: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample colour augmentation of both frames on their device (no change to the flow).

    Args:
        img1, img2: (N, 3, H, W) RGB 0..255.
        params: (N, 2, >=6) per frame: brightness, contrast, saturation factors, gamma, noise sigma (grey levels),
            noise seed. Equal rows give both frames the same change; different rows model lighting changes.

    Returns:
        the augmented frames, clamped to 0..255.
    """
    grey_w = img1.new_tensor(_GREY).view(1, 3, 1, 1)
    out = []
    for f, img in enumerate((img1, img2)):
        p = params[:, f]
        x = img * p[:, 0, None, None, None]
        mean = (x * grey_w).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
        x = (x - mean) * p[:, 1, None, None, None] + mean
        grey = (x * grey_w).sum(1, keepdim=True)
        x = (x - grey) * p[:, 2, None, None, None] + grey
        x = 255.0 * (x.clamp(0, 255) / 255.0) ** p[:, 3, None, None, None]
        # One generator per sample on the frames' device: a sample's noise does not depend on its batch.
        noise = torch.stack([torch.randn(img.shape[1:], device=img.device,
                                         generator=torch.Generator(img.device).manual_seed(int(s)))
                             for s in p[:, 5].tolist()])
        out.append((x + noise * p[:, 4, None, None, None]).clamp(0, 255))
    return out[0], out[1]


def draw_degradations(rng: np.random.Generator, contrast: tuple[float, float], blur_prob: float,
                      blur_length: tuple[int, int]) -> tuple[float, np.ndarray]:
    """One sample's background contrast factor and per-frame blur (2, 2): (length px, 0 = sharp; kind 0 horizontal,
    1 vertical, 2 defocus), odd lengths in ``blur_length`` where there are any."""
    c = float(rng.uniform(*contrast))
    blur = np.zeros((2, 2))
    lengths = np.arange(blur_length[0], blur_length[1] + 1)
    lengths = lengths[lengths % 2 == 1] if (lengths % 2 == 1).any() else lengths
    for f in range(2):
        if rng.random() < blur_prob:
            blur[f] = rng.choice(lengths), rng.integers(3)
    return c, blur


def blur_frames(img: Tensor, blur: np.ndarray) -> Tensor:
    """Box-blur each frame of (N, 3, H, W) by its (length, kind) row of ``blur`` (N, 2); length 0 leaves it sharp.
    Replicate padding, so the borders do not darken."""
    out = []
    for x, (length, kind) in zip(img, blur.tolist()):
        length = int(length)
        if length <= 1:
            out.append(x)
            continue
        kh, kw = {0: (1, length), 1: (length, 1)}.get(int(kind), (length, length))
        k = x.new_full((3, 1, kh, kw), 1.0 / (kh * kw))
        xp = F.pad(x[None], (kw // 2, (kw - 1) // 2, kh // 2, (kh - 1) // 2), mode='replicate')
        out.append(F.conv2d(xp, k, groups=3)[0])
    return torch.stack(out)


def flip_flow_batch(img1: Tensor, img2: Tensor, flow: Tensor, valid: Tensor, horizontal: Tensor,
                    vertical: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Flip chosen samples of a batch left-right / up-down, negating the flow component along each flip.

    Args:
        img1, img2: (N, 3, H, W); flow (N, 2, H, W) px; valid (N, H, W).
        horizontal, vertical: (N,) bool, which samples to flip.
    """
    out = []
    for t in (img1, img2, flow, valid):
        t = torch.where(horizontal.view(-1, *[1] * (t.dim() - 1)), t.flip(-1), t)
        t = torch.where(vertical.view(-1, *[1] * (t.dim() - 1)), t.flip(-2), t)
        out.append(t)
    sign = torch.ones_like(out[2][:, :, :1, :1])
    sign[:, 0] = torch.where(horizontal, -1.0, 1.0).view(-1, 1, 1).to(sign.dtype)
    sign[:, 1] = torch.where(vertical, -1.0, 1.0).view(-1, 1, 1).to(sign.dtype)
    return out[0], out[1], out[2] * sign, out[3]
