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
from torch import Tensor

from .augment import blur_frames, photometric_augment
from .raster import composite_windows, coverage, layer_flow, occlusion_mask, sample_layer
from .scene import SampleParams, draw_sample_params
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
        # A contrast of 0 leaves a flat background (no motion to see there); inf / NaN would render NaN frames.
        if not isinstance(background_contrast, (tuple, list)) or len(background_contrast) != 2 \
                or not 0 < background_contrast[0] <= background_contrast[1] < math.inf:
            raise ValueError(f'background_contrast must be (min, max) with 0 < min <= max, finite, got '
                             f'{background_contrast}')
        if not 0 <= blur_prob <= 1:
            raise ValueError(f'blur_prob must be in [0, 1], got {blur_prob}')
        if not isinstance(blur_length, (tuple, list)) or len(blur_length) != 2 \
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in blur_length) \
                or not 1 <= blur_length[0] <= blur_length[1]:
            raise ValueError(f'blur_length must be (min, max) whole px with 1 <= min <= max, got {blur_length}')
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

    @property
    def num_photos(self) -> int:
        """How many textures of :attr:`bank` are photographs (they come first; building the bank counts them)."""
        self.bank  # noqa: B018
        return self._num_photos

    def sample_params(self, index: int) -> SampleParams:
        """Draw sample ``index``'s layers and motions from the RNG seeded by ``(seed, index)``
        (:func:`lightflow.data.synthetic.scene.draw_sample_params`)."""
        return draw_sample_params(self, index)

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
        frames = [sample_layer(self.bank, inv[f][:, 0], texture[:, 0], gain[:, 0], bias[:, 0], zero, height, width,
                               projective)[0] for f in range(2)]
        flow = layer_flow(motion[:, 0], zero, height, width, projective)

        # Objects, composited back to front in each sample's own depth order.
        if mode == 'full':
            order = torch.from_numpy(np.argsort(depth[:, 1:], axis=1) + 1).to(dev)  # (N, K) slots back to front
            rows = torch.arange(n, device=dev)
            for d in range(slots - 1):
                k = order[:, d]

                def sel(t: Tensor) -> Tensor:
                    return t[rows, k]

                for f in range(2):
                    color, grid = sample_layer(self.bank, sel(inv[f]), sel(texture), sel(gain), sel(bias), zero,
                                               height, width)
                    alpha, hard = coverage(grid, {key: sel(v) for key, v in obj.items()}, sel(zoom),
                                           self.texture_size)
                    frames[f] = torch.lerp(frames[f], color, alpha[:, None])
                    layers[f] = torch.where(hard, k[:, None, None], layers[f])
                    if f == 0:
                        flow = torch.where(hard[:, None], layer_flow(sel(motion), zero, height, width), flow)
        else:
            composite_windows(self.bank, self.motion_scale, params, inv, motion, texture, gain, bias, obj, zoom, frames,
                              layers, flow)

        occlusion = occlusion_mask(flow, layers[0], layers[1])
        img1, img2 = frames[0].clamp(0, 255), frames[1].clamp(0, 255)
        if self.blur_prob > 0:
            blur = np.stack([p.blur for p in params])
            img1, img2 = blur_frames(img1, blur[:, 0]), blur_frames(img2, blur[:, 1])
        if augment:
            photo = torch.from_numpy(np.stack([p.photometric for p in params])).to(dev, dtype)
            img1, img2 = photometric_augment(img1, img2, photo)
        valid = torch.ones(n, height, width, dtype=torch.bool, device=dev)
        return SyntheticBatch(img1, img2, flow, valid, occlusion, layers[0], layers[1])

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, num_objects={self.num_objects}, '
                f'motion_scale={self.motion_scale}, photo_prob={self.photo_prob}, homography={self.homography}, '
                f'background_contrast={self.background_contrast}, blur_prob={self.blur_prob}, '
                f'blur_length={self.blur_length}, seed={self.seed}, device={self.device})')
