"""Exact motion of the synthetic VID set (lightflow.data.synthetic.vid_motion) and OracleMotion, the motion module
that serves it to the detector."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS

import mmdet_plugin  # noqa: F401
from lightflow.data.synthetic.output import MARKER
from lightflow.data.synthetic.vid import generate_synthetic_vid
from lightflow.data.synthetic.vid_render import render_frame
from lightflow.data.synthetic.vid_scene import SceneObject, VideoScene
from lightflow.data.synthetic.vid_motion import exact_flow, scene_of_frame
from lightflow.warp import flow_warp

SIZE = (48, 64)


def _pan_scene() -> VideoScene:
    """A known pan (2, -1) px/frame, no shake, no blur, and one box moving (3, 2) px/frame, growing 2 % a frame."""
    rng = np.random.default_rng(0)
    h, w = SIZE
    background = rng.integers(0, 256, (h + 80, w + 80, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:48, :48]
    texture = np.stack([40 + 2 * xx, 40 + 3 * yy, 200 - 2 * xx], -1).astype(np.uint8)  # smooth: sampling is ~exact
    box = SceneObject(label=1, speed='fast', radius=9.0, start=(20.0, 18.0), velocity=(3.0, 2.0), texture=texture,
                      growth=0.02)
    return VideoScene(h, w, 12, background, (40.0, 40.0), (2.0, -1.0), [box], shake=(0.0, 10.0, 10.0, 0.0, 0.0))


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    return flow_warp(x, torch.from_numpy(flow).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()


def test_exact_flow_reproduces_the_frame_from_the_key_and_points_to_the_key():
    scene = _pan_scene()
    t, k = 7, 3
    flow, hidden = exact_flow(scene, t, k)
    frame_t, masks = render_frame(scene, t, blur=False)
    frame_k, _ = render_frame(scene, k, blur=False)
    # The background moves against the pan: content at x in t was at x + pan * (t - k) in k.
    background = ~masks[0] & ~hidden
    assert np.all(flow[background] == np.array([2.0 * (t - k), -1.0 * (t - k)], np.float32))
    # The box: its centre moved by velocity * (t - k); the flow at its centre points back by that much.
    cx, cy = scene.centre(scene.objects[0], t)
    assert flow[int(cy), int(cx)] == pytest.approx([-3.0 * (t - k), -2.0 * (t - k)], abs=0.3)
    assert 0 < hidden.mean() < 0.3
    err = np.abs(_warp(frame_k, flow) - frame_t).mean(-1)
    swapped = np.abs(_warp(frame_k, exact_flow(scene, k, t)[0]) - frame_t).mean(-1)
    assert err[~hidden].mean() < 3.0, err[~hidden].mean()           # ~0 but for the texture's nearest sampling
    assert err[hidden].mean() > 20 and swapped[~hidden].mean() > 10 * err[~hidden].mean()
    same, none_hidden = exact_flow(scene, t, t)
    assert not none_hidden.any() and np.abs(same).max() < 1e-4


def test_exact_flow_refuses_frames_outside_the_video():
    with pytest.raises(ValueError, match='k=12 is outside the video'):
        exact_flow(_pan_scene(), 3, 12)


@pytest.fixture(scope='module')
def synth_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('oracle') / 'svid'
    generate_synthetic_vid(root, num_train_videos=1, num_val_videos=2, num_frames=12, height=64, width=96, seed=5,
                           blur_prob=0.0)
    return root


def _meta(root: Path, video: str, frame: int, **extra) -> dict:
    split = video.split('_')[0]
    return dict(img_path=str(root / 'Data' / split / video / f'{frame:06d}.JPEG'), frame_id=frame,
                img_shape=(64, 96), **extra)


def test_the_marker_rebuilds_the_written_frames(synth_set):
    import imageio.v3 as iio
    scene, video, frame = scene_of_frame(synth_set / 'Data' / 'val' / 'val_0001' / '000004.JPEG')
    assert (video, frame) == ('val_0001', 4)
    stored = iio.imread(synth_set / 'Data' / 'val' / 'val_0001' / '000004.JPEG').astype(float)
    other, _, _ = scene_of_frame(synth_set / 'Data' / 'val' / 'val_0000' / '000004.JPEG')
    assert np.abs(render_frame(scene, 4)[0] - stored).mean() < 8.0             # JPEG noise only
    assert np.abs(render_frame(other, 4)[0] - stored).mean() > 20.0


def test_oracle_motion_returns_the_exact_flow_on_its_grid_flipped_and_padded(synth_set):
    motion = MODELS.build(dict(type='OracleMotion', flow_scale=0.5))
    img = torch.zeros(2, 3, 64, 96)
    metas = [(_meta(synth_set, 'val_0000', 9), _meta(synth_set, 'val_0000', 5)),
             (_meta(synth_set, 'val_0000', 9, flip=True, flip_direction='horizontal'),
              _meta(synth_set, 'val_0000', 5, flip=True, flip_direction='horizontal'))]
    out = motion(img, img, metas)
    scene, _, _ = scene_of_frame(metas[0][0]['img_path'])
    exact = torch.from_numpy(exact_flow(scene, 9, 5)[0]).permute(2, 0, 1)
    assert out.shape == (2, 2, 32, 48)
    # Half size: values halve; a 2x2 block's centre samples the four pixels' mean (bilinear, align_corners=False).
    block = exact.unflatten(1, (32, 2)).unflatten(3, (48, 2)).mean((2, 4)) / 2
    assert torch.allclose(out[0], block, atol=1e-4)
    assert torch.allclose(out[1, 0], -out[0, 0].flip(-1), atol=1e-4) and torch.allclose(out[1, 1], out[0, 1].flip(-1))
    # Batch padding (a 96x128 input holding the 64x96 frame) does not move.
    padded = motion(torch.zeros(1, 3, 96, 128), torch.zeros(1, 3, 96, 128), metas[:1])
    assert padded.shape == (1, 2, 48, 64) and torch.all(padded[..., 33:, :] == 0) and torch.all(padded[..., 49:] == 0)


def test_oracle_motion_refuses_what_it_cannot_know(synth_set, tmp_path):
    motion = MODELS.build(dict(type='OracleMotion', flow_scale=1.0))
    img = torch.zeros(1, 3, 64, 96)
    with pytest.raises(ValueError, match='needs the metainfo of both frames'):
        motion(img, img)
    with pytest.raises(ValueError, match='key frame metainfo has no img_path'):
        motion(img, img, [(_meta(synth_set, 'val_0000', 3), dict(frame_id=0))])
    with pytest.raises(ValueError, match='different videos'):
        motion(img, img, [(_meta(synth_set, 'val_0000', 3), _meta(synth_set, 'val_0001', 0))])
    with pytest.raises(ValueError, match='not a frame of a synthetic VID set'):
        motion(img, img, [(dict(img_path=str(tmp_path / 'clip' / '000003.jpg')), _meta(synth_set, 'val_0000', 0))])
    legacy = tmp_path / 'legacy'
    (legacy / 'Data' / 'val' / 'val_0000').mkdir(parents=True)
    (legacy / MARKER).write_text('a synthetic data set written by lightflow\n')
    with pytest.raises(ValueError, match='records no num_train_videos'):
        motion(img, img, [(_meta(legacy, 'val_0000', 3), _meta(legacy, 'val_0000', 0))])
    marker = json.loads((synth_set / MARKER).read_text())
    assert marker['num_frames'] == 12 and marker['seed'] == 5
