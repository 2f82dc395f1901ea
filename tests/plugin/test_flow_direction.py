"""Which frame is the flow's reference, at test time, in aggregation and in training; and a known shift shows that
the flow's direction and the warp's convention agree (swapping the two frames must lose)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.plugin.test_models import MEAN, STD, clip_batch, frame_batch, video_detector


def spy_motion(model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Record the (img, ref_img) of every motion call (the real motion still runs)."""
    calls = []
    forward = model.motion.forward

    def spy(img, ref_img, metas=None):
        calls.append((img.detach().clone(), ref_img.detach().clone()))
        return forward(img, ref_img, metas)
    model.motion.forward = spy
    return calls


def test_test_time_reference_is_the_cached_key_image():
    model = video_detector(interval=3).eval()
    calls = spy_motion(model)
    frames = [frame_batch(model, i, video_id=0) for i in range(3)]
    with torch.no_grad():
        for f in frames:
            model.test_step(f)
    key_img = model._key.image
    assert len(calls) == 2  # frames 1 and 2
    for (img, ref), f in zip(calls, frames[1:]):
        assert torch.equal(ref, key_img)          # the reference is the key frame ...
        assert not torch.equal(img, key_img)      # ... and the flow is defined on the current frame
    assert not torch.equal(calls[0][0], calls[1][0])


def test_aggregation_reference_is_the_previous_key():
    model = video_detector(interval=2, aggregator=True).eval()
    with torch.no_grad():
        model.test_step(frame_batch(model, 0, video_id=0))
        first_key = model._key.image.clone()
        calls = spy_motion(model)
        model.test_step(frame_batch(model, 1, video_id=0))   # non-key: flow frame 1 -> key 0
        model.test_step(frame_batch(model, 2, video_id=0))   # key: GRU state warped by flow frame 2 -> key 0
    assert len(calls) == 2
    img, ref = calls[1]
    assert torch.equal(ref, first_key) and torch.equal(img, model._key.image)


@pytest.mark.parametrize('aggregator', [False, True])
def test_training_reference_is_the_last_key_of_the_clip(aggregator):
    torch.manual_seed(0)
    model = video_detector(aggregator=aggregator).train()
    batch = clip_batch(model, num_frames=3)
    calls = spy_motion(model)
    model(**batch, mode='loss')
    inputs = batch['inputs']
    img, ref = calls[-1]  # the propagation to the current frame is the last motion call
    assert torch.equal(img, inputs[:, -1]) and torch.equal(ref, inputs[:, -2])
    if aggregator:  # before it: flow from each key to the previous key
        k_img, k_ref = calls[0]
        assert torch.equal(k_img, inputs[:, 1]) and torch.equal(k_ref, inputs[:, 0])


def _textured_pair(shift: int, height: int = 128, width: int = 192):
    """A photo and the same photo moved ``shift`` px to the right (the current frame), both normalised."""
    from skimage import data
    photo = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1)[None].float()
    photo = F.interpolate(photo, size=(height + 16, width + 32), mode='area')
    key = photo[..., 8:8 + height, 16:16 + width]
    current = photo[..., 8:8 + height, 16 - shift:16 - shift + width]  # content moved right by `shift`
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (key - mean) / std, (current - mean) / std


def test_known_shift_right_flow_beats_zero_and_swapped():
    """The pretrained Light Flow in the detector's argument order (current, key) moves the key features onto the
    current frame's; zero flow is worse and the swapped order (key, current) worse still."""
    from mmdet_plugin.models import LightFlowMotion
    model = video_detector(interval=10).eval()
    motion = LightFlowMotion(width_mult=0.5, img_mean=MEAN, img_std=STD, pretrained='lightflow_w0.5_synthetic')
    motion.init_weights()
    model.motion = motion.eval()
    key, current = _textured_pair(shift=8)
    with torch.no_grad():
        key_feats, true_feats = model._backbone(key), model._backbone(current)

        def error(flow):
            warped = model.warp(key_feats, flow)
            return sum(float((w - t)[..., 2:-2, 2:-2].abs().mean()) for w, t in zip(warped, true_feats))
        right_flow = model.motion(current, key)
        right, zero, swapped = error(right_flow), error(torch.zeros_like(right_flow)), error(model.motion(key, current))
    # The flow on its own grid, in pixels of that grid: u ~ -8 px of the frame (the content moved right by 8).
    u_frame = float(right_flow[:, 0, 4:-4, 4:-4].median()) * 192 / right_flow.shape[-1]
    assert -10.0 < u_frame < -6.0
    assert right < 0.5 * zero and swapped > 3 * right  # (swapped ~ zero here: the features decorrelate within 8 px)
