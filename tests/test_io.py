"""lightflow.io (.flo, KITTI PNG, images), lightflow.warp (flow_warp, resize_flow) and lightflow.viz (flow_to_color)."""
from __future__ import annotations

import re
import struct

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.utils import flow_to_image

from lightflow import flow_to_color, flow_warp, read_flo, read_image, read_kitti_flow, resize_flow, write_flo
from lightflow.io import write_kitti_flow


def _flo_bytes(width: int, height: int, values: list[float]) -> bytes:
    """A .flo file built independently of lightflow.io."""
    return b'PIEH' + struct.pack('<ii', width, height) + struct.pack(f'<{len(values)}f', *values)


# ----------------------------------------------------------------------------------------------------------- .flo
def test_read_flo_exact_values(tmp_path):
    # 2 rows x 3 columns, (u, v) interleaved row-major; all values exactly representable in float32.
    values = [0.5, -1.0, 2.25, 3.0, -4.5, 0.125, 10.0, -0.25, 7.75, 8.0, -9.5, 1e9]
    path = tmp_path / 'fixture.flo'
    path.write_bytes(_flo_bytes(3, 2, values))
    flow = read_flo(path)
    assert flow.dtype == np.float32 and flow.shape == (2, 3, 2)
    np.testing.assert_array_equal(flow, np.array(values, np.float32).reshape(2, 3, 2))
    assert flow[0, 1, 0] == 2.25 and flow[0, 1, 1] == 3.0  # u, v of row 0, column 1
    assert flow[1, 2, 1] == np.float32(1e9)  # unknown flow is returned as stored


def test_flo_round_trip_and_written_bytes(tmp_path):
    flow = np.random.default_rng(0).normal(0, 20, (5, 7, 2)).astype(np.float32)
    path = tmp_path / 'a.flo'
    write_flo(path, flow)
    assert np.array_equal(read_flo(path), flow)
    assert path.read_bytes() == _flo_bytes(7, 5, flow.ravel().tolist())
    assert not list(tmp_path.glob('.*.tmp'))  # the atomic writer leaves no temp file behind


@pytest.mark.parametrize('mutate, message', [
    (lambda b: b'XXXX' + b[4:], 'bad .flo magic'),
    (lambda b: b[:-4], 'truncated .flo file'),
    (lambda b: b[:9], 'truncated .flo header'),
    (lambda b: b + b'\0' * 8, 'oversized .flo file'),
    (lambda b: b[:4] + struct.pack('<ii', 0, 2) + b[12:], 'bad .flo dimensions 0x2'),
    (lambda b: b[:4] + struct.pack('<ii', 3, -2) + b[12:], 'bad .flo dimensions 3x-2'),
])
def test_read_flo_rejects_bad_files(tmp_path, mutate, message):
    path = tmp_path / 'broken_file.flo'
    path.write_bytes(mutate(_flo_bytes(3, 2, [0.0] * 12)))
    with pytest.raises(ValueError, match=f'broken_file.flo.*{re.escape(message)}'):
        read_flo(path)


