"""A synthetic video-object-detection set in CocoVID format (pure numpy + imageio; no mmdet import).

Each video shows a few textured objects of three classes (``disc``, ``box``, ``triangle``: the class is the shape,
the texture is random) moving over a panning noise background. Every video mixes slow, medium and fast objects, so
the FGFA motion-speed split (slow / medium / fast by motion IoU, see ``mmdet_plugin.evaluation``) has all three.
Fast objects enter and leave the frame.

Box convention (as ImageNet VID): a box covers the FULL object (also the parts hidden behind other objects) clipped
to the image. Boxes are exact: they are the bounds of the object's rasterised mask (pixel centres inside the
analytic shape), as ``[x, y, w, h]`` with ``x2 = x + w`` one past the last covered column. Boxes narrower or lower
than ``min_box_size`` pixels after clipping are dropped (the object is then unannotated in that frame).

Layout written by :func:`generate_synthetic_vid` (``file_name`` is relative to ``out_dir``)::

    out_dir/Data/{train,val}/<video>/000000.JPEG ...
    out_dir/annotations/{train,val}.json    # CocoVID: categories, videos, images, annotations

Annotations also carry ``speed`` (the designed 'slow' / 'medium' / 'fast'; the metric measures its own) and
``video_id``; ``instance_id`` is unique within a file and starts at 1; ``frame_id`` starts at 0.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np

__all__ = ['CLASSES', 'SPEEDS', 'SceneObject', 'VideoScene', 'make_scene', 'object_mask', 'object_box',
           'render_background', 'render_frame', 'scene_annotations', 'build_scenes', 'generate_synthetic_vid']

CLASSES = ('disc', 'box', 'triangle')
SPEEDS = ('slow', 'medium', 'fast')
# Per-frame displacement as a fraction k of the object size. With FGFA's motion IoU (mean IoU with the same object
# +-10 frames, mean offset 5.5) a translating box scores about 1 - 11 k (|cos a| + |sin a|); pixel rounding of the
# boxes costs a few hundredths more. These ranges land mostly in > 0.9, 0.7-0.9 and < 0.7.
_SPEED_RANGE = {'slow': (0.0, 0.003), 'medium': (0.011, 0.016), 'fast': (0.06, 0.15)}


@dataclass
class SceneObject:
    """One moving object: its class index, half-size (px), start centre (px), velocity (px/frame) and texture."""
    label: int
    speed: str
    radius: float
    start: tuple[float, float]
    velocity: tuple[float, float]
    texture: np.ndarray = field(repr=False)  # (S, S, 3) uint8, S = 2 * ceil(radius) + 2

    def centre(self, t: int) -> tuple[float, float]:
        return self.start[0] + self.velocity[0] * t, self.start[1] + self.velocity[1] * t


@dataclass
class VideoScene:
    """Everything needed to render one video deterministically."""
    height: int
    width: int
    num_frames: int
    background: np.ndarray = field(repr=False)  # (Hb, Wb, 3) uint8, larger than the frame
    pan_start: tuple[float, float]
    pan_velocity: tuple[float, float]
    objects: list[SceneObject]


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


def _object_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A saturated, high-contrast texture (stripes over noise) so objects stand out from the muted background."""
    # A vivid colour (brightest channel at 1) striped with a near-black shade of it: always high contrast.
    base = rng.random(3)
    base = 0.3 + 0.7 * base / base.max()
    other = 0.15 * base
    noise = _smooth_noise(rng, size, size, cells=2, octaves=2)
    yy, xx = np.mgrid[:size, :size]
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(4, 9)
    stripes = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0)[..., None]
    tex = np.where(stripes, base, other) * 0.75 + noise * 0.25
    return (tex * 255).clip(0, 255).astype(np.uint8)


