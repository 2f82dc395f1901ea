"""The scene model of the synthetic VID set: what a video holds (background, camera pan and shake, objects with their
paths, sizes, textures and depth order, blurred frames) and how a random one is drawn (:func:`make_scene`,
:func:`build_scene`). Rasterising is :mod:`.vid_render`, writing :mod:`.vid`, statistics :mod:`.vid_stats`, exact
motion :mod:`.vid_motion`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..motion_iou import SPEED_NAMES
from .photos import load_photos

__all__ = ['CLASSES', 'POLE', 'SPEEDS', 'SceneObject', 'VideoScene', 'make_scene', 'build_scene', 'build_scenes']

CLASSES = ('disc', 'box', 'triangle', 'star', 'cross', 'ring')
POLE = -1  # label of the unannotated occluders
SPEEDS = SPEED_NAMES  # slow, medium, fast: the designed speeds carry the names the metric measures
# Per-frame displacement as a fraction k of the object size. With FGFA's motion IoU (mean IoU with the same object
# +-10 frames, mean offset 5.5) a translating box scores about 1 - 11 k (|cos a| + |sin a|); pixel rounding of the
# boxes and the camera shake cost a few hundredths more. These ranges land mostly in > 0.9, 0.7-0.9 and < 0.7.
_SPEED_RANGE = {'slow': (0.0, 0.003), 'medium': (0.011, 0.016), 'fast': (0.03, 0.07)}
_SPEED_PROBS = (0.38, 0.36, 0.26)  # slow, medium, fast
# Scale change per frame (log size), medium and fast objects only (a slow object that zooms is not slow).
_GROWTH = {'slow': 0.0, 'medium': 0.003, 'fast': 0.008}
MAX_PAN = 1.5  # px per frame, each axis
_PHOTO_NAMES = ('astronaut', 'coffee', 'chelsea', 'rocket', 'immunohistochemistry', 'hubble_deep_field', 'coins',
                'clock', 'grass', 'gravel', 'brick', 'moon', 'cell', 'colorwheel', 'page', 'text', 'camera')


@dataclass
class SceneObject:
    """One moving object: class index (``POLE`` for an unannotated occluder), designed speed, half-size at frame 0
    (px), start centre (px, frame coordinates), velocity (px/frame), log-size change per frame and texture."""
    label: int
    speed: str
    radius: float
    start: tuple[float, float]
    velocity: tuple[float, float]
    texture: np.ndarray = field(repr=False)  # (S, S, 3) uint8, indexed in the object's own [-1, 1]^2 frame
    growth: float = 0.0

    def centre(self, t: int) -> tuple[float, float]:
        """Centre at frame ``t`` without the camera shake (see :meth:`VideoScene.centre`)."""
        return self.start[0] + self.velocity[0] * t, self.start[1] + self.velocity[1] * t

    def size(self, t: int) -> float:
        """Half-size at frame ``t``."""
        return self.radius * float(np.exp(self.growth * t))


@dataclass
class VideoScene:
    """Everything needed to render one video deterministically."""
    height: int
    width: int
    num_frames: int
    background: np.ndarray = field(repr=False)  # (Hb, Wb, 3) uint8, larger than the frame
    pan_start: tuple[float, float]
    pan_velocity: tuple[float, float]
    objects: list[SceneObject]  # in depth order: later objects are in front
    shake: tuple[float, float, float, float, float] = (0.0, 10.0, 10.0, 0.0, 0.0)  # amplitude, periods, phases
    blur: tuple[tuple[int, str], ...] = ()  # per frame: (length px, 'h' | 'v' | 'defocus'), length 0 = clean

    def shake_at(self, t: int) -> tuple[float, float]:
        """The camera's shake offset at frame ``t`` (px); the whole image content moves by minus this."""
        amp, p1, p2, f1, f2 = self.shake
        return amp * np.sin(2 * np.pi * t / p1 + f1), amp * np.sin(2 * np.pi * t / p2 + f2)

    def centre(self, obj: SceneObject, t: int) -> tuple[float, float]:
        """An object's centre in frame ``t`` (px), camera shake included."""
        cx, cy = obj.centre(t)
        sx, sy = self.shake_at(t)
        return cx - sx, cy - sy

    def blur_at(self, t: int) -> tuple[int, str]:
        return self.blur[t] if t < len(self.blur) else (0, '')


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int, octaves: int = 3) -> np.ndarray:
    """Colour value noise in [0, 1], (height, width, 3): bilinear upsampling of random grids, several octaves."""
    out = np.zeros((height, width, 3), np.float64)
    amp_total = 0.0
    for octave in range(octaves):
        n = cells * 2 ** octave
        grid = rng.random((n + 1, n + 1, 3))
        ys = np.linspace(0, n, height, endpoint=False)
        xs = np.linspace(0, n, width, endpoint=False)
        y0, x0 = ys.astype(int), xs.astype(int)
        fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
        top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
        bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
        amp = 0.5 ** octave
        out += amp * (top * (1 - fy) + bottom * fy)
        amp_total += amp
    return out / amp_total


