"""Joint transforms for optical-flow samples: every transform maps ``(img1, img2, flow, valid)`` to the same 4-tuple.

Between transforms a sample is numpy: images (H, W, 3) uint8 or float32 in 0..255, flow float32 (H, W, 2) in pixels
(u right, v down), valid bool (H, W). :class:`ToTensor` ends every pipeline and returns torch tensors: images float32
(3, H, W) in 0..255, flow float32 (2, H, W), valid bool (H, W). Geometric transforms update the flow exactly and keep
the rule that invalid pixels hold zero flow.

Random transforms draw from torch's global RNG, which PyTorch reseeds per DataLoader worker and mmengine seeds per run,
so augmentation is repeatable and differs between workers. In training, ``lightflow.engine``'s seeded samplers reseed
it per sample from the sample's position in the run, so a resumed run augments exactly as an uninterrupted one.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from .registry import register_flow_transform

__all__ = ['Compose', 'RandomAffine', 'RandomHorizontalFlip', 'RandomVerticalFlip', 'RandomCrop', 'CenterCrop',
           'PhotometricJitter', 'Resize', 'ToTensor', 'chairs_train_transforms', 'eval_transforms',
           'affine_warp_sample']

Sample = tuple  # (img1, img2, flow, valid)


def _uniform(low: float, high: float) -> float:
    """One draw from U(low, high) on torch's global RNG."""
    return low + (high - low) * torch.rand(()).item()


def _coin(p: float) -> bool:
    return p > 0 and torch.rand(()).item() < p


def _check_prob(p: float, name: str) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f'{name} must be a probability in [0, 1], got {p}')
    return float(p)


def _check_range(value: Sequence[float] | float, name: str, symmetric: bool = False) -> tuple[float, float]:
    """Accept ``x`` (-> (-x, x) when symmetric) or ``(low, high)`` with low <= high."""
    if isinstance(value, (int, float)):
        if not symmetric:
            raise ValueError(f'{name} must be a (low, high) pair, got {value}')
        if value < 0:
            raise ValueError(f'{name} must be >= 0, got {value}')
        return -float(value), float(value)
    low, high = (float(v) for v in value)
    if low > high:
        raise ValueError(f'{name} must be (low, high) with low <= high, got {tuple(value)}')
    return low, high


def _check_size(size: int | Sequence[int], name: str = 'size') -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f'{name} must be a positive int or (H, W), got {size}')
    return size


def _check_sample(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray, valid: np.ndarray, where: str) -> None:
    """Shape contract of a numpy sample; raises ValueError naming the transform."""
    if img1.ndim != 3 or img1.shape[2] != 3 or img2.shape != img1.shape:
        raise ValueError(f'{where}: images must both be (H, W, 3), got {img1.shape} and {img2.shape}')
    if flow.shape != img1.shape[:2] + (2,) or valid.shape != img1.shape[:2]:
        raise ValueError(f'{where}: flow {flow.shape} / valid {valid.shape} do not match image {img1.shape[:2]}')


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img1, img2, flow, valid) -> Sample:
        for t in self.transforms:
            img1, img2, flow, valid = t(img1, img2, flow, valid)
        return img1, img2, flow, valid

    def __repr__(self) -> str:
        inner = ''.join(f'\n    {t!r},' for t in self.transforms)
        return f'{type(self).__name__}([{inner}\n])'


def _affine_matrix(center: tuple[float, float], angle_deg: float, zoom: float,
                   translate: tuple[float, float]) -> np.ndarray:
    """3x3 map that zooms and rotates about ``center`` (x, y) then translates: p' = c + t + zoom * R (p - c)."""
    a = math.radians(angle_deg)
    cos, sin = math.cos(a) * zoom, math.sin(a) * zoom
    cx, cy = center
    return np.array([[cos, -sin, cx + translate[0] - cos * cx + sin * cy],
                     [sin, cos, cy + translate[1] - sin * cx - cos * cy],
                     [0.0, 0.0, 1.0]])


