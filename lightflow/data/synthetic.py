"""Synthetic Flying-Chairs-like pairs with exact ground-truth flow, generated on the fly (no downloads).

Each sample is a stack of layers: a background (a photograph or a procedural texture) and a few foreground objects
(ellipse or star-polygon masks cut from photographs shipped inside scikit-image, or from procedural textures). Layer
``k`` is placed in frame 1 by an affine map ``A1`` from its texture to the image and in frame 2 by ``A2 = M o A1``,
where ``M`` is the layer's own random motion (translation, rotation, zoom), as in Flying Chairs (Dosovitskiy et al.
2015, Sec. 3). Pixels are rendered by inverse-mapping into the textures (bilinear), so the flow at a frame-1 pixel
``p`` whose frontmost layer is ``k`` is exactly ``M_k(p) - p``; occluded pixels keep the flow of their frame-1 layer.

Sample ``i`` draws from its own RNG seeded by ``(seed, i)``: DataLoader workers and reruns see identical data.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import cv2
import numpy as np
from torch.utils.data import Dataset

from ..io import atomic_write, write_flo
from .datasets import CHAIRS_SPLIT_FILE
from .transforms import ToTensor

__all__ = ['SyntheticChairs', 'SyntheticSample', 'export_chairs_layout', 'PHOTO_NAMES']

# Photographs bundled with scikit-image (no network). 'cat' is the same picture as 'chelsea'; large ones are left out
# to keep per-worker memory small.
PHOTO_NAMES = ('astronaut', 'coffee', 'chelsea', 'rocket', 'camera', 'immunohistochemistry', 'hubble_deep_field',
               'coins', 'clock', 'grass', 'gravel', 'brick', 'moon', 'cell', 'colorwheel', 'page', 'text')


class SyntheticSample(NamedTuple):
    """One rendered pair. ``layers1``/``layers2`` (H, W) int16 give the frontmost layer per pixel (0 = background)."""

    img1: np.ndarray  # (H, W, 3) uint8
    img2: np.ndarray  # (H, W, 3) uint8
    flow: np.ndarray  # (H, W, 2) float32
    valid: np.ndarray  # (H, W) bool, all True
    layers1: np.ndarray
    layers2: np.ndarray


@lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """The available scikit-image photographs as float32 RGB (H, W, 3), loaded once per process."""
    import skimage.data

    photos = []
    for name in PHOTO_NAMES:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            continue
        try:
            img = np.asarray(loader())
        except Exception:  # a build of scikit-image without this file (optional 'data' extras)
            continue
        if img.dtype != np.uint8:
            continue
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        photos.append(np.ascontiguousarray(img[..., :3], np.float32))
    if not photos:
        raise RuntimeError('no scikit-image sample photographs could be loaded (skimage.data); check the install')
    return tuple(photos)


def _rotation_zoom(angle_deg: float, zoom: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return zoom * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _affine(linear: np.ndarray, src_center: Sequence[float], dst_center: Sequence[float]) -> np.ndarray:
    """3x3 map p -> dst_center + linear (p - src_center)."""
    out = np.eye(3)
    out[:2, :2] = linear
    out[:2, 2] = np.asarray(dst_center, float) - linear @ np.asarray(src_center, float)
    return out


def _map(t: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply the affine 3x3 ``t`` to the grid of (1, w) ``xs`` and (h, 1) ``ys``; returns two float32 (h, w) maps."""
    t = t.astype(np.float32)
    return t[0, 0] * xs + t[0, 1] * ys + t[0, 2], t[1, 0] * xs + t[1, 1] * ys + t[1, 2]


