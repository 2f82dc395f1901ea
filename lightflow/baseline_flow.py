"""The reference flow methods a learned model must beat: predicting no motion, and OpenCV's DIS (Kroeger et al.,
ECCV 2016) at its three presets.

Flow methods, not evaluation: the adaptation teacher (:mod:`lightflow.data.video_pairs`), the tables of
:mod:`lightflow.evaluation` and the plugin's ``ZeroMotion`` / ``DISMotion`` use them. Images are uint8 RGB (H, W, 3)
arrays or (3, H, W) 0..255 tensors; flow is a float32 (2, H, W) tensor in pixels with the project's backward
convention ``img1[y, x] ~ img2[y + v, x + u]`` (OpenCV's too).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .inference import to_image_batch

__all__ = ['DIS_PRESETS', 'zero_flow', 'dis_flow', 'create_dis']

DIS_PRESETS = ('ultrafast', 'fast', 'medium')


def zero_flow(img1: np.ndarray | Tensor, img2: np.ndarray | Tensor) -> Tensor:
    """The no-motion baseline: (2, H, W) zeros. Its EPE is the mean GT magnitude."""
    h, w = img1.shape[-2:] if isinstance(img1, Tensor) else np.shape(img1)[:2]
    return torch.zeros(2, h, w)


def create_dis(preset: str = 'fast'):
    """A ``cv2.DISOpticalFlow`` with the default parameters of ``preset`` (one of :data:`DIS_PRESETS`)."""
    import cv2

    if preset not in DIS_PRESETS:
        raise ValueError(f'preset must be one of {DIS_PRESETS}, got {preset!r}')
    return cv2.DISOpticalFlow_create(getattr(cv2, f'DISOPTICAL_FLOW_PRESET_{preset.upper()}'))


def _gray(img: np.ndarray | Tensor) -> np.ndarray:
    import cv2

    if isinstance(img, Tensor):
        img = to_image_batch(img)[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'expected a uint8 RGB image (H, W, 3), got {img.dtype} {img.shape}')
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def _check_dis_size(height: int, width: int, patch: int, preset: str) -> None:
    """One-line ``ValueError`` for frames OpenCV's DIS cannot take: it picks its coarsest pyramid level from the
    longer side alone, ``c = int(log2(max(H, W) / (4 * patch)) + 0.5)``, and fails with a ``cv2.error`` (tiny frames,
    c < 0) or crashes the process (short, wide frames: 8x50 px) when the shorter side at that level holds no patch."""
    level = int(math.log2(max(height, width) / (4.0 * patch)) + 0.5)
    if level < 0 or min(height, width) >> level < patch:
        need = patch << max(level, 0)
        raise ValueError(f'dis_flow: {height}x{width} frames are too small for OpenCV DIS ({preset!r}, {patch} px '
                         f'patches): both sides must be >= {max(need, 12)} px at this size (resize or pad the frames)')


def dis_flow(img1: np.ndarray | Tensor, img2: np.ndarray | Tensor, preset: str = 'fast') -> Tensor:
    """OpenCV DIS optical flow (``cv2.DISOpticalFlow``, default parameters of ``preset``) on the grey images.

    Args:
        img1, img2: uint8 RGB (H, W, 3) arrays (or (3, H, W) 0..255 tensors).
        preset: ``'ultrafast'``, ``'fast'`` or ``'medium'``.

    Returns:
        float32 (2, H, W) flow in pixels, ``img1[y, x] ~ img2[y + v, x + u]``.
    """
    dis = create_dis(preset)
    gray1, gray2 = _gray(img1), _gray(img2)
    if gray1.shape != gray2.shape:
        raise ValueError(f'both images must have the same size, got {gray1.shape} and {gray2.shape}')
    _check_dis_size(*gray1.shape, dis.getPatchSize(), preset)
    flow = dis.calc(gray1, gray2, None)  # (H, W, 2)
    return torch.from_numpy(flow).permute(2, 0, 1).contiguous()
