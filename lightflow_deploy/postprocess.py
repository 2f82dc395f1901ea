"""Decoding + NMS of a RetinaNet-style head in numpy, as mmdet's ``BaseDenseHead.predict_by_feat`` does it, and the
adaptive key-frame policy's motion statistic (``mmdet_plugin.models.key_frame_policy.motion_statistic``)."""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

__all__ = ['Detections', 'grid_anchors', 'delta2bbox', 'nms', 'batched_nms', 'decode_detections',
           'motion_statistic']


@dataclass
class Detections:
    """One frame's detections: ``boxes`` (K, 4) x1, y1, x2, y2 in pixels of the frame as given; ``scores`` (K,);
    ``labels`` (K,) int64 class indices, best score first."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def to_list(self, classes: list[str] | None = None) -> list[dict]:
        """JSON-ready: one dict per detection (box rounded to 0.01 px)."""
        return [{'box': [round(float(v), 2) for v in b], 'score': round(float(s), 5), 'label': int(c),
                 **({'class': classes[int(c)]} if classes else {})}
                for b, s, c in zip(self.boxes, self.scores, self.labels)]


def grid_anchors(base_anchors: np.ndarray, stride: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    """(h * w * A, 4) anchors of one level: ``base_anchors`` (A, 4) shifted to every cell, cell-major as mmdet's
    ``AnchorGenerator.single_level_grid_priors``."""
    h, w = size
    xs = np.arange(w, dtype=np.float32) * np.float32(stride[0])
    ys = np.arange(h, dtype=np.float32) * np.float32(stride[1])
    xx, yy = np.tile(xs, h), np.repeat(ys, w)
    shifts = np.stack([xx, yy, xx, yy], axis=-1)
    return (base_anchors[None].astype(np.float32) + shifts[:, None]).reshape(-1, 4)


def delta2bbox(rois: np.ndarray, deltas: np.ndarray, coder: dict, max_shape: tuple[int, int]) -> np.ndarray:
    """mmdet's ``DeltaXYWHBBoxCoder.decode``: (K, 4) anchors and deltas -> (K, 4) boxes, clipped to ``max_shape``."""
    d = deltas * np.asarray(coder['stds'], np.float32) + np.asarray(coder['means'], np.float32)
    dxy, dwh = d[:, :2], d[:, 2:]
    pxy = (rois[:, :2] + rois[:, 2:]) * np.float32(0.5)
    pwh = rois[:, 2:] - rois[:, :2]
    dxy_wh = pwh * dxy
    max_ratio = np.float32(abs(math.log(coder['wh_ratio_clip'])))
    if coder['add_ctr_clamp']:
        c = np.float32(coder['ctr_clamp'])
        dxy_wh = np.clip(dxy_wh, -c, c)
        dwh = np.minimum(dwh, max_ratio)
    else:
        dwh = np.clip(dwh, -max_ratio, max_ratio)
    gxy = pxy + dxy_wh
    gwh = pwh * np.exp(dwh)
    boxes = np.concatenate([gxy - gwh * np.float32(0.5), gxy + gwh * np.float32(0.5)], axis=1)
    if coder['clip_border']:
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, max_shape[1])
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, max_shape[0])
    return boxes


_SCRATCH = threading.local()  # per-thread work buffers: fresh (G, m, m) arrays would page-fault on every frame


def _buffers(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(G, m, m) float32 work buffers a, b, c and a bool one, reused between calls of the same or smaller size."""
    g, m, _ = shape
    cached = getattr(_SCRATCH, 'buffers', None)
    if cached is None or cached[0].size < g * m * m:
        size = max(g * m * m, 8 * 128 * 128)
        cached = (np.empty(size, np.float32), np.empty(size, np.float32), np.empty(size, np.float32),
                  np.empty(size, bool))
        _SCRATCH.buffers = cached
    return tuple(c[:g * m * m].reshape(shape) for c in cached)


def _greedy_keep(boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS of (G, m, 4) groups of boxes, each sorted by score (best first), boxes of different groups never
    compared: a (G, m) bool keep mask, exactly mmcv's ``nms`` per group (offset 0, float32 IoU, suppressed when
    IoU > threshold). Vectorised: the suppression graph's fixed point (a box is kept iff no kept box before it
    overlaps it), iterated from "keep all"; reached in as many rounds as the longest suppression chain (2-4)."""
    g, m = boxes.shape[:2]
    keep = np.ones((g, m), bool)
    if m <= 1:
        return keep
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[..., k]) for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    w, h, t, over = _buffers((g, m, m))
    np.minimum(x2[:, :, None], x2[:, None], out=w)
    np.subtract(w, np.maximum(x1[:, :, None], x1[:, None], out=t), out=w)
    np.maximum(w, 0, out=w)
    np.minimum(y2[:, :, None], y2[:, None], out=h)
    np.subtract(h, np.maximum(y1[:, :, None], y1[:, None], out=t), out=h)
    np.maximum(h, 0, out=h)
    inter = np.multiply(w, h, out=w)
    union = np.subtract(np.add(areas[:, :, None], areas[:, None], out=h), inter, out=h)
    np.greater(np.divide(inter, union, out=t), np.float32(iou_threshold), out=over)
    over &= _upper(m)  # over[., j, i]: j (better) would suppress i
    if not over.any():
        return keep
    weights = t
    np.copyto(weights, over)
    for _ in range(m):
        new = (keep[:, None].astype(np.float32) @ weights)[:, 0] == 0
        if np.array_equal(new, keep):
            break
        keep = new
    return keep