def make_scene(rng: np.random.Generator, height: int = 160, width: int = 224, num_frames: int = 30,
               num_objects: int = 3, speed_offset: int = 0) -> VideoScene:
    """Draw a random video: background, pan, and ``num_objects`` objects with speeds cycling slow/medium/fast.

    Args:
        rng: the generator (the whole scene is a function of its state).
        speed_offset: the first object's speed index; later objects take the next speeds (mod 3).
    """
    if height < 32 or width < 32 or num_frames < 1 or num_objects < 1:
        raise ValueError(f'bad scene size: height={height}, width={width}, num_frames={num_frames}, '
                         f'num_objects={num_objects} (need height, width >= 32 and at least one frame and object)')
    pan_velocity = tuple(rng.uniform(-1.5, 1.5, 2))
    margin = int(np.ceil(max(abs(pan_velocity[0]), abs(pan_velocity[1])) * num_frames)) + 2
    bg_h, bg_w = height + 2 * margin, width + 2 * margin
    # Muted, low-contrast background: objects must be visible, as in real footage.
    background = (0.3 + 0.4 * _smooth_noise(rng, bg_h, bg_w, cells=6)) * 255
    background = background.clip(0, 255).astype(np.uint8)
    pan_start = (float(margin), float(margin))

    size_min = min(height, width)
    objects = []
    for j in range(num_objects):
        speed = SPEEDS[(speed_offset + j) % 3]
        radius = float(rng.uniform(0.09, 0.16) * size_min)
        lo, hi = _SPEED_RANGE[speed]
        step = rng.uniform(lo, hi) * 2 * radius
        angle = rng.uniform(0, 2 * np.pi)
        velocity = (step * np.cos(angle), step * np.sin(angle))
        if speed == 'fast':
            # Pass through a point near the middle at a random time, so the object enters or leaves the frame.
            mid = np.array([width / 2, height / 2]) + rng.uniform(-0.25, 0.25, 2) * [width, height]
            start = mid - np.array(velocity) * num_frames * rng.uniform(0.1, 1.0)
        else:
            start = rng.uniform([radius, radius], [width - radius, height - radius])
        size = 2 * int(np.ceil(radius)) + 2
        objects.append(SceneObject(label=int(rng.integers(len(CLASSES))), speed=speed, radius=radius,
                                   start=(float(start[0]), float(start[1])),
                                   velocity=(float(velocity[0]), float(velocity[1])),
                                   texture=_object_texture(rng, size)))
    return VideoScene(height, width, num_frames, background, pan_start, pan_velocity, objects)


