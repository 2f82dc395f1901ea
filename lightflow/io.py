"""Optical-flow file formats: Middlebury ``.flo``, KITTI 16-bit PNG, image reading / PNG encoding, atomic writes.

Frame conversion and the extension lists live in :mod:`lightflow.frames`."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

# to_uint8 is imported for lightflow.inference, which still imports it from here; its home is lightflow.frames.
from .frames import to_rgb, to_uint8  # noqa: F401

__all__ = ['read_flo', 'write_flo', 'read_kitti_flow', 'write_kitti_flow', 'read_image', 'encode_png', 'write_png',
           'atomic_write', 'UNKNOWN_FLOW_THRESH', 'KITTI_MAX_FLOW']

_FLO_MAGIC = b'PIEH'  # float32 202021.25 read as bytes
# Middlebury marks unknown flow with 1e9; anything this large is invalid.
UNKNOWN_FLOW_THRESH = 1e9
# KITTI stores u, v as uint16 (value * 64 + 2**15): |flow| must stay below 512 px to fit.
KITTI_MAX_FLOW = 2.0 ** 15 / 64.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = 'wb') -> Iterator:
    """Open a temp file beside ``path`` and rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results should get the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file (little-endian: ``PIEH``, int32 width, int32 height, H*W*2 float32).

    Returns:
        float32 array (H, W, 2) holding (u, v). Unknown-flow entries (1e9) are returned as stored; use
        ``valid = isfinite & (abs < UNKNOWN_FLOW_THRESH)`` to mask them.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: bad magic, bad dimensions or a truncated file (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such .flo file')
    data = path.read_bytes()
    if len(data) < 12:
        raise ValueError(f'{path}: truncated .flo header ({len(data)} bytes, need 12)')
    if data[:4] != _FLO_MAGIC:
        raise ValueError(f'{path}: bad .flo magic {data[:4]!r}, expected {_FLO_MAGIC!r}')
    width, height = (int(v) for v in np.frombuffer(data, '<i4', count=2, offset=4))
    if width <= 0 or height <= 0 or width > 100_000 or height > 100_000:
        raise ValueError(f'{path}: bad .flo dimensions {width}x{height}')
    expected = 12 + width * height * 2 * 4
    if len(data) != expected:
        kind = 'truncated' if len(data) < expected else 'oversized'
        raise ValueError(f'{path}: {kind} .flo file ({len(data)} bytes, {width}x{height} needs {expected})')
    flow = np.frombuffer(data, '<f4', offset=12).reshape(height, width, 2)
    return flow.astype(np.float32)


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write an (H, W, 2) flow to a ``.flo`` file atomically (temp file, then rename)."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f'{path}: flow must be (H, W, 2), got {flow.shape}')
    height, width = flow.shape[:2]
    with atomic_write(path) as f:
        f.write(_FLO_MAGIC)
        f.write(np.array([width, height], '<i4').tobytes())
        f.write(np.ascontiguousarray(flow, '<f4').tobytes())


def _cv2():
    import cv2  # OpenCV reads and writes the 16-bit 3-channel PNGs unchanged (IMREAD_UNCHANGED)

    return cv2


def read_kitti_flow(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a KITTI flow PNG (16-bit RGB: u, v as ``(value - 2**15) / 64``, valid where B > 0).

    Returns:
        ``(flow, valid)``: float32 (H, W, 2) and bool (H, W).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such KITTI flow PNG')
    raw = _cv2().imread(str(path), -1)  # IMREAD_UNCHANGED keeps 16 bits; BGR order
    if raw is None or raw.ndim != 3 or raw.shape[2] != 3 or raw.dtype != np.uint16:
        desc = 'unreadable' if raw is None else f'{raw.dtype} {raw.shape}'
        raise ValueError(f'{path}: not a 16-bit 3-channel KITTI flow PNG ({desc})')
    rgb = raw[..., ::-1].astype(np.float32)
    flow = (rgb[..., :2] - 2.0 ** 15) / 64.0
    valid = rgb[..., 2] > 0
    return flow.astype(np.float32), valid


def write_kitti_flow(path: str | os.PathLike, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write (H, W, 2) flow and an optional (H, W) validity mask as a KITTI 16-bit PNG, atomically.

    Pixels whose flow is NaN/inf, Middlebury's "unknown" (1e9) or too large for the format (512 px or more in u or
    v, :data:`KITTI_MAX_FLOW`) are written as invalid (B = 0).
    """
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f'{path}: flow must be (H, W, 2), got {flow.shape}')
    valid = np.ones(flow.shape[:2], bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != flow.shape[:2]:
        raise ValueError(f'{path}: valid must be {flow.shape[:2]}, got {valid.shape}')
    # NaN/inf, Middlebury's 1e9 "unknown" and flows KITTI cannot store (>= 512 px) are stored as invalid pixels,
    # never as a clipped +-512 px that still reads as valid.
    with np.errstate(invalid='ignore'):
        known = np.isfinite(flow).all(axis=2) & (np.abs(flow) < KITTI_MAX_FLOW).all(axis=2)
    valid = valid & known
    flow = np.where(known[..., None], flow, 0.0)
    uv = np.clip(np.round(flow * 64.0 + 2.0 ** 15), 0, 2 ** 16 - 1).astype(np.uint16)
    rgb = np.dstack([uv, valid.astype(np.uint16)])
    ok, buf = _cv2().imencode('.png', rgb[..., ::-1])
    if not ok:
        raise ValueError(f'{path}: could not encode KITTI flow PNG')
    with atomic_write(path) as f:
        f.write(buf.tobytes())


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3) (:func:`lightflow.frames.to_rgb`: grey replicated, RGBA drops alpha,
    16-bit scaled to 0..255)."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such image')
    try:
        img = np.asarray(iio.imread(path))
    except Exception as e:  # imageio raises many types for undecodable files
        raise ValueError(f'{path}: cannot decode image ({type(e).__name__}: {e})') from None
    return to_rgb(img, str(path))


def encode_png(img: np.ndarray) -> bytes:
    """uint8 (H, W, 3) RGB -> PNG bytes."""
    import imageio.v3 as iio

    return iio.imwrite('<bytes>', img, extension='.png')


def write_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a uint8 (H, W, 3) RGB image as a PNG, atomically (:func:`atomic_write`)."""
    with atomic_write(path) as f:
        f.write(encode_png(img))
