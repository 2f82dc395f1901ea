"""Silent garbage refused: integer maps in flow_warp, non-finite images in estimate_flow, unknown flow in KITTI files,
and models made under torch.inference_mode()."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import lightflow
from lightflow import estimate_flow, flow_warp, read_kitti_flow, write_kitti_flow
from lightflow.frames import frame_names


def test_flow_warp_refuses_integer_tensors():
    x = torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8)
    with pytest.raises(ValueError, match='floating-point x and flow .*torch.uint8'):
        flow_warp(x, torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match='torch.int64'):
        flow_warp(x.float(), torch.zeros(1, 2, 8, 8, dtype=torch.long))
    assert torch.equal(flow_warp(x.float(), torch.zeros(1, 2, 8, 8), fast=False), x.float())
    assert (flow_warp(x.float(), torch.zeros(1, 2, 8, 8)) - x.float()).abs().max() <= 1e-5 * 255


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


def test_demo_flow_never_overwrites_its_inputs_and_names_outputs_uniquely(load_tool, tmp_path):
    import imageio.v3 as iio
    from lightflow.pretrained import save_pretrained

    weights = tmp_path / 'w.pth'
    save_pretrained(lightflow.lightflow_w0_5(), weights)
    img = (np.random.default_rng(0).uniform(0, 255, (32, 48, 3))).astype(np.uint8)
    for name in ('f0.png', 'f1.png'):
        iio.imwrite(tmp_path / name, img)
    before = (tmp_path / 'f0.png').read_bytes()
    demo = load_tool('demo_flow')
    with pytest.raises(ValueError, match=r'would overwrite the input .*f0\.png'):
        demo.main([str(weights), str(tmp_path / 'f0.png'), str(tmp_path / 'f1.png'), '--out', str(tmp_path)])
    assert (tmp_path / 'f0.png').read_bytes() == before
    frames = tmp_path / 'frames'
    frames.mkdir()
    iio.imwrite(frames / 'a.jpg', img)
    iio.imwrite(frames / 'a.png', img)
    iio.imwrite(frames / 'b.png', img)
    assert frame_names(sorted(frames.iterdir())) == ['a_jpg', 'a_png', 'b_png']
    written = demo.main([str(weights), str(frames), '--out', str(tmp_path / 'out')])
    assert sorted(p.name for p in written) == ['a_jpg.flo', 'a_png.flo']


def test_demo_video_refuses_to_write_over_its_input(load_tool, tmp_path):
    video = tmp_path / 'in.mp4'
    video.write_bytes(b'not decoded: the check comes first')
    demo = load_tool('demo_video')
    with pytest.raises(ValueError, match='would overwrite the input'):
        demo.main(['cfg.py', 'ckpt.pth', str(video), '--out', str(video)])
    with pytest.raises(ValueError, match='--max-frames must be >= 1'):
        demo.main(['cfg.py', 'ckpt.pth', str(video), '--out', str(tmp_path / 'o.mp4'), '--max-frames', '0'])


def test_resume_finds_the_last_checkpoint_or_says_why_not(tmp_path):
    from lightflow.engine.config import find_resume_checkpoint

    assert find_resume_checkpoint(tmp_path) is None  # nothing to resume: training starts at 0 (and says so)
    (tmp_path / 'last_checkpoint').write_text('')
    with pytest.raises(ValueError, match='last_checkpoint: empty'):
        find_resume_checkpoint(tmp_path)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    with pytest.raises(FileNotFoundError, match=r'names .*iter_4\.pth, which does not exist'):
        find_resume_checkpoint(tmp_path)
    (tmp_path / 'iter_4.pth').write_bytes(b'x')
    assert find_resume_checkpoint(tmp_path) == str(tmp_path / 'iter_4.pth')
