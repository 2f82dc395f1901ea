"""What a synthetic VID split holds (:func:`dataset_statistics`) and its speed mix as the metric measures it
(:func:`measured_speeds`, FGFA motion IoU)."""
from __future__ import annotations

import numpy as np

from ..motion_iou import motion_ious, speed_of
from .vid_scene import SPEEDS

__all__ = ['dataset_statistics', 'measured_speeds']


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
