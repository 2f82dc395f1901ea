"""Synthetic Flying-Chairs-like pairs with exact ground-truth flow, rendered in torch on any device, in batches.

Each sample is a stack of layers: a background (a photograph or a procedural texture) and a few foreground objects
(ellipses or star polygons with anti-aliased edges, cut from photographs shipped inside scikit-image or from procedural
textures). Layer ``k`` maps its texture into frame 1 by ``A1`` and into frame 2 by ``A2 = M A1``, where ``M`` is the
layer's own random motion (translation, rotation, zoom; optionally a mild homography for the background), as in Flying
Chairs (Dosovitskiy et al. 2015, Sec. 3). Every pixel is rendered by inverse mapping into its texture with
``grid_sample``, so the flow at a frame-1 pixel ``p`` whose frontmost layer is ``k`` is exactly ``M_k(p) - p``.

:class:`SyntheticFlowGenerator` is the one generator. Sample ``i`` draws its parameters from its own RNG seeded by
``(seed, i)``, so a sample is identical whatever batch, DataLoader worker or DDP rank renders it (on a given device),
and ranks that render different indices see different data. It is used two ways:

* :class:`SyntheticChairs`, a map-style dataset that renders one pair per ``__getitem__`` on the CPU (DataLoader
  workers, the numpy-based transforms, export to the Chairs layout);
* ``lightflow.engine.SyntheticFlowPreprocessor``, which renders whole batches on the training device (CUDA or CPU)
  from the sample indices of a :class:`SyntheticIndices` dataset, with the photometric augmentation on the device too.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ..io import atomic_write, write_flo
from .datasets import CHAIRS_SPLIT_FILE
from .transforms import ToTensor

__all__ = ['SyntheticFlowGenerator', 'SyntheticBatch', 'SyntheticChairs', 'SyntheticIndices', 'SyntheticSample',
           'export_chairs_layout', 'PHOTO_NAMES', 'photometric_augment', 'flip_flow_batch']

# Photographs bundled with scikit-image (no network). 'cat' is the same picture as 'chelsea'.
PHOTO_NAMES = ('astronaut', 'coffee', 'chelsea', 'rocket', 'camera', 'immunohistochemistry', 'hubble_deep_field',
               'coins', 'clock', 'grass', 'gravel', 'brick', 'moon', 'cell', 'colorwheel', 'page', 'text')
_VERTICES = 8  # polygon vertex slots; polygons with fewer corners get extra vertices on their edges
_GREY = (0.299, 0.587, 0.114)


class SyntheticSample(NamedTuple):
    """One rendered pair. ``layers1``/``layers2`` (H, W) int16 give the frontmost layer per pixel (0 = background)."""

    img1: np.ndarray  # (H, W, 3) uint8
    img2: np.ndarray  # (H, W, 3) uint8
    flow: np.ndarray  # (H, W, 2) float32
    valid: np.ndarray  # (H, W) bool, all True
    layers1: np.ndarray
    layers2: np.ndarray
    occlusion: np.ndarray  # (H, W) bool


class SyntheticBatch(NamedTuple):
    """A rendered batch on the generator's device.

    ``img1``/``img2`` (N, 3, H, W) float RGB 0..255; ``flow`` (N, 2, H, W) px; ``valid`` (N, H, W) bool (all True);
    ``occlusion`` (N, H, W) bool: the frame-1 pixel's frontmost layer is not the frontmost one at its frame-2 position
    (nearest pixel), or that position leaves the frame; ``layers1``/``layers2`` (N, H, W) int64 frontmost layer ids.
    """

    img1: Tensor
    img2: Tensor
    flow: Tensor
    valid: Tensor
    occlusion: Tensor
    layers1: Tensor
    layers2: Tensor


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


def _square(img: Tensor, size: int) -> Tensor:
    """Centre square crop of a (3, H, W) image, resized (area / bicubic) to (3, size, size)."""
    h, w = img.shape[-2:]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = img[None, :, y0:y0 + s, x0:x0 + s]
    mode = 'area' if s >= size else 'bicubic'
    out = F.interpolate(crop, size=(size, size), mode=mode, **({} if mode == 'area' else dict(align_corners=False)))
    return out[0].clamp(0, 255)


def _procedural_textures(count: int, size: int, seed: int) -> Tensor:
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


def _similarity(angle_deg: float, zoom: float, src: Sequence[float], dst: Sequence[float]) -> np.ndarray:
    """3x3 map p -> dst + zoom R(angle) (p - src)."""
    a = math.radians(angle_deg)
    lin = zoom * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    out = np.eye(3)
    out[:2, :2] = lin
    out[:2, 2] = np.asarray(dst, float) - lin @ np.asarray(src, float)
    return out


def _polygon_vertices(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A star polygon around the origin as _VERTICES (angle, radius) pairs, angles sorted in [0, 2 pi).

    A polygon with fewer corners gets the extra vertices on its edges, so every shape has the same vertex count.
    """
    n = int(rng.integers(3, _VERTICES + 1))
    # Consecutive vertices less than pi apart keep the origin inside, so every ray from it meets one edge: with
    # gaps drawn from [0.7, 1] and normalised, the largest is at most 2 pi / 2.4 (triangles), 0.83 pi.
    gaps = rng.uniform(0.7, 1.0, n)
    gaps = gaps / gaps.sum() * 2 * math.pi
    angles = list(np.sort(np.remainder(rng.uniform(0, 2 * math.pi) + np.cumsum(gaps), 2 * math.pi)))
    radii = list(rng.uniform(0.45, 0.98, n))
    while len(angles) < _VERTICES:
        gaps = [(angles[(i + 1) % len(angles)] - angles[i]) % (2 * math.pi) for i in range(len(angles))]
        i = int(np.argmax(gaps))
        j = (i + 1) % len(angles)
        mid = angles[i] + gaps[i] / 2
        p0 = radii[i] * np.array([math.cos(angles[i]), math.sin(angles[i])])
        p1 = radii[j] * np.array([math.cos(angles[j]), math.sin(angles[j])])
        d = np.array([math.cos(mid), math.sin(mid)])
        e = p1 - p0
        r = (p0[0] * e[1] - p0[1] * e[0]) / (d[0] * e[1] - d[1] * e[0])  # ray from the origin meets the edge
        angles.insert(i + 1, mid % (2 * math.pi))
        radii.insert(i + 1, r)
        order = np.argsort(angles)
        angles, radii = [angles[k] for k in order], [radii[k] for k in order]
    return np.asarray(angles), np.asarray(radii)


