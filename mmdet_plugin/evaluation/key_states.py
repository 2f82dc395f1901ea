"""mAP@50 split by the state of the key frame a frame's features come from: where key-frame aggregation can gain.

At key-frame interval l, a non-key frame is detected on its key's features warped to it. A key-frame aggregator
(the flow-guided GRU) can only beat propagation where that key is worse than its predecessors: the key is blurred,
or an object is hidden in it (absent or under half visible) that an earlier key saw. The splits below count the
frames and ground truths of each case, so the headroom of aggregation on a video set is measured, not guessed:
e.g. if non-key frames with a blurred key are 19 % of the frames and 7 points below those with a sharp key, repairing
every one of them is worth ~1.3 points overall.

Reads the synthetic VID set's per-frame ``blur`` (image field) and per-object ``visible`` (annotation field); on
a set without them (ImageNet VID) the blur rows are NaN and an annotated object counts as visible.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .vid_metric import masked_map

__all__ = ['KEY_STATE_SPLITS', 'fixed_keys', 'key_state_rows', 'key_state_table', 'load_cocovid_frames',
           'read_key_states']

HIDDEN_BELOW = 0.5  # an object under half visible at the key counts as hidden there

# name -> (does the frame count, given (is_key, key blurred)); (does a ground truth count, given its visibility at
# the key and at the key before); a None blur (a set without the field) makes the blur rows NaN.
KEY_STATE_SPLITS: dict[str, tuple[Callable, Callable]] = {
    'every frame': (lambda key, blur: True, lambda at_key, before: True),
    'key frames': (lambda key, blur: key, lambda at_key, before: True),
    'non-key frames': (lambda key, blur: not key, lambda at_key, before: True),
    'non-key, key blurred': (lambda key, blur: not key and blur is not None and blur > 0,
                             lambda at_key, before: True),
    'non-key, key sharp': (lambda key, blur: not key and blur is not None and blur == 0, lambda at_key, before: True),
    'non-key, object visible at the key': (lambda key, blur: not key, lambda at_key, before: at_key >= HIDDEN_BELOW),
    'non-key, object hidden at the key, seen by the key before': (
        lambda key, blur: not key, lambda at_key, before: at_key < HIDDEN_BELOW <= before),
    'non-key, object hidden at the key and the key before': (
        lambda key, blur: not key, lambda at_key, before: max(at_key, before) < HIDDEN_BELOW),
}


def load_cocovid_frames(ann_file: str | os.PathLike) -> tuple[dict, dict]:
    """A CocoVID json and ``{image id: (video_id, frame_id)}``: what the per-frame annotation fields are read by."""
    coco = json.loads(Path(ann_file).read_text(encoding='utf-8'))
    return coco, {im['id']: (im['video_id'], im['frame_id']) for im in coco['images']}


def read_key_states(ann_file: str | os.PathLike) -> tuple[dict, dict]:
    """The per-frame blur and per-object visibility of a CocoVID json.

    Returns:
        ``{(video_id, frame_id): blur length or None}``, ``{(video_id, frame_id, instance_id): visible fraction}``
        (an annotation without ``visible`` counts as fully visible).
    """
    coco, frames = load_cocovid_frames(ann_file)
    blur = {frames[im['id']]: im.get('blur') for im in coco['images']}
    visible = {(*frames[a['image_id']], a.get('instance_id')): float(a.get('visible', 1.0))
               for a in coco['annotations']}
    return blur, visible


def fixed_keys(results: Sequence[dict], interval: int) -> list[tuple[object, int]]:
    """Each result's key frame ``(video_id, frame_id)`` under a fixed interval: every ``interval``-th frame of a
    video, from its first (what ``FixedIntervalPolicy`` picks)."""
    by_video = defaultdict(list)
    for r in results:
        by_video[r['video_id']].append(r['frame_id'])
    key_of = {}
    for video, frame_ids in by_video.items():
        frame_ids = sorted(frame_ids)
        for position, frame_id in enumerate(frame_ids):
            key_of[(video, frame_id)] = (video, frame_ids[position - position % interval])
    return [key_of[(r['video_id'], r['frame_id'])] for r in results]


def key_state_rows(results: Sequence[dict], keys: Sequence[tuple[object, int]], blur: dict, visible: dict,
                   interval: int, num_classes: int) -> list[dict]:
    """mAP@50 of each split of :data:`KEY_STATE_SPLITS`.

    Args:
        results: per-frame results of ``VIDMotionMetric`` (``video_id``, ``frame_id``, ``gt_ids`` (G,), boxes).
        keys: each result's key frame ``(video_id, frame_id)`` (:func:`fixed_keys`).
        blur, visible: :func:`read_key_states`.
        interval: the key-frame interval (to find the key before a key).

    Returns:
        ``[{'split', 'mAP' (%), 'gts', 'frames'}]`` in the order of :data:`KEY_STATE_SPLITS`.
    """
    rows = []
    for name, (frame_counts, gt_counts) in KEY_STATE_SPLITS.items():
        chosen, keep = [], []
        for r, (video, key) in zip(results, keys, strict=True):
            if not frame_counts(r['frame_id'] == key, blur.get((video, key))):
                continue
            chosen.append(r)
            keep.append(np.array([gt_counts(visible.get((video, key, int(i)), 0.0),
                                            visible.get((video, key - interval, int(i)), 0.0))
                                  for i in r['gt_ids']], bool))
        has_blur = 'blur' not in name or any(v is not None for v in blur.values())
        value, gts = masked_map(chosen, keep, num_classes) if chosen and has_blur else (float('nan'), 0)
        rows.append(dict(split=name, mAP=100 * value, gts=gts, frames=len(chosen)))
    return rows


def key_state_table(columns: dict[str, list[dict]], interval: int) -> str:
    """Markdown: one row per split, one mAP@50 column per detector (``{name: key_state_rows(...)}``)."""
    names = list(columns)
    first = columns[names[0]]
    lines = [f'| key frame every {interval} frames: split | ground truths | frames | ' + ' | '.join(names) + ' |',
             '|---|---:|---:|' + '---:|' * len(names)]
    for index, row in enumerate(first):
        cells = ['n/a' if np.isnan(columns[n][index]['mAP']) else f'{columns[n][index]["mAP"]:.1f}' for n in names]
        lines.append(f'| {row["split"]} | {row["gts"]} | {row["frames"]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'
