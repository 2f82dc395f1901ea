"""SyntheticChairs: determinism, exact flow (checked by warping), Chairs-like statistics, export to Chairs layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lightflow import flow_warp
from lightflow.data import FlyingChairs, SyntheticChairs, export_chairs_layout
from lightflow.data.synthetic import _photos

SIZE = (128, 160)


def _non_occluded(sample) -> np.ndarray:
    """Pixels whose frame-1 layer is also the frontmost layer at their frame-2 position, away from layer edges."""
    h, w = sample.layers1.shape
    ys, xs = np.mgrid[0:h, 0:w]
    qx = np.rint(xs + sample.flow[..., 0]).astype(int)
    qy = np.rint(ys + sample.flow[..., 1]).astype(int)
    inside = (qx >= 1) & (qx < w - 1) & (qy >= 1) & (qy < h - 1) & (xs > 0) & (ys > 0) & (xs < w - 1) & (ys < h - 1)
    qx, qy = qx.clip(1, w - 2), qy.clip(1, h - 2)
    xc, yc = xs.clip(1, w - 2), ys.clip(1, h - 2)
    keep = inside & (sample.layers1 == sample.layers2[qy, qx])
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):  # antialiased edges blend two layers: leave them out
            keep &= sample.layers1 == sample.layers1[yc + dy, xc + dx]
            keep &= sample.layers2[qy, qx] == sample.layers2[qy + dy, qx + dx]
    return keep


def _warp_errors(sample, flow=None) -> tuple[float, float]:
    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(2, 0, 1)[None]

    flow = sample.flow if flow is None else flow
    keep = _non_occluded(sample)
    warped = flow_warp(t(sample.img2), t(flow))[0].permute(1, 2, 0).numpy()
    img1 = sample.img1.astype(np.float32)
    return (float(np.abs(warped - img1).mean(-1)[keep].mean()),
            float(np.abs(sample.img2.astype(np.float32) - img1).mean(-1)[keep].mean()))


def test_same_seed_and_index_give_identical_samples():
    a = SyntheticChairs(10, size=SIZE, seed=3)
    b = SyntheticChairs(10, size=SIZE, seed=3)
    for index in (0, 7):
        for x, y in zip(a.render(index), b.render(index)):
            assert np.array_equal(x, y)
    other_index, other_seed = a.render(1), SyntheticChairs(10, size=SIZE, seed=4).render(0)
    assert not np.array_equal(a.render(0).img1, other_index.img1)
    assert not np.array_equal(a.render(0).flow, other_seed.flow)
    assert np.array_equal(a.render(-1).img1, a.render(9).img1)
    with pytest.raises(IndexError, match='index 10 out of range'):
        a.render(10)


def test_dataloader_workers_see_the_same_data():
    ds = SyntheticChairs(3, size=(64, 80), seed=1, num_objects=(1, 3))
    batches = list(DataLoader(ds, batch_size=3, num_workers=1))
    direct = [torch.stack(items) for items in zip(*(ds[i] for i in range(3)))]
    assert all(torch.equal(x, y) for x, y in zip(batches[0], direct))


def test_layout_and_types():
    img1, img2, flow, valid = SyntheticChairs(2, size=SIZE)[1]
    assert img1.shape == img2.shape == (3, *SIZE) and img1.dtype == torch.float32
    assert flow.shape == (2, *SIZE) and flow.dtype == torch.float32 and valid.dtype == torch.bool
    assert bool(valid.all()) and bool(torch.isfinite(flow).all()) and 0 <= img1.min() and img1.max() <= 255
    raw = SyntheticChairs(2, size=SIZE).read_raw(0)
    assert raw[0].dtype == np.uint8 and raw[0].shape == (*SIZE, 3) and raw[2].dtype == np.float32


def test_warping_frame2_by_gt_flow_reconstructs_frame1():
    ds = SyntheticChairs(4, size=SIZE, seed=11, motion_scale=2.0)
    errors, unwarped = [], []
    for index in range(len(ds)):
        sample = ds.render(index)
        assert _non_occluded(sample).mean() > 0.5
        err, base = _warp_errors(sample)
        # Per sample: bilinear resampling of sharp photo texture costs a little, never much.
        assert err < 3.0 and err < 0.1 * base, (index, err, base)
        # A flow half a pixel off must be visibly worse: the check is sensitive.
        assert _warp_errors(sample, sample.flow + np.array([0.5, 0.0], np.float32))[0] > 1.5 * err
        errors.append(err)
        unwarped.append(base)
    assert np.mean(errors) < 1.5 and np.sum(errors) < 0.05 * np.sum(unwarped), (errors, unwarped)


def test_flow_is_affine_per_layer_and_chairs_like():
    ds = SyntheticChairs(6, size=(192, 256), seed=0)
    magnitudes = []
    for i in range(len(ds)):
        s = ds.render(i)
        for layer in np.unique(s.layers1):
            m = s.layers1 == layer
            if m.sum() < 50:
                continue
            ys, xs = np.nonzero(m)
            design = np.stack([xs, ys, np.ones_like(xs)], axis=1).astype(np.float64)
            coef, *_ = np.linalg.lstsq(design, s.flow[m].astype(np.float64), rcond=None)
            assert np.abs(design @ coef - s.flow[m]).max() < 1e-3  # one exact affine motion per layer
        assert len(np.unique(s.layers1)) >= 3  # background plus objects
        magnitudes.append(np.linalg.norm(s.flow, axis=-1))
    mags = np.concatenate([m.ravel() for m in magnitudes])
    # Chairs-like at 384x512 (mean ~11 px, max ~30-40 px); halved here since the frames are half the size.
    assert 2 < mags.mean() < 12 and 8 < mags.max() < 30


def test_photographs_are_available():
    photos = _photos()
    assert len(photos) >= 5 and all(p.dtype == np.float32 and p.ndim == 3 and p.shape[2] == 3 for p in photos)


def test_bad_arguments():
    with pytest.raises(ValueError, match='num_samples must be a positive int, got 0'):
        SyntheticChairs(0)
    with pytest.raises(ValueError, match=r'size must be \(H, W\) with both >= 16, got \(8, 64\)'):
        SyntheticChairs(2, size=(8, 64))
    with pytest.raises(ValueError, match='num_objects'):
        SyntheticChairs(2, num_objects=(5, 2))
    with pytest.raises(ValueError, match='photo_prob'):
        SyntheticChairs(2, photo_prob=1.5)


def test_export_round_trips_through_flying_chairs(tmp_path):
    ds = SyntheticChairs(3, size=(48, 64), seed=2)
    root = export_chairs_layout(ds, tmp_path / 'SynthChairs', num_val=1, progress=False)
    assert (root / 'FlyingChairs_train_val.txt').read_text() == '1\n1\n2\n'
    assert sorted(p.name for p in (root / 'data').iterdir())[:3] == ['00001_flow.flo', '00001_img1.ppm',
                                                                        '00001_img2.ppm']
    train, val = FlyingChairs(root, 'train'), FlyingChairs(root, 'val')
    assert len(train) == 2 and len(val) == 1
    for got, want in zip(val.read_raw(0), ds.read_raw(2)):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    for got, want in zip(train[1], ds[1]):
        assert torch.equal(got, want)
    with pytest.raises(ValueError, match=r'num_val must be in \[0, 3\]'):
        export_chairs_layout(ds, tmp_path / 'x', num_val=4)
