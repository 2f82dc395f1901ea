"""Exact-motion pairs of the synthetic VID set (issue 20): the flow warps the key onto frame t on the valid pixels, it
points t -> key, the resize rescales it, hidden pixels are invalid, the draw is seeded, and the exact-motion config
builds its datasets and trains through tools/train_flow.py."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from lightflow.data import SyntheticVIDExactPairs
from lightflow.data.synthetic.output import MARKER
from lightflow.data.synthetic.vid import generate_synthetic_vid
from lightflow.data.synthetic.vid_motion import scene_in_set
from lightflow.warp import flow_warp

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs' / 'lightflow' / 'lightflow_w0.5_1xb16-6k-exact_synthvid-128x128.py'
ADAPT_CONFIG = REPO / 'configs' / 'lightflow' / 'lightflow_w0.5_1xb16-6k-adapt_synthvid-128x128.py'
FRAMES, HEIGHT, WIDTH = 12, 64, 96


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory) -> Path:
    """One 12-frame 64x96 train and val video, no blur; seed 5 pans in both axes (~0.8 and ~-1.4 px/frame)."""
    root = tmp_path_factory.mktemp('vid') / 'set'
    generate_synthetic_vid(root, num_train_videos=1, num_val_videos=1, num_frames=FRAMES, height=HEIGHT, width=WIDTH,
                           seed=5, blur_prob=0.0)
    return root


def _errors(img1: torch.Tensor, img2: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    """Mean |.| over the channels and the valid pixels of img1 vs img2 warped by the flow, by no flow, by -flow, and of
    img2 vs img1 warped by the flow (the other direction); plus the warped error on the hidden pixels."""
    def err(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
        return float((a - b).abs().mean(0)[mask].mean())

    warped = flow_warp(img2[None], flow[None])[0]
    return dict(exact=err(warped, img1, valid), zero=err(img2, img1, valid),
                negated=err(flow_warp(img2[None], -flow[None])[0], img1, valid),
                swapped=err(flow_warp(img1[None], flow[None])[0], img2, valid), hidden=err(warped, img1, ~valid))


def _pan(root: Path, t: int, key: int) -> tuple[int, int]:
    """The background's motion from frame t to the key in frame pixels, from the scene's camera (pan + shake, rounded
    as the renderer rounds it): the point at x in t is at x + (offset_t - offset_key) in the key."""
    scene = scene_in_set(root, 'train', 0)

    def offset(i: int) -> np.ndarray:
        shake = np.asarray(scene.shake_at(i))
        return np.round(np.asarray(scene.pan_start) + np.asarray(scene.pan_velocity) * i + shake).astype(int)
    du, dv = offset(t) - offset(key)
    return int(du), int(dv)


def _mode(values: torch.Tensor) -> float:
    found, counts = np.unique(np.round(values.numpy(), 4), return_counts=True)
    return float(found[counts.argmax()])


def test_exact_flow_warps_the_key_onto_frame_t_far_better_than_zero_flow(tiny_set):
    data = SyntheticVIDExactPairs(tiny_set, 'train', size=(128, 128), pairs_per_video=100)
    assert len(data) == 63  # every (t, t - g), g in 1..9, of 12 frames: 1 + 2 + ... + 9 + 9 + 9
    rows = [_errors(*data[i]) for i in range(len(data))]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    # Measured: exact 4.2, zero 22.0, swapped 25.4, negated 40.6, hidden 107 (JPEG and the objects' aliased textures
    # keep the exact warp above 0; the background alone warps to the JPEG noise).
    assert mean['exact'] < 0.3 * mean['zero'] and mean['exact'] < 6.0, mean
    assert all(r['exact'] < 0.5 * r['zero'] for r in rows)
    # The direction is t -> key: the same flow used the other way round, or negated, loses to it on every pair.
    assert mean['swapped'] > 4 * mean['exact'] and mean['negated'] > 6 * mean['exact'], mean
    assert all(r['exact'] < 0.5 * min(r['swapped'], r['negated']) for r in rows)
    # What valid leaves out is where the key cannot reproduce frame t.
    assert mean['hidden'] > 10 * mean['exact'], mean


def test_sample_is_frame_t_and_its_earlier_key_as_on_disk(tiny_set):
    from lightflow.io import read_image

    data = SyntheticVIDExactPairs(tiny_set, 'train', size=(HEIGHT, WIDTH), max_gap=3, pairs_per_video=100)
    assert all(1 <= t - key <= 3 for _, t, key in data.pairs) and len(data) == 3 * FRAMES - 6
    video, t, key = data.pairs[0]
    img1, img2, flow, valid = data.read_raw(0)
    folder = tiny_set / 'Data' / 'train' / 'train_0000'
    assert np.array_equal(img1, read_image(folder / f'{t:06d}.JPEG').astype(np.float32))
    assert np.array_equal(img2, read_image(folder / f'{key:06d}.JPEG').astype(np.float32))
    assert img1.dtype == flow.dtype == np.float32 and valid.dtype == bool and flow.shape == (HEIGHT, WIDTH, 2)


def test_resize_rescales_the_flow_per_axis_on_a_known_pan(tiny_set):
    native = SyntheticVIDExactPairs(tiny_set, 'train', size=(HEIGHT, WIDTH), pairs_per_video=100)
    small = SyntheticVIDExactPairs(tiny_set, 'train', size=(128, 128), pairs_per_video=100)
    assert native.pairs == small.pairs
    index = max(range(len(native)), key=lambda i: native.pairs[i][1] - native.pairs[i][2])
    _, t, key = native.pairs[index]
    du, dv = _pan(tiny_set, t, key)
    assert du != 0 and dv != 0 and abs(du * 128 / WIDTH - du) > 1  # a pan in both axes the scale changes visibly
    _, _, flow, valid = native[index]
    assert _mode(flow[0][valid]) == du and _mode(flow[1][valid]) == dv  # the background slides by whole pixels
    _, _, flow, valid = small[index]
    assert _mode(flow[0][valid]) == pytest.approx(du * 128 / WIDTH, abs=1e-3)  # u x 128 / 96
    assert _mode(flow[1][valid]) == pytest.approx(dv * 128 / HEIGHT, abs=1e-3)  # v x 2


def test_valid_excludes_every_hidden_pixel_at_any_size(tiny_set):
    native = SyntheticVIDExactPairs(tiny_set, 'train', size=(HEIGHT, WIDTH), pairs_per_video=8)
    small = SyntheticVIDExactPairs(tiny_set, 'train', size=(48, 80), pairs_per_video=8)
    # The bilinear support of each output pixel (align_corners=False): rows floor(s), floor(s) + 1 of the source.
    def support(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
        s = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, None)
        low = np.floor(s).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        return low, np.where(s > low, high, low)  # an exact hit reads one pixel

    (y0, y1), (x0, x1) = support(48, HEIGHT), support(80, WIDTH)
    for i in range(len(native)):
        _, hidden = native.exact(i)
        assert 0 < hidden.mean() < 0.6
        assert np.array_equal(native.read_raw(i)[3], ~hidden)
        touched = (hidden[y0][:, x0] | hidden[y0][:, x1] | hidden[y1][:, x0] | hidden[y1][:, x1])
        assert np.array_equal(small.read_raw(i)[3], ~touched)


def test_pairs_are_drawn_by_seed_and_key_interval(tiny_set):
    a = SyntheticVIDExactPairs(tiny_set, 'train', size=(64, 64), pairs_per_video=10, seed=3)
    b = SyntheticVIDExactPairs(tiny_set, 'train', size=(64, 64), pairs_per_video=10, seed=3)
    c = SyntheticVIDExactPairs(tiny_set, 'train', size=(64, 64), pairs_per_video=10, seed=4)
    assert a.pairs == b.pairs and a.pairs != c.pairs and len(set(a.pairs)) == 10
    for x, y in zip(a.read_raw(0), b.read_raw(0)):
        assert np.array_equal(x, y)
    fixed = SyntheticVIDExactPairs(tiny_set, 'val', size=(64, 64), key_interval=4, pairs_per_video=100)
    assert sorted(p[1:] for p in fixed.pairs) == [(t, t - t % 4) for t in range(FRAMES) if t % 4]


def test_bad_arguments_and_sets_without_recorded_arguments_are_refused(tiny_set, tmp_path):
    with pytest.raises(ValueError, match="split must be one of .*'test'"):
        SyntheticVIDExactPairs(tiny_set, 'test')
    with pytest.raises(ValueError, match='max_gap must be an integer >= 1, got 0'):
        SyntheticVIDExactPairs(tiny_set, max_gap=0)
    with pytest.raises(ValueError, match='key_interval must be None or an integer >= 2, got 1'):
        SyntheticVIDExactPairs(tiny_set, key_interval=1)
    old = tmp_path / 'old_set'
    old.mkdir()
    (old / MARKER).write_text('written by an older make_synthetic_vid.py\n')
    with pytest.raises(ValueError, match=re.escape(str(old)) + '.*records no num_train_videos'):
        SyntheticVIDExactPairs(old)
    with pytest.raises(ValueError, match=re.escape(str(tmp_path)) + ': no synthetic VID marker'):
        SyntheticVIDExactPairs(tmp_path)


def test_config_mirrors_the_teacher_adaptation_and_builds_on_a_set(tiny_set):
    import lightflow.engine  # noqa: F401  (registers the `lightflow` scope)
    from lightflow.engine import load_config
    from lightflow.engine.registry import DATASETS

    exact, adapt = Config.fromfile(str(CONFIG)), Config.fromfile(str(ADAPT_CONFIG))
    for key in ('size', 'param_scheduler', 'train_cfg', 'optim_wrapper', 'train_transforms'):
        assert exact[key] == adapt[key], key
    assert exact.model.pretrained == adapt.model.pretrained == 'lightflow_w0.5_synthetic'
    assert exact.train_dataloader.dataset.datasets[1] == adapt.train_dataloader.dataset.datasets[1]  # generator pairs

    cfg = load_config(str(CONFIG), {'data_root': f'{tiny_set}/', 'train_cfg.max_iters': 7,
                                    'val_dataloader.dataset.dataset.data_root': f'{tiny_set}/'})
    assert cfg.train_cfg.max_iters == 7
    train, val = DATASETS.build(cfg.train_dataloader.dataset), DATASETS.build(cfg.val_dataloader.dataset)
    pairs = train.datasets[0].dataset
    assert isinstance(pairs, SyntheticVIDExactPairs)
    assert (pairs.split, pairs.size, len(pairs)) == ('train', (128, 128), 63)
    assert len(train) == 63 + 8192
    assert isinstance(val.dataset, SyntheticVIDExactPairs) and val.dataset.split == 'val' and len(val) == 32
    item = val[0]
    assert item['inputs'].shape == (2, 3, 128, 128) and item['data_samples'].flow.shape == (2, 128, 128)
    _, _, flow, valid = val.dataset.read_raw(0)
    assert torch.equal(item['data_samples'].flow, torch.from_numpy(flow).permute(2, 0, 1))
    assert torch.equal(item['data_samples'].valid, torch.from_numpy(valid))


def test_train_flow_smoke_run_writes_a_checkpoint(tiny_set, tmp_path, load_tool):
    from lightflow.engine import load_lightflow_checkpoint

    work = tmp_path / 'work'
    load_tool('train_flow').main([
        str(CONFIG), '--work-dir', str(work), '--cfg-options', f'data_root={tiny_set}/', 'train_cfg.max_iters=2',
        f'val_dataloader.dataset.dataset.data_root={tiny_set}/', f'test_dataloader.dataset.dataset.data_root={tiny_set}/',
        'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'train_dataloader.dataset.datasets.1.dataset.num_samples=8', 'val_dataloader.dataset.dataset.pairs_per_video=4',
        'test_dataloader.dataset.dataset.pairs_per_video=4'])
    assert (work / 'iter_2.pth').is_file() and list(work.glob('best_EPE_iter_2.pth'))
    assert load_lightflow_checkpoint(work / 'iter_2.pth').width_mult == 0.5