def test_flo_missing_file_and_bad_shape(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.flo'):
        read_flo(tmp_path / 'nope.flo')
    with pytest.raises(ValueError, match=r'out.flo.*\(H, W, 2\)'):
        write_flo(tmp_path / 'out.flo', np.zeros((4, 4, 3), np.float32))


# ------------------------------------------------------------------------------------------------------ KITTI PNG
def test_kitti_round_trip_to_1_64_px(tmp_path):
    rng = np.random.default_rng(1)
    flow = rng.uniform(-200, 200, (6, 9, 2)).astype(np.float32)
    valid = rng.random((6, 9)) > 0.3
    path = tmp_path / 'kitti.png'
    write_kitti_flow(path, flow, valid)
    got, got_valid = read_kitti_flow(path)
    assert got.dtype == np.float32 and got_valid.dtype == bool
    np.testing.assert_array_equal(got_valid, valid)
    assert np.abs(got - flow).max() <= 1 / 128 + 1e-6  # stored in 1/64 px steps, rounded
    assert np.all(np.abs(np.round(got * 64) - got * 64) < 1e-3)


def test_kitti_decoding_of_independent_png(tmp_path):
    # KITTI stores R = u * 64 + 2**15, G = v * 64 + 2**15, B = valid; cv2 writes BGR.
    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[..., 0] = [[2 ** 15 + 64, 2 ** 15 - 32], [2 ** 15, 0]]
    rgb[..., 1] = [[2 ** 15 + 1, 2 ** 15], [2 ** 15 + 640, 2 ** 15]]
    rgb[..., 2] = [[1, 1], [1, 0]]
    path = tmp_path / 'indep.png'
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    flow, valid = read_kitti_flow(path)
    np.testing.assert_array_equal(flow[..., 0], [[1.0, -0.5], [0.0, -512.0]])
    np.testing.assert_array_equal(flow[..., 1], [[1 / 64, 0.0], [10.0, 0.0]])
    np.testing.assert_array_equal(valid, [[True, True], [True, False]])


def test_kitti_rejects_8bit_png(tmp_path):
    path = tmp_path / 'eight.png'
    iio.imwrite(path, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match='eight.png.*16-bit'):
        read_kitti_flow(path)


# ---------------------------------------------------------------------------------------------------------- images
def test_read_image_converts_grey_and_rgba(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    iio.imwrite(tmp_path / 'grey.png', grey)
    img = read_image(tmp_path / 'grey.png')
    assert img.shape == (3, 4, 3) and img.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], grey)

    rgba = np.random.default_rng(2).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    iio.imwrite(tmp_path / 'rgba.png', rgba)
    np.testing.assert_array_equal(read_image(tmp_path / 'rgba.png'), rgba[..., :3])

    grey16 = (np.arange(6, dtype=np.uint16).reshape(2, 3) * 10000)
    iio.imwrite(tmp_path / 'grey16.png', grey16)
    np.testing.assert_array_equal(read_image(tmp_path / 'grey16.png')[..., 1], (grey16 >> 8).astype(np.uint8))


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.png'):
        read_image(tmp_path / 'missing.png')
    (tmp_path / 'garbage.png').write_bytes(b'not an image at all')
    with pytest.raises(ValueError, match='garbage.png.*cannot decode'):
        read_image(tmp_path / 'garbage.png')


# ------------------------------------------------------------------------------------------------------- flow_warp
def _grid_sample_reference(x: torch.Tensor, flow: torch.Tensor, padding_mode: str) -> torch.Tensor:
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing='ij')
    gx = (xs + flow[:, 0].double()) / (w - 1) * 2 - 1
    gy = (ys + flow[:, 1].double()) / (h - 1) * 2 - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x.double(), grid, mode='bilinear', padding_mode=padding_mode, align_corners=True).float()


def _same(a: torch.Tensor, b: torch.Tensor, fast: bool) -> bool:
    """Exact path: bit for bit. grid_sample path: to 1e-5 (its grid normalisation rounds in float32)."""
    return torch.equal(a, b) if not fast else bool((a - b).abs().max() <= 1e-5)


@pytest.mark.parametrize('fast', [False, True])
def test_zero_flow_is_identity_on_odd_sizes(fast):
    x = torch.randn(2, 3, 7, 9) * 3
    for mode in ('zeros', 'border', 'reflection'):
        assert _same(flow_warp(x, torch.zeros(2, 2, 7, 9), padding_mode=mode, fast=fast), x, fast)
    if fast:  # off by one cell at a border would be an error of ~|x|, far above the tolerance
        assert not _same(x[..., 1:], x[..., :-1], fast)