def _warp(src: np.ndarray, inverse: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear ``out(p) = src(inverse p)`` with pixel centres at integers, zeros outside; float32, channels kept."""
    out = cv2.warpAffine(np.ascontiguousarray(src, np.float32), inverse[:2].astype(np.float64), (size[1], size[0]),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(size + src.shape[2:])


def affine_warp_sample(img1: np.ndarray, img2: np.ndarray, flow: np.ndarray, valid: np.ndarray, t1: np.ndarray,
                       t2: np.ndarray, out_size: tuple[int, int] | None = None,
                       flow_interpolation: str = 'bilinear') -> Sample:
    """Warp a sample by affine maps ``t1`` (frame 1) and ``t2`` (frame 2) with an exact flow update.

    ``t1``/``t2`` (3x3) map old pixel coordinates to new ones. A point at ``p1`` in old frame 1 is at ``t1 p1`` in new
    frame 1 and at ``t2 (p1 + flow(p1))`` in new frame 2, so ``new_flow(p) = t2(p1 + flow(p1)) - p`` with
    ``p1 = t1^-1 p``. New pixels whose source lies outside old frame 1 (or, for bilinear flow, touches an invalid
    pixel) become invalid with zero flow; flows pointing outside frame 2 stay valid, as in the datasets.

    Returns:
        ``(img1, img2, flow, valid)``: float32 images (h, w, 3), float32 flow (h, w, 2), bool valid (h, w).
    """
    if flow_interpolation not in ('bilinear', 'nearest'):
        raise ValueError(f"flow_interpolation must be 'bilinear' or 'nearest', got {flow_interpolation!r}")
    height, width = img1.shape[:2]
    out_h, out_w = out_size or (height, width)
    inv1 = np.linalg.inv(t1)
    new_img1 = _warp(img1, inv1, (out_h, out_w))
    new_img2 = _warp(img2, np.linalg.inv(t2), (out_h, out_w))

    # Source position p1 = t1^-1 p of every output pixel, from broadcast (h, 1) / (1, w) coordinates.
    xs = np.arange(out_w, dtype=np.float32)[None, :]
    ys = np.arange(out_h, dtype=np.float32)[:, None]
    inv = inv1.astype(np.float32)
    x1 = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    y1 = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    # Validity by nearest neighbour (never blends the flag); bilinear flow additionally needs all 4 taps valid and
    # inside, so a zeroed invalid flow can never leak into a valid one.
    ix, iy = np.floor(x1 + 0.5).astype(np.int64), np.floor(y1 + 0.5).astype(np.int64)
    inside = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
    new_valid = inside & valid[iy.clip(0, height - 1), ix.clip(0, width - 1)]
    if flow_interpolation == 'bilinear':
        new_valid &= (x1 >= 0) & (x1 <= width - 1) & (y1 >= 0) & (y1 <= height - 1)
        new_valid &= _warp(valid.astype(np.float32), inv1, (out_h, out_w)) > 1 - 1e-3
        f = _warp(flow, inv1, (out_h, out_w))
    else:
        f = flow[iy.clip(0, height - 1), ix.clip(0, width - 1)]
    # new_flow = t2 (p1 + f) - p = (t2 t1^-1 - I) p + L2 f, with L2 the linear part of t2.
    rel = (t2 @ inv1 - np.eye(3)).astype(np.float32)
    lin = t2[:2, :2].astype(np.float32)
    u = rel[0, 0] * xs + rel[0, 1] * ys + rel[0, 2] + lin[0, 0] * f[..., 0] + lin[0, 1] * f[..., 1]
    v = rel[1, 0] * xs + rel[1, 1] * ys + rel[1, 2] + lin[1, 0] * f[..., 0] + lin[1, 1] * f[..., 1]
    new_flow = np.stack([u, v], axis=-1).astype(np.float32)
    new_flow[~new_valid] = 0.0
    return new_img1, new_img2, new_flow, new_valid


@register_flow_transform
class RandomAffine:
    """FlowNet-style geometric augmentation: a global affine on both frames plus a small relative affine on frame 2.

    The global map rotates and zooms about the image centre and translates; frame 2 gets the global map followed by
    the relative one (Dosovitskiy et al. 2015, Sec. 4.2). The output keeps the input size; pixels that come from
    outside the image are black and invalid.

    Args:
        translate: max translation as a fraction of (W, H), uniform in [-t, t].
        rotate: max rotation in degrees, uniform in [-r, r].
        zoom: (low, high) zoom factor range (> 1 magnifies), sampled log-uniformly.
        relative_translate, relative_rotate, relative_zoom: the same for the relative frame-2 map.
        p: probability of applying the transform.
        flow_interpolation: ``'bilinear'`` or ``'nearest'`` resampling of the flow (use nearest for sparse GT).
    """

    def __init__(self, translate: float = 0.2, rotate: float = 17.0, zoom: tuple[float, float] = (0.9, 2.0),
                 relative_translate: float = 0.03, relative_rotate: float = 0.0,
                 relative_zoom: tuple[float, float] = (0.97, 1.03), p: float = 1.0,
                 flow_interpolation: str = 'bilinear') -> None:
        for name, value in (('translate', translate), ('rotate', rotate), ('relative_translate', relative_translate),
                            ('relative_rotate', relative_rotate)):
            if value < 0:
                raise ValueError(f'{name} must be >= 0, got {value}')
        self.zoom = _check_range(zoom, 'zoom')
        self.relative_zoom = _check_range(relative_zoom, 'relative_zoom')
        if self.zoom[0] <= 0 or self.relative_zoom[0] <= 0:
            raise ValueError(f'zoom ranges must be > 0, got {zoom} and {relative_zoom}')
        if flow_interpolation not in ('bilinear', 'nearest'):
            raise ValueError(f"flow_interpolation must be 'bilinear' or 'nearest', got {flow_interpolation!r}")
        self.translate, self.rotate = float(translate), float(rotate)
        self.relative_translate, self.relative_rotate = float(relative_translate), float(relative_rotate)
        self.p = _check_prob(p, 'p')
        self.flow_interpolation = flow_interpolation

    def sample_matrices(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw the (t1, t2) 3x3 maps for an image of this size."""
        center = ((width - 1) / 2.0, (height - 1) / 2.0)

        def draw(translate, rotate, zoom):
            t = (_uniform(-translate, translate) * width, _uniform(-translate, translate) * height)
            angle = _uniform(-rotate, rotate)
            scale = math.exp(_uniform(math.log(zoom[0]), math.log(zoom[1])))
            return _affine_matrix(center, angle, scale, t)

        t1 = draw(self.translate, self.rotate, self.zoom)
        relative = draw(self.relative_translate, self.relative_rotate, self.relative_zoom)
        return t1, relative @ t1

    def __call__(self, img1, img2, flow, valid) -> Sample:
        _check_sample(img1, img2, flow, valid, type(self).__name__)
        if not _coin(self.p):
            return img1, img2, flow, valid
        t1, t2 = self.sample_matrices(*img1.shape[:2])
        return affine_warp_sample(img1, img2, flow, valid, t1, t2, flow_interpolation=self.flow_interpolation)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(translate={self.translate}, rotate={self.rotate}, zoom={self.zoom}, '
                f'relative_translate={self.relative_translate}, relative_rotate={self.relative_rotate}, '
                f'relative_zoom={self.relative_zoom}, p={self.p})')


@register_flow_transform
class RandomHorizontalFlip:
    """Mirror both frames left-right with probability ``p``; u changes sign."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = _check_prob(p, 'p')

    def __call__(self, img1, img2, flow, valid) -> Sample:
        if not _coin(self.p):
            return img1, img2, flow, valid
        flow = flow[:, ::-1] * np.array([-1.0, 1.0], np.float32)
        return img1[:, ::-1], img2[:, ::-1], flow, valid[:, ::-1]

    def __repr__(self) -> str:
        return f'{type(self).__name__}(p={self.p})'


@register_flow_transform
class RandomVerticalFlip:
    """Mirror both frames upside down with probability ``p``; v changes sign."""

    def __init__(self, p: float = 0.1) -> None:
        self.p = _check_prob(p, 'p')

    def __call__(self, img1, img2, flow, valid) -> Sample:
        if not _coin(self.p):
            return img1, img2, flow, valid
        flow = flow[::-1] * np.array([1.0, -1.0], np.float32)
        return img1[::-1], img2[::-1], flow, valid[::-1]

    def __repr__(self) -> str:
        return f'{type(self).__name__}(p={self.p})'


def _crop_fits(transform, height: int, width: int) -> tuple[int, int]:
    """The crop size of ``transform``; ValueError if it does not fit a (height, width) sample."""
    h, w = transform.size
    if h > height or w > width:
        raise ValueError(f'{type(transform).__name__}: crop {transform.size} larger than the sample {(height, width)}')
    return h, w


def _crop(sample: Sample, top: int, left: int, size: tuple[int, int]) -> Sample:
    h, w = size
    return tuple(a[top:top + h, left:left + w] for a in sample)


@register_flow_transform
class RandomCrop:
    """Crop the same random (H, W) window from both frames, the flow and the mask (flow values are unchanged)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _check_size(size)

    def __call__(self, img1, img2, flow, valid) -> Sample:
        height, width = img1.shape[:2]
        h, w = _crop_fits(self, height, width)
        top = int(torch.randint(0, height - h + 1, ()).item())
        left = int(torch.randint(0, width - w + 1, ()).item())
        return _crop((img1, img2, flow, valid), top, left, self.size)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size})'


