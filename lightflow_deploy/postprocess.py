"""Decoding + NMS of a RetinaNet-style head in numpy, as mmdet's ``BaseDenseHead.predict_by_feat`` does it, and the
adaptive key-frame policy's motion statistic (``mmdet_plugin.models.key_frame_policy.motion_statistic``)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ['Detections', 'grid_anchors', 'delta2bbox', 'nms', 'decode_detections', 'motion_statistic']


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


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS as mmcv's ``nms`` (offset 0): indices kept, best score first."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind='stable')
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > iou_threshold)]
    return np.asarray(keep, dtype=np.int64)


def decode_detections(outputs: list[np.ndarray], head: dict, img_shape: tuple[int, int],
                      scale_factor: tuple[float, float], anchors: list[np.ndarray]) -> Detections:
    """Raw head outputs (``cls_score0..L-1``, ``bbox_pred0..L-1``, each (1, A * C or A * 4, h, w)) -> detections in
    frame pixels: sigmoid scores, per-level ``nms_pre`` top scores above ``score_thr``, decode, rescale by
    1 / ``scale_factor`` (w, h), ``min_bbox_size``, per-class NMS (``class_agnostic``), ``max_per_img``."""
    cfg, num_classes = head['test_cfg'], head['num_classes']
    levels = len(outputs) // 2
    all_scores, all_labels, all_deltas, all_anchors = [], [], [], []
    for lvl in range(levels):
        cls = outputs[lvl][0].transpose(1, 2, 0).reshape(-1, num_classes)
        deltas = outputs[levels + lvl][0].transpose(1, 2, 0).reshape(-1, 4)
        scores = 1 / (1 + np.exp(-cls))
        valid = np.flatnonzero(scores.reshape(-1) > cfg['score_thr'])
        flat = scores.reshape(-1)[valid]
        num_topk = min(cfg['nms_pre'], valid.size)  # mmdet's filter_scores_and_topk (nms_pre=-1 drops the last)
        order = np.argsort(-flat, kind='stable')[:num_topk]
        idx = valid[order]
        rows, labels = idx // num_classes, idx % num_classes
        all_scores.append(flat[order]), all_labels.append(labels)
        all_deltas.append(deltas[rows]), all_anchors.append(anchors[lvl][rows])
    scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
    boxes = delta2bbox(np.concatenate(all_anchors), np.concatenate(all_deltas), head['bbox_coder'], img_shape)
    boxes = boxes / np.asarray([scale_factor[0], scale_factor[1]] * 2, np.float32)
    if cfg['min_bbox_size'] >= 0:
        ok = ((boxes[:, 2] - boxes[:, 0]) > cfg['min_bbox_size']) & ((boxes[:, 3] - boxes[:, 1]) > cfg['min_bbox_size'])
        boxes, scores, labels = boxes[ok], scores[ok], labels[ok]
    if boxes.shape[0]:
        shifted = boxes
        if not cfg['class_agnostic']:  # mmcv's batched_nms: one NMS over boxes moved apart per class
            shifted = boxes + (labels.astype(np.float32) * (boxes.max() + np.float32(1)))[:, None]
        keep = nms(shifted, scores, cfg['iou_threshold'])[:cfg['max_per_img']]
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