_UPPER: dict[int, np.ndarray] = {}


def _upper(m: int) -> np.ndarray:
    """The strict upper triangle of an (m, m) bool matrix (cached)."""
    if m not in _UPPER:
        _UPPER[m] = np.triu(np.ones((m, m), bool), 1)
    return _UPPER[m]


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS as mmcv's ``nms`` (offset 0): indices kept, best score first."""
    order = np.argsort(-scores, kind='stable')
    return order[_greedy_keep(boxes[order][None], iou_threshold)[0]]


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float,
                class_agnostic: bool = False, max_num: int = -1) -> np.ndarray:
    """mmcv's ``batched_nms`` (boxes moved apart per class by ``label * (max + 1)``, one NMS) and mmdet's
    ``[:max_per_img]`` (``max_num``, -1: all): indices kept, best score first.

    Moved apart, boxes of different classes never overlap, so the NMS runs on the classes as padded groups, in one
    batch (the same moved coordinates, the same IoU values; sum n_c^2 pairs instead of n^2). Greedy NMS decides a
    box from the better ones only, so with ``max_num`` it first runs on a prefix of the boxes by score (a little
    longer than the previous call of this thread needed: frames of a video are alike) and stops there when the
    prefix already gives ``max_num`` kept boxes (exact); otherwise on all of them."""
    if class_agnostic:
        return nms(boxes, scores, iou_threshold)[:max_num if max_num > 0 else None]
    order = np.argsort(-scores, kind='stable')
    boxes, labels = boxes[order], labels[order]
    boxes = boxes + (labels.astype(np.float32) * (boxes.max() + np.float32(1)))[:, None]
    if max_num <= 0:
        return order[_class_keep(boxes, labels, iou_threshold)]
    last = getattr(_SCRATCH, 'nms_rank', None)  # boxes the previous call needed for max_num kept
    prefix = max(2 * max_num, int(1.2 * last) + 8) if last else len(order)
    if prefix < 0.85 * len(order):
        keep = _class_keep(boxes[:prefix], labels[:prefix], iou_threshold)
        if keep.sum() >= max_num:
            kept = np.flatnonzero(keep)[:max_num]
            _SCRATCH.nms_rank = int(kept[-1]) + 1
            return order[kept]
    kept = np.flatnonzero(_class_keep(boxes, labels, iou_threshold))[:max_num]
    _SCRATCH.nms_rank = int(kept[-1]) + 1 if len(kept) == max_num else None
    return order[kept]


