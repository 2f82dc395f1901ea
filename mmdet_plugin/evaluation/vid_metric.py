"""Video detection mAP@50, overall and split by object speed (FGFA, Zhu et al. ICCV 2017, section 4).

An object's *motion IoU* in a frame is the mean IoU of its box with its own boxes (same ``instance_id``) in the frames
within +-``motion_window`` (10) of that frame, where it is annotated; the frame itself is excluded. Objects are
``slow`` (motion IoU > 0.9), ``medium`` (0.7 to 0.9) or ``fast`` (< 0.7). For a speed's mAP the ground truths of the
other speeds are ignored: a detection matching them is neither a true nor a false positive (``eval_map`` with
``bboxes_ignore``). A box with no neighbour in the window (one-frame videos, e.g. ImageNet DET images) has no speed:
it counts in the overall mAP and is ignored in all three speed splits.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np
from mmengine.logging import MMLogger

from mmdet.evaluation.functional import eval_map
from mmdet.evaluation.metrics.base_video_metric import BaseVideoMetric
from mmdet.registry import METRICS

from lightflow.data.motion_iou import box_iou, motion_ious, speed_of

__all__ = ['VIDMotionMetric', 'box_iou', 'masked_map', 'motion_ious', 'speed_of', 'vid_map']


def _get(sample: Any, key: str, default: Any = None) -> Any:
    """Read ``key`` from a data sample given as a BaseDataElement or as a dict (``to_dict`` output)."""
    if isinstance(sample, dict):
        return sample.get(key, default)
    if key in sample:
        return sample.get(key)
    return sample.metainfo.get(key, default) if hasattr(sample, 'metainfo') else default


def _numpy(x: Any, shape: tuple[int, ...], dtype) -> np.ndarray:
    if x is None:
        return np.zeros(shape, dtype)
    if hasattr(x, 'tensor'):  # mmdet box types
        x = x.tensor
    if hasattr(x, 'detach'):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype).reshape((-1,) + shape[1:])


def masked_map(results: Sequence[dict], keep: Sequence[np.ndarray] | None, num_classes: int, iou_thr: float = 0.5,
               imagenet_protocol: bool = False, nproc: int = 1) -> tuple[float, int]:
    """mAP@``iou_thr`` over a subset of the ground truths: the others are ignored, so a detection that matches one is
    neither a true nor a false positive (how the speed splits and :mod:`.key_states` count).

    Args:
        results: per-frame results of :class:`VIDMotionMetric` (``gt_boxes``, ``gt_labels``, ``gt_ignore``,
            ``pred_boxes`` (N, 4), ``pred_scores``, ``pred_labels``).
        keep: per frame, a bool (G,) mask of the ground truths that count; None: all of them.

    Returns:
        (mAP in [0, 1], NaN when no ground truth counts; the number of ground truths counted)
    """
    det_results, annotations, num_gts = [], [], 0
    for index, r in enumerate(results):
        dets = np.concatenate([r['pred_boxes'].reshape(-1, 4), r['pred_scores'].reshape(-1, 1)], 1)
        det_results.append([dets[r['pred_labels'] == c].astype(np.float32) for c in range(num_classes)])
        counted = ~r['gt_ignore'] if keep is None else ~r['gt_ignore'] & np.asarray(keep[index], bool)
        num_gts += int(counted.sum())
        annotations.append(dict(
            bboxes=r['gt_boxes'][counted].astype(np.float32), labels=r['gt_labels'][counted],
            bboxes_ignore=r['gt_boxes'][~counted].astype(np.float32).reshape(-1, 4),
            labels_ignore=r['gt_labels'][~counted]))
    if num_gts == 0:
        return float('nan'), 0  # no object in the subset: an AP is undefined, not 0
    mean_ap, _ = eval_map(det_results, annotations, iou_thr=iou_thr, dataset='vid' if imagenet_protocol else None,
                          logger='silent', nproc=nproc)
    return float(mean_ap), num_gts


@METRICS.register_module()
class VIDMotionMetric(BaseVideoMetric):
    """mAP@50 overall and for slow / medium / fast objects (FGFA's motion-IoU split).

    A ``BaseVideoMetric``: ``evaluate`` keeps every processed frame (mmengine's ``BaseMetric`` would cut the results
    to ``size``, which loops pass as the number of VIDEOS of a video dataset).

    Reads per frame: metainfo ``video_id``, ``frame_id``, ``instances`` (the raw annotations in original-image
    coordinates, kept by ``PackTrackInputs``; fall back: ``gt_instances`` scaled back by ``scale_factor``) with
    ``instance_id``, and ``pred_instances`` (``bboxes`` in original coordinates, ``scores``, ``labels``).
    Accepts ``TrackDataSample`` outputs (any T; every frame is evaluated) or plain ``DetDataSample`` s.

    Args:
        iou_thr: IoU for a true positive.
        motion_window: frames on each side used for the motion IoU (FGFA: 10).
        speed_thresholds: (lo, hi) motion-IoU bounds: fast < lo <= medium <= hi < slow.
        imagenet_protocol: use ImageNet's small-object rule ``thr = min(iou_thr, wh / ((w + 10)(h + 10)))``
            (mmdet's ``tpfp_imagenet``, the official VID evaluation) instead of a plain IoU threshold.
        nproc: worker processes for ``eval_map``.
    """

    default_prefix = 'vid'

    def __init__(self, iou_thr: float = 0.5, motion_window: int = 10,
                 speed_thresholds: tuple[float, float] = (0.7, 0.9), imagenet_protocol: bool = False,
                 nproc: int = 1, collect_device: str = 'cpu', prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not 0 < iou_thr <= 1:
            raise ValueError(f'iou_thr must be in (0, 1], got {iou_thr}')
        if motion_window < 1:
            raise ValueError(f'motion_window must be >= 1, got {motion_window}')
        lo, hi = speed_thresholds
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f'speed_thresholds must be 0 <= lo <= hi <= 1, got {speed_thresholds}')
        self.iou_thr = iou_thr
        self.motion_window = motion_window
        self.speed_thresholds = (float(lo), float(hi))
        self.imagenet_protocol = imagenet_protocol
        self.nproc = nproc

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        for sample in data_samples:
            frames = _get(sample, 'video_data_samples')
            for frame in (frames if frames is not None else [sample]):
                self.results.append(self._frame_result(frame))

    @staticmethod
    def _frame_result(frame: Any) -> dict:
        video_id, frame_id = _get(frame, 'video_id'), _get(frame, 'frame_id')
        if video_id is None or frame_id is None:
            raise ValueError(f'VIDMotionMetric needs video_id and frame_id in every data sample\'s metainfo, got '
                             f'video_id={video_id}, frame_id={frame_id} (img_path={_get(frame, "img_path")})')
        instances = _get(frame, 'instances')
        if instances is not None:
            gt_boxes = np.array([i['bbox'] for i in instances], np.float64).reshape(-1, 4)
            gt_labels = np.array([i['bbox_label'] for i in instances], np.int64)
            gt_ids = np.array([i.get('instance_id', -1 - k) for k, i in enumerate(instances)], np.int64)
            gt_ignore = np.array([bool(i.get('ignore_flag', 0)) for i in instances], bool)
        else:
            gt = _get(frame, 'gt_instances')
            gt_get = (lambda k: gt.get(k) if isinstance(gt, dict) else getattr(gt, k, None)) if gt is not None \
                else (lambda k: None)
            gt_boxes = _numpy(gt_get('bboxes'), (0, 4), np.float64)
            scale = _get(frame, 'scale_factor')
            if scale is not None and len(gt_boxes):
                gt_boxes = gt_boxes / np.tile(np.asarray(scale, np.float64), 2)
            gt_labels = _numpy(gt_get('labels'), (0,), np.int64)
            gt_ids = _numpy(gt_get('instances_ids'), (0,), np.int64)
            if len(gt_ids) != len(gt_boxes):
                raise ValueError(f'VIDMotionMetric: frame {frame_id} of video {video_id} has {len(gt_boxes)} '
                                 f'gt boxes but {len(gt_ids)} instances_ids (load them with LoadTrackAnnotations)')
            gt_ignore = np.zeros(len(gt_boxes), bool)
        pred = _get(frame, 'pred_instances')
        pred_get = (lambda k: pred.get(k) if isinstance(pred, dict) else getattr(pred, k, None)) \
            if pred is not None else (lambda k: None)
        return dict(video_id=int(video_id), frame_id=int(frame_id), gt_boxes=gt_boxes, gt_labels=gt_labels,
                    gt_ids=gt_ids, gt_ignore=gt_ignore,
                    pred_boxes=_numpy(pred_get('bboxes'), (0, 4), np.float32),
                    pred_scores=_numpy(pred_get('scores'), (0,), np.float32),
                    pred_labels=_numpy(pred_get('labels'), (0,), np.int64))

    def compute_metrics(self, results: list) -> dict[str, float]:
        logger = MMLogger.get_current_instance()
        classes = (self.dataset_meta or {}).get('classes')
        num_classes = len(classes) if classes else 1 + max(
            [int(r['gt_labels'].max()) for r in results if len(r['gt_labels'])]
            + [int(r['pred_labels'].max()) for r in results if len(r['pred_labels'])] + [0])

        # Motion IoU per GT, computed within each video over all its evaluated frames (any order).
        by_video = defaultdict(list)
        for r in results:
            by_video[r['video_id']].append(r)
        speeds = {}
        for video_id, frames in by_video.items():
            seen = set()
            for r in frames:
                if r['frame_id'] in seen:
                    raise ValueError(f'VIDMotionMetric: frame {r["frame_id"]} of video {video_id} was evaluated '
                                     'twice (a sampler that repeats frames?)')
                seen.add(r['frame_id'])
            fids = np.concatenate([np.full(len(r['gt_ids']), r['frame_id']) for r in frames])
            ids = np.concatenate([r['gt_ids'] for r in frames])
            boxes = np.concatenate([r['gt_boxes'] for r in frames]).reshape(-1, 4)
            speed = speed_of(motion_ious(fids, ids, boxes, self.motion_window), self.speed_thresholds)
            start = 0
            for r in frames:
                speeds[id(r)] = speed[start:start + len(r['gt_ids'])]
                start += len(r['gt_ids'])

        metrics = {}
        counts = {}
        for name, speed_index in (('mAP', None), ('mAP_slow', 0), ('mAP_medium', 1), ('mAP_fast', 2)):
            keep = None if speed_index is None else [speeds[id(r)] == speed_index for r in results]
            metrics[name], counts[name] = masked_map(results, keep, num_classes, self.iou_thr, self.imagenet_protocol,
                                                     self.nproc)
        logger.info('VID mAP@%.2f: ' % self.iou_thr + ', '.join(
            f'{k}={v:.4f} ({counts[k]} gts)' for k, v in metrics.items()))
        return metrics


def vid_map(records: Sequence[tuple[dict, Any]], classes: Sequence[str]) -> float:
    """mAP@50 (%) of per-frame detections from outside mmdet (the deployed runtime's), computed as
    :class:`VIDMotionMetric` computes it.

    Args:
        records: ``(frame info, detections)`` per frame: the dataset's frame info (``video_id``, ``frame_id``,
            ``instances``) and an object with ``boxes`` (N, 4) xyxy, ``scores`` (N,), ``labels`` (N,).
        classes: the class names, in label order.
    """
    metric = VIDMotionMetric()
    metric.dataset_meta = {'classes': list(classes)}
    results = [metric._frame_result(dict(video_id=info['video_id'], frame_id=info['frame_id'],
                                         instances=info['instances'],
                                         pred_instances=dict(bboxes=d.boxes, scores=d.scores, labels=d.labels)))
               for info, d in records]
    return 100 * metric.compute_metrics(results)['mAP']
