"""Joint transforms keep images, flow and validity consistent: checked by warping, exact values and masks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lightflow import flow_warp
from lightflow.data import (CenterCrop, Compose, PhotometricJitter, RandomAffine, RandomCrop, RandomHorizontalFlip,
                            RandomVerticalFlip, Resize, SyntheticChairs, ToTensor, affine_warp_sample,
                            chairs_train_transforms, eval_transforms)

SIZE = (96, 128)


@pytest.fixture(scope='module')
def pair():
    """A synthetic sample plus its layer maps rendered as images, so transforms can carry them along."""
    s = SyntheticChairs(4, size=SIZE, seed=5, motion_scale=3.0).render(1)
    ids1 = np.repeat(((s.layers1 + 1) * 16).astype(np.uint8)[..., None], 3, axis=2)
    ids2 = np.repeat(((s.layers2 + 1) * 16).astype(np.uint8)[..., None], 3, axis=2)
    return s, ids1, ids2


def _apply(transform, sample, seed):
    torch.manual_seed(seed)
    return transform(*sample)


def _reconstruction(transform, pair, seed):
    """(mean |warp(img2) - img1|, mean |img2 - img1|, #pixels) over valid, non-occluded pixels after ``transform``."""
    s, ids1, ids2 = pair
    img1, img2, flow, valid = (np.asarray(a) for a in _apply(transform, s[:4], seed))
    # The same draw applied to the layer maps tells which layer each output pixel shows in each frame.
    id1, id2, _, _ = (np.asarray(a) for a in _apply(transform, (ids1, ids2, s.flow, s.valid), seed))
    id1, id2 = id1[..., 0].astype(np.float32), id2[..., 0].astype(np.float32)
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    qx, qy = np.rint(xs + flow[..., 0]).astype(int), np.rint(ys + flow[..., 1]).astype(int)
    inside = (qx >= 1) & (qx < w - 1) & (qy >= 1) & (qy < h - 1) & (xs > 0) & (ys > 0) & (xs < w - 1) & (ys < h - 1)
    noc = valid & inside
    noc[inside] &= id1[inside] == id2[qy[inside], qx[inside]]
    # Stay one pixel away from layer edges, where bilinear resampling blends layers.
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            noc[inside] &= id1[inside] == id1[(ys + dy)[inside], (xs + dx)[inside]]
            noc[inside] &= id2[qy[inside], qx[inside]] == id2[(qy + dy)[inside], (qx + dx)[inside]]
    noc &= (id1 % 16 == 0) & (id1 > 0)  # not a blend of two layer ids, nor outside the source image

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(2, 0, 1)[None]

    warped = flow_warp(t(img2), t(flow))[0].permute(1, 2, 0).numpy()
    err = np.abs(warped - img1).mean(-1)[noc].mean()
    base = np.abs(img2.astype(np.float32) - img1).mean(-1)[noc].mean()
    return err, base, int(noc.sum()), valid


def test_untransformed_pair_reconstructs(pair):
    err, base, n, _ = _reconstruction(lambda *a: a, pair, 0)
    assert n > 0.5 * SIZE[0] * SIZE[1]
    assert err < 1.0 and err < 0.05 * base


@pytest.mark.parametrize('transform', [RandomHorizontalFlip(1.0), RandomVerticalFlip(1.0), RandomCrop((64, 80)),
                                       CenterCrop((72, 100)), Resize((72, 100)),
                                       RandomAffine(p=1.0, translate=0.1, rotate=10, zoom=(1.2, 1.8),
                                                    relative_translate=0.03, relative_rotate=3,
                                                    relative_zoom=(0.95, 1.05)),
                                       RandomAffine()],
                         ids=lambda t: type(t).__name__)
@pytest.mark.parametrize('seed', [0, 1])
def test_geometric_transforms_keep_flow_consistent(pair, transform, seed):
    err, base, n, _ = _reconstruction(transform, pair, seed)
    assert n > 1000
    assert err < 1.0 and err < 0.1 * base, (err, base)


def test_a_wrong_flow_update_is_detected(pair):
    """The check above can fail: flipping the images without negating u breaks the reconstruction."""
    def bad_flip(img1, img2, flow, valid):
        return img1[:, ::-1], img2[:, ::-1], flow[:, ::-1], valid[:, ::-1]

    err, base, _, _ = _reconstruction(bad_flip, pair, 0)
    assert err > 0.3 * base


def test_flips_negate_one_component_exactly(pair):
    s = pair[0]
    valid = np.ones(SIZE, bool)
    valid[3, 5] = False
    _, _, flow, v = RandomHorizontalFlip(1.0)(s.img1, s.img2, s.flow, valid)
    np.testing.assert_array_equal(flow[..., 0], -s.flow[:, ::-1, 0])
    np.testing.assert_array_equal(flow[..., 1], s.flow[:, ::-1, 1])
    assert not v[3, SIZE[1] - 1 - 5] and v.sum() == valid.sum()
    img1, _, flow, v = RandomVerticalFlip(1.0)(s.img1, s.img2, s.flow, valid)
    np.testing.assert_array_equal(flow[..., 0], s.flow[::-1, :, 0])
    np.testing.assert_array_equal(flow[..., 1], -s.flow[::-1, :, 1])
    np.testing.assert_array_equal(img1, s.img1[::-1])
    assert not v[SIZE[0] - 1 - 3, 5]
    out = RandomHorizontalFlip(0.0)(s.img1, s.img2, s.flow, valid)
    assert out[2] is s.flow


def test_random_crop_takes_one_window_from_everything(pair):
    s = pair[0]
    img1, img2, flow, valid = _apply(RandomCrop((40, 50)), s[:4], 3)
    matches = [(y, x) for y in range(SIZE[0] - 39) for x in range(SIZE[1] - 49)
               if np.array_equal(img1, s.img1[y:y + 40, x:x + 50])]
    assert len(matches) == 1
    y, x = matches[0]
    np.testing.assert_array_equal(img2, s.img2[y:y + 40, x:x + 50])
    np.testing.assert_array_equal(flow, s.flow[y:y + 40, x:x + 50])
    with pytest.raises(ValueError, match=r'crop \(200, 50\) larger than the sample \(96, 128\)'):
        RandomCrop((200, 50))(*s[:4])


def test_affine_flow_update_exact_values():
    img = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    flow = np.zeros((20, 30, 2), np.float32)
    flow[..., 0], flow[..., 1] = 1.0, 2.0
    valid = np.ones((20, 30), bool)
    valid[5:8, 10:14] = False
    flow[~valid] = 0

    # Translations: frame 1 by (3, 2), frame 2 by (5, -1): new flow = old flow + (5 - 3, -1 - 2).
    t1, t2 = np.eye(3), np.eye(3)
    t1[:2, 2], t2[:2, 2] = (3, 2), (5, -1)
    new1, new2, new_flow, new_valid = affine_warp_sample(img, img, flow, valid, t1, t2)
    expected_valid = np.zeros((20, 30), bool)
    expected_valid[2:, 3:] = valid[:18, :27]
    np.testing.assert_array_equal(new_valid, expected_valid)  # block moved, pixels from outside invalid
    np.testing.assert_allclose(new_flow[new_valid], np.tile([3.0, -1.0], (new_valid.sum(), 1)), atol=1e-5)
    assert (new_flow[~new_valid] == 0).all()
    np.testing.assert_allclose(new1[2:, 3:], img[:18, :27], atol=1e-3)
    np.testing.assert_allclose(new2[:19, 5:], img[1:, :25], atol=1e-3)

    # The same zoom on both frames scales the flow: constant (1, 2) becomes (1.5, 3).
    zoom = np.array([[1.5, 0, -7.25], [0, 1.5, -4.75], [0, 0, 1]])  # about the centre (14.5, 9.5)
    flow[:] = (1.0, 2.0)
    for mode in ('nearest', 'bilinear'):
        _, _, zflow, zvalid = affine_warp_sample(img, img, flow, np.ones((20, 30), bool), zoom, zoom,
                                                 flow_interpolation=mode)
        assert zvalid.all()  # zooming in only reads pixels inside the image
        np.testing.assert_allclose(zflow.reshape(-1, 2), np.tile([1.5, 3.0], (600, 1)), atol=1e-5)

    # Different maps per frame (rotation + zoom on frame 1, another on frame 2): new_flow(p) = t2(t1^-1 p + f) - p.
    def rot_zoom(angle, s, tx, ty):
        c, si = np.cos(np.radians(angle)) * s, np.sin(np.radians(angle)) * s
        return np.array([[c, -si, tx], [si, c, ty], [0, 0, 1.0]])

    t1, t2 = rot_zoom(10, 1.3, -3.0, -5.0), rot_zoom(-5, 1.4, -6.0, -4.0)
    _, _, gflow, gvalid = affine_warp_sample(img, img, flow, np.ones((20, 30), bool), t1, t2)
    ys, xs = np.mgrid[0:20, 0:30].astype(np.float64)
    p = np.stack([xs, ys, np.ones_like(xs)], axis=-1)
    p1 = p @ np.linalg.inv(t1).T
    target = (p1 + np.array([1.0, 2.0, 0.0])) @ t2.T
    assert gvalid.sum() > 200
    np.testing.assert_allclose(gflow[gvalid], (target - p)[gvalid][:, :2], atol=1e-4)


def test_random_affine_keeps_invalid_pixels_invalid():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    flow = rng.normal(0, 3, (60, 80, 2)).astype(np.float32)
    valid = rng.random((60, 80)) > 0.2
    valid[20:40, 30:50] = False
    flow[~valid] = 0
    marker = np.repeat((valid * 255).astype(np.uint8)[..., None], 3, axis=2)
    transform = RandomAffine(translate=0.1, rotate=15, zoom=(0.8, 1.5))
    for seed in range(3):
        _, _, new_flow, new_valid = _apply(transform, (img, img, flow, valid), seed)
        seen, _, _, _ = _apply(transform, (marker, marker, flow, valid), seed)
        assert 0 < new_valid.sum() < valid.sum()
        assert (seen[new_valid, 0] > 254).all()  # every valid output pixel reads only valid input pixels
        assert not new_valid[seen[..., 0] < 1].any()  # pixels from invalid or outside areas stay invalid
        assert (new_flow[~new_valid] == 0).all()


def test_photometric_jitter():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    flow, valid = np.zeros((16, 20, 2), np.float32), np.ones((16, 20), bool)
    torch.manual_seed(0)
    a1, a2, f, v = PhotometricJitter(asymmetric_prob=0.0, noise_std=(0, 0))(img, img, flow, valid)
    assert a1.dtype == np.float32 and a1.shape == img.shape and f is flow and v is valid
    assert 0 <= a1.min() and a1.max() <= 255 and not np.allclose(a1, img)
    np.testing.assert_array_equal(a1, a2)  # shared parameters
    b1, b2, _, _ = PhotometricJitter(asymmetric_prob=1.0)(img, img, flow, valid)
    assert not np.allclose(b1, b2)
    only_brightness = PhotometricJitter(0.5, 0, 0, 0, gamma=(1, 1), noise_std=(0, 0))
    c1, _, _, _ = only_brightness(img, img, flow, valid)
    ratio = c1[img > 20] / img[img > 20]
    unclipped = c1[img > 20] < 254
    assert 0.5 <= ratio.mean() <= 1.5 and np.ptp(ratio[unclipped]) < 1e-3  # one factor for every pixel
    assert PhotometricJitter(p=0.0)(img, img, flow, valid)[0] is img
    with pytest.raises(ValueError, match='brightness must be in'):
        PhotometricJitter(brightness=2.0)


def test_to_tensor_contract():
    img = np.zeros((4, 5, 3), np.uint8)
    flow, valid = np.zeros((4, 5, 2), np.float32), np.ones((4, 5), bool)
    a, b, f, v = ToTensor()(img, img, flow, valid)
    assert a.dtype == torch.float32 and a.shape == (3, 4, 5) and f.shape == (2, 4, 5) and v.dtype == torch.bool
    with pytest.raises(ValueError, match=r'flow \(4, 6, 2\).*do not match image \(4, 5\)'):
        ToTensor()(img, img, np.zeros((4, 6, 2), np.float32), valid)
    with pytest.raises(ValueError, match='valid must be a bool'):
        ToTensor()(img, img, flow, valid.astype(np.uint8))
    with pytest.raises(ValueError, match=r'images must both be \(H, W, 3\)'):
        ToTensor()(img, np.zeros((4, 5, 4), np.uint8), flow, valid)


def test_presets_give_the_training_layout():
    s = SyntheticChairs(2, size=(384, 512), seed=0, num_objects=(1, 2)).read_raw(0)
    torch.manual_seed(0)
    img1, img2, flow, valid = chairs_train_transforms()(*s)
    assert img1.shape == img2.shape == (3, 320, 448) and flow.shape == (2, 320, 448) and valid.shape == (320, 448)
    assert img1.dtype == torch.float32 and valid.dtype == torch.bool
    assert 0 <= img1.min() and img1.max() <= 255 and valid.float().mean() > 0.3
    assert (flow[:, ~valid] == 0).all() and torch.isfinite(flow).all()
    torch.manual_seed(0)
    again = chairs_train_transforms()(*s)
    assert all(torch.equal(x, y) for x, y in zip((img1, img2, flow, valid), again))
    e1, _, ef, ev = eval_transforms()(*s)
    assert e1.shape == (3, 384, 512) and torch.equal(ef, torch.from_numpy(s[2]).permute(2, 0, 1)) and ev.all()
    assert isinstance(chairs_train_transforms(), Compose) and 'RandomAffine' in repr(chairs_train_transforms())