def _class_keep(boxes: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Keep mask of per-class greedy NMS of (moved, best first) boxes, the classes as padded groups in one batch."""
    by_class = np.argsort(labels, kind='stable')  # per class, still best score first
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    group = np.repeat(np.arange(counts.size), counts)
    slot = np.arange(labels.size) - np.repeat(np.cumsum(counts) - counts, counts)
    # Padding: 1 px boxes 10 px above every real box, apart from each other.
    pad = np.arange(counts.max(), dtype=np.float32) * 3
    top = np.full_like(pad, min(float(boxes[:, 1].min()), 0.0) - 10)
    padded = np.stack([pad, top, pad + 1, top + 1], 1)
    padded = np.repeat(padded[None], counts.size, axis=0)
    padded[group, slot] = boxes[by_class]
    keep = np.zeros(labels.size, bool)
    keep[by_class] = _greedy_keep(padded, iou_threshold)[group, slot]
    return keep


def _level_candidates(cls: np.ndarray, num_classes: int, score_thr: float, nms_pre: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One level's (A * C, h, w) logits -> (scores, rows, labels) of mmdet's ``filter_scores_and_topk``: sigmoid
    scores > ``score_thr``, the ``nms_pre`` best (best first; ties in mmdet's (position, anchor, class) order).

    Pruned before anything else: only logits above the threshold's logit (less a margin; the exact test is on the
    sigmoid) are read, in the graph's channel-major layout (no transpose of the whole map)."""
    hw = cls.shape[1] * cls.shape[2]
    flat = cls.reshape(-1)
    if score_thr > 0:
        thr_logit = math.log(score_thr / (1 - score_thr)) - 1e-3 if score_thr < 1 else math.inf
        idx = np.flatnonzero(flat > thr_logit)
    else:
        idx = np.arange(flat.size)
    scores = 1 / (1 + np.exp(-flat[idx]))
    ok = scores > np.float32(score_thr)
    idx, scores = idx[ok], scores[ok]
    channel, pos = np.divmod(idx, hw)
    anchor, labels = np.divmod(channel, num_classes)
    rows = pos * (cls.shape[0] // num_classes) + anchor
    if 0 < nms_pre < scores.size:  # cut to the nms_pre best before sorting (ties at the cut: any of them)
        part = np.argpartition(-scores, nms_pre - 1)[:nms_pre]
        scores, rows, labels = scores[part], rows[part], labels[part]
    order = np.lexsort((rows * num_classes + labels, -scores))
    return scores[order], rows[order], labels[order]


def decode_detections(outputs: list[np.ndarray], head: dict, img_shape: tuple[int, int],
                      scale_factor: tuple[float, float], anchors: list[np.ndarray]) -> Detections:
    """Raw head outputs (``cls_score0..L-1``, ``bbox_pred0..L-1``, each (1, A * C or A * 4, h, w)) -> detections in
    frame pixels: sigmoid scores, per-level ``nms_pre`` top scores above ``score_thr``, decode, rescale by
    1 / ``scale_factor`` (w, h), ``min_bbox_size``, per-class NMS (``class_agnostic``), ``max_per_img``: mmdet's
    ``BaseDenseHead.predict_by_feat`` with only the selected anchors decoded."""
    cfg, num_classes = head['test_cfg'], head['num_classes']
    levels = len(outputs) // 2
    all_scores, all_labels, all_deltas, all_anchors = [], [], [], []
    for lvl in range(levels):
        scores, rows, labels = _level_candidates(outputs[lvl][0], num_classes, cfg['score_thr'], cfg['nms_pre'])
        reg = outputs[levels + lvl][0]  # (A * 4, h, w): gather the selected rows' 4 deltas
        hw = reg.shape[1] * reg.shape[2]
        a = reg.shape[0] // 4
        pos, anchor = np.divmod(rows, a)
        deltas = reg.reshape(a, 4, hw)[anchor, :, pos]
        all_scores.append(scores), all_labels.append(labels)
        all_deltas.append(deltas), all_anchors.append(anchors[lvl][rows])
    scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
    boxes = delta2bbox(np.concatenate(all_anchors), np.concatenate(all_deltas), head['bbox_coder'], img_shape)
    boxes = boxes / np.asarray([scale_factor[0], scale_factor[1]] * 2, np.float32)
    if cfg['min_bbox_size'] >= 0:
        ok = ((boxes[:, 2] - boxes[:, 0]) > cfg['min_bbox_size']) & ((boxes[:, 3] - boxes[:, 1]) > cfg['min_bbox_size'])
        boxes, scores, labels = boxes[ok], scores[ok], labels[ok]
    if boxes.shape[0]:
        keep = batched_nms(boxes, scores, labels, cfg['iou_threshold'], cfg['class_agnostic'], cfg['max_per_img'])
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    return Detections(boxes.astype(np.float32), scores.astype(np.float32), labels.astype(np.int64))


def motion_statistic(flow: np.ndarray, frame_size: tuple[int, int], statistic: str) -> float:
    """``'mean'`` / ``'p90'`` / ``'p90_relative'`` of a (1, 2, h, w) flow's magnitude in pixels of a ``frame_size``
    frame, as ``key_frame_policy.motion_statistic`` (torch's median: the lower middle value)."""
    h, w = flow.shape[-2:]
    scale = np.asarray([frame_size[1] / w, frame_size[0] / h], np.float32).reshape(1, 2, 1, 1)
    flow = flow.astype(np.float32) * scale
    if statistic == 'p90_relative':
        flat = np.sort(flow.reshape(1, 2, -1), axis=2)
        flow = flow - flat[:, :, (flat.shape[2] - 1) // 2][..., None, None]
    magnitude = np.sqrt((flow ** 2).sum(axis=1)).reshape(-1)
    if statistic == 'mean':
        return float(magnitude.mean())
    return float(np.quantile(magnitude, 0.9))
