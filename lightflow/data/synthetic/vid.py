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

The scene model is :mod:`.vid_scene`, rasterising :mod:`.vid_render`, statistics :mod:`.vid_stats`, exact motion
:mod:`.vid_motion`; this module writes the set. Layout written by :func:`generate_synthetic_vid` (``file_name`` is relative to ``out_dir``)::

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

import imageio.v3 as iio
import numpy as np

from .output import atomic_dir, check_memory, check_out_dir
from .vid_render import render_frame, scene_annotations
from .vid_scene import MAX_PAN, CLASSES, build_scenes

__all__ = ['generate_synthetic_vid', 'check_frame_memory']

# Peak bytes per pixel of the panned background while a scene is drawn and rendered (measured with tracemalloc:
# 110-140 from 224x288 to 1000x1400; the float64 noise octaves dominate), with headroom.
_BYTES_PER_PIXEL = 200


def check_frame_memory(height: int, width: int, num_frames: int, what: str) -> None:
    """Refuse (``ValueError`` naming ``what``) a frame size whose rendering would not fit in memory, before anything
    is drawn: :func:`make_scene` draws a background larger than the frame by the camera pan over all frames, in
    float64 noise, and :func:`render_frame` keeps one mask per object and float64 copies of the frame for the blur."""
    margin = int(np.ceil(MAX_PAN * num_frames + 1)) + 2  # make_scene's margin at the fastest pan and shake
    check_memory(_BYTES_PER_PIXEL * (height + 2 * margin) * (width + 2 * margin), what)


def generate_synthetic_vid(out_dir: str | os.PathLike, num_train_videos: int = 20, num_val_videos: int = 12,
                           num_frames: int = 120, height: int = 224, width: int = 288, seed: int = 0,
                           min_box_size: int = 4, min_visible: float = 0.25, blur_prob: float = 0.15,
                           jpeg_quality: int = 90, overwrite: bool = False, progress: bool = False) -> dict[str, dict]:
    """Write the synthetic set (JPEG frames + CocoVID JSON for ``train`` and ``val``) to ``out_dir`` atomically.

    Deterministic: the same arguments give byte-identical files. Every argument is checked, and the memory a frame
    needs estimated, before anything is drawn or written.

    The defaults make 20 training and 12 validation videos of 120 frames: long enough for the paper's training clip
    (8 key frames 10 apart, then the current frame), and 1,440 validation frames.

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