def _procedural_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random float32 (size, size, 3) texture in 0..255: smooth noise, stripes or checkers, plus fine noise."""
    kind = rng.integers(3)
    colors = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    if kind == 0:
        cells = int(rng.integers(3, 12))
        base = cv2.resize(rng.uniform(0, 1, (cells, cells, 3)).astype(np.float32), (size, size),
                          interpolation=cv2.INTER_CUBIC)
        tex = base * 255.0
    else:
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        angle = rng.uniform(0, math.pi)
        period = rng.uniform(6, 40)
        along = xs * math.cos(angle) + ys * math.sin(angle)
        if kind == 1:
            weight = 0.5 + 0.5 * np.sin(2 * math.pi * along / period)
        else:
            across = -xs * math.sin(angle) + ys * math.cos(angle)
            # Smoothed square wave: sharp edges, yet band-limited enough to resample cleanly.
            weight = 0.5 + 0.5 * np.tanh(3 * np.sin(2 * math.pi * along / period) * np.sin(2 * math.pi * across /
                                                                                          period))
        tex = colors[0] + weight[..., None] * (colors[1] - colors[0])
    # Fine detail so that no region is flat (flat regions make flow ambiguous).
    detail = cv2.resize(rng.normal(0, 1, (size // 4, size // 4, 3)).astype(np.float32), (size, size),
                        interpolation=cv2.INTER_LINEAR)
    return np.clip(tex + 12.0 * detail, 0, 255).astype(np.float32)


def _shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float32 (size, size) 0/1 mask: an ellipse or a star-shaped polygon filling most of the square."""
    mask = np.zeros((size, size), np.uint8)
    c = (size - 1) / 2.0
    shift = 4  # cv2 sub-pixel vertex precision: 1/16 px
    if rng.random() < 0.4:
        axes = (int(c * rng.uniform(0.5, 0.98) * 16), int(c * rng.uniform(0.3, 0.98) * 16))
        cv2.ellipse(mask, (int(c * 16), int(c * 16)), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1,
                    cv2.LINE_AA, shift)
    else:
        n = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = c * rng.uniform(0.45, 0.98, n)
        pts = np.stack([c + radii * np.cos(angles), c + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift)
    # Anti-aliased edges: bilinear sampling of this mask then gives soft object borders, as in rendered Chairs.
    return mask.astype(np.float32) / 255.0


class _Layer(NamedTuple):
    texture: np.ndarray  # (Ht, Wt, 3) float32
    mask: np.ndarray | None  # (m, m) float32 in mask coordinates, None = opaque everywhere (background)
    texture_to_mask: np.ndarray | None  # 3x3
    box: np.ndarray | None  # (4, 2) corners of the mask square in texture coordinates
    a1: np.ndarray  # 3x3 texture -> frame 1
    motion: np.ndarray  # 3x3 frame 1 -> frame 2


class SyntheticChairs(Dataset):
    """Flying-Chairs-like pairs rendered on the fly with exact flow.

    Args:
        num_samples: dataset length.
        size: (H, W) of the frames.
        seed: base seed; sample ``i`` depends only on ``(seed, i)``.
        transforms: ``transforms(img1, img2, flow, valid)``; None uses ``ToTensor()``.
        num_objects: (min, max) number of foreground objects.
        motion_scale: multiplies all motion magnitudes (1.0 gives Chairs-like flows: a few to ~30-40 px at 384x512,
            scaled with the image size).
        photo_prob: probability that a layer is textured by a photograph rather than a procedural texture.
    """

    def __init__(self, num_samples: int, size: tuple[int, int] = (384, 512), seed: int = 0,
                 transforms: Callable | None = None, num_objects: tuple[int, int] = (5, 12),
                 motion_scale: float = 1.0, photo_prob: float = 0.5) -> None:
        if int(num_samples) != num_samples or num_samples <= 0:
            raise ValueError(f'num_samples must be a positive int, got {num_samples}')
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f'size must be (H, W) with both >= 16, got {size}')
        if len(num_objects) != 2 or not 0 <= num_objects[0] <= num_objects[1]:
            raise ValueError(f'num_objects must be (min, max) with 0 <= min <= max, got {num_objects}')
        if motion_scale < 0:
            raise ValueError(f'motion_scale must be >= 0, got {motion_scale}')
        if not 0 <= photo_prob <= 1:
            raise ValueError(f'photo_prob must be in [0, 1], got {photo_prob}')
        self.num_samples, self.size, self.seed = int(num_samples), size, int(seed)
        self.transforms = ToTensor() if transforms is None else transforms
        self.num_objects, self.motion_scale, self.photo_prob = tuple(num_objects), float(motion_scale), photo_prob

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int):
        return self.transforms(*self.read_raw(index))

    def read_raw(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``index`` before transforms: uint8 (H, W, 3) x2, float32 (H, W, 2), bool (H, W)."""
        return self.render(index)[:4]

    def _texture(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if rng.random() < self.photo_prob:
            photos = _photos()
            return photos[int(rng.integers(len(photos)))]
        return _procedural_texture(rng, size)

    def _layers(self, rng: np.random.Generator) -> list[_Layer]:
        height, width = self.size
        short = min(height, width)
        # Chairs-like magnitudes at 384 px, scaled with the image size.
        unit = short / 384.0 * self.motion_scale
        frame_center = ((width - 1) / 2.0, (height - 1) / 2.0)

        # Frame pixels per texture pixel. Kept near 1 at every frame size (a crop of the photo, not the whole photo
        # shrunk): minified textures alias under bilinear sampling and frame 2 would no longer match frame 1.
        scale = rng.uniform(1.0, 2.0)
        texture = self._texture(rng, int(min(640, 1.1 * max(height, width) / scale)))
        th, tw = texture.shape[:2]
        # The texture is mirrored beyond its border (BORDER_REFLECT_101), so a small one still covers the frame.
        a1 = _affine(_rotation_zoom(rng.uniform(-20, 20), scale), rng.uniform((0.3 * tw, 0.3 * th),
                                                                               (0.7 * tw, 0.7 * th)), frame_center)
        motion = _affine(_rotation_zoom(rng.uniform(-2, 2) * self.motion_scale,
                                        1 + rng.uniform(-0.03, 0.03) * self.motion_scale),
                         frame_center, np.add(frame_center, rng.uniform(-12, 12, 2) * unit))
        layers = [_Layer(texture, None, None, None, a1, motion)]

        for _ in range(int(rng.integers(self.num_objects[0], self.num_objects[1] + 1))):
            radius = short * rng.uniform(0.06, 0.22)  # in frame pixels
            zoom = rng.uniform(0.9, 2.0)  # frame pixels per texture pixel
            texture = self._texture(rng, int(min(256, max(32, 2.2 * radius / zoom))))
            th, tw = texture.shape[:2]
            r_tex = min(radius / zoom, (min(th, tw) - 1) / 2.0)
            zoom = radius / r_tex
            tex_center = rng.uniform((r_tex, r_tex), (tw - 1 - r_tex, th - 1 - r_tex))
            mask = _shape_mask(rng, 128)
            m = mask.shape[0]
            texture_to_mask = _affine(np.eye(2) * ((m - 1) / (2 * r_tex)), tex_center, ((m - 1) / 2, (m - 1) / 2))
            box = tex_center + r_tex * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
            center = rng.uniform((-0.1 * width, -0.1 * height), (1.1 * width, 1.1 * height))
            a1 = _affine(_rotation_zoom(rng.uniform(-180, 180), zoom), tex_center, center)
            motion = _affine(_rotation_zoom(rng.uniform(-8, 8) * self.motion_scale,
                                            1 + rng.uniform(-0.06, 0.06) * self.motion_scale),
                             center, center + rng.uniform(-25, 25, 2) * unit)
            layers.append(_Layer(texture, mask, texture_to_mask, box, a1, motion))
        return layers

    def render(self, index: int) -> SyntheticSample:
        """Render sample ``index`` with its layer maps (for occlusion-aware checks)."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f'index {index} out of range for {self.num_samples} samples')
        index %= self.num_samples
        rng = np.random.default_rng([self.seed, index])
        layers = self._layers(rng)
        height, width = self.size
        frames = [np.zeros((height, width, 3), np.float32) for _ in range(2)]
        ids = [np.zeros((height, width), np.int16) for _ in range(2)]
        flow = np.zeros((height, width, 2), np.float32)

        for k, layer in enumerate(layers):
            for f, a in enumerate((layer.a1, layer.motion @ layer.a1)):
                if layer.box is None:
                    x0, y0, x1, y1 = 0, 0, width, height
                else:
                    corners = layer.box @ a[:2, :2].T + a[:2, 2]
                    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 1, 0)
                    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 2, (width, height))
                    if x0 >= x1 or y0 >= y1:
                        continue
                # Broadcast (h, 1) and (1, w) coordinates instead of building full grids: this loop dominates.
                xs = np.arange(x0, x1, dtype=np.float32)[None, :]
                ys = np.arange(y0, y1, dtype=np.float32)[:, None]
                color = cv2.remap(layer.texture, *_map(np.linalg.inv(a), xs, ys), cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT_101)
                window = (slice(y0, y1), slice(x0, x1))
                if layer.mask is None:
                    frames[f][window] = color
                    ids[f][window] = k
                    hard = np.ones(color.shape[:2], bool)
                else:
                    alpha = cv2.remap(layer.mask, *_map(layer.texture_to_mask @ np.linalg.inv(a), xs, ys),
                                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                    frames[f][window] += alpha[..., None] * (color - frames[f][window])
                    hard = alpha >= 0.5
                    ids[f][window][hard] = k
                if f == 0:
                    # Exact flow of this layer: M(p) - p.
                    u, v = _map(layer.motion - np.eye(3), xs, ys)
                    flow[window][hard] = np.stack([u[hard], v[hard]], axis=-1)

        img1, img2 = (np.clip(np.rint(fr), 0, 255).astype(np.uint8) for fr in frames)
        return SyntheticSample(img1, img2, flow, np.ones((height, width), bool), ids[0], ids[1])

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_samples={self.num_samples}, size={self.size}, seed={self.seed}, '
                f'num_objects={self.num_objects}, motion_scale={self.motion_scale}, transforms={self.transforms!r})')