@pytest.mark.parametrize('fast', [False, True])
def test_integer_shift_moves_pixels(fast):
    x = torch.randn(1, 2, 6, 8) * 3
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # out[y, x] = x[y - 1, x + 2]
    out = flow_warp(x, flow, fast=fast)
    assert _same(out[..., 1:, :6], x[..., :5, 2:], fast)
    assert _same(out[..., 0, :], torch.zeros_like(out[..., 0, :]), fast)  # row -1 is outside
    assert _same(out[..., :, 6:], torch.zeros_like(out[..., :, 6:]), fast)  # columns 8, 9 are outside
    for mode in ('border', 'reflection'):  # the last column reads column 9 -> clamped to 7 / mirrored to 5
        shifted = flow_warp(x, flow, padding_mode=mode, fast=fast)
        assert _same(shifted[..., 1:, 7], x[..., :5, 7 if mode == 'border' else 5], fast)


@pytest.mark.parametrize('fast', [False, True])
def test_padding_modes_at_the_border(fast):
    x = torch.arange(1.0, 6.0).view(1, 1, 1, 5).expand(1, 1, 3, 5).contiguous()  # each row 1..5
    flow = torch.zeros(1, 2, 3, 5)
    flow[:, 0, :, 4] = 0.5  # half a pixel beyond the last pixel centre
    assert flow_warp(x, flow, 'zeros', fast=fast)[0, 0, 1, 4].item() == pytest.approx(2.5)  # half the edge value 5
    assert flow_warp(x, flow, 'border', fast=fast)[0, 0, 1, 4].item() == pytest.approx(5.0)
    assert flow_warp(x, flow, 'reflection', fast=fast)[0, 0, 1, 4].item() == pytest.approx(4.5)  # mirrored to 3.5


@pytest.mark.parametrize('fast', [False, True])
@pytest.mark.parametrize('padding_mode', ['zeros', 'border', 'reflection'])
def test_flow_warp_matches_grid_sample(padding_mode, fast):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 11, 13, generator=gen)
    flow = torch.randn(2, 2, 11, 13, generator=gen) * 4
    torch.testing.assert_close(flow_warp(x, flow, padding_mode, fast=fast),
                               _grid_sample_reference(x, flow, padding_mode), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('padding_mode', ['zeros', 'border', 'reflection'])
def test_fast_path_matches_exact_path_on_features(padding_mode):
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(2, 128, 24, 32, generator=gen)  # feature-like: post-ReLU values in [0, 1)
    flow = torch.randn(2, 2, 24, 32, generator=gen) * 6
    exact, fast = flow_warp(x, flow, padding_mode, fast=False), flow_warp(x, flow, padding_mode, fast=True)
    assert (exact - fast).abs().max() <= 1e-5
    assert (exact - x).abs().max() > 0.5  # the flow really moved things


def test_fast_path_is_the_default_only_without_gradients():
    x = torch.rand(1, 4, 9, 11)
    flow = torch.full((1, 2, 9, 11), 1.0, requires_grad=True)
    out = flow_warp(x, flow)  # needs a gradient -> the exact path (bit-exact integer shift)
    assert torch.equal(out[..., :8, :10], x[..., 1:, 1:])
    out.sum().backward()
    assert flow.grad is not None and flow.grad.abs().sum() > 0
    with torch.no_grad():
        fast = flow_warp(x, flow)
    assert not torch.equal(fast[..., :8, :10], x[..., 1:, 1:])  # grid_sample rounds: proof it took that path
    assert (fast[..., :8, :10] - x[..., 1:, 1:]).abs().max() <= 1e-5


def test_resize_flow_rescales_values():
    small = torch.ones(1, 2, 4, 5)
    big = resize_flow(small, (16, 20))
    assert big.shape == (1, 2, 16, 20)
    torch.testing.assert_close(big, torch.full_like(big, 4.0))
    x = torch.randn(1, 3, 16, 20)
    torch.testing.assert_close(flow_warp(x, small, resize=True), flow_warp(x, big))
    assert not torch.equal(flow_warp(x, small, resize=True), flow_warp(x, torch.ones(1, 2, 16, 20)))


def test_flow_warp_errors():
    x = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match='padding_mode'):
        flow_warp(x, torch.zeros(1, 2, 8, 8), padding_mode='wrap')
    with pytest.raises(ValueError, match=r'\(N, 2, H, W\)'):
        flow_warp(x, torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match='batch sizes differ'):
        flow_warp(x, torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match='resize=True'):
        flow_warp(x, torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r'\(N, 2, H, W\)'):
        resize_flow(torch.zeros(2, 4, 4), (8, 8))