@register_flow_transform
class CenterCrop:
    """Crop the central (H, W) window."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _check_size(size)

    def __call__(self, img1, img2, flow, valid) -> Sample:
        height, width = img1.shape[:2]
        h, w = _crop_fits(self, height, width)
        return _crop((img1, img2, flow, valid), (height - h) // 2, (width - w) // 2, self.size)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size})'


@register_flow_transform
class Resize:
    """Resize to (H, W) (pixel-centre aligned); flow values are rescaled, validity resampled by nearest neighbour."""

    def __init__(self, size: int | Sequence[int], flow_interpolation: str = 'bilinear') -> None:
        self.size = _check_size(size)
        self.flow_interpolation = flow_interpolation

    def __call__(self, img1, img2, flow, valid) -> Sample:
        _check_sample(img1, img2, flow, valid, type(self).__name__)
        height, width = img1.shape[:2]
        if (height, width) == self.size:
            return img1, img2, flow, valid
        sx, sy = self.size[1] / width, self.size[0] / height
        # Pixel centres map as x' = (x + 0.5) * s - 0.5.
        t = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return affine_warp_sample(img1, img2, flow, valid, t, t, out_size=self.size,
                                  flow_interpolation=self.flow_interpolation)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(size={self.size})'


_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)
_GREY = np.array([0.299, 0.587, 0.114], np.float32)


@register_flow_transform
class PhotometricJitter:
    """Colour augmentation on both frames: brightness, contrast, saturation, hue, gamma, then additive noise.

    Both frames share one draw of the parameters; with probability ``asymmetric_prob`` each frame gets its own draw
    instead (RAFT's asymmetric jitter), which teaches robustness to lighting changes between frames.

    Args:
        brightness, contrast, saturation: factor drawn from [1 - x, 1 + x].
        hue: rotation of the chroma plane, a fraction of a full turn drawn from [-x, x] (x <= 0.5).
        gamma: (low, high) gamma range.
        noise_std: (low, high) range of the Gaussian noise sigma in grey levels (0..255).
        p: probability of applying the jitter at all.
        asymmetric_prob: probability of independent parameters per frame.
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.08,
                 gamma: tuple[float, float] = (0.8, 1.25), noise_std: tuple[float, float] = (0.0, 5.0),
                 p: float = 1.0, asymmetric_prob: float = 0.2) -> None:
        for name, value in (('brightness', brightness), ('contrast', contrast), ('saturation', saturation)):
            if not 0 <= value <= 1:
                raise ValueError(f'{name} must be in [0, 1], got {value}')
        if not 0 <= hue <= 0.5:
            raise ValueError(f'hue must be in [0, 0.5], got {hue}')
        self.gamma = _check_range(gamma, 'gamma')
        self.noise_std = _check_range(noise_std, 'noise_std')
        if self.gamma[0] <= 0 or self.noise_std[0] < 0:
            raise ValueError(f'gamma must be > 0 and noise_std >= 0, got {gamma} and {noise_std}')
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.p = _check_prob(p, 'p')
        self.asymmetric_prob = _check_prob(asymmetric_prob, 'asymmetric_prob')

    def _draw(self) -> dict:
        return dict(brightness=_uniform(1 - self.brightness, 1 + self.brightness),
                    contrast=_uniform(1 - self.contrast, 1 + self.contrast),
                    saturation=_uniform(1 - self.saturation, 1 + self.saturation),
                    hue=_uniform(-self.hue, self.hue), gamma=_uniform(*self.gamma),
                    noise_std=_uniform(*self.noise_std))

    @staticmethod
    def _apply(img: np.ndarray, params: dict) -> np.ndarray:
        x = img.astype(np.float32) * params['brightness']
        grey = x @ _GREY
        x = (x - grey.mean()) * params['contrast'] + grey.mean()
        grey = (x @ _GREY)[..., None]
        x = (x - grey) * params['saturation'] + grey
        if params['hue'] != 0:
            angle = 2 * math.pi * params['hue']
            rot = np.array([[1, 0, 0], [0, math.cos(angle), -math.sin(angle)], [0, math.sin(angle), math.cos(angle)]])
            x = x @ (_YIQ_TO_RGB @ rot @ _RGB_TO_YIQ).T.astype(np.float32)
        x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** params['gamma']
        if params['noise_std'] > 0:
            noise = torch.randn(x.shape, dtype=torch.float32).numpy() * params['noise_std']
            x = x + noise
        return np.clip(x, 0, 255).astype(np.float32)

    def __call__(self, img1, img2, flow, valid) -> Sample:
        if not _coin(self.p):
            return img1, img2, flow, valid
        params1 = self._draw()
        params2 = self._draw() if _coin(self.asymmetric_prob) else params1
        return self._apply(img1, params1), self._apply(img2, params2), flow, valid

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, '
                f'saturation={self.saturation}, hue={self.hue}, gamma={self.gamma}, noise_std={self.noise_std}, '
                f'p={self.p}, asymmetric_prob={self.asymmetric_prob})')