class _SampleParams(NamedTuple):
    """Per-sample draws, layer 0 = background, layers 1..K objects (``present`` False for unused slots)."""

    a1: np.ndarray  # (L, 3, 3) texture -> frame 1
    motion: np.ndarray  # (L, 3, 3) frame 1 -> frame 2
    texture: np.ndarray  # (L,) texture bank index
    gain: np.ndarray  # (L, 3) per-layer colour gain
    bias: np.ndarray  # (L, 3)
    tex_center: np.ndarray  # (L, 2) object centre in texture px
    tex_radius: np.ndarray  # (L,) object radius in texture px
    frame_radius: np.ndarray  # (L,) object radius in frame-1 px
    ellipse: np.ndarray  # (L,) bool
    shape: np.ndarray  # (L, 3) ellipse axes a, b and rotation
    angles: np.ndarray  # (L, V) polygon vertex angles
    radii: np.ndarray  # (L, V) polygon vertex radii (fractions of tex_radius)
    present: np.ndarray  # (L,) bool
    depth: np.ndarray  # (L,) compositing order (0 = background, drawn first)
    photometric: np.ndarray  # (2, 6): per frame brightness, contrast, saturation, gamma, noise std, noise seed


class SyntheticFlowGenerator:
    """Batched Flying-Chairs-like pairs with exact flow, rendered with torch on ``device``.

    Args:
        size: (H, W) of the frames.
        num_objects: (min, max) number of foreground objects per sample.
        motion_scale: multiplies all motion magnitudes. 1.0 gives Chairs-like flows (translations up to 12 px for the
            background and 25 px for objects at a 384 px short side, scaled with the short side; rotations up to
            2 / 8 degrees; zooms up to 3 / 6 %).
        photo_prob: probability that a layer is textured by a photograph rather than a procedural texture.
        homography: strength of a random perspective term in the background motion (0 = affine only; 1 moves the
            frame corners by up to ~1 % of the short side beyond the affine motion).
        object_radius: (min, max) object radius as a fraction of the short side.
        seed: base seed; sample ``i`` depends only on ``(seed, i)`` (and on the device's arithmetic).
        device: where textures live and frames are rendered.
        num_textures: procedural textures in the bank (next to the scikit-image photographs).
        texture_size: side of each (square) texture.
        render: ``'window'`` renders each object only in its bounding square and composites per sample (cheap on a
            CPU); ``'full'`` renders every layer over the whole frame in one batched pass (few kernel launches, for
            GPUs); ``'auto'`` picks by device. Both give the same pixels.
    """

    def __init__(self, size: tuple[int, int] = (384, 512), num_objects: tuple[int, int] = (5, 12),
                 motion_scale: float = 1.0, photo_prob: float = 0.5, homography: float = 0.0,
                 object_radius: tuple[float, float] = (0.06, 0.22), seed: int = 0,
                 device: str | torch.device = 'cpu', num_textures: int = 64, texture_size: int = 256,
                 render: str = 'auto') -> None:
        size = tuple(int(s) for s in size) if isinstance(size, (tuple, list)) else size
        if not isinstance(size, tuple) or len(size) != 2 or min(size) < 16:
            raise ValueError(f'size must be (H, W) with both >= 16, got {size}')
        if len(num_objects) != 2 or not 0 <= num_objects[0] <= num_objects[1]:
            raise ValueError(f'num_objects must be (min, max) with 0 <= min <= max, got {num_objects}')
        if num_objects[1] > 64:
            raise ValueError(f'num_objects: at most 64 objects fit in a sample, got max {num_objects[1]}')
        if not motion_scale >= 0:  # also refuses NaN
            raise ValueError(f'motion_scale must be >= 0, got {motion_scale}')
        if not 0 <= photo_prob <= 1:
            raise ValueError(f'photo_prob must be in [0, 1], got {photo_prob}')
        if not homography >= 0:
            raise ValueError(f'homography must be >= 0, got {homography}')
        if len(object_radius) != 2 or not 0 < object_radius[0] <= object_radius[1] <= 0.5:
            raise ValueError(f'object_radius must be (min, max) with 0 < min <= max <= 0.5, got {object_radius}')
        if int(num_textures) != num_textures or num_textures < 1:
            raise ValueError(f'num_textures must be a positive int, got {num_textures}')
        if int(texture_size) != texture_size or texture_size < 16:
            raise ValueError(f'texture_size must be an int >= 16, got {texture_size}')
        if render not in ('auto', 'window', 'full'):
            raise ValueError(f"render must be 'auto', 'window' or 'full', got {render!r}")
        self.size, self.seed = size, int(seed)
        self.num_objects, self.motion_scale, self.photo_prob = (int(num_objects[0]), int(num_objects[1])), \
            float(motion_scale), float(photo_prob)
        self.homography, self.object_radius = float(homography), (float(object_radius[0]), float(object_radius[1]))
        self.num_textures, self.texture_size = int(num_textures), int(texture_size)
        self.device = torch.device(device)
        self.render_mode = render
        self._bank: Tensor | None = None
        self._num_photos = 0

    # ------------------------------------------------------------------------------------------------ textures
    def _build_bank(self) -> Tensor:
        """All textures as one (T, 3, S, S) tensor: the scikit-image photographs, then the procedural ones."""
        s = self.texture_size
        photos = [_square(torch.from_numpy(p).permute(2, 0, 1), s) for p in _photos()]
        self._num_photos = len(photos)
        return torch.cat([torch.stack(photos), _procedural_textures(self.num_textures, s, self.seed + 7919)]
                         ).to(self.device)

    @property
    def bank(self) -> Tensor:
        if self._bank is None:
            self._bank = self._build_bank()
        return self._bank

    def to(self, device: str | torch.device) -> 'SyntheticFlowGenerator':
        """Move the texture bank (built lazily) and all later rendering to ``device``."""
        self.device = torch.device(device)
        if self._bank is not None:
            self._bank = self._bank.to(self.device)
        return self

    # ------------------------------------------------------------------------------------------------ parameters
    def _texture_index(self, rng: np.random.Generator) -> int:
        if rng.random() < self.photo_prob:
            return int(rng.integers(self._num_photos))
        return self._num_photos + int(rng.integers(self.num_textures))

    def sample_params(self, index: int) -> _SampleParams:
        """Draw sample ``index``'s layers and motions from the RNG seeded by ``(seed, index)``."""
        self.bank  # noqa: B018 (the photo count is needed for texture indices)
        rng = np.random.default_rng([self.seed, int(index)])
        height, width = self.size
        short = min(height, width)
        s = self.texture_size
        ms = self.motion_scale
        unit = short / 384.0 * ms  # Chairs-like magnitudes at 384 px, scaled with the image size
        frame_center = ((width - 1) / 2.0, (height - 1) / 2.0)
        slots = 1 + self.num_objects[1]
        a1, motion = np.tile(np.eye(3), (slots, 1, 1)), np.tile(np.eye(3), (slots, 1, 1))
        texture = np.zeros(slots, np.int64)
        gain, bias = np.ones((slots, 3)), np.zeros((slots, 3))
        tex_center, tex_radius, frame_radius = np.zeros((slots, 2)), np.ones(slots), np.zeros(slots)
        ellipse, shape = np.zeros(slots, bool), np.zeros((slots, 3))
        angles = np.tile(np.linspace(0, 2 * math.pi, _VERTICES, endpoint=False), (slots, 1))
        radii = np.ones((slots, _VERTICES))
        present = np.zeros(slots, bool)

        # Background: frame pixels per texture pixel in [1, 2] (magnified, so the texture never aliases).
        scale = rng.uniform(1.0, 2.0)
        texture[0] = self._texture_index(rng)
        a1[0] = _similarity(rng.uniform(-20, 20), scale, rng.uniform(0.3 * s, 0.7 * s, 2), frame_center)
        motion[0] = _similarity(rng.uniform(-2, 2) * ms, 1 + rng.uniform(-0.03, 0.03) * ms, frame_center,
                                np.add(frame_center, rng.uniform(-12, 12, 2) * unit))
        persp = rng.uniform(-1, 1, 2) * self.homography * 0.01 * short / max(width, height) ** 2
        if self.homography > 0:
            # p -> H p with a small perspective row, about the frame centre so the centre's motion stays affine.
            to_c = np.array([[1, 0, -frame_center[0]], [0, 1, -frame_center[1]], [0, 0, 1.0]])
            proj = np.eye(3)
            proj[2, :2] = persp
            motion[0] = motion[0] @ np.linalg.inv(to_c) @ proj @ to_c
        gain[0], bias[0] = rng.uniform(0.75, 1.25, 3), rng.uniform(-20, 20, 3)
        present[0] = True

        count = int(rng.integers(self.num_objects[0], self.num_objects[1] + 1))
        for k in range(1, count + 1):
            radius = short * rng.uniform(*self.object_radius)  # in frame pixels
            zoom = rng.uniform(0.9, 2.0)  # frame pixels per texture pixel
            r_tex = radius / zoom
            texture[k] = self._texture_index(rng)
            tex_center[k] = rng.uniform(0, s - 1, 2)
            tex_radius[k], frame_radius[k] = r_tex, radius
            center = rng.uniform((-0.1 * width, -0.1 * height), (1.1 * width, 1.1 * height))
            a1[k] = _similarity(rng.uniform(-180, 180), zoom, tex_center[k], center)
            motion[k] = _similarity(rng.uniform(-8, 8) * ms, 1 + rng.uniform(-0.06, 0.06) * ms, center,
                                    center + rng.uniform(-25, 25, 2) * unit)
            if rng.random() < 0.4:
                ellipse[k] = True
                shape[k] = rng.uniform(0.5, 0.98), rng.uniform(0.3, 0.98), rng.uniform(0, math.pi)
            else:
                angles[k], radii[k] = _polygon_vertices(rng)
            gain[k], bias[k] = rng.uniform(0.75, 1.25, 3), rng.uniform(-20, 20, 3)
            present[k] = True
        # Slots hold the objects largest first, so one window size per slot fits the batch tightly
        # (_composite_windows); the drawing order is the independent random ``depth``.
        by_size = np.concatenate([[0], 1 + np.argsort(-frame_radius[1:], kind='stable')])
        a1, motion, texture, gain, bias = a1[by_size], motion[by_size], texture[by_size], gain[by_size], bias[by_size]
        tex_center, tex_radius, frame_radius = tex_center[by_size], tex_radius[by_size], frame_radius[by_size]
        ellipse, shape, angles, radii = ellipse[by_size], shape[by_size], angles[by_size], radii[by_size]
        present = present[by_size]
        depth = np.zeros(slots, np.int64)
        depth[1:] = 1 + rng.permutation(slots - 1)
        # Photometric draws per frame (used by augment=True): shared, or independent with probability 0.2.
        frames = [np.array([rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4),
                            rng.uniform(0.8, 1.25), rng.uniform(0, 5), rng.integers(2 ** 31)])]
        second = np.array([rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4),
                           rng.uniform(0.8, 1.25), rng.uniform(0, 5), rng.integers(2 ** 31)])
        if rng.random() >= 0.2:
            second[:5] = frames[0][:5]
        photometric = np.stack([frames[0], second])
        return _SampleParams(a1, motion, texture, gain, bias, tex_center, tex_radius, frame_radius, ellipse, shape,
                             angles, radii, present, depth, photometric)

    # ------------------------------------------------------------------------------------------------ rendering
    def _sample_layer(self, inv: Tensor, tex: Tensor, gain: Tensor, bias: Tensor, origin: Tensor, h: int, w: int,
                      projective: bool = False) -> tuple[Tensor, Tensor]:
        """Colour of one layer slot in a batch of (h, w) windows, and the normalised texture coordinates.

        Args:
            inv: (B, 3, 3) frame -> texture maps (float64); tex (B,) bank indices; gain/bias (B, 3).
            origin: (B, 2) frame pixel (x, y) of each window's top-left pixel.
            h, w: window size.
            projective: the maps have a perspective row (only the background's homography); else one batched
                ``affine_grid`` gives the coordinates.

        Returns:
            colour (B, 3, h, w) and grid (B, h, w, 2): texture coordinates normalised to [-1, 1] over the texture's
            pixel centres (``grid_sample(align_corners=True)``), unbounded (the texture is mirrored beyond them).
        """
        b, s = inv.shape[0], self.texture_size
        dev = self.device
        if projective:
            _, _, tx, ty = self._projective(inv, origin, h, w)
            grid = (torch.stack([tx, ty], dim=-1) * (2.0 / (s - 1)) - 1).float()
        else:
            # normalised window coords -> window px -> frame px -> texture px -> normalised texture coords
            to_px = self._window_to_px(origin, h, w)
            norm = torch.tensor([[2.0 / (s - 1), 0, -1], [0, 2.0 / (s - 1), -1], [0, 0, 1]], device=dev,
                                dtype=torch.float64)
            theta = (norm @ inv @ to_px)[:, :2].float()
            grid = F.affine_grid(theta, [b, 3, h, w], align_corners=True)
        # One sample (the per-pair dataset path) samples its texture in place; a batch gathers its tiles.
        tiles = self.bank.narrow(0, int(tex[0]), 1) if b == 1 else self.bank.index_select(0, tex)
        color = F.grid_sample(tiles, grid, mode='bilinear', padding_mode='reflection', align_corners=True)
        color = torch.addcmul(bias[:, :, None, None], color, gain[:, :, None, None])
        return color, grid

    @staticmethod
    def _alpha(grid: Tensor, p: dict[str, Tensor], zoom: Tensor, texture_size: int) -> tuple[Tensor, Tensor]:
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
        i0 = torch.where(j == 0, _VERTICES - 1, j - 1)
        i1 = torch.where(j == _VERTICES, 0, j)
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

    def render(self, indices: Sequence[int] | Tensor, augment: bool = False) -> SyntheticBatch:
        """Render the samples ``indices`` as one batch on :attr:`device`.

        Args:
            indices: sample indices (any non-negative ints; the sample depends only on ``(seed, index)``).
            augment: apply :func:`photometric_augment` with each sample's own draws.

        Returns:
            a :class:`SyntheticBatch`.
        """
        indices = [int(i) for i in (indices.tolist() if isinstance(indices, Tensor) else indices)]
        if not indices:
            raise ValueError('indices: need at least one sample index')
        if min(indices) < 0:
            raise ValueError(f'indices must be >= 0, got {min(indices)}')
        params = [self.sample_params(i) for i in indices]
        dev, dtype = self.device, torch.float32
        n, (height, width) = len(indices), self.size
        slots = params[0].a1.shape[0]

        def stack(name: str, dt=dtype) -> Tensor:
            return torch.from_numpy(np.stack([getattr(p, name) for p in params])).to(dev, dt)

        a1, motion = stack('a1', torch.float64), stack('motion', torch.float64)
        inv = [torch.linalg.inv(a1), torch.linalg.inv(motion @ a1)]  # (N, L, 3, 3) frame f -> texture, float64
        texture = stack('texture', torch.long)
        gain, bias = stack('gain'), stack('bias')
        shape = stack('shape')
        angles, radii = stack('angles'), stack('radii')
        obj = dict(cx=stack('tex_center')[..., 0], cy=stack('tex_center')[..., 1], r=stack('tex_radius'),
                   ellipse=stack('ellipse', torch.bool), ea=shape[..., 0], eb=shape[..., 1],
                   cos_phi=torch.cos(shape[..., 2]), sin_phi=torch.sin(shape[..., 2]), angles=angles,
                   vx=radii * torch.cos(angles), vy=radii * torch.sin(angles), present=stack('present', torch.bool))
        zoom = torch.from_numpy(np.stack([p.frame_radius / p.tex_radius for p in params])).to(dev, dtype)
        depth = np.stack([p.depth for p in params])

        mode = self.render_mode
        if mode == 'auto':
            mode = 'window' if self.device.type == 'cpu' else 'full'
        layers = [torch.zeros(n, height, width, device=dev, dtype=torch.long) for _ in range(2)]

        # Background (slot 0) over the whole frame, batched.
        zero = torch.zeros(n, 2, device=dev)
        projective = self.homography > 0
        frames = [self._sample_layer(inv[f][:, 0], texture[:, 0], gain[:, 0], bias[:, 0], zero, height, width,
                                     projective)[0] for f in range(2)]
        flow = self._layer_flow(motion[:, 0], zero, height, width, projective)

        # Objects, composited back to front in each sample's own depth order.
        if mode == 'full':
            order = torch.from_numpy(np.argsort(depth[:, 1:], axis=1) + 1).to(dev)  # (N, K) slots back to front
            rows = torch.arange(n, device=dev)
            for d in range(slots - 1):
                k = order[:, d]

                def sel(t: Tensor) -> Tensor:
                    return t[rows, k]

                for f in range(2):
                    color, grid = self._sample_layer(sel(inv[f]), sel(texture), sel(gain), sel(bias), zero, height,
                                                     width)
                    alpha, hard = self._alpha(grid, {key: sel(v) for key, v in obj.items()}, sel(zoom),
                                              self.texture_size)
                    frames[f] = torch.lerp(frames[f], color, alpha[:, None])
                    layers[f] = torch.where(hard, k[:, None, None], layers[f])
                    if f == 0:
                        flow = torch.where(hard[:, None], self._layer_flow(sel(motion), zero, height, width), flow)
        else:
            self._composite_windows(params, inv, motion, texture, gain, bias, obj, zoom, frames, layers, flow)

        occlusion = self._occlusion(flow, layers[0], layers[1])
        img1, img2 = frames[0].clamp(0, 255), frames[1].clamp(0, 255)
        if augment:
            photo = torch.from_numpy(np.stack([p.photometric for p in params])).to(dev, dtype)
            img1, img2 = photometric_augment(img1, img2, photo)
        valid = torch.ones(n, height, width, dtype=torch.bool, device=dev)
        return SyntheticBatch(img1, img2, flow, valid, occlusion, layers[0], layers[1])

    def _layer_flow(self, motion: Tensor, origin: Tensor, h: int, w: int, projective: bool = False) -> Tensor:
        """Exact flow ``M(p) - p`` of (B, 3, 3) float64 motions over (h, w) windows at ``origin`` (B, 2): (B, 2, h, w)."""
        b, dev = motion.shape[0], self.device
        if projective:
            xs, ys, qx, qy = self._projective(motion, origin, h, w)
            return torch.stack([qx - xs, qy - ys], dim=1).float()
        eye = torch.eye(3, device=dev, dtype=torch.float64)
        theta = ((motion - eye) @ self._window_to_px(origin, h, w))[:, :2].float()
        return F.affine_grid(theta, [b, 2, h, w], align_corners=True).permute(0, 3, 1, 2)

    def _projective(self, m: Tensor, origin: Tensor, h: int, w: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Frame pixels (xs, ys) of (h, w) windows at ``origin`` (B, 2) and their images under the (B, 3, 3)
        projective maps ``m``, all (B, h, w) float64."""
        ys, xs = torch.meshgrid(torch.arange(h, device=self.device, dtype=torch.float64),
                                torch.arange(w, device=self.device, dtype=torch.float64), indexing='ij')
        xs = xs + origin[:, 0, None, None].double()
        ys = ys + origin[:, 1, None, None].double()
        m = m[:, :, :, None, None]
        w3 = m[:, 2, 0] * xs + m[:, 2, 1] * ys + m[:, 2, 2]
        return (xs, ys, (m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]) / w3,
                (m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]) / w3)

    def _window_to_px(self, origin: Tensor, h: int, w: int) -> Tensor:
        """(B, 3, 3) maps from ``affine_grid``'s normalised window coordinates to frame pixels (float64)."""
        b = origin.shape[0]
        to_px = torch.zeros(b, 3, 3, device=self.device, dtype=torch.float64)
        to_px[:, 0, 0], to_px[:, 1, 1], to_px[:, 2, 2] = max(w - 1, 1) / 2.0, max(h - 1, 1) / 2.0, 1.0
        to_px[:, 0, 2] = (w - 1) / 2.0 + origin[:, 0].double()
        to_px[:, 1, 2] = (h - 1) / 2.0 + origin[:, 1].double()
        return to_px

    def _composite_windows(self, params, inv, motion, texture, gain, bias, obj, zoom, frames, layers, flow) -> None:
        """Render each object slot only in its bounding square (batched per slot), composite per sample."""
        dev, dtype = self.device, torch.float32
        height, width = self.size
        slots = params[0].a1.shape[0]
        growth = 1 + 0.06 * self.motion_scale
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
                color, grid = self._sample_layer(inv[f][:, k], texture[:, k], gain[:, k], bias[:, k], o, side, side)
                alpha, hard = self._alpha(grid, {key: v[:, k] for key, v in obj.items()}, zoom[:, k],
                                          self.texture_size)
                fl = self._layer_flow(motion[:, k], o, side, side) if f == 0 else None
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

    @staticmethod
    def _occlusion(flow: Tensor, layers1: Tensor, layers2: Tensor) -> Tensor:
        """Frame-1 pixels whose frontmost layer is not frontmost at the nearest frame-2 pixel, or that leave it."""
        n, height, width = layers1.shape
        dev = flow.device
        qx = torch.round(torch.arange(width, device=dev, dtype=flow.dtype) + flow[:, 0]).long()
        qy = torch.round(torch.arange(height, device=dev, dtype=flow.dtype)[:, None] + flow[:, 1]).long()
        inside = (qx >= 0) & (qx < width) & (qy >= 0) & (qy < height)
        idx = (qy.clamp(0, height - 1) * width + qx.clamp(0, width - 1)).reshape(n, -1)
        there = torch.gather(layers2.reshape(n, -1), 1, idx).reshape(n, height, width)
        return ~inside | (there != layers1)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, num_objects={self.num_objects}, '
                f'motion_scale={self.motion_scale}, photo_prob={self.photo_prob}, homography={self.homography}, '
                f'seed={self.seed}, device={self.device})')


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


