"""Rasterising the synthetic VID scenes (:mod:`.vid_scene`): object masks and boxes, the panning background, whole-
frame blur, the rendered frame and its annotations (visible objects only, full boxes as ImageNet VID)."""
from __future__ import annotations

import numpy as np

from .vid_scene import CLASSES, POLE, SceneObject, VideoScene

__all__ = ['object_mask', 'object_box', 'render_background', 'degrade', 'render_frame', 'scene_annotations']


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
