"""A synthetic video-object-detection set in CocoVID format (numpy + imageio + scikit-image; no mmdet, no torch).

Each video is a moving camera over a muted background (a photograph or colour noise), with 3 to 6 objects of six
shape classes (``CLASSES``: the class is the outline; the texture is a random photograph crop or striped noise) and
up to two unannotated poles that pass in front of or behind them. What makes it a video-detection benchmark rather
than a still-image one:

- **Motion like ImageNet VID**: each object's speed relative to the frame is drawn as slow / medium / fast in the
  proportions 38 / 36 / 26 % (most objects slow or medium, as in ImageNet VID), in units of the object's size, so the
  FGFA motion-IoU split (:mod:`lightflow.data.motion_iou`) finds all three. Medium and fast objects also grow or
  shrink; fast objects and some medium ones enter or leave the frame.
- **Camera motion**: the background pans (up to 1.5 px/frame) and the whole frame shakes (up to 1 px).
- **Occlusion**: objects overlap in depth order and poles cut through them. An object whose visible part is under
  ``min_visible`` of its in-frame area is not annotated in that frame (ImageNet VID annotates visible objects).
- **Degraded frames**: ``blur_prob`` of the frames are blurred as a whole (camera-shake streaks or defocus, 3-9 px):
  the frames on which single-frame detection fails and temporal aggregation should help.

Box convention (as ImageNet VID): a box covers the FULL object (also the parts hidden behind other objects) clipped
to the image. Boxes are exact: they are the bounds of the object's rasterised mask (pixel centres inside the
analytic shape), as ``[x, y, w, h]`` with ``x2 = x + w`` one past the last covered column. Boxes narrower or lower
than ``min_box_size`` pixels after clipping are dropped (the object is then unannotated in that frame).

Layout written by :func:`generate_synthetic_vid` (``file_name`` is relative to ``out_dir``)::

    out_dir/Data/{train,val}/<video>/000000.JPEG ...
    out_dir/annotations/{train,val}.json    # CocoVID: categories, videos, images, annotations
    out_dir/.lightflow_synthetic_vid         # the marker: ``overwrite`` replaces only a folder that holds it

Annotations also carry ``speed`` (the designed 'slow' / 'medium' / 'fast'; the metric measures its own),
``visible`` (the visible fraction of the in-frame mask) and ``video_id``; images carry ``blur`` (0 for a clean
frame, else the blur length in px); ``instance_id`` is unique within a file and starts at 1; ``frame_id`` starts at 0.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import imageio.v3 as iio
import numpy as np

from ..motion_iou import SPEED_NAMES, motion_ious, speed_of
from .output import atomic_dir, check_memory, check_out_dir
from .photos import load_photos

__all__ = ['CLASSES', 'POLE', 'SPEEDS', 'SceneObject', 'VideoScene', 'make_scene', 'object_mask', 'object_box',
           'render_background', 'degrade', 'render_frame', 'scene_annotations', 'build_scene', 'build_scenes',
           'generate_synthetic_vid', 'dataset_statistics', 'measured_speeds', 'check_frame_memory']

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
_MAX_PAN = 1.5  # px per frame, each axis
# Peak bytes per pixel of the panned background while a scene is drawn and rendered (measured with tracemalloc:
# 110-140 from 224x288 to 1000x1400; the float64 noise octaves dominate), with headroom.
_BYTES_PER_PIXEL = 200
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
    pan_velocity = tuple(float(v) for v in rng.uniform(-_MAX_PAN, _MAX_PAN, 2))
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


def _inside(label: int, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Whether offsets (dx, dy) from the centre fall inside the class's shape of half-size ``radius``."""
    if label == POLE:
        return (np.abs(dx) <= 0.12 * radius) & (np.abs(dy) <= radius)
    name = CLASSES[label]
    if name == 'disc':
        return dx * dx + dy * dy <= radius * radius
    if name == 'box':
        half = 0.85 * radius
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if name == 'triangle':
        # Apex up: vertices (0, -r), (-r, 0.8 r), (r, 0.8 r): inside both slanted edges and above the base.
        return (1.8 * np.abs(dx) - dy <= radius) & (dy <= 0.8 * radius)
    if name == 'star':
        # Six-pointed: the union of two equilateral triangles, apex up (0, -r) and apex down (0, r).
        up = (np.sqrt(3) * np.abs(dx) - dy <= radius) & (dy <= 0.5 * radius)
        down = (np.sqrt(3) * np.abs(dx) + dy <= radius) & (dy >= -0.5 * radius)
        return up | down
    if name == 'cross':
        arm = 0.3 * radius
        ax, ay = np.abs(dx), np.abs(dy)
        return ((ax <= arm) & (ay <= radius)) | ((ay <= arm) & (ax <= radius))
    # Ring: a disc with a hole of half its radius (the background shows through).
    d2 = dx * dx + dy * dy
    return (d2 <= radius * radius) & (d2 >= 0.25 * radius * radius)


