"""Label-free adaptation: teacher-labelled video pairs (direction, scale, bad input), the photometric terms, and a few
iterations of tools/adapt_flow.py lowering the teacher loss."""
from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from lightflow.data.video_pairs import VideoPairs, consistent_teacher_flow, list_video_frames
from lightflow.losses import census_loss, census_transform, edge_aware_smoothness
from lightflow.warp import flow_warp


def _photo(height: int = 128, width: int = 160, offset: int = 0) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[80:80 + height, 120 + offset:120 + offset + width])


def _pan_video(folder: Path, frames: int = 5, step: int = 3, size=(128, 160)) -> Path:
    """A camera pan: frame t shows the photo moved ``step * t`` px to the right (frame_t[y, x] = P[y, x - step t])."""
    folder.mkdir(parents=True)
    base = _photo(size[0], size[1] + step * frames, 0)
    for t in range(frames):
        left = step * (frames - t)
        iio.imwrite(folder / f'{t:04d}.png', base[:, left:left + size[1]])
    return folder


def test_teacher_is_flow_from_frame_t_to_the_earlier_key_at_the_flow_size(tmp_path):
    video = _pan_video(tmp_path / 'pan', frames=4, step=4)
    pairs = VideoPairs([video], size=(64, 80), max_gap=2, pairs_per_video=100, reverse_prob=0.0)
    assert all(s < t for _, t, s in pairs.pairs) and len(pairs) == 5  # (1,0) (2,0) (2,1) (3,1) (3,2)
    for index, (_, t, s) in enumerate(pairs.pairs):
        img1, img2, flow, valid = pairs.read_raw(index)
        assert img1.shape == (64, 80, 3) and flow.shape == (64, 80, 2) and valid.mean() > 0.8
        # Frame t's content came from 4 (t - s) px to the left in frame s: u = -4 (t - s) frame px = half in flow px.
        u = float(np.median(flow[8:-8, 8:-8, 0]))
        assert u == pytest.approx(-2.0 * (t - s), abs=0.2), (t, s)
        assert float(np.median(flow[8:-8, 8:-8, 1])) == pytest.approx(0.0, abs=0.2)
        # The frames are the detector's: bilinear resize of the frame, no antialiasing.
        full = iio.imread(video / f'{t:04d}.png').astype(np.float32)
        assert np.abs(img1 - full[::2, ::2]).mean() < 12 and not np.array_equal(img1, img2)


def test_reverse_pairs_and_cache_give_the_same_teacher(tmp_path):
    video = _pan_video(tmp_path / 'pan', frames=3, step=4)
    pairs = VideoPairs([video], size=(64, 80), max_gap=2, pairs_per_video=50, reverse_prob=1.0,
                       cache_dir=tmp_path / 'cache')
    assert all(s > t for _, t, s in pairs.pairs)
    first = pairs.read_raw(0)
    _, t, s = pairs.pairs[0]
    assert float(np.median(first[2][8:-8, 8:-8, 0])) == pytest.approx(2.0 * (s - t), abs=0.2)
    assert len(list((tmp_path / 'cache').rglob('*.npz'))) == 1
    cached = pairs.read_raw(0)
    np.testing.assert_allclose(cached[2], first[2], atol=0.02)  # float16 in the cache
    assert np.array_equal(cached[3], first[3])


def test_consistency_check_masks_an_occlusion():
    a = _photo(96, 128)
    b = a.copy()
    b[30:60, 40:80] = _photo(30, 40, offset=200)  # a patch that appears from nowhere: no consistent flow there
    flow, valid = consistent_teacher_flow(a, b)
    assert valid[5:25, 5:35].float().mean() > 0.9
    assert valid[35:55, 45:75].float().mean() < valid[5:25, 5:35].float().mean()


