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
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .augment import blur_frames, draw_degradations, photometric_augment
from .shapes import VERTICES, polygon_vertices, similarity
from .textures import photo_textures, procedural_textures

__all__ = ['SyntheticFlowGenerator', 'SyntheticBatch']


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
    blur: np.ndarray  # (2, 2) per frame: box length px (0 = sharp), kind (0 horizontal, 1 vertical, 2 defocus)


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
        background_contrast: (min, max) factor on the background's contrast about mid-grey, drawn per sample; below
            1 gives the muted, low-contrast backgrounds of real and synthetic video ((1, 1): unchanged).
        blur_prob: probability that a frame is blurred as a whole (camera-shake streak, horizontal or vertical, or
            defocus box), independently per frame; the flow is that of the sharp scene.
        blur_length: (min, max) blur length in px (odd lengths in between are drawn).

    The last three draw from their own stream of ``(seed, index)``: at their defaults every sample is as before.
    """

    def __init__(self, size: tuple[int, int] = (384, 512), num_objects: tuple[int, int] = (5, 12),
                 motion_scale: float = 1.0, photo_prob: float = 0.5, homography: float = 0.0,
                 object_radius: tuple[float, float] = (0.06, 0.22), seed: int = 0,
                 device: str | torch.device = 'cpu', num_textures: int = 64, texture_size: int = 256,
                 render: str = 'auto', background_contrast: tuple[float, float] = (1.0, 1.0),
                 blur_prob: float = 0.0, blur_length: tuple[int, int] = (3, 7)) -> None:
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
        if not isinstance(background_contrast, (tuple, list)) or len(background_contrast) != 2 \
                or not 0 <= background_contrast[0] <= background_contrast[1]:
            raise ValueError(f'background_contrast must be (min, max) with 0 <= min <= max, got {background_contrast}')
        if not 0 <= blur_prob <= 1:
            raise ValueError(f'blur_prob must be in [0, 1], got {blur_prob}')
        if not isinstance(blur_length, (tuple, list)) or len(blur_length) != 2 \
                or not 1 <= int(blur_length[0]) <= int(blur_length[1]):
            raise ValueError(f'blur_length must be (min, max) px with 1 <= min <= max, got {blur_length}')
        self.size, self.seed = size, int(seed)
        self.num_objects, self.motion_scale, self.photo_prob = (int(num_objects[0]), int(num_objects[1])), \
            float(motion_scale), float(photo_prob)
        self.homography, self.object_radius = float(homography), (float(object_radius[0]), float(object_radius[1]))
        self.num_textures, self.texture_size = int(num_textures), int(texture_size)
        self.device = torch.device(device)
        self.render_mode = render
        self.background_contrast = (float(background_contrast[0]), float(background_contrast[1]))
        self.blur_prob, self.blur_length = float(blur_prob), (int(blur_length[0]), int(blur_length[1]))
        self._bank: Tensor | None = None
        self._num_photos = 0

    # ------------------------------------------------------------------------------------------------ textures
    def _build_bank(self) -> Tensor:
        """All textures as one (T, 3, S, S) tensor: the scikit-image photographs, then the procedural ones."""
        s = self.texture_size
        photos = photo_textures(s)
        self._num_photos = len(photos)
        return torch.cat([photos, procedural_textures(self.num_textures, s, self.seed + 7919)]).to(self.device)

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
        angles = np.tile(np.linspace(0, 2 * math.pi, VERTICES, endpoint=False), (slots, 1))
        radii = np.ones((slots, VERTICES))
        present = np.zeros(slots, bool)

        # Background: frame pixels per texture pixel in [1, 2] (magnified, so the texture never aliases).
        scale = rng.uniform(1.0, 2.0)
        texture[0] = self._texture_index(rng)
        a1[0] = similarity(rng.uniform(-20, 20), scale, rng.uniform(0.3 * s, 0.7 * s, 2), frame_center)
        motion[0] = similarity(rng.uniform(-2, 2) * ms, 1 + rng.uniform(-0.03, 0.03) * ms, frame_center,
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
            a1[k] = similarity(rng.uniform(-180, 180), zoom, tex_center[k], center)
            motion[k] = similarity(rng.uniform(-8, 8) * ms, 1 + rng.uniform(-0.06, 0.06) * ms, center,
                                    center + rng.uniform(-25, 25, 2) * unit)
            if rng.random() < 0.4:
                ellipse[k] = True
                shape[k] = rng.uniform(0.5, 0.98), rng.uniform(0.3, 0.98), rng.uniform(0, math.pi)
            else:
                angles[k], radii[k] = polygon_vertices(rng)
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
        # Degradations from a stream of their own (see the class docstring).
        c, blur = draw_degradations(np.random.default_rng([self.seed, int(index), 1]), self.background_contrast,
                                    self.blur_prob, self.blur_length)
        gain[0], bias[0] = gain[0] * c, bias[0] * c + 128.0 * (1.0 - c)  # (tex * gain + bias) muted about grey
        return _SampleParams(a1, motion, texture, gain, bias, tex_center, tex_radius, frame_radius, ellipse, shape,
                             angles, radii, present, depth, photometric, blur)

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
        if self.blur_prob > 0:
            blur = np.stack([p.blur for p in params])
            img1, img2 = blur_frames(img1, blur[:, 0]), blur_frames(img2, blur[:, 1])
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
                f'background_contrast={self.background_contrast}, blur_prob={self.blur_prob}, '
                f'blur_length={self.blur_length}, seed={self.seed}, device={self.device})')
