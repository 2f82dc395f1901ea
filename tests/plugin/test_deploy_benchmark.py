"""The runtime's detections scored as VIDMotionMetric scores them (``vid_metric.vid_map``), and
tools/benchmark_deploy.py's report ratios (``mmdet_plugin.deploy_benchmark.report_tables``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lightflow_deploy import Detections
from mmdet_plugin.deploy_benchmark import report_tables
from mmdet_plugin.evaluation.vid_metric import vid_map

REPO = Path(__file__).resolve().parents[2]


def _frames(n: int = 12) -> list[dict]:
    """One video, one object sliding right (instances as the dataset gives them: x1y1x2y2, bbox_label)."""
    return [dict(video_id=1, frame_id=i, instances=[dict(bbox=[10 + 2 * i, 20, 50 + 2 * i, 60], bbox_label=1,
                                                         instance_id=7, ignore_flag=0)]) for i in range(n)]


def test_vid_map_scores_runtime_detections():
    frames = _frames()
    exact = [(f, Detections(np.asarray([f['instances'][0]['bbox']], np.float32), np.asarray([0.9], np.float32),
                            np.asarray([1]))) for f in frames]
    assert vid_map(exact, ['a', 'b']) == pytest.approx(100.0)
    # Half of the frames detected with the wrong class: recall 1/2, precision 1/2 at the top -> AP 50 (VOC area).
    half = [(f, Detections(d.boxes, d.scores, np.asarray([1 if i % 2 else 0]))) for i, (f, d) in enumerate(exact)]
    assert vid_map(half, ['a', 'b']) == pytest.approx(50.0, abs=1.0)
    shifted = [(f, Detections(d.boxes + 30, d.scores, d.labels)) for f, d in exact]  # IoU < 0.5 everywhere
    assert vid_map(shifted, ['a', 'b']) == pytest.approx(0.0)


def test_report_ratio_to_the_single_frame_detector():
    row = dict(key_ms=1.0, nonkey_ms=float('nan'), key_fraction=1.0, mAP=50.0)
    rows = [dict(row, detector='single', setting='every frame', threads=1, ms=20.0, fps=50.0),
            dict(row, detector='video', setting='interval 10', threads=1, ms=4.0, fps=250.0)]
    text = report_tables(rows, [], {}, 'x', 'caveat')
    line = next(s for s in text.splitlines() if 'interval 10' in s)
    assert '| 4.00 | 250.0 | 0.20 |' in line