def _ppm_bytes(img: np.ndarray) -> bytes:
    height, width = img.shape[:2]
    return f'P6\n{width} {height}\n255\n'.encode() + np.ascontiguousarray(img, np.uint8).tobytes()


def export_chairs_layout(dataset, root: str | os.PathLike, num_val: int = 0, progress: bool = True) -> Path:
    """Write a dataset to the Flying Chairs layout so :class:`~lightflow.data.FlyingChairs` can read it back.

    Writes ``root/data/NNNNN_img1.ppm``, ``NNNNN_img2.ppm``, ``NNNNN_flow.flo`` (numbered from 00001) and
    ``root/FlyingChairs_train_val.txt``, each atomically. The last ``num_val`` samples are marked val (2).

    Args:
        dataset: anything with ``__len__`` and ``read_raw(i) -> (img1, img2, flow, valid)`` (e.g. SyntheticChairs).
        root: output folder.
        num_val: how many samples (taken from the end) go to the val split.
        progress: show a tqdm bar.

    Returns:
        ``root`` as a Path.
    """
    n = len(dataset)
    if not 0 <= num_val <= n:
        raise ValueError(f'num_val must be in [0, {n}], got {num_val}')
    if not hasattr(dataset, 'read_raw'):
        raise ValueError(f'dataset {type(dataset).__name__} has no read_raw(index) method')
    root = Path(root)
    data = root / 'data'
    data.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    for i in tqdm(range(n), desc='export Chairs layout', disable=not progress):
        img1, img2, flow, _ = dataset.read_raw(i)
        stem = f'{i + 1:05d}'
        for suffix, img in (('img1', img1), ('img2', img2)):
            with atomic_write(data / f'{stem}_{suffix}.ppm') as f:
                f.write(_ppm_bytes(img))
        write_flo(data / f'{stem}_flow.flo', flow)
    with atomic_write(root / CHAIRS_SPLIT_FILE, 'w') as f:
        f.write(''.join('2\n' if i >= n - num_val else '1\n' for i in range(n)))
    return root
