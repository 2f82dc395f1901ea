"""lightflow.metrics against hand-computed values on tiny fields."""
from __future__ import annotations

import math

import pytest
import torch

from lightflow.metrics import flow_metric_sums, flow_metrics, metrics_from_sums, valid_flow_mask


def _field(pairs: list[tuple[float, float]]) -> torch.Tensor:
    """A (2, 1, W) flow from a list of (u, v) vectors."""
    return torch.tensor(pairs, dtype=torch.float32).T.reshape(2, 1, len(pairs))


def test_hand_computed_values():
    gt = _field([(0, 0), (3, 4), (100, 0), (10, 0)])
    pred = _field([(0.5, 0), (0, 0), (104, 3), (10, 2)])
    # EPEs: 0.5, 5, 5, 2.  <1: 1 pixel; <3: 2; <5: 2 (5 is not < 5).
    # Fl-all: EPE > 3 and > 5 % of |gt|: pixel 1 (5 > 0.25) yes; pixel 2 (5 > 3 but not > 5) no; others no -> 1/4.
    m = flow_metrics(pred, gt)
    assert m['EPE'] == pytest.approx((0.5 + 5 + 5 + 2) / 4)
    assert m['1px'] == pytest.approx(0.25)
    assert m['3px'] == pytest.approx(0.5)
    assert m['5px'] == pytest.approx(0.5)
    assert m['Fl-all'] == pytest.approx(25.0)
    assert m['count'] == 4 and m['epe_sum'] == pytest.approx(12.5)


def test_nan_and_unknown_gt_are_masked():
    gt = _field([(1, 0), (float('nan'), 0), (1e9, 1e9), (0, float('inf'))])
    pred = _field([(1, 1), (0, 0), (0, 0), (0, 0)])
    m = flow_metrics(pred, gt)
    assert m['count'] == 1
    assert m['EPE'] == pytest.approx(1.0)
    assert all(math.isfinite(m[k]) for k in ('EPE', '1px', '3px', '5px', 'Fl-all'))


def test_valid_mask_and_batch_and_accumulation():
    gt = torch.zeros(2, 2, 2, 2)
    pred = torch.zeros(2, 2, 2, 2)
    pred[0, 0] = 2.0  # image 0: every pixel EPE 2
    pred[1, 1, 0, 0] = 10.0  # image 1: one pixel EPE 10, masked out below
    valid = torch.ones(2, 2, 2, dtype=torch.bool)
    valid[1, 0, 0] = False
    m = flow_metrics(pred, gt, valid)
    assert m['count'] == 7
    assert m['EPE'] == pytest.approx(8 / 7)
    # Accumulating per-image sums gives the same per-pixel dataset average as one batched call.
    parts = [flow_metric_sums(pred[i], gt[i], valid[i]) for i in range(2)]
    total = {k: sum(p[k] for p in parts) for k in parts[0]}
    assert metrics_from_sums(total)['EPE'] == pytest.approx(m['EPE'])


def test_no_valid_pixel_gives_nan_and_bad_shapes_raise():
    gt = torch.full((2, 3, 3), float('nan'))
    assert math.isnan(flow_metrics(torch.zeros(2, 3, 3), gt)['EPE'])
    with pytest.raises(ValueError, match='pred and gt'):
        flow_metrics(torch.zeros(2, 3, 3), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match='valid must have shape'):
        valid_flow_mask(torch.zeros(2, 3, 3), torch.ones(3, 4, dtype=torch.bool))
