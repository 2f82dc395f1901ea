"""What goes wrong on non-key frames: each ground truth's outcome and each false positive's kind, against the key.

A non-key frame is detected on its key's features warped to it. When the warp is wrong the detections stay where the
object was at the key ("lagging"); when the object has moved away, the uncovered background still reads the key's
object (a "ghost"). Both leave a detection on the object's key-frame box instead of its box in the frame. This module
counts them at one score threshold: per ground truth of a non-key frame, ``hit`` (a detection of its class at IoU >=
0.5), ``wrong class`` (only another class's), ``lagging`` (none, but one of its class on its box in the key frame) or
``missed``; per false positive (no ground truth of the frame at IoU >= 0.5), whether it sits on a key-frame box.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from mmdet.evaluation.functional import bbox_overlaps

from .key_states import load_cocovid_frames

__all__ = ['GT_OUTCOMES', 'error_kind_rows', 'error_kind_table', 'read_speeds']

GT_OUTCOMES = ('hit', 'wrong class', 'lagging', 'missed')
IOU = 0.5


def read_speeds(ann_file: str | os.PathLike) -> dict:
    """``{(video_id, frame_id, instance_id): 'slow' | 'medium' | 'fast'}`` from a CocoVID json's per-annotation
    ``speed`` field (the synthetic VID set writes it; without it every object is ``'all'``)."""
    coco, frames = load_cocovid_frames(ann_file)
    return {(*frames[a['image_id']], a.get('instance_id')): a.get('speed', 'all') for a in coco['annotations']}


def error_kind_rows(results: Sequence[dict], keys: Sequence[tuple[object, int]], speeds: dict,
                    score_thr: float = 0.3) -> dict:
    """Outcomes of the non-key frames' ground truths and kinds of their false positives at ``score_thr``.

    Args:
        results: per-frame results of ``VIDMotionMetric`` (``video_id``, ``frame_id``, ``gt_boxes``, ``gt_labels``,
            ``gt_ids``, ``gt_ignore``, ``pred_boxes``, ``pred_scores``, ``pred_labels``), key frames included.
        keys: each result's key frame ``(video_id, frame_id)`` (``key_states.fixed_keys``).
        speeds: :func:`read_speeds`.
        score_thr: detections below it are dropped.

    Returns:
        ``{'gts': {speed: {outcome: count}}, 'fp_on_key_box': n, 'fp_other': n, 'frames': n}``.
    """
    if not 0.0 <= score_thr <= 1.0:
        raise ValueError(f'score_thr must be in [0, 1], got {score_thr!r}')
    by_frame = {(r['video_id'], r['frame_id']): r for r in results}
    gts: dict[str, dict[str, int]] = {}
    fp_key = fp_other = frames = 0
    for r, (video, key) in zip(results, keys, strict=True):
        if r['frame_id'] == key:
            continue
        frames += 1
        k = by_frame[(video, key)]
        keep = np.asarray(r['pred_scores']) >= score_thr
        boxes, labels = np.asarray(r['pred_boxes']).reshape(-1, 4)[keep], np.asarray(r['pred_labels'])[keep]
        gt_boxes = np.asarray(r['gt_boxes']).reshape(-1, 4)
        iou = bbox_overlaps(boxes, gt_boxes)
        for j, (label, instance) in enumerate(zip(r['gt_labels'], r['gt_ids'])):
            if r['gt_ignore'][j]:
                continue
            same = labels == label
            if (iou[same, j] >= IOU).any():
                outcome = 'hit'
            elif (iou[:, j] >= IOU).any():
                outcome = 'wrong class'
            else:
                at_key = np.asarray(k['gt_boxes']).reshape(-1, 4)[np.asarray(k['gt_ids']) == instance]
                lag = len(at_key) and same.any() and (bbox_overlaps(boxes[same], at_key) >= IOU).any()
                outcome = 'lagging' if lag else 'missed'
            speed = speeds.get((video, r['frame_id'], int(instance)), 'all')
            counts = gts.setdefault(speed, dict.fromkeys(GT_OUTCOMES, 0))
            counts[outcome] += 1
        false = ~(iou >= IOU).any(1)  # bbox_overlaps gives (n, 0) zeros against no boxes
        on_key = (bbox_overlaps(boxes[false], np.asarray(k['gt_boxes']).reshape(-1, 4)) >= IOU).any(1)
        fp_key += int(on_key.sum())
        fp_other += int((~on_key).sum())
    return dict(gts=gts, fp_on_key_box=fp_key, fp_other=fp_other, frames=frames)


def error_kind_table(columns: dict[str, dict], interval: int, score_thr: float = 0.3) -> str:
    """Markdown: the share of each outcome among the non-key frames' ground truths (all, and per speed), false
    positives per 100 non-key frames; one column per detector (``{name: error_kind_rows(...)}``)."""
    names = list(columns)
    speeds = [s for s in ('slow', 'medium', 'fast') if any(s in c['gts'] for c in columns.values())]
    lines = [f'| key frame every {interval} frames, non-key frames, score >= {score_thr:g} | ' + ' | '.join(names)
             + ' |', '|---|' + '---:|' * len(names)]
    for speed in [None, *speeds]:
        for outcome in GT_OUTCOMES:
            cells = []
            for n in names:
                groups = columns[n]['gts']
                counts = [groups[s] for s in groups if speed is None or s == speed]
                total = sum(sum(c.values()) for c in counts)
                cells.append(f'{100 * sum(c[outcome] for c in counts) / total:.1f} %' if total else 'n/a')
            what = 'ground truths' if speed is None else f'{speed} ground truths'
            lines.append(f'| {what}: {outcome} | ' + ' | '.join(cells) + ' |')
    for field, label in (('fp_on_key_box', 'false positives on a key-frame box (ghost or lag), per 100 frames'),
                         ('fp_other', 'other false positives, per 100 frames')):
        cells = [f'{100 * columns[n][field] / max(columns[n]["frames"], 1):.1f}' for n in names]
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'