@register_flow_transform
class ToTensor:
    """Last transform: numpy -> tensors (images float32 (3, H, W) 0..255, flow float32 (2, H, W), valid bool (H, W)).

    Also the final contract check before the model: raises ValueError on any dtype or shape mismatch.
    """

    def __call__(self, img1, img2, flow, valid) -> Sample:
        where = type(self).__name__
        for name, img in (('img1', img1), ('img2', img2)):
            if not isinstance(img, np.ndarray) or img.dtype not in (np.uint8, np.float32, np.float64):
                raise ValueError(f'{where}: {name} must be a uint8/float numpy array, got '
                                 f'{getattr(img, "dtype", type(img).__name__)}')
        if not isinstance(flow, np.ndarray) or not np.issubdtype(flow.dtype, np.floating):
            raise ValueError(f'{where}: flow must be a float numpy array, got {getattr(flow, "dtype", type(flow))}')
        if not isinstance(valid, np.ndarray) or valid.dtype != np.bool_:
            raise ValueError(f'{where}: valid must be a bool numpy array, got {getattr(valid, "dtype", type(valid))}')
        _check_sample(img1, img2, flow, valid, where)

        def chw(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))

        return chw(img1), chw(img2), chw(flow), torch.from_numpy(np.ascontiguousarray(valid))

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


def chairs_train_transforms(crop_size: int | Sequence[int] = (320, 448)) -> Compose:
    """The Flying Chairs training recipe: affine (translate 20 %, rotate 17 deg, zoom 0.9-2), flips, crop, colour."""
    return Compose([
        RandomAffine(translate=0.2, rotate=17.0, zoom=(0.9, 2.0), relative_translate=0.03, relative_rotate=0.0,
                     relative_zoom=(0.97, 1.03)),
        RandomHorizontalFlip(0.5),
        RandomVerticalFlip(0.1),
        RandomCrop(crop_size),
        # Colour after the crop: it costs per pixel.
        PhotometricJitter(),
        ToTensor(),
    ])


def eval_transforms() -> Compose:
    """Evaluation: no augmentation, only the conversion to tensors."""
    return Compose([ToTensor()])