def _vid_photos() -> tuple[np.ndarray, ...]:
    """The :data:`_PHOTO_NAMES` photographs (uint8 RGB) at least 128 px on each side."""
    return tuple(p for p in load_photos(_PHOTO_NAMES) if min(p.shape[:2]) >= 128)


def _photo_crop(rng: np.random.Generator, height: int, width: int) -> np.ndarray | None:
    """A random crop of a random photograph, (height, width, 3) in [0, 1], stretched to full contrast; nearest
    upsampling when the photograph is smaller. None when scikit-image has no photographs."""
    photos = _vid_photos()
    if not photos:
        return None
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    scale = max(height / ph, width / pw, float(rng.uniform(0.3, 1.0)))
    ch, cw = min(ph, int(np.ceil(height / scale))), min(pw, int(np.ceil(width / scale)))
    y0, x0 = int(rng.integers(ph - ch + 1)), int(rng.integers(pw - cw + 1))
    ys = y0 + np.minimum((np.arange(height) * ch / height).astype(int), ch - 1)
    xs = x0 + np.minimum((np.arange(width) * cw / width).astype(int), cw - 1)
    crop = photo[ys][:, xs].astype(np.float64) / 255
    lo, hi = np.percentile(crop, 2), np.percentile(crop, 98)
    return np.clip((crop - lo) / max(hi - lo, 1e-3), 0, 1)


