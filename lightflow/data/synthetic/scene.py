"""What one synthetic sample is: its layers (background and objects), their textures, shapes and motions, and its
photometric and blur draws, all drawn from the RNG of ``(seed, index)`` (:func:`draw_sample_params`). The renderer
(:mod:`.render`) turns these numbers into pixels and flow; nothing here touches a tensor."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .augment import draw_degradations
from .shapes import VERTICES, polygon_vertices, similarity

if TYPE_CHECKING:
    from .render import SyntheticFlowGenerator

__all__ = ['SampleParams', 'draw_sample_params']


class SampleParams(NamedTuple):
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


def _texture_index(gen: SyntheticFlowGenerator, rng: np.random.Generator) -> int:
    if rng.random() < gen.photo_prob:
        return int(rng.integers(gen.num_photos))
    return gen.num_photos + int(rng.integers(gen.num_textures))


def draw_sample_params(gen: SyntheticFlowGenerator, index: int) -> SampleParams:
    """Draw sample ``index``'s layers and motions for ``gen``'s settings from the RNG seeded by
    ``(gen.seed, index)``."""
    rng = np.random.default_rng([gen.seed, int(index)])
    height, width = gen.size
    short = min(height, width)
    s = gen.texture_size
    ms = gen.motion_scale
    unit = short / 384.0 * ms  # Chairs-like magnitudes at 384 px, scaled with the image size
    frame_center = ((width - 1) / 2.0, (height - 1) / 2.0)
    slots = 1 + gen.num_objects[1]
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
    texture[0] = _texture_index(gen, rng)
    a1[0] = similarity(rng.uniform(-20, 20), scale, rng.uniform(0.3 * s, 0.7 * s, 2), frame_center)
    motion[0] = similarity(rng.uniform(-2, 2) * ms, 1 + rng.uniform(-0.03, 0.03) * ms, frame_center,
                            np.add(frame_center, rng.uniform(-12, 12, 2) * unit))
    persp = rng.uniform(-1, 1, 2) * gen.homography * 0.01 * short / max(width, height) ** 2
    if gen.homography > 0:
        # p -> H p with a small perspective row, about the frame centre so the centre's motion stays affine.
        to_c = np.array([[1, 0, -frame_center[0]], [0, 1, -frame_center[1]], [0, 0, 1.0]])
        proj = np.eye(3)
        proj[2, :2] = persp
        motion[0] = motion[0] @ np.linalg.inv(to_c) @ proj @ to_c
    gain[0], bias[0] = rng.uniform(0.75, 1.25, 3), rng.uniform(-20, 20, 3)
    present[0] = True

    count = int(rng.integers(gen.num_objects[0], gen.num_objects[1] + 1))
    for k in range(1, count + 1):
        radius = short * rng.uniform(*gen.object_radius)  # in frame pixels
        zoom = rng.uniform(0.9, 2.0)  # frame pixels per texture pixel
        r_tex = radius / zoom
        texture[k] = _texture_index(gen, rng)
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
    c, blur = draw_degradations(np.random.default_rng([gen.seed, int(index), 1]), gen.background_contrast,
                                gen.blur_prob, gen.blur_length)
    gain[0], bias[0] = gain[0] * c, bias[0] * c + 128.0 * (1.0 - c)  # (tex * gain + bias) muted about grey
    return SampleParams(a1, motion, texture, gain, bias, tex_center, tex_radius, frame_radius, ellipse, shape,
                         angles, radii, present, depth, photometric, blur)
