"""VIDMotionMetric: FGFA motion IoU, speed split, and mAP through mmdet's eval_map."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmdet.registry import METRICS
from mmdet.structures import DetDataSample, TrackDataSample
from mmdet_plugin.evaluation import VIDMotionMetric, motion_ious, speed_of

CLASSES = ('disc', 'box', 'triangle')


def test_motion_iou_hand_computed():
    a, b, c = [0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10]  # IoU(a, b) = 50 / 150 = 1/3, IoU(a, c) = 1
    frame_ids = [0, 1, 2, 15, 0, 10, 0, 11]
    instance_ids = [1, 1, 1, 1, 2, 2, 3, 3]
    boxes = np.array([a, b, c, a, a, [0, 0, 10, 5], a, a], float)
    got = motion_ious(frame_ids, instance_ids, boxes, window=10)
    expected = [(1 / 3 + 1) / 2, (1 / 3 + 1 / 3) / 2, (1 + 1 / 3) / 2, math.nan,  # frame 15: no neighbour in +-10
                0.5, 0.5,                                                    # frames 0 and 10: just inside
                math.nan, math.nan]                                          # frames 0 and 11: outside
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_array_equal(speed_of(np.array([0.95, 0.9, 0.8, 0.7, 0.5, math.nan])), [0, 1, 1, 1, 2, -1])
    with pytest.raises(ValueError, match='must match'):
        motion_ious([0, 1], [1], boxes[:2])


def _video(num_frames: int = 25) -> list[list[dict]]:
    """Ground truth per frame: slow (static), medium (0.5 px/frame) and fast (5 px/frame) objects of size 40."""
    frames = []
    for t in range(num_frames):
        frames.append([
            dict(bbox=[10.0, 10.0, 50.0, 50.0], bbox_label=0, instance_id=1, ignore_flag=0),
            dict(bbox=[60.0 + 0.5 * t, 60.0, 100.0 + 0.5 * t, 100.0], bbox_label=1, instance_id=2, ignore_flag=0),
            dict(bbox=[5.0 * t, 120.0, 5.0 * t + 40, 160.0], bbox_label=2, instance_id=3, ignore_flag=0),
        ])
    return frames


def _sample(video_id: int, frame_id: int, gts: list[dict], preds: list[tuple[list[float], int, float]],
            track: bool = True, with_instances: bool = True, scale: float = 1.0):
    det = DetDataSample(metainfo=dict(video_id=video_id, frame_id=frame_id, scale_factor=(scale, scale)))
    if with_instances:
        det.set_metainfo(dict(instances=gts))
    det.gt_instances = InstanceData(
        bboxes=torch.tensor([g['bbox'] for g in gts]).reshape(-1, 4) * scale,
        labels=torch.tensor([g['bbox_label'] for g in gts], dtype=torch.long),
        instances_ids=torch.tensor([g['instance_id'] for g in gts], dtype=torch.long))
    det.pred_instances = InstanceData(
        bboxes=torch.tensor([p[0] for p in preds], dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor([p[1] for p in preds], dtype=torch.long),
        scores=torch.tensor([p[2] for p in preds], dtype=torch.float32))
    if not track:
        return det
    return TrackDataSample(video_data_samples=[det])


def _evaluate(samples, **kwargs) -> dict:
    metric = METRICS.build(dict(type='VIDMotionMetric', **kwargs))
    metric.dataset_meta = dict(classes=CLASSES)
    for sample in samples:
        metric.process({}, [sample])
    # As mmengine's ValLoop / TestLoop: size = len(dataset), the number of videos of a video dataset.
    return metric.evaluate(1)


def _perfect(video, drop=lambda t, g: False, **sample_kwargs):
    # Fast-object detections score highest: were they false positives in the slow / medium splits, those APs drop.
    score = {1: 0.8, 2: 0.9, 3: 1.0}
    return [_sample(1, t, gts, [(g['bbox'], g['bbox_label'], score[g['instance_id']]) for g in gts
                                if not drop(t, g)], **sample_kwargs)
            for t, gts in enumerate(video)]


def test_speed_classes_of_the_fixture():
    video = _video()
    fids = [t for t, gts in enumerate(video) for _ in gts]
    ids = [g['instance_id'] for gts in video for g in gts]
    boxes = np.array([g['bbox'] for gts in video for g in gts])
    speeds = speed_of(motion_ious(fids, ids, boxes)).reshape(len(video), 3)
    assert (speeds == [0, 1, 2]).all()


def test_perfect_detections_score_one():
    result = _evaluate(_perfect(_video()))
    assert result == {'vid/mAP': 1.0, 'vid/mAP_slow': 1.0, 'vid/mAP_medium': 1.0, 'vid/mAP_fast': 1.0}


def test_missed_fast_object_lowers_only_fast_and_overall():
    result = _evaluate(_perfect(_video(), drop=lambda t, g: g['instance_id'] == 3 and t % 2 == 0))
    assert result['vid/mAP_slow'] == 1.0 and result['vid/mAP_medium'] == 1.0
    # 12 of 25 fast boxes found at precision 1: AP = 12 / 25; the overall mAP averages the three classes.
    assert result['vid/mAP_fast'] == pytest.approx(12 / 25, abs=1e-6)
    assert result['vid/mAP'] == pytest.approx((1 + 1 + 12 / 25) / 3, abs=1e-6)


def test_false_positive_counts_in_its_own_split_only():
    video = _video()
    samples = _perfect(video)
    # A high-scoring box of class 0 far from everything in frame 3: a false positive for the slow class.
    extra = _sample(1, 3, video[3], [(g['bbox'], g['bbox_label'], 0.85) for g in video[3]] +
                    [([150.0, 10.0, 190.0, 50.0], 0, 0.99)])
    samples[3] = extra
    result = _evaluate(samples)
    # VOC all-point AP: the FP ranks first, then all 25 slow GT boxes are found, so precision rises to 25/26 at full
    # recall and the interpolated precision (the max to the right) is 25/26 at every recall level.
    assert result['vid/mAP_slow'] == pytest.approx(25 / 26, abs=1e-6)
    assert result['vid/mAP'] == pytest.approx((25 / 26 + 1 + 1) / 3, abs=1e-6)
    assert result['vid/mAP_medium'] == 1.0 and result['vid/mAP_fast'] == 1.0


def test_sample_forms_agree():
    video = _video()
    reference = _evaluate(_perfect(video, drop=lambda t, g: g['instance_id'] == 2 and t < 4))
    # Plain DetDataSamples, dicts (mmengine's to_dict), and GT read from gt_instances in a resized frame.
    assert _evaluate(_perfect(video, drop=lambda t, g: g['instance_id'] == 2 and t < 4, track=False)) == reference
    as_dicts = [s.to_dict() for s in _perfect(video, drop=lambda t, g: g['instance_id'] == 2 and t < 4)]
    assert _evaluate(as_dicts) == reference
    flat = [s.video_data_samples[0].to_dict()
            for s in _perfect(video, drop=lambda t, g: g['instance_id'] == 2 and t < 4)]
    assert isinstance(flat[0]['pred_instances'], dict)
    assert _evaluate(flat) == reference
    rescaled = _perfect(video, drop=lambda t, g: g['instance_id'] == 2 and t < 4, with_instances=False, scale=2.0)
    assert _evaluate(rescaled) == reference
    assert reference['vid/mAP_medium'] == pytest.approx(21 / 25, abs=1e-6) and reference['vid/mAP_slow'] == 1.0


def test_speed_without_objects_is_nan_and_imagenet_protocol():
    video = [[g for g in gts if g['instance_id'] == 1] for gts in _video(5)]
    result = _evaluate(_perfect(video), imagenet_protocol=True)
    assert result['vid/mAP'] == 1.0 and result['vid/mAP_slow'] == 1.0
    assert math.isnan(result['vid/mAP_medium']) and math.isnan(result['vid/mAP_fast'])


def test_errors():
    sample = _sample(1, 0, _video(1)[0], [])
    sample.video_data_samples[0].set_metainfo(dict(frame_id=None))
    with pytest.raises(ValueError, match='video_id and frame_id'):
        _evaluate([sample])
    with pytest.raises(ValueError, match='evaluated twice'):
        _evaluate(_perfect(_video(2)) * 2)
    with pytest.raises(ValueError, match='iou_thr'):
        VIDMotionMetric(iou_thr=0)
