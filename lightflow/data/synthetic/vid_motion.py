"""Exact motion of the synthetic VID set: the flow from any frame ``t`` to any other frame ``k`` of a video, rebuilt
from its scene (background pan and shake, each object's path and scale, depth order), with the pixels of ``t`` whose
point is not visible in ``k`` (occluded there, or outside the frame) marked. Nothing is stored: a set's scenes are
rebuilt from the generator arguments its marker file records (:func:`scene_in_set`).

Flow convention (the project's one): for every pixel of frame ``t`` its displacement to frame ``k``, so warping
frame ``k`` by it reproduces frame ``t``: ``out[y, x] = frame_k[y + v, x + u]``.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from .output import MARKER
from .vid_render import object_mask
from .vid_scene import VideoScene, build_scene

__all__ = ['exact_flow', 'surface_labels', 'scene_args', 'scene_in_set', 'scene_of_frame']

# The arguments of build_scenes that a set's marker records (generate_synthetic_vid writes them).
SCENE_ARGS = ('num_train_videos', 'num_val_videos', 'num_frames', 'height', 'width', 'seed', 'blur_prob')


def _background_offset(scene: VideoScene, t: int) -> tuple[int, int]:
    """Where frame ``t``'s top-left pixel is in the scene's background (integers: ``render_background`` rounds)."""
    sx, sy = scene.shake_at(t)
    return (int(round(scene.pan_start[0] + scene.pan_velocity[0] * t + sx)),
            int(round(scene.pan_start[1] + scene.pan_velocity[1] * t + sy)))


def surface_labels(scene: VideoScene, t: int) -> np.ndarray:
    """(H, W) int: the index into ``scene.objects`` of the surface seen at each pixel of frame ``t`` (the front-most
    object covering it, poles included), -1 for the background."""
    labels = np.full((scene.height, scene.width), -1, np.int64)
    for j, obj in enumerate(scene.objects):  # depth order: later objects are drawn on top
        labels[object_mask(obj, t, scene.height, scene.width, centre=scene.centre(obj, t))] = j
    return labels


def exact_flow(scene: VideoScene, t: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact flow from frame ``t`` to frame ``k`` of ``scene`` and the pixels it cannot be checked on.

    Args:
        scene: a scene of :func:`~lightflow.data.synthetic.vid_scene.build_scenes`.
        t: the frame the flow is defined on. k: the frame it points to (the key frame).

    Returns:
        ``flow`` (H, W, 2) float32 (u, v) px, and ``hidden`` (H, W) bool: the pixels of ``t`` whose point is outside
        frame ``k`` or covered there by another surface (occluded in ``k``, or new in ``t``).
    """
    for name, value in (('t', t), ('k', k)):
        if not 0 <= value < scene.num_frames:
            raise ValueError(f'exact_flow: {name}={value} is outside the video\'s {scene.num_frames} frames')
    h, w = scene.height, scene.width
    labels_t = surface_labels(scene, t)
    (ox_t, oy_t), (ox_k, oy_k) = _background_offset(scene, t), _background_offset(scene, k)
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = ox_t - ox_k, oy_t - oy_k  # the background slides by whole pixels
    ys, xs = np.mgrid[:h, :w]
    px, py = xs + 0.5, ys + 0.5  # pixel centres
    for j, obj in enumerate(scene.objects):
        on = labels_t == j
        if not on.any():
            continue
        (cx_t, cy_t), (cx_k, cy_k) = scene.centre(obj, t), scene.centre(obj, k)
        ratio = obj.size(k) / obj.size(t)
        # A point at (p - c_t) / r_t in the object's own frame is at c_k + that * r_k in frame k.
        flow[on, 0] = cx_k + (px[on] - cx_t) * ratio - px[on]
        flow[on, 1] = cy_k + (py[on] - cy_t) * ratio - py[on]
    # Where each pixel's point lands in k, and whether k shows the same surface there.
    xk, yk = np.floor(px + flow[..., 0]).astype(np.int64), np.floor(py + flow[..., 1]).astype(np.int64)
    inside = (xk >= 0) & (xk < w) & (yk >= 0) & (yk < h)
    labels_k = surface_labels(scene, k)
    same = np.zeros((h, w), bool)
    same[inside] = labels_k[yk[inside], xk[inside]] == labels_t[inside]
    return flow, ~same


def scene_args(root: str | Path) -> dict:
    """The generator arguments a synthetic VID set's marker records (``ValueError`` naming the folder if it has none:
    not a set of :func:`~lightflow.data.synthetic.vid.generate_synthetic_vid`, or one written before they were)."""
    marker = Path(root) / MARKER
    try:
        stamp = marker.stat().st_mtime_ns
    except OSError as err:
        raise ValueError(f'{root}: no synthetic VID marker {MARKER} ({err.strerror}); exact motion needs a set '
                         'written by tools/make_synthetic_vid.py') from None
    return dict(_read_scene_args(str(marker), stamp))


@functools.lru_cache(maxsize=16)
def _read_scene_args(marker: str, stamp: int) -> tuple:
    """The recorded arguments of a marker, read once per (path, modification time): OracleMotion asks twice a frame."""
    root = Path(marker).parent
    try:
        text = Path(marker).read_text()
    except OSError as err:
        raise ValueError(f'{root}: no synthetic VID marker {MARKER} ({err.strerror}); exact motion needs a set '
                         'written by tools/make_synthetic_vid.py') from None
    try:
        args = json.loads(text)
    except json.JSONDecodeError:
        args = {}  # a plain-text marker of an older set
    args = args if isinstance(args, dict) else {}
    missing = [a for a in SCENE_ARGS if a not in args]
    if missing:
        raise ValueError(f'{marker}: records no {", ".join(missing)} (a set written before exact motion existed; '
                         'regenerate it with tools/make_synthetic_vid.py --overwrite)')
    return tuple((a, args[a]) for a in SCENE_ARGS)


@functools.lru_cache(maxsize=64)
def _scene(args: tuple, index: int) -> VideoScene:
    return build_scene(index, **dict(args))


def scene_in_set(root: str | Path, split: str, index: int) -> VideoScene:
    """Video ``index`` of ``split`` ('train' / 'val') of a generated set, rebuilt from its marker (cached)."""
    args = scene_args(root)
    count = args['num_train_videos'] if split == 'train' else args['num_val_videos']
    if split not in ('train', 'val') or not 0 <= index < count:
        raise ValueError(f'{root}: has no {split} video {index} ({count} {split} videos)')
    return _scene(tuple(sorted(args.items())), index + (args['num_train_videos'] if split == 'val' else 0))


def scene_of_frame(img_path: str | Path) -> tuple[VideoScene, str, int]:
    """``(scene, video name, frame index)`` of a frame file ``<root>/Data/<split>/<split>_<NNNN>/<frame>.JPEG`` of a
    generated set; ``ValueError`` naming the path if it is not one."""
    path = Path(img_path)
    parts = path.parts
    try:
        split, video = parts[-3], parts[-2]
        index, frame = int(video.rsplit('_', 1)[1]), int(path.stem)
        if parts[-4] != 'Data' or split not in ('train', 'val') or not video.startswith(split + '_'):
            raise ValueError
    except (IndexError, ValueError):
        raise ValueError(f'{img_path}: not a frame of a synthetic VID set (<root>/Data/<train|val>/<split>_NNNN/'
                         '<frame>.JPEG)') from None
    scene = scene_in_set(Path(*parts[:-4]), split, index)
    if not 0 <= frame < scene.num_frames:
        raise ValueError(f'{img_path}: frame {frame} is outside the video\'s {scene.num_frames} frames')
    return scene, video, frame
