"""ResidualGate: the scale of warped key features from |frame - warped key image| (ghosts of moved objects)."""
from __future__ import annotations

import pytest
import torch

from mmdet_plugin.models import ResidualGate

from .test_models import clip_batch, frame_batch, video_detector

H, W = 64, 96


def moving_square(shift: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(img, key_img, flow img -> key): a static smooth background and a bright 16x16 square at x 24..40 in the key
    that is at x 24+shift.. in the frame; the exact flow is -shift on the square's pixels of the frame, 0 elsewhere."""
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing='ij')
    background = (0.3 * torch.sin(xx / 7.0) + 0.3 * torch.cos(yy / 5.0)).expand(1, 3, H, W).clone()
    key, img = background.clone(), background.clone()
    key[..., 24:40, 24:40] = 3.0
    img[..., 24:40, 24 + shift:40 + shift] = 3.0
    flow = torch.zeros(1, 2, H, W)
    flow[:, 0, 24:40, 24 + shift:40 + shift] = -float(shift)
    return img, key, flow


def test_gate_starts_as_the_identity():
    torch.manual_seed(0)
    gate = ResidualGate()
    feats = (torch.randn(2, 8, 8, 12), torch.randn(2, 8, 4, 6))
    img, key = torch.randn(2, 3, H, W), torch.randn(2, 3, H, W)
    out = gate(feats, torch.randn(2, 2, 16, 24), img, key)
    assert all(torch.equal(a, b) for a, b in zip(out, feats))


def test_residual_is_zero_where_the_flow_explains_the_frame_and_marks_the_ghost():
    gate = ResidualGate()
    img, key, flow = moving_square()
    res = gate.residual(flow, img, key, (8, 12)).mean(1)[0]  # stride-8 cells; the square: rows 3-4
    new, old = res[3:5, 5:7], res[3:5, 3:5]  # cells of the square's place in the frame, and in the key only
    assert new.max() < 0.05 and old.min() > 1.0  # the warped key is right on the square, a ghost where it was
    assert res[:, 8:].max() < 0.05 and res[6:].max() < 0.05  # the static background is explained
    # The opposite flow direction (key -> frame) explains nothing on the square.
    wrong = gate.residual(-flow, img, key, (8, 12)).mean(1)[0]
    assert wrong[3:5, 5:7].min() > 1.0


def test_a_gate_that_reads_the_residual_switches_off_the_ghost_only():
    gate = ResidualGate(hidden=1)
    with torch.no_grad():  # z = -10 * (mean residual of the cell): scale 1 where the warp explains the frame
        gate.net[0].weight.zero_()
        gate.net[0].weight[0, :, 1, 1] = 1.0 / 3.0
        gate.net[0].bias.zero_()
        gate.net[2].weight.zero_()
        gate.net[2].weight[0, 0, 1, 1] = -10.0
    img, key, flow = moving_square()
    feats = (torch.ones(1, 4, 8, 12), torch.ones(1, 4, 4, 6))
    fine, coarse = gate(feats, flow, img, key)
    assert fine[0, :, 3:5, 3:5].max() < 1e-3  # the ghost of the square at its key-frame place
    assert torch.allclose(fine[0, :, 3:5, 5:7], torch.ones(4, 2, 2), atol=0.05)  # the square itself kept
    assert torch.allclose(fine[0, :, :, 8:], torch.ones(4, 8, 4), atol=0.05)
    # Stride 16: the scale averaged over each cell's four stride-8 cells; the ghost is one of them in 4 cells.
    assert torch.allclose(coarse[0, :, 1:3, 1:3], torch.full((4, 2, 2), 0.75), atol=0.05)
    assert torch.allclose(coarse[0, :, :, 4:], torch.ones(4, 4, 2), atol=0.05)


def test_detector_gates_the_current_frame_of_a_clip_with_its_last_key_and_trains_it():
    torch.manual_seed(0)
    model = video_detector(aggregator=True, gate=dict(type='ResidualGate', hidden=4)).train()
    calls = []
    forward = model.gate.forward

    def spy(feats, flow, img, key_img):
        calls.append((img.detach().clone(), key_img.detach().clone()))
        return forward(feats, flow, img, key_img)

    model.gate.forward = spy
    with torch.no_grad():
        model.gate.net[2].weight.normal_(std=0.1)  # away from the zero init, so the first convolution gets gradients
    batch = clip_batch(model, num_clips=2, num_frames=4)
    losses = model(**batch, mode='loss')
    sum(sum(v) if isinstance(v, list) else v for k, v in losses.items() if 'loss' in k).backward()
    assert len(calls) == 1  # the current frame only: the aggregation steps between keys are not gated
    img, key_img = calls[0]
    assert torch.equal(img, batch['inputs'][:, -1]) and torch.equal(key_img, batch['inputs'][:, -2])
    for name, param in model.gate.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_detector_gates_non_key_frames_only_with_their_key_image():
    torch.manual_seed(0)
    model = video_detector(interval=3, gate=dict(type='ResidualGate')).eval()
    seen = []
    forward = model.gate.forward
    model.gate.forward = lambda feats, flow, img, key_img: (seen.append((img, key_img)), forward(feats, flow, img,
                                                                                                  key_img))[1]
    batches = [frame_batch(model, f, 0) for f in range(5)]
    with torch.no_grad():
        for b in batches:
            model.predict(b['inputs'], b['data_samples'])
    assert [r.is_key for r in model.frame_records] == [True, False, False, True, False]
    assert len(seen) == 3
    expected = [(1, 0), (2, 0), (4, 3)]
    for (img, key_img), (f, k) in zip(seen, expected):
        assert torch.equal(img, batches[f]['inputs'][:, 0]) and torch.equal(key_img, batches[k]['inputs'][:, 0])


def test_gate_at_init_leaves_the_detections_unchanged():
    torch.manual_seed(0)
    plain = video_detector(interval=3).eval()
    gated = video_detector(interval=3, gate=dict(type='ResidualGate')).eval()
    gated.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        for f in range(3):
            batch = frame_batch(plain, f, 0)
            a = plain.predict(batch['inputs'], batch['data_samples'])[0].video_data_samples[0].pred_instances
            batch = frame_batch(gated, f, 0)
            b = gated.predict(batch['inputs'], batch['data_samples'])[0].video_data_samples[0].pred_instances
            assert torch.equal(a.bboxes, b.bboxes) and torch.equal(a.scores, b.scores)


def test_bad_gate_arguments_refused():
    with pytest.raises(ValueError, match='hidden must be a positive channel count, got 0'):
        ResidualGate(hidden=0)
    with pytest.raises(ValueError, match="padding_mode must be one of .*, got 'wrap'"):
        ResidualGate(padding_mode='wrap')
    with pytest.raises(ValueError, match='needs a motion module'):
        video_detector(interval=1, motion=None, gate=dict(type='ResidualGate'))
    with pytest.raises(ValueError, match=r'two \(N, 3, H, W\) images of one shape'):
        ResidualGate()((torch.zeros(1, 4, 8, 12),), torch.zeros(1, 2, 16, 24), torch.zeros(1, 3, H, W),
                       torch.zeros(1, 3, H, W + 32))