def test_sources_without_pairs_or_frames_are_refused(tmp_path):
    single = tmp_path / 'single'
    single.mkdir()
    iio.imwrite(single / '0000.png', _photo())
    with pytest.raises(ValueError, match=f'adaptation source {single}: no video with at least two frames'):
        VideoPairs([single])
    with pytest.raises(FileNotFoundError, match='adaptation source .*missing does not exist'):
        list_video_frames([tmp_path / 'missing'])
    clip = tmp_path / 'pan.mp4'  # a video file is one video of all its frames, extracted to PNGs (not held in memory)
    iio.imwrite(clip, np.stack([_photo(64, 96, offset=4 * t) for t in range(3)]), fps=5, codec='libx264')
    frames = list_video_frames([clip], frames_dir=tmp_path / 'frames')['pan']
    assert len(frames) == 3 and all(Path(f).parent.parent == tmp_path / 'frames' for f in frames)
    assert iio.imread(frames[0]).shape == (64, 96, 3)
    cached = VideoPairs([clip], size=(32, 48), max_gap=1, cache_dir=tmp_path / 'cache')
    assert Path(cached.videos['pan'][0]).parent.parent == tmp_path / 'cache' / 'frames'  # beside the teacher cache
    broken = tmp_path / 'broken.mp4'
    broken.write_text('not a video')
    with pytest.raises(ValueError, match='broken.mp4: cannot read as a video'):
        list_video_frames([broken])
    text = tmp_path / 'notes.txt'
    text.write_text('x')
    with pytest.raises(ValueError, match='expected a CocoVID .json, a video file'):
        list_video_frames([text])
    video = _pan_video(tmp_path / 'pan', frames=3)
    pairs = VideoPairs([video], size=(64, 80), max_gap=1)
    (video / '0001.png').unlink()
    with pytest.raises(FileNotFoundError, match='frame 1 .*0001.png does not exist'):
        for i in range(len(pairs)):
            pairs.read_raw(i)


def test_teacher_that_fails_the_check_everywhere_is_an_error(tmp_path):
    folder = tmp_path / 'noise'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for t in range(2):
        iio.imwrite(folder / f'{t}.png', rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    pairs = VideoPairs([folder], size=(64, 64), min_valid=0.999)
    with pytest.raises(ValueError, match='fails the forward-backward check on'):
        pairs.read_raw(0)


def test_census_loss_matches_the_signatures_and_prefers_the_true_flow():
    img1 = torch.from_numpy(_photo(64, 96)).permute(2, 0, 1)[None].float()
    img2 = torch.roll(img1, 3, dims=-1)  # img1[y, x] = img2[y, x + 3]: the true flow is u = +3
    mask = torch.ones(1, 64, 96, dtype=torch.bool)
    d = (census_transform(img1) - census_transform(img2)).square()
    reference = ((d / (0.1 + d)).sum(1) + 0.01).pow(0.4)[:, 3:-3, 3:-3].mean()
    assert float(census_loss(img1, img2, mask)) == pytest.approx(float(reference), rel=1e-5)
    true = torch.zeros(1, 2, 64, 96)
    true[:, 0] = 3.0
    at_true = census_loss(img1, flow_warp(img2, true, padding_mode='border'), mask)
    assert float(at_true) < 0.5 * float(census_loss(img1, img2, mask))
    assert float(edge_aware_smoothness(true, img1)) == 0.0


@pytest.mark.slow  # ~10 s
def test_adapt_flow_lowers_the_teacher_loss_and_refuses_bad_sources(tmp_path, load_tool):
    from lightflow.engine import LightFlowAdaptModel, PackedFlowDataset  # noqa: F401  (registers the types)
    from lightflow.engine.adapt import VideoPairsDataset

    train, val = _pan_video(tmp_path / 'train', frames=4, step=4, size=(64, 64)), \
        _pan_video(tmp_path / 'val', frames=3, step=4, size=(64, 64))
    tool = load_tool('adapt_flow')
    with pytest.raises(FileNotFoundError, match='nowhere: no such video source'):
        tool.main([str(tmp_path / 'nowhere'), '--work-dir', str(tmp_path / 'bad')])

    # A fixed batch: the teacher loss falls within a few Adam steps.
    data = VideoPairsDataset(sources=[str(train)], size=(64, 64), max_gap=2, transforms='eval')
    batch = [data[i] for i in range(len(data))]
    model = LightFlowAdaptModel(width_mult=0.5, pretrained='lightflow_w0.5_synthetic', photometric_weight=0.1,
                                smooth_weight=0.5)
    inputs = torch.stack([b['inputs'] for b in batch])
    samples = [b['data_samples'] for b in batch]
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    losses = []
    for _ in range(12):
        out = model(inputs, samples, mode='loss')
        assert set(out) == {'loss_flow', 'loss_census', 'loss_smooth'}
        optimizer.zero_grad()
        sum(out.values()).backward()
        optimizer.step()
        losses.append(float(out['loss_flow'].detach()))
    assert losses[-1] < 0.7 * losses[0]

    # The tool end to end: 2 iterations through the Runner write a checkpoint chosen on --val.
    work = tmp_path / 'work'
    tool.main([str(train), '--val', str(val), '--work-dir', str(work), '--size', '64x64', '--max-gap', '2',
               '--iters', '2'])
    assert (work / 'iter_2.pth').is_file() and list(work.glob('best_EPE_iter_*.pth'))
    assert list((work / 'teacher_cache').rglob('*.npz'))
