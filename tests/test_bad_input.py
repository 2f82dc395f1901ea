"""Silent garbage refused: integer maps in flow_warp, non-finite images in estimate_flow, unknown flow in KITTI files,
and models made under torch.inference_mode()."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import lightflow
from lightflow import estimate_flow, flow_warp, read_kitti_flow, write_kitti_flow


def test_flow_warp_refuses_integer_tensors():
    x = torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(ValueError, match='floating-point x and flow .*torch.uint8'):
        flow_warp(x, torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match='torch.int64'):
        flow_warp(x.float(), torch.zeros(1, 2, 8, 8, dtype=torch.long))
    assert torch.equal(flow_warp(x.float(), torch.zeros(1, 2, 8, 8)), x.float())


def test_estimate_flow_refuses_non_finite_images():
    torch.manual_seed(0)
    model = lightflow.lightflow_w0_5().eval()
    img = torch.rand(3, 64, 64) * 255
    bad = img.clone()
    bad[1, 5, 7] = float('nan')
    bad[0, 0, 0] = float('inf')
    with pytest.raises(ValueError, match=r'img2: 2 NaN/inf values'):
        estimate_flow(model, img, bad)
    with torch.inference_mode():
        assert torch.isfinite(estimate_flow(model, img, img)).all()


def test_model_made_under_inference_mode_runs_and_matches():
    torch.manual_seed(0)
    ref = lightflow.lightflow_w0_5().eval()
    with torch.inference_mode():
        inside = lightflow.lightflow_w0_5().eval()
        inside.load_state_dict(ref.state_dict())
    img1, img2 = torch.rand(1, 3, 64, 96) * 255, torch.rand(1, 3, 64, 96) * 255
    with torch.inference_mode():
        want = estimate_flow(ref, img1, img2)
        got = estimate_flow(inside, img1, img2)
    torch.testing.assert_close(got, want)


def test_kitti_writer_marks_unknown_flow_invalid(tmp_path):
    flow = np.random.default_rng(0).uniform(-20, 20, (6, 9, 2)).astype(np.float32)
    flow[1, 2] = np.nan
    flow[3, 4, 0] = 1e9  # Middlebury's unknown
    flow[5, 8, 1] = -np.inf
    write_kitti_flow(tmp_path / 'f.png', flow)
    back, valid = read_kitti_flow(tmp_path / 'f.png')
    assert not valid[1, 2] and not valid[3, 4] and not valid[5, 8]
    assert valid.sum() == 6 * 9 - 3
    np.testing.assert_allclose(back[valid], flow[valid], atol=1 / 64)
    with pytest.raises(ValueError, match='valid must be'):
        write_kitti_flow(tmp_path / 'g.png', flow, np.ones((2, 2), bool))
