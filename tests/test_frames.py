"""lightflow.frames, the one frame-I/O room: frame -> uint8 RGB, folders and video files as streams, the same frames
through every tool's reader, and no second extension list anywhere in the tree."""
from __future__ import annotations

import ast
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from lightflow.frames import (IMAGE_EXTS, VIDEO_EXTS, WRITABLE_VIDEO_EXTS, collect_inputs, extract_frames, iter_frames,
                              named_frames, to_rgb)
from lightflow.io import read_image

REPO = Path(__file__).resolve().parents[1]


def _frames(n: int = 3, size=(24, 32)) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def test_to_rgb_grey_rgba_uint16_and_float():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    for frame in (grey, grey[..., None]):
        rgb = to_rgb(frame, 'f')
        assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8 and (rgb == grey[..., None]).all()
    rgba = np.dstack([grey, grey + 1, grey + 2, np.full_like(grey, 7)])
    np.testing.assert_array_equal(to_rgb(rgba, 'f'), rgba[..., :3])
    # A 16-bit file spans 0..65535: its top byte. A uint16 array holding 0..255 keeps its values (not black).
    full = np.array([[0, 256, 65535]], np.uint16)
    np.testing.assert_array_equal(to_rgb(full, 'f')[..., 0], [[0, 1, 255]])
    small = np.array([[0, 17, 255]], np.uint16)
    np.testing.assert_array_equal(to_rgb(small, 'f')[..., 2], [[0, 17, 255]])
    np.testing.assert_array_equal(to_rgb(np.array([[0.4, 17.6, 300.0]], np.float32), 'f')[..., 1], [[0, 18, 255]])
    with pytest.raises(ValueError, match=r'^f: float64 frame with values in 0..0.5 looks like 0..1'):
        to_rgb(np.full((2, 2, 3), 0.5), 'f')
    with pytest.raises(ValueError, match='^f: float32 frame holds NaN'):
        to_rgb(np.full((2, 2), np.nan, np.float32), 'f')
    with pytest.raises(ValueError, match='^f: unsupported image dtype int32'):
        to_rgb(np.zeros((2, 2, 3), np.int32), 'f')
    with pytest.raises(ValueError, match=r'^f: expected an RGB, grey or RGBA frame, got shape \(2, 2, 2\)'):
        to_rgb(np.zeros((2, 2, 2), np.uint8), 'f')


def test_uint16_file_holding_8_bit_values_is_not_read_as_black(tmp_path):
    values = np.array([[0, 40, 128, 255]], np.uint16)
    iio.imwrite(tmp_path / 'g16.png', values)
    assert iio.imread(tmp_path / 'g16.png').dtype == np.uint16
    np.testing.assert_array_equal(read_image(tmp_path / 'g16.png')[..., 0], values)


def test_folder_stream_is_sorted_exact_length_and_skips_other_files(tmp_path):
    frames = _frames(3)
    for t, frame in enumerate(frames):
        iio.imwrite(tmp_path / f'{t:02d}.PNG', frame)  # upper-case suffix counts
    (tmp_path / 'notes.txt').write_text('x')
    (tmp_path / 'sub.png').mkdir()
    stream = iter_frames(tmp_path)
    assert stream.length == 3 and stream.fps is None
    assert [p.name for p in stream.files] == ['00.PNG', '01.PNG', '02.PNG']
    for got, want in zip(stream, frames, strict=True):
        np.testing.assert_array_equal(got, want)
    assert list(iter_frames(tmp_path)) and len(list(iter_frames(tmp_path))) == 3  # iterable again


def test_video_stream_has_fps_and_length_and_bad_files_are_one_line(tmp_path):
    clip = tmp_path / 'clip.mp4'
    iio.imwrite(clip, np.stack([np.full((32, 48, 3), 40 * t, np.uint8) for t in range(5)]), fps=4, codec='libx264')
    stream = iter_frames(clip)
    assert stream.fps == pytest.approx(4.0) and stream.length == 5 and stream.files is None
    frames = list(stream)
    assert len(frames) == 5 and frames[0].shape == (32, 48, 3) and frames[0].dtype == np.uint8
    assert [int(np.median(f)) for f in frames] == pytest.approx([0, 40, 80, 120, 160], abs=3)
    with pytest.raises(FileNotFoundError, match='missing.mp4: no such video file or frame folder'):
        iter_frames(tmp_path / 'missing.mp4')
    fake = tmp_path / 'fake.mp4'
    fake.write_text('not a video\n')
    with pytest.raises(ValueError) as info:
        iter_frames(fake)
    assert str(info.value).startswith(f'{fake}: cannot read as a video (') and '\n' not in str(info.value)