def _object_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photograph crop (half the time) or a saturated striped noise: (size, size, 3) uint8, high contrast so the
    object stands out from the muted background."""
    photo = _photo_crop(rng, size, size) if rng.random() < 0.5 else None
    if photo is not None:
        return (255 * (0.1 + 0.9 * photo)).astype(np.uint8)
    # A vivid colour (brightest channel at 1) striped with a near-black shade of it: always high contrast.
    base = rng.random(3)
    base = 0.3 + 0.7 * base / base.max()
    other = 0.15 * base
    noise = _smooth_noise(rng, size, size, cells=2, octaves=2)
    yy, xx = np.mgrid[:size, :size]
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4, 9) * size / 40
    stripes = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0)[..., None]
    tex = np.where(stripes, base, other) * 0.75 + noise * 0.25
    return (tex * 255).clip(0, 255).astype(np.uint8)


def _pick_speed(rng: np.random.Generator) -> str:
    return SPEEDS[int(rng.choice(len(SPEEDS), p=_SPEED_PROBS))]


def make_scene(rng: np.random.Generator, height: int = 224, width: int = 288, num_frames: int = 30,
               num_objects: int = 4, num_poles: int = 1, blur_prob: float = 0.15,
               speeds: tuple[str, ...] | None = None) -> VideoScene:
    """Draw a random video: background, camera pan and shake, ``num_objects`` objects, ``num_poles`` occluders.

    Args:
        rng: the generator (the whole scene is a function of its state).
        speeds: the objects' designed speeds (cycled); None draws each from the ImageNet VID mix.
    """
    if height < 32 or width < 32 or num_frames < 1 or num_objects < 1:
        raise ValueError(f'bad scene size: height={height}, width={width}, num_frames={num_frames}, '
                         f'num_objects={num_objects} (need height, width >= 32 and at least one frame and object)')
    if not 0 <= blur_prob <= 1:
        raise ValueError(f'blur_prob must be in [0, 1], got {blur_prob}')
    pan_velocity = tuple(float(v) for v in rng.uniform(-MAX_PAN, MAX_PAN, 2))
    shake = (float(rng.uniform(0, 0.5)), float(rng.uniform(8, 20)), float(rng.uniform(8, 20)),
             float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 2 * np.pi)))
    margin = int(np.ceil(max(abs(pan_velocity[0]), abs(pan_velocity[1])) * num_frames + shake[0])) + 2
    bg_h, bg_w = height + 2 * margin, width + 2 * margin
    # Muted, low-contrast background: objects must be visible, as in real footage.
    photo = _photo_crop(rng, bg_h, bg_w) if rng.random() < 0.5 else None
    base = photo if photo is not None else _smooth_noise(rng, bg_h, bg_w, cells=6)
    background = ((0.3 + 0.4 * base) * 255).clip(0, 255).astype(np.uint8)
    pan_start = (float(margin), float(margin))

    size_min = min(height, width)
    objects = []
    for j in range(num_objects):
        speed = speeds[j % len(speeds)] if speeds else _pick_speed(rng)
        radius = float(rng.uniform(0.08, 0.16) * size_min)
        lo, hi = _SPEED_RANGE[speed]
        step = rng.uniform(lo, hi) * 2 * radius
        angle = rng.uniform(0, 2 * np.pi)
        velocity = (step * np.cos(angle), step * np.sin(angle))
        growth = float(rng.uniform(-1, 1) * _GROWTH[speed])
        if speed == 'fast' or (speed == 'medium' and rng.random() < 0.3):
            # Pass through a point near the middle at a random time, so the object enters or leaves the frame.
            mid = np.array([width / 2, height / 2]) + rng.uniform(-0.25, 0.25, 2) * [width, height]
            start = mid - np.array(velocity) * num_frames * rng.uniform(0.1, 1.0)
        else:
            start = rng.uniform([radius, radius], [width - radius, height - radius])
        objects.append(SceneObject(label=int(rng.integers(len(CLASSES))), speed=speed, radius=radius,
                                   start=(float(start[0]), float(start[1])),
                                   velocity=(float(velocity[0]), float(velocity[1])),
                                   texture=_object_texture(rng, 48), growth=growth))
    for _ in range(num_poles):
        # A vertical pole sweeping across the frame (parallax: it moves against the pan), at a random depth.
        radius = float(rng.uniform(0.3, 0.6) * height)
        vx = float(rng.uniform(1.0, 3.0) * rng.choice([-1, 1]))
        start = (float(width / 2 - vx * num_frames * rng.uniform(0.0, 1.0)), float(rng.uniform(0.3, 0.7) * height))
        pole = SceneObject(label=POLE, speed='fast', radius=radius, start=start, velocity=(vx, 0.0),
                           texture=_object_texture(rng, 48))
        objects.insert(int(rng.integers(len(objects) + 1)), pole)
    blur = []
    for _ in range(num_frames):
        if rng.random() < blur_prob:
            blur.append((int(rng.choice([3, 5, 7, 9])), str(rng.choice(['h', 'v', 'defocus']))))
        else:
            blur.append((0, ''))
    return VideoScene(height, width, num_frames, background, pan_start, pan_velocity, objects, shake, tuple(blur))


def build_scene(index: int, num_train_videos: int, num_val_videos: int, num_frames: int, height: int, width: int,
                seed: int, blur_prob: float = 0.15) -> VideoScene:
    """Scene ``index`` of :func:`build_scenes` (train videos first, then val) without drawing the others."""
    child = np.random.SeedSequence(seed).spawn(num_train_videos + num_val_videos)[index]
    rng = np.random.default_rng(child)
    return make_scene(rng, height, width, num_frames, num_objects=int(rng.integers(3, 7)),
                      num_poles=int(rng.integers(0, 3)), blur_prob=blur_prob)


def build_scenes(num_train_videos: int, num_val_videos: int, num_frames: int, height: int, width: int,
                 seed: int, blur_prob: float = 0.15) -> dict[str, list[VideoScene]]:
    """The scenes :func:`generate_synthetic_vid` renders: ``{'train': [...], 'val': [...]}`` (3 to 6 objects and 0
    to 2 poles each)."""
    args = (num_train_videos, num_val_videos, num_frames, height, width, seed, blur_prob)
    scenes = [build_scene(index, *args) for index in range(num_train_videos + num_val_videos)]
    return {'train': scenes[:num_train_videos], 'val': scenes[num_train_videos:]}