def _inside(label: int, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Whether offsets (dx, dy) from the centre fall inside the class's shape of half-size ``radius``."""
    if CLASSES[label] == 'disc':
        return dx * dx + dy * dy <= radius * radius
    if CLASSES[label] == 'box':
        half = 0.85 * radius
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    # Triangle, apex up: vertices (0, -r), (-r, 0.8 r), (r, 0.8 r).
    # Inside both slanted edges (slope 1.8 from the apex) and above the base.
    return (1.8 * np.abs(dx) - dy <= radius) & (dy <= 0.8 * radius)


def object_mask(obj: SceneObject, t: int, height: int, width: int) -> np.ndarray:
    """The full (unoccluded) object's mask at frame ``t``, clipped to the image: (height, width) bool.

    A pixel belongs to the object when its centre ``(x + 0.5, y + 0.5)`` lies inside the analytic shape.
    """
    cx, cy = obj.centre(t)
    mask = np.zeros((height, width), bool)
    r = obj.radius
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
    """The panning background alone at frame ``t``: (H, W, 3) uint8."""
    ox = int(round(scene.pan_start[0] + scene.pan_velocity[0] * t))
    oy = int(round(scene.pan_start[1] + scene.pan_velocity[1] * t))
    return scene.background[oy:oy + scene.height, ox:ox + scene.width].copy()


def render_frame(scene: VideoScene, t: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Render frame ``t``: the image (H, W, 3) uint8 and each object's full mask (objects later in the list on top)."""
    img = render_background(scene, t)
    masks = []
    for obj in scene.objects:
        mask = object_mask(obj, t, scene.height, scene.width)
        masks.append(mask)
        if mask.any():
            cx, cy = obj.centre(t)
            ys, xs = np.nonzero(mask)
            # The texture moves with the object: index it in object coordinates.
            size = obj.texture.shape[0]
            tx = np.clip(xs - int(np.floor(cx - obj.radius)), 0, size - 1)
            ty = np.clip(ys - int(np.floor(cy - obj.radius)), 0, size - 1)
            img[ys, xs] = obj.texture[ty, tx]
    return img, masks


def scene_annotations(scene: VideoScene, t: int, masks: list[np.ndarray],
                      min_box_size: int = 4) -> list[dict]:
    """Annotations of frame ``t``: dicts with ``object_index``, ``label``, ``speed`` and ``bbox`` (x, y, w, h)."""
    anns = []
    for j, (obj, mask) in enumerate(zip(scene.objects, masks)):
        box = object_box(mask)
        if box is None or box[2] < min_box_size or box[3] < min_box_size:
            continue
        anns.append(dict(object_index=j, label=obj.label, speed=obj.speed, bbox=list(box)))
    return anns


@contextlib.contextmanager
def _atomic_dir(out_dir: Path, overwrite: bool):
    """Yield a temp dir beside ``out_dir``; on success it replaces ``out_dir`` in one rename."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f'{out_dir}: output folder exists (pass overwrite=True / --overwrite to replace it)')
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', suffix='.tmp', dir=out_dir.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700 folders; the dataset should get the usual permissions
        yield tmp
        if out_dir.exists():
            trash = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', suffix='.old', dir=out_dir.parent))
            os.replace(out_dir, trash / 'old')
            os.replace(tmp, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_scenes(num_train_videos: int, num_val_videos: int, num_frames: int, height: int, width: int,
                 seed: int) -> dict[str, list[VideoScene]]:
    """The scenes :func:`generate_synthetic_vid` renders: ``{'train': [...], 'val': [...]}`` (2 to 4 objects each)."""
    seeds = np.random.SeedSequence(seed).spawn(num_train_videos + num_val_videos)
    scenes: dict[str, list[VideoScene]] = {'train': [], 'val': []}
    for index, child in enumerate(seeds):
        split = 'train' if index < num_train_videos else 'val'
        rng = np.random.default_rng(child)
        scenes[split].append(make_scene(rng, height, width, num_frames, num_objects=int(rng.integers(2, 5)),
                                        speed_offset=len(scenes[split]) % 3))
    return scenes


def generate_synthetic_vid(out_dir: str | os.PathLike, num_train_videos: int = 8, num_val_videos: int = 4,
                           num_frames: int = 30, height: int = 160, width: int = 224, seed: int = 0,
                           min_box_size: int = 4, jpeg_quality: int = 90, overwrite: bool = False,
                           progress: bool = False) -> dict[str, dict]:
    """Write the synthetic set (JPEG frames + CocoVID JSON for ``train`` and ``val``) to ``out_dir`` atomically.

    Deterministic: the same arguments give byte-identical files.

    Returns:
        ``{'train': coco_dict, 'val': coco_dict}``, the JSON contents written.
    """
    for name, value, least in (('num_train_videos', num_train_videos, 0), ('num_val_videos', num_val_videos, 0),
                               ('num_frames', num_frames, 1), ('min_box_size', min_box_size, 1)):
        if value < least:
            raise ValueError(f'{name} must be >= {least}, got {value}')
    scenes = build_scenes(num_train_videos, num_val_videos, num_frames, height, width, seed)
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    results = {}
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=(num_train_videos + num_val_videos) * num_frames, desc='synthetic VID', unit='frame')
    with _atomic_dir(Path(out_dir), overwrite) as tmp:
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
                                               video_id=video_id, frame_id=t))
                    for ann in scene_annotations(scene, t, masks, min_box_size):
                        x, y, w, h = ann['bbox']
                        coco['annotations'].append(dict(
                            id=len(coco['annotations']) + 1, image_id=image_id, video_id=video_id,
                            category_id=ann['label'] + 1,
                            # 1-based: mmdet treats a falsy instance_id as missing.
                            instance_id=instance_base + ann['object_index'] + 1,
                            bbox=[x, y, w, h], area=w * h, iscrowd=0, speed=ann['speed']))
                    if bar is not None:
                        bar.update(1)
                instance_base += len(scene.objects)
            (tmp / 'annotations').mkdir(exist_ok=True)
            (tmp / 'annotations' / f'{split}.json').write_text(json.dumps(coco))
            results[split] = coco
    if bar is not None:
        bar.close()
    return results