class SyntheticIndices(Dataset):
    """Sample indices ``0 .. num_samples - 1`` as ``dict(synthetic_index=i)``: the dataset side of on-device rendering.

    ``lightflow.engine.SyntheticFlowPreprocessor`` turns a batch of these into rendered pairs on the model's device;
    mmengine's (distributed) samplers hand each rank its own indices, so ranks render different samples.
    """

    def __init__(self, num_samples: int = 10_000_000) -> None:
        if int(num_samples) != num_samples or num_samples <= 0:
            raise ValueError(f'num_samples must be a positive int, got {num_samples}')
        self.num_samples = int(num_samples)
        self.metainfo = dict(dataset_type='SyntheticIndices')

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(f'index {index} out of range for {self.num_samples} samples')
        return dict(synthetic_index=int(index))


class SyntheticChairs(Dataset):
    """Flying-Chairs-like pairs rendered on the fly with exact flow, one per item, on the CPU.

    Args:
        num_samples: dataset length.
        size: (H, W) of the frames.
        seed: base seed; sample ``i`` depends only on ``(seed, i)``.
        transforms: ``transforms(img1, img2, flow, valid)``; None uses ``ToTensor()``.
        **generator_kwargs: any other :class:`SyntheticFlowGenerator` argument (``num_objects``, ``motion_scale``,
            ``photo_prob``, ``homography``, ...).
    """

    def __init__(self, num_samples: int, size: tuple[int, int] = (384, 512), seed: int = 0,
                 transforms: Callable | None = None, **generator_kwargs) -> None:
        if int(num_samples) != num_samples or num_samples <= 0:
            raise ValueError(f'num_samples must be a positive int, got {num_samples}')
        generator_kwargs.setdefault('render', 'window')
        self.generator = SyntheticFlowGenerator(size=size, seed=seed, device='cpu', **generator_kwargs)
        self.num_samples, self.size, self.seed = int(num_samples), self.generator.size, int(seed)
        self.transforms = ToTensor() if transforms is None else transforms

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int):
        return self.transforms(*self.read_raw(index))

    def read_raw(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``index`` before transforms: uint8 (H, W, 3) x2, float32 (H, W, 2), bool (H, W)."""
        return self.render(index)[:4]

    def render(self, index: int) -> SyntheticSample:
        """Render sample ``index`` with its layer maps and occlusion mask (for occlusion-aware checks)."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f'index {index} out of range for {self.num_samples} samples')
        index %= self.num_samples
        b = self.generator.render([index])

        def img(t: Tensor) -> np.ndarray:
            return torch.round(t[0]).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

        return SyntheticSample(img(b.img1), img(b.img2), b.flow[0].permute(1, 2, 0).contiguous().numpy(),
                               b.valid[0].numpy(), b.layers1[0].to(torch.int16).numpy(),
                               b.layers2[0].to(torch.int16).numpy(), b.occlusion[0].numpy())

    def __repr__(self) -> str:
        return f'{type(self).__name__}(num_samples={self.num_samples}, {self.generator!r}, transforms={self.transforms!r})'


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