# --------------------------------------------------------------------------------------------------- flow_to_color
def test_flow_to_color_zero_is_white_and_right_is_red():
    img = flow_to_color(np.zeros((4, 5, 2), np.float32))
    assert img.dtype == np.uint8 and img.shape == (4, 5, 3)
    assert (img == 255).all()
    right = np.zeros((3, 4, 2), np.float32)
    right[..., 0] = 3.0
    # Middlebury wheel as torchvision draws it: atan2(-0, -u) = -pi puts +u at hue index 0, pure red.
    np.testing.assert_array_equal(flow_to_color(right)[1, 2], [255, 0, 0])
    down = np.zeros((3, 4, 2), np.float32)
    down[..., 1] = 3.0
    assert not np.array_equal(flow_to_color(down)[1, 2], [255, 0, 0])
    flow = np.random.default_rng(4).normal(0, 3, (6, 7, 2)).astype(np.float32)
    expected = flow_to_image(torch.from_numpy(flow).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(flow_to_color(flow), expected)


def test_flow_to_color_max_flow_pins_saturation():
    a = np.zeros((3, 3, 2), np.float32)
    a[..., 0] = 2.0
    b = a.copy()
    b[0, 0, 0] = 4.0  # a faster pixel elsewhere in frame b
    # Without max_flow each frame is normalised by its own max: the same 2 px motion gets two colours.
    assert not np.array_equal(flow_to_color(a)[1, 1], flow_to_color(b)[1, 1])
    ca, cb = flow_to_color(a, max_flow=4.0), flow_to_color(b, max_flow=4.0)
    np.testing.assert_array_equal(ca[1, 1], cb[1, 1])
    assert ca[1, 1, 1] > 100  # half saturation: not the fully saturated colour
    np.testing.assert_array_equal(flow_to_color(b * 10, max_flow=4.0)[1, 1], flow_to_color(b, max_flow=4.0)[0, 0])
    with pytest.raises(ValueError, match='max_flow'):
        flow_to_color(a, max_flow=0)


def test_flow_to_color_masks_unknown_and_accepts_tensors():
    flow = np.zeros((3, 4, 2), np.float32)
    flow[0, 0] = 1e9
    flow[0, 1] = np.nan
    flow[1, 0, 0] = 1.0
    img = flow_to_color(flow)
    assert (img[0, 0] == 255).all() and (img[0, 1] == 255).all()
    np.testing.assert_array_equal(img[1, 0], [255, 0, 0])
    np.testing.assert_array_equal(flow_to_color(torch.from_numpy(flow).permute(2, 0, 1)), img)
    batch = flow_to_color(torch.from_numpy(flow).permute(2, 0, 1)[None].repeat(2, 1, 1, 1))
    assert batch.shape == (2, 3, 4, 3)


def test_flow_to_color_numpy_with_two_rows_is_hw2():
    flow = np.zeros((2, 5, 2), np.float32)
    flow[1, 0, 0] = 1.0
    img = flow_to_color(flow)
    assert img.shape == (2, 5, 3)
    np.testing.assert_array_equal(img[1, 0], [255, 0, 0])


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    """Temp-file-then-rename must not leave results readable only by their owner (mkstemp's 0600)."""
    import os

    umask = os.umask(0o022)
    try:
        write_flo(tmp_path / 'a.flo', np.zeros((2, 3, 2), np.float32))
    finally:
        os.umask(umask)
    assert (tmp_path / 'a.flo').stat().st_mode & 0o777 == 0o644
