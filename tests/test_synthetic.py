"""SyntheticChairs: determinism, exact flow (checked by warping), Chairs-like statistics, export to Chairs layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lightflow import flow_warp
from lightflow.data import FlyingChairs, SyntheticChairs, export_chairs_layout
from lightflow.data.synthetic.photos import load_photos
from lightflow.data.synthetic.textures import PHOTO_NAMES

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
    photos = load_photos(PHOTO_NAMES)
    assert len(photos) >= 5 and all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for p in photos)
    assert load_photos(PHOTO_NAMES) is photos  # loaded once per process
    assert [p.shape for p in load_photos(PHOTO_NAMES[::-1])] == [p.shape for p in photos][::-1]  # in the order asked


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


# ---------------------------------------------------------------------------------------------- batched generator
from lightflow.data import SyntheticFlowGenerator, SyntheticIndices, flip_flow_batch  # noqa: E402


def _numpy_occlusion(flow: np.ndarray, l1: np.ndarray, l2: np.ndarray) -> np.ndarray:
    h, w = l1.shape
    ys, xs = np.mgrid[0:h, 0:w]
    qx, qy = np.rint(xs + flow[0]).astype(int), np.rint(ys + flow[1]).astype(int)
    inside = (qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)
    there = l2[qy.clip(0, h - 1), qx.clip(0, w - 1)]
    return ~inside | (there != l1)


def test_generator_gt_flow_warps_frame2_onto_frame1_outside_occlusions():
    b = SyntheticFlowGenerator(size=(96, 128), seed=5, motion_scale=2.0).render(range(4))
    warped = flow_warp(b.img2, b.flow)
    err = (warped - b.img1).abs().mean(1)  # (N, H, W)
    visible = ~b.occlusion
    inside_occluded = b.occlusion & (err > -1)  # all occluded pixels
    for i in range(4):
        e_vis, e_raw = float(err[i][visible[i]].mean()), float((b.img2[i] - b.img1[i]).abs().mean(0)[visible[i]].mean())
        assert e_vis < 1.5 and e_vis < 0.1 * e_raw, (i, e_vis, e_raw)
        # half a pixel off is clearly worse: the check is sensitive
        off = flow_warp(b.img2[i:i + 1], b.flow[i:i + 1] + torch.tensor([0.5, 0.0]).view(1, 2, 1, 1))
        assert float((off[0] - b.img1[i]).abs().mean(0)[visible[i]].mean()) > 1.5 * e_vis
    # where the mask says "occluded", the GT flow cannot explain frame 1 (frame 2 shows another layer there)
    assert float(err[inside_occluded].mean()) > 4 * float(err[visible].mean())


def test_occlusion_mask_marks_exactly_the_pixels_whose_frontmost_layer_changes():
    b = SyntheticFlowGenerator(size=(80, 112), seed=9, motion_scale=2.0).render(range(3))
    for i in range(3):
        want = _numpy_occlusion(b.flow[i].numpy(), b.layers1[i].numpy(), b.layers2[i].numpy())
        assert np.array_equal(b.occlusion[i].numpy(), want)
    assert 0.005 < float(b.occlusion.float().mean()) < 0.5
    assert set(np.unique(b.layers1.numpy())) > {0}  # objects are present, not only background


def test_window_and_full_rendering_give_the_same_pairs():
    g = SyntheticFlowGenerator(size=(72, 96), seed=2, num_objects=(3, 8))
    g.render_mode = 'window'
    a = g.render(range(6))
    g.render_mode = 'full'
    b = g.render(range(6))
    for x, y, name in zip(a, b, a._fields):
        if x.dtype.is_floating_point:
            torch.testing.assert_close(x, y, atol=0.05, rtol=0, msg=name)
        else:  # a pixel exactly on an outline may round the other way
            assert float((x != y).float().mean()) < 1e-3, name


def test_sample_depends_only_on_seed_and_index():
    g = SyntheticFlowGenerator(size=(64, 80), seed=3)
    alone, in_batch = g.render([7]), g.render([2, 7, 11])
    torch.testing.assert_close(alone.img1[0], in_batch.img1[1], atol=0.05, rtol=0)
    torch.testing.assert_close(alone.flow[0], in_batch.flow[1], atol=1e-3, rtol=0)
    again = SyntheticFlowGenerator(size=(64, 80), seed=3).render([2, 7, 11], augment=True)
    twice = SyntheticFlowGenerator(size=(64, 80), seed=3).render([2, 7, 11], augment=True)
    for x, y in zip(again, twice):
        assert torch.equal(x, y)  # same seed, same indices, same device: identical batch
    other_seed = SyntheticFlowGenerator(size=(64, 80), seed=4).render([2, 7, 11])
    assert not torch.equal(other_seed.flow, in_batch.flow)
    assert not torch.equal(in_batch.img1[0], in_batch.img1[1])


def test_ranks_draw_different_samples(monkeypatch):
    from mmengine.dataset import sampler as mm_sampler

    indices = {}
    for rank in (0, 1):
        monkeypatch.setattr(mm_sampler, 'get_dist_info', lambda r=rank: (r, 2))
        it = iter(mm_sampler.InfiniteSampler(SyntheticIndices(1000), shuffle=True, seed=0))
        indices[rank] = [next(it) for _ in range(4)]
    assert not set(indices[0]) & set(indices[1])
    g = SyntheticFlowGenerator(size=(48, 64), seed=0)
    b0, b1 = g.render(indices[0]), g.render(indices[1])
    assert not torch.equal(b0.img1, b1.img1) and not torch.equal(b0.flow, b1.flow)


def test_flips_keep_the_flow_consistent():
    b = SyntheticFlowGenerator(size=(64, 96), seed=1, motion_scale=2.0).render(range(4))
    hor, ver = torch.tensor([True, False, True, False]), torch.tensor([False, True, True, False])
    img1, img2, flow, valid = flip_flow_batch(b.img1, b.img2, b.flow, b.valid, hor, ver)
    visible = ~flip_flow_batch(b.img1, b.img2, b.flow, b.occlusion, hor, ver)[3]
    good = float((flow_warp(img2, flow) - img1).abs().mean(1)[visible].mean())
    base = float((flow_warp(b.img2, b.flow) - b.img1).abs().mean(1)[~b.occlusion].mean())
    assert abs(good - base) < 0.02 * base  # flipping is exact: the flipped pairs explain each other as well
    # flipping the images but not negating the flow no longer explains the motion
    _, _, unflipped_sign, _ = flip_flow_batch(b.img1, b.img2, b.flow, b.valid, torch.zeros(4, dtype=torch.bool),
                                              torch.zeros(4, dtype=torch.bool))
    wrong = flow.clone()
    wrong[0, 0] = -wrong[0, 0]  # sample 0 was flipped left-right: keep u's sign -> wrong
    bad = float((flow_warp(img2[:1], wrong[:1]) - img1[:1]).abs().mean(1)[visible[:1]].mean())
    assert bad > 3 * good
    assert torch.equal(unflipped_sign, b.flow) and torch.equal(flow[3], b.flow[3])
    assert torch.equal(img1[0], b.img1[0].flip(-1)) and torch.equal(flow[1, 1], -b.flow[1, 1].flip(-2))


def test_photometric_augmentation_changes_colours_not_flow():
    g = SyntheticFlowGenerator(size=(48, 64), seed=0)
    plain, aug = g.render(range(4)), g.render(range(4), augment=True)
    assert torch.equal(plain.flow, aug.flow) and torch.equal(plain.occlusion, aug.occlusion)
    assert float((plain.img1 - aug.img1).abs().mean()) > 5
    assert 0 <= float(aug.img1.min()) and float(aug.img2.max()) <= 255


def test_motion_scale_scales_the_flow_and_chairs_like_at_384x512():
    big = SyntheticFlowGenerator(size=(384, 512), seed=0, num_objects=(5, 12)).render(range(4))
    mags = big.flow.norm(dim=1)
    # Flying Chairs at 384x512: mean ~11 px, 99th percentile ~40 px (see tools/benchmark_data.py)
    assert 4 < float(mags.mean()) < 20 and 20 < float(mags.max()) < 80
    double = SyntheticFlowGenerator(size=(384, 512), seed=0, motion_scale=2.0).render(range(4))
    assert 1.6 < float(double.flow.norm(dim=1).mean()) / float(mags.mean()) < 2.4


@pytest.mark.parametrize('kwargs, field', [
    (dict(size=(-4, 64)), 'size'), (dict(size=(8, 64)), 'size'), (dict(num_objects=(5, 2)), 'num_objects'),
    (dict(num_objects=(1, 100)), 'num_objects'), (dict(motion_scale=-1.0), 'motion_scale'),
    (dict(motion_scale=float('nan')), 'motion_scale'), (dict(photo_prob=2.0), 'photo_prob'),
    (dict(homography=-0.5), 'homography'), (dict(object_radius=(0.3, 0.1)), 'object_radius'),
    (dict(num_textures=0), 'num_textures'), (dict(render='fast'), 'render'),
    (dict(background_contrast=(0.5, 0.2)), 'background_contrast'), (dict(blur_prob=1.5), 'blur_prob'),
    (dict(blur_length=(0, 3)), 'blur_length'), (dict(background_contrast=0.5), 'background_contrast'),
    (dict(blur_length=5), 'blur_length'),
    # Issue 22 (low): accepted (2.7 truncated to 2) or failing only at render time (inf: NaN frames; 0: flat).
    (dict(blur_length=(2.7, 5)), 'blur_length'), (dict(background_contrast=(0.0, 1.0)), 'background_contrast'),
    (dict(background_contrast=(0.5, float('inf'))), 'background_contrast')])
def test_generator_refuses_impossible_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SyntheticFlowGenerator(**kwargs)
    with pytest.raises(ValueError, match='indices must be >= 0'):
        SyntheticFlowGenerator(size=(32, 32)).render([-1])


def test_homography_flow_is_projective_and_exact():
    b = SyntheticFlowGenerator(size=(64, 96), seed=4, homography=20.0, num_objects=(0, 0)).render([0])
    visible = ~b.occlusion
    err = float((flow_warp(b.img2, b.flow) - b.img1).abs().mean(1)[visible].mean())
    assert err < 1.5
    # not an affine field any more: a least-squares affine fit leaves a clear residual
    ys, xs = np.mgrid[0:64, 0:96]
    design = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], 1).astype(np.float64)
    flow = b.flow[0].numpy().reshape(2, -1).T.astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, flow, rcond=None)
    assert np.abs(design @ coef - flow).max() > 0.05


def test_muted_background_scales_its_contrast_about_grey_and_leaves_the_rest():
    """background_contrast=c maps every background pixel p (before clamping) to 128 + c (p - 128); objects, flow and
    every other draw stay those of the default generator."""
    kw = dict(size=(64, 80), seed=5, num_objects=(2, 3))
    sharp = SyntheticFlowGenerator(**kw).render([3])
    muted = SyntheticFlowGenerator(**kw, background_contrast=(0.3, 0.3)).render([3])
    assert torch.equal(sharp.flow, muted.flow) and torch.equal(sharp.layers1, muted.layers1)
    obj = sharp.layers1[0] > 0

    def away_from(mask):  # antialiased edges blend both layers: leave them out
        return torch.nn.functional.max_pool2d(mask[None].float(), 5, 1, 2)[0].eq(0)

    bg = away_from(obj) & (sharp.img1[0] > 0).all(0) & (sharp.img1[0] < 255).all(0)
    interior = obj & away_from(~obj)
    assert bg.sum() > 500 and interior.sum() > 50
    expect = 128 + 0.3 * (sharp.img1[0] - 128)
    torch.testing.assert_close(muted.img1[0][:, bg], expect[:, bg], atol=1e-3, rtol=0)
    torch.testing.assert_close(muted.img1[0][:, interior], sharp.img1[0][:, interior])
    assert muted.img1[0][:, bg].std() < 0.35 * sharp.img1[0][:, bg].std()


def test_blur_is_a_box_along_the_drawn_direction_and_keeps_the_flow():
    kw = dict(size=(48, 64), seed=2, num_objects=(3, 4))
    g = SyntheticFlowGenerator(**kw, blur_prob=1.0, blur_length=(5, 5))
    sharp, blurred = SyntheticFlowGenerator(**kw).render([0, 1, 2]), g.render([0, 1, 2])
    assert torch.equal(sharp.flow, blurred.flow) and torch.equal(sharp.occlusion, blurred.occlusion)
    kinds = set()
    for i in range(3):
        for f, (img_s, img_b) in enumerate(((sharp.img1, blurred.img1), (sharp.img2, blurred.img2))):
            length, kind = g.sample_params(i).blur[f]
            assert length == 5
            kinds.add(int(kind))
            x = img_s[i].double()
            # The 5-tap moving average written out, in the interior (no padding involved).
            if kind == 0:
                expect = sum(x[:, 2:-2, 2 + d:x.shape[-1] - 2 + d] for d in range(-2, 3)) / 5
            elif kind == 1:
                expect = sum(x[:, 2 + d:x.shape[-2] - 2 + d, 2:-2] for d in range(-2, 3)) / 5
            else:
                expect = sum(x[:, 2 + dy:x.shape[-2] - 2 + dy, 2 + dx:x.shape[-1] - 2 + dx]
                             for dy in range(-2, 3) for dx in range(-2, 3)) / 25
            torch.testing.assert_close(img_b[i, :, 2:-2, 2:-2].double(), expect, atol=1e-3, rtol=0)
    assert len(kinds) >= 2  # the direction is drawn, not fixed
    # blur_prob 0 (the default) never blurs.
    assert not SyntheticFlowGenerator(**kw).sample_params(0).blur.any()