def object_mask(obj: SceneObject, t: int, height: int, width: int,
                centre: tuple[float, float] | None = None) -> np.ndarray:
    """The full (unoccluded) object's mask at frame ``t``, clipped to the image: (height, width) bool.

    A pixel belongs to the object when its centre ``(x + 0.5, y + 0.5)`` lies inside the analytic shape.
    ``centre`` overrides ``obj.centre(t)`` (the scene passes the shaken one).
    """
    cx, cy = obj.centre(t) if centre is None else centre
    mask = np.zeros((height, width), bool)
    r = obj.size(t)
    x0, x1 = max(int(np.floor(cx - r)) - 1, 0), min(int(np.ceil(cx + r)) + 1, width)
    y0, y1 = max(int(np.floor(cy - r)) - 1, 0), min(int(np.ceil(cy + r)) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return mask
    yy, xx = np.mgrid[y0:y1, x0:x1]
    mask[y0:y1, x0:x1] = _inside(obj.label, xx + 0.5 - cx, yy + 0.5 - cy, r)
    return mask


def object_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight ``(x, y, w, h)`` of a boolean mask (``x + w`` is one past the last column), or None if empty."""
    cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    if cols.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1] + 1 - cols[0]), int(rows[-1] + 1 - rows[0])


def render_background(scene: VideoScene, t: int) -> np.ndarray:
    """The panning, shaking background alone at frame ``t`` (not blurred): (H, W, 3) uint8."""
    sx, sy = scene.shake_at(t)
    ox = int(round(scene.pan_start[0] + scene.pan_velocity[0] * t + sx))
    oy = int(round(scene.pan_start[1] + scene.pan_velocity[1] * t + sy))
    return scene.background[oy:oy + scene.height, ox:ox + scene.width].copy()


def _box_blur(img: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Mean over ``length`` (odd) pixels along ``axis`` with edge replication: (H, W, 3) float."""
    pad = [(0, 0)] * img.ndim
    pad[axis] = (length // 2, length // 2)
    csum = np.cumsum(np.pad(img, pad, mode='edge'), axis=axis, dtype=np.float64)
    zero = np.zeros_like(np.take(csum, [0], axis=axis))
    csum = np.concatenate([zero, csum], axis=axis)
    n = img.shape[axis]
    return (np.take(csum, np.arange(length, length + n), axis=axis) - np.take(csum, np.arange(n), axis=axis)) / length


def degrade(img: np.ndarray, length: int, mode: str) -> np.ndarray:
    """Blur a frame: a horizontal / vertical streak of ``length`` px (camera shake) or a box defocus.

    Args:
        img: (H, W, 3) uint8. length: odd, >= 1 (1 or 0 returns the frame). mode: 'h', 'v' or 'defocus'.
    """
    if length <= 1:
        return img
    out = img.astype(np.float64)
    if mode in ('h', 'defocus'):
        out = _box_blur(out, length, axis=1)
    if mode in ('v', 'defocus'):
        out = _box_blur(out, length, axis=0)
    return np.round(out).clip(0, 255).astype(np.uint8)


def render_frame(scene: VideoScene, t: int, blur: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
    """Render frame ``t``: the image (H, W, 3) uint8 (blurred if the scene degrades this frame and ``blur``) and each
    object's full mask, in depth order (later objects on top; poles included)."""
    img = render_background(scene, t)
    masks = []
    for obj in scene.objects:
        cx, cy = scene.centre(obj, t)
        mask = object_mask(obj, t, scene.height, scene.width, centre=(cx, cy))
        masks.append(mask)
        if mask.any():
            ys, xs = np.nonzero(mask)
            # The texture moves and scales with the object: index it in the object's own [-1, 1] coordinates.
            r, size = obj.size(t), obj.texture.shape[0]
            tx = np.clip(((xs + 0.5 - cx) / r + 1) * 0.5 * size, 0, size - 1).astype(int)
            ty = np.clip(((ys + 0.5 - cy) / r + 1) * 0.5 * size, 0, size - 1).astype(int)
            img[ys, xs] = obj.texture[ty, tx]
    if blur:
        img = degrade(img, *scene.blur_at(t))
    return img, masks


def scene_annotations(scene: VideoScene, t: int, masks: list[np.ndarray], min_box_size: int = 4,
                      min_visible: float = 0.25) -> list[dict]:
    """Annotations of frame ``t``: dicts with ``object_index``, ``label``, ``speed``, ``visible`` and ``bbox``
    (x, y, w, h). Poles, boxes under ``min_box_size`` px and objects less than ``min_visible`` visible are left out."""
    anns = []
    front = np.zeros((scene.height, scene.width), bool)
    visible_frac = [0.0] * len(masks)
    for j in range(len(masks) - 1, -1, -1):  # front to back
        area = int(masks[j].sum())
        visible_frac[j] = float((masks[j] & ~front).sum()) / area if area else 0.0
        front |= masks[j]
    for j, (obj, mask) in enumerate(zip(scene.objects, masks)):
        if obj.label == POLE:
            continue
        box = object_box(mask)
        if box is None or box[2] < min_box_size or box[3] < min_box_size or visible_frac[j] < min_visible:
            continue
        anns.append(dict(object_index=j, label=obj.label, speed=obj.speed, visible=round(visible_frac[j], 3),
                         bbox=list(box)))
    return anns


def check_frame_memory(height: int, width: int, num_frames: int, what: str) -> None:
    """Refuse (``ValueError`` naming ``what``) a frame size whose rendering would not fit in memory, before anything
    is drawn: :func:`make_scene` draws a background larger than the frame by the camera pan over all frames, in
    float64 noise, and :func:`render_frame` keeps one mask per object and float64 copies of the frame for the blur."""
    margin = int(np.ceil(_MAX_PAN * num_frames + 1)) + 2  # make_scene's margin at the fastest pan and shake
    check_memory(_BYTES_PER_PIXEL * (height + 2 * margin) * (width + 2 * margin), what)


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


def generate_synthetic_vid(out_dir: str | os.PathLike, num_train_videos: int = 40, num_val_videos: int = 12,
                           num_frames: int = 30, height: int = 224, width: int = 288, seed: int = 0,
                           min_box_size: int = 4, min_visible: float = 0.25, blur_prob: float = 0.15,
                           jpeg_quality: int = 90, overwrite: bool = False, progress: bool = False) -> dict[str, dict]:
    """Write the synthetic set (JPEG frames + CocoVID JSON for ``train`` and ``val``) to ``out_dir`` atomically.

    Deterministic: the same arguments give byte-identical files. Every argument is checked, and the memory a frame
    needs estimated, before anything is drawn or written.

    Args:
        overwrite: replace ``out_dir`` if it is a set generated before (it holds the marker file); any other file or
            folder there is refused, never deleted.

    Returns:
        ``{'train': coco_dict, 'val': coco_dict}``, the JSON contents written.
    """
    for name, value, least in (('num_train_videos', num_train_videos, 1), ('num_val_videos', num_val_videos, 1),
                               ('num_frames', num_frames, 1), ('min_box_size', min_box_size, 1), ('seed', seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f'{name} must be an integer >= {least}, got {value!r}')
    if not 0 <= min_visible <= 1:
        raise ValueError(f'min_visible must be in [0, 1], got {min_visible}')
    check_frame_memory(height, width, num_frames, f'height={height}, width={width}')
    out_dir = check_out_dir(out_dir, overwrite)
    scenes = build_scenes(num_train_videos, num_val_videos, num_frames, height, width, seed, blur_prob)
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    results = {}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=(num_train_videos + num_val_videos) * num_frames, desc='synthetic VID', unit='frame')
    # The marker records what rebuilds the scenes (exact motion: vid_motion.scene_in_set).
    info = dict(num_train_videos=int(num_train_videos), num_val_videos=int(num_val_videos), num_frames=int(num_frames),
                height=int(height), width=int(width), seed=int(seed), blur_prob=float(blur_prob))
    with atomic_dir(out_dir, info) as tmp:
        for split, split_scenes in scenes.items():
            coco = dict(categories=categories, videos=[], images=[], annotations=[])
            instance_base = 0
            for v, scene in enumerate(split_scenes):
                video_id = v + 1
                name = f'{split}_{v:04d}'
                coco['videos'].append(dict(id=video_id, name=name))
                (tmp / 'Data' / split / name).mkdir(parents=True)
                for t in range(num_frames):
                    img, masks = render_frame(scene, t)
                    file_name = f'Data/{split}/{name}/{t:06d}.JPEG'
                    iio.imwrite(tmp / file_name, img, extension='.jpg', quality=jpeg_quality)
                    image_id = len(coco['images']) + 1
                    coco['images'].append(dict(id=image_id, file_name=file_name, height=height, width=width,
                                               video_id=video_id, frame_id=t, blur=scene.blur_at(t)[0]))
                    for ann in scene_annotations(scene, t, masks, min_box_size, min_visible):
                        x, y, w, h = ann['bbox']
                        coco['annotations'].append(dict(
                            id=len(coco['annotations']) + 1, image_id=image_id, video_id=video_id,
                            category_id=ann['label'] + 1,
                            # 1-based: mmdet treats a falsy instance_id as missing.
                            instance_id=instance_base + ann['object_index'] + 1,
                            bbox=[x, y, w, h], area=w * h, iscrowd=0, speed=ann['speed'], visible=ann['visible']))
                    if bar is not None:
                        bar.update(1)
                instance_base += len(scene.objects)
            (tmp / 'annotations').mkdir(exist_ok=True)
            (tmp / 'annotations' / f'{split}.json').write_text(json.dumps(coco))
            results[split] = coco
    if bar is not None:
        bar.close()
    return results


def dataset_statistics(coco: dict) -> dict:
    """What one split's CocoVID dict holds: videos, frames, boxes, boxes per frame, the share of blurred frames and
    of partly hidden boxes (visible < 0.9), boxes per class and the share of each designed speed. (The speed the
    metric measures, from motion IoU, is :func:`measured_speeds`.)"""
    anns, images = coco['annotations'], coco['images']
    n_frames = max(len(images), 1)
    by_class = {c['name']: 0 for c in coco['categories']}
    names = {c['id']: c['name'] for c in coco['categories']}
    for a in anns:
        by_class[names[a['category_id']]] += 1
    by_speed = {s: sum(a.get('speed') == s for a in anns) / max(len(anns), 1) for s in SPEEDS}
    return dict(videos=len(coco['videos']), frames=len(images), boxes=len(anns), boxes_per_frame=len(anns) / n_frames,
                blurred_frames=sum(bool(i.get('blur')) for i in images) / n_frames,
                occluded_boxes=sum(a.get('visible', 1.0) < 0.9 for a in anns) / max(len(anns), 1),
                instances=len({a['instance_id'] for a in anns}), boxes_per_class=by_class, designed_speed=by_speed)


def measured_speeds(coco: dict) -> dict[str, float] | None:
    """The slow / medium / fast share of a split's boxes as ``VIDMotionMetric`` measures it (FGFA motion IoU), or
    None when no box has a speed (no box has a neighbour of its own within the metric's window, e.g. one frame per
    video)."""
    frame_of = {i['id']: i['frame_id'] for i in coco['images']}
    speeds = [np.empty(0, np.int64)]
    for video in coco['videos']:
        anns = [a for a in coco['annotations'] if a['video_id'] == video['id']]
        if not anns:
            continue
        boxes = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]]
                          for a in anns], np.float64)
        speeds.append(speed_of(motion_ious([frame_of[a['image_id']] for a in anns],
                                           [a['instance_id'] for a in anns], boxes)))
    speeds = np.concatenate(speeds)
    if not (speeds >= 0).any():
        return None
    return {name: float(np.mean(speeds == i)) for i, name in enumerate(SPEEDS)}
