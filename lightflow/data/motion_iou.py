"""FGFA's motion IoU (Zhu et al. ICCV 2017, section 4): how fast each ground-truth box of a video moves (pure numpy).

An object's *motion IoU* in a frame is the mean IoU of its box with its own boxes (same ``instance_id``) in the frames
within +-``window`` (10) of that frame, where it is annotated; the frame itself is excluded. Objects are ``slow``
(motion IoU > 0.9), ``medium`` (0.7 to 0.9) or ``fast`` (< 0.7). ``mmdet_plugin.evaluation.VIDMotionMetric`` splits its
mAP by it and ``tools/make_synthetic_vid.py`` measures the synthetic set's speed mix with it; here it needs no mmdet.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ['SPEED_NAMES', 'box_iou', 'motion_ious', 'speed_of']

SPEED_NAMES = ('slow', 'medium', 'fast')


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) and (M, 4) ``x1, y1, x2, y2`` boxes (continuous coordinates): (N, M)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def motion_ious(frame_ids: Sequence[int], instance_ids: Sequence[int], bboxes: np.ndarray,
                window: int = 10) -> np.ndarray:
    """FGFA motion IoU of every ground-truth box of ONE video.

    Args:
        frame_ids: (N,) frame index of each box.
        instance_ids: (N,) track id of each box.
        bboxes: (N, 4) ``x1, y1, x2, y2``.
        window: frames on each side that count as nearby.

    Returns:
        (N,) float64: mean IoU with the same instance's boxes in frames ``f - window .. f + window`` other than ``f``;
        NaN where there is none.
    """
    frame_ids = np.asarray(frame_ids, np.int64).reshape(-1)
    instance_ids = np.asarray(instance_ids, np.int64).reshape(-1)
    bboxes = np.asarray(bboxes, np.float64).reshape(-1, 4)
    if not len(frame_ids) == len(instance_ids) == len(bboxes):
        raise ValueError(f'motion_ious: {len(frame_ids)} frame ids, {len(instance_ids)} instance ids and '
                         f'{len(bboxes)} boxes; they must match')
    out = np.full(len(bboxes), np.nan)
    for inst in np.unique(instance_ids):
        idx = np.flatnonzero(instance_ids == inst)
        frames = frame_ids[idx]
        ious = box_iou(bboxes[idx], bboxes[idx])
        near = (np.abs(frames[:, None] - frames[None, :]) <= window) & (frames[:, None] != frames[None, :])
        count = near.sum(1)
        has = count > 0
        out[idx[has]] = (ious * near).sum(1)[has] / count[has]
    return out


def speed_of(motion_iou: np.ndarray, thresholds: tuple[float, float] = (0.7, 0.9)) -> np.ndarray:
    """Speed class per box: 0 slow (> hi), 1 medium (lo..hi), 2 fast (< lo), -1 unknown (NaN motion IoU)."""
    lo, hi = thresholds
    m = np.asarray(motion_iou, np.float64)
    out = np.full(m.shape, -1, np.int64)
    out[m > hi] = 0
    out[(m >= lo) & (m <= hi)] = 1
    out[m < lo] = 2
    return out