def test_extract_frames_streams_a_video_to_pngs_once(tmp_path, monkeypatch):
    """A video source of the adaptation pairs was decoded whole into memory (issue 22: a 200-frame 720p clip, 1.76 GB
    peak); its frames are now extracted once to lossless PNGs, reused, renewed when the file changes, and never left
    half-written."""
    import os

    import cv2

    clip = tmp_path / 'clip.mp4'
    iio.imwrite(clip, np.stack([np.full((32, 48, 3), 40 * t, np.uint8) for t in range(5)]), fps=4, codec='libx264')
    decoded = list(iter_frames(clip))
    paths = extract_frames(clip, tmp_path / 'frames')
    assert [p.name for p in paths] == [f'{i:06d}.png' for i in range(5)] and paths[0].parent.parent == tmp_path / 'frames'
    for path, frame in zip(paths, decoded, strict=True):
        np.testing.assert_array_equal(read_image(path), frame)  # lossless, RGB order kept
    stamp = paths[0].stat().st_mtime_ns
    assert extract_frames(clip, tmp_path / 'frames') == paths and paths[0].stat().st_mtime_ns == stamp  # reused

    os.utime(clip, ns=(stamp + 10**9, stamp + 10**9))  # the file changed: a new folder, not the old frames
    assert extract_frames(clip, tmp_path / 'frames')[0].parent != paths[0].parent

    calls = []

    def failing(ext, img, params=None):
        calls.append(1)
        if len(calls) == 3:
            raise OSError('disk full')
        return real(ext, img, params)

    real = cv2.imencode
    monkeypatch.setattr(cv2, 'imencode', failing)
    with pytest.raises(OSError, match='disk full'):
        extract_frames(clip, tmp_path / 'other')
    assert list((tmp_path / 'other').iterdir()) == []  # nothing half-written that a later call would take
    monkeypatch.setattr(cv2, 'imencode', real)
    assert len(extract_frames(clip, tmp_path / 'other')) == 5


@pytest.mark.parametrize('ext', ['.webp', '.tif'])
def test_webp_and_tif_folders_read_the_same_by_every_tool(tmp_path, ext):
    """demo_flow.py (collect_inputs + named_frames), demo_video.py (iter_frames) and adapt_flow.py (VideoPairs) read
    one folder into the same frames."""
    from lightflow.data.video_pairs import VideoPairs, list_video_frames

    folder = tmp_path / 'clip'
    folder.mkdir()
    frames = _frames(3)
    for t, frame in enumerate(frames):
        iio.imwrite(folder / f'{t:04d}{ext}', frame, **({'lossless': True} if ext == '.webp' else {}))

    kind, paths = collect_inputs([str(folder)])
    by_demo_flow = [frame for _, frame in named_frames(kind, paths)]
    by_demo_video = list(iter_frames(folder))
    assert len(list_video_frames([folder])['clip']) == 3  # what adapt_flow.py checks before training
    pairs = VideoPairs([folder], size=(24, 32), max_gap=1)
    by_adapt = [pairs._frame('clip', t) for t in range(3)]
    for reader in (by_demo_flow, by_demo_video, by_adapt):
        assert len(reader) == 3
        for got, want in zip(reader, frames):
            np.testing.assert_array_equal(got, want)


def _extension_literals(path: Path) -> list[tuple[int, list[str]]]:
    """(line, extensions) of every tuple / list / set literal in ``path`` naming two or more image extensions or two
    or more video extensions."""
    image, video = set(IMAGE_EXTS), set(VIDEO_EXTS)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            strings = {e.value.lower() for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if len(strings & image) >= 2 or len(strings & video) >= 2:
                found.append((node.lineno, sorted(strings)))
    return found


def test_one_image_and_one_video_extension_list_in_the_tree():
    roots = [REPO / d for d in ('lightflow', 'mmdet_plugin', 'tools', 'configs')] + [REPO / 'setup.py']
    files = [p for r in roots for p in ([r] if r.is_file() else sorted(r.rglob('*.py')))]
    assert len(files) > 50
    others = {f'{p.relative_to(REPO)}:{line}': exts for p in files if p != REPO / 'lightflow' / 'frames.py'
              for line, exts in _extension_literals(p)}
    assert not others, f'extension lists outside lightflow/frames.py (import IMAGE_EXTS / VIDEO_EXTS): {others}'
    assert len(_extension_literals(REPO / 'lightflow' / 'frames.py')) == 3  # the grep finds what it looks for
    assert set(WRITABLE_VIDEO_EXTS) <= set(VIDEO_EXTS)


def test_the_one_cocovid_reader_validates_as_the_detector_dataset_does(tmp_path):
    """Issue 22: ``read_cocovid`` (benchmarks, adaptation) and the plugin's ``CocoVIDDataset`` read one format through
    one validator; before, the benchmarks' reader took a video with a repeated frame id in silence."""
    import json

    from lightflow.frames import read_cocovid

    ann = tmp_path / 'annotations' / 'val.json'
    ann.parent.mkdir()
    images = [dict(id=1, video_id=7, frame_id=0, file_name='v/0.png', height=4, width=6),
              dict(id=2, video_id=7, frame_id=1, file_name='v/1.png', height=4, width=6)]
    ann.write_text(json.dumps(dict(images=images, annotations=[dict(id=1, image_id=2, bbox=[1, 1, 2, 2])])))
    videos, boxes = read_cocovid(ann)
    assert [im['path'] for im in videos['7']] == [tmp_path / 'v/0.png', tmp_path / 'v/1.png']
    assert boxes == {2: [[1, 1, 2, 2]]}
    images[1]['frame_id'] = 0
    ann.write_text(json.dumps(dict(images=images)))
    with pytest.raises(ValueError, match=f'^{ann}: video 7 has frame_id 0 twice'):
        read_cocovid(ann)
