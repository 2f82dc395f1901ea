"""Frame I/O: the one list of image and of video file extensions, frame -> uint8 RGB, and a folder of frames or a
video file read as a stream.

Every reader of frames goes through here (``tools/demo_flow.py``, ``tools/demo_video.py``, the adaptation pairs of
:mod:`lightflow.data.video_pairs`, the real videos of :mod:`lightflow.evaluation`, :func:`lightflow.io.read_image`), so
a folder one tool reads, every tool reads. :func:`collect_inputs`, :func:`frame_names` and :func:`named_frames` turn a
command line's INPUT... (an image pair, a folder of frames or a video) into named frames. Pure numpy + imageio
(imported when a video is opened).
"""
from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

__all__ = ['IMAGE_EXTS', 'VIDEO_EXTS', 'WRITABLE_VIDEO_EXTS', 'to_uint8', 'to_rgb', 'list_image_files',
           'FrameStream', 'iter_frames', 'collect_inputs', 'frame_names', 'named_frames', 'read_cocovid',
           'validate_cocovid']

# The one list of frame image extensions (lower case; a file's suffix is compared lower-cased).
IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.ppm', '.pgm', '.bmp', '.tif', '.tiff', '.webp')
# The one list of video file extensions the tools read (imageio-ffmpeg decodes them; ``.gif`` through Pillow).
VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.gif')
# The containers that take the H.264 stream the tools write (a subset of VIDEO_EXTS).
WRITABLE_VIDEO_EXTS = ('.mp4', '.mkv', '.mov', '.avi')


def to_uint8(img: np.ndarray, where: str) -> np.ndarray:
    """Integer image values as uint8 0..255.

    uint8 is returned as is. uint16 is scaled to 0..255 by its top 8 bits (a 16-bit file spans 0..65535), except an
    array whose values all fit in 0..255, which holds 8-bit values in a wider type and is cast unchanged (its top byte
    would be 0: a black frame). Other integer types and bool raise ``ValueError`` naming ``where`` (their range is
    ambiguous); floats are :func:`to_rgb`'s business.
    """
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        if img.size == 0 or int(img.max()) <= 255:
            return img.astype(np.uint8)
        return (img >> 8).astype(np.uint8)
    raise ValueError(f'{where}: unsupported image dtype {img.dtype}; give uint8 or uint16 (or float RGB in 0..255)')


def _float_to_uint8(img: np.ndarray, where: str) -> np.ndarray:
    """Float 0..255 -> uint8 (rounded, clipped); the rule of :func:`lightflow.estimate_flow`: a float image whose
    maximum is in (0, 1] looks like 0..1 and is refused rather than guessed."""
    if not np.isfinite(img).all():
        raise ValueError(f'{where}: {img.dtype} frame holds NaN or inf values')
    top = float(img.max()) if img.size else 0.0
    if 0 < top <= 1:
        raise ValueError(f'{where}: {img.dtype} frame with values in 0..{top:.3g} looks like 0..1; frames are RGB in '
                         '0..255 (multiply by 255)')
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def to_rgb(frame: np.ndarray, where: str) -> np.ndarray:
    """Any decoded frame -> contiguous uint8 RGB (H, W, 3).

    Grey (H, W) and (H, W, 1) are replicated to 3 channels, RGBA drops alpha; uint16 and floats in 0..255 are
    converted (:func:`to_uint8`, floats rounded and clipped).

    Raises:
        ValueError: another shape or dtype, NaN / inf, or a float frame that looks like 0..1 (the message names
            ``where``).
    """
    frame = np.asarray(frame)
    if np.issubdtype(frame.dtype, np.floating):
        frame = _float_to_uint8(frame, where)
    else:
        frame = to_uint8(frame, where)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = frame[..., :3]
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f'{where}: expected an RGB, grey or RGBA frame, got shape {frame.shape}')
    return np.ascontiguousarray(frame)


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """The frame images of ``folder`` (:data:`IMAGE_EXTS`, any case), sorted by name; subfolders are skipped."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _first_line(error: BaseException) -> str:
    # ffmpeg's message starts with its whole version banner; its last non-empty line says what was wrong.
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:160]


@dataclass(frozen=True)
class FrameStream:
    """The frames of a folder or a video file, decoded one at a time while iterating (memory stays constant).

    Attributes:
        path: the folder or video file.
        files: a folder's frame files in order (None for a video file).
        fps: frames per second of a video file when its metadata says (None for folders).
        length: number of frames: exact for a folder, estimated from duration x fps for a video file, or None.
    """
    path: Path
    files: tuple[Path, ...] | None
    fps: float | None
    length: int | None

    def __iter__(self) -> Iterator[np.ndarray]:
        """uint8 RGB (H, W, 3) frames in time order."""
        if self.files is not None:
            from .io import read_image  # io reads one image with to_rgb; imported here, as io imports this module

            yield from (read_image(f) for f in self.files)
            return
        import imageio.v3 as iio

        count = 0
        try:
            for count, frame in enumerate(iio.imiter(self.path), start=1):
                yield to_rgb(frame, f'{self.path} frame {count - 1}')
        except (OSError, RuntimeError, StopIteration) as e:
            if count == 0:
                raise ValueError(f'{self.path}: cannot read as a video ({_first_line(e)})') from None
            raise ValueError(f'{self.path}: video decoding failed after {count} frames ({type(e).__name__})') from None


def iter_frames(path: str | os.PathLike) -> FrameStream:
    """Open a folder of frames (:data:`IMAGE_EXTS`, sorted by name) or a video file as a :class:`FrameStream`.

    A video file's metadata is read now (fps, estimated length), so an unreadable file fails here, not mid-stream.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a file that cannot be read as a video (one line naming it).
    """
    path = Path(path)
    if path.is_dir():
        files = tuple(list_image_files(path))
        return FrameStream(path, files, None, len(files))
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such video file or frame folder')
    import imageio.v3 as iio

    try:
        meta = iio.immeta(path)
    except Exception as e:  # imageio raises several types for unreadable files
        raise ValueError(f'{path}: cannot read as a video ({_first_line(e)})') from None
    fps = meta.get('fps')
    fps = float(fps) if isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0 else None
    duration = meta.get('duration')
    length = None
    if fps is not None and isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0:
        length = int(round(duration * fps))
    return FrameStream(path, None, fps, length)


def extract_frames(video: str | os.PathLike, folder: str | os.PathLike) -> list[Path]:
    """The frames of a video file as lossless PNGs under ``folder``, decoded once with one frame in memory at a time.

    Random access to a video's frames (what frame-pair datasets need) without holding the decoded video in memory
    (a 200-frame 720p clip is 0.55 GB as uint8 RGB). The frames go to ``folder/<stem>-<key>/000000.png, ...``,
    ``key`` a digest of the file's resolved path, size and modification time: a later call (another run, a dataloader
    worker) reuses a complete folder and an edited file gets a new one. They are written into a temporary folder
    renamed when complete, so an interrupted extraction never reads as complete.

    Args:
        video: a video file (:data:`VIDEO_EXTS`).
        folder: where the frame folders go (created if needed).

    Returns:
        The PNG paths in time order (empty for a video without frames).

    Raises:
        FileNotFoundError / ValueError: as :func:`iter_frames`.
    """
    import hashlib
    import shutil
    import tempfile

    import cv2

    stream = iter_frames(video)  # checks the file before any folder is made
    stat = Path(video).stat()
    key = hashlib.sha256(f'{Path(video).resolve()}|{stat.st_size}|{stat.st_mtime_ns}'.encode()).hexdigest()[:12]
    target = Path(folder) / f'{Path(video).stem}-{key}'
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f'.{target.name}.', suffix='.tmp', dir=target.parent))
        try:
            for index, frame in enumerate(stream):
                ok, data = cv2.imencode('.png', np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
                assert ok, 'OpenCV could not encode a uint8 frame as PNG'
                (tmp / f'{index:06d}.png').write_bytes(data.tobytes())
            try:
                os.replace(tmp, target)
            except OSError:  # another process completed the same folder first: use theirs
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return sorted(target.glob('*.png'))


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> tuple[str, list[Path]]:
    """Classify a command line's INPUT... paths.

    Args:
        inputs: two image files, one folder of frames (:data:`IMAGE_EXTS`) or one video file (:data:`VIDEO_EXTS`).

    Returns:
        ``('pair', [a, b])``, ``('folder', its frame files sorted by name)`` or ``('video', [file])``.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: a folder with fewer than 2 frames, or any other combination of paths (one line naming them).
    """
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f'{p}: no such file or folder')
    if len(paths) == 1 and paths[0].is_dir():
        frames = list_image_files(paths[0])
        if len(frames) < 2:
            raise ValueError(f'{paths[0]}: needs at least 2 image frames ({" ".join(IMAGE_EXTS)}), found {len(frames)}')
        return 'folder', frames
    if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_EXTS:
        return 'video', paths
    if len(paths) == 2 and all(p.is_file() for p in paths):
        return 'pair', paths
    raise ValueError(f'INPUT must be two images, one folder of frames or one video file; got {len(paths)} '
                     f'path(s): {" ".join(map(str, paths))}')


def frame_names(paths: Sequence[Path]) -> list[str]:
    """Output stem per input image: the file stem, or the whole name (``f0_jpg``) when two stems collide."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [p.name.replace('.', '_') for p in paths]


def named_frames(kind: str, paths: Sequence[Path], stream: FrameStream | None = None
                 ) -> Iterator[tuple[str, np.ndarray]]:
    """The frames of :func:`collect_inputs`' result, decoded one at a time.

    Args:
        kind, paths: what :func:`collect_inputs` returned.
        stream: a video's :class:`FrameStream` already opened (:func:`iter_frames`); None opens it here.

    Yields:
        ``(output stem, uint8 RGB (H, W, 3) frame)`` in order: image files named by :func:`frame_names`, a video's
        frames ``<stem>_000000``, ``<stem>_000001``, ...

    Raises:
        ValueError: a video that yields no frame.
    """
    from .io import read_image  # io imports this module

    if kind == 'video':
        count = 0
        for count, frame in enumerate(stream or iter_frames(paths[0]), start=1):
            yield f'{paths[0].stem}_{count - 1:06d}', frame
        if count == 0:
            raise ValueError(f'{paths[0]}: the video yielded no frames')
    else:
        for p, name in zip(paths, frame_names(paths)):
            yield name, read_image(p)


def validate_cocovid(data: dict, ann_file: str) -> None:
    """Check a CocoVID dict; raise ``ValueError`` naming ``ann_file`` and the first offending image or video.

    Checks: ``images`` is a list; image ids are unique (pycocotools keeps the last image of a repeated id, silently
    dropping the others and their boxes); every image has ``video_id`` and ``frame_id``; frame ids are unique within
    a video; all frames of a video have the same ``height`` x ``width``.
    """
    images = data.get('images')
    if not isinstance(images, list):
        raise ValueError(f'{ann_file}: no "images" list in the annotation file')
    sizes: dict[Any, tuple[Any, Any, Any]] = {}
    frames: dict[Any, set] = defaultdict(set)
    names: dict[Any, Any] = {}
    for img in images:
        if img.get('id') in names:
            raise ValueError(f'{ann_file}: image id {img.get("id")} is used twice ({names[img.get("id")]} and '
                             f'{img.get("file_name")}); image ids must be unique')
        names[img.get('id')] = img.get('file_name')
        for key in ('video_id', 'frame_id'):
            if img.get(key) is None:
                raise ValueError(f'{ann_file}: image id {img.get("id")} ({img.get("file_name")}) has no "{key}"; '
                                 'CocoVID needs video_id and frame_id on every image')
        vid, fid = img['video_id'], img['frame_id']
        if fid in frames[vid]:
            raise ValueError(f'{ann_file}: video {vid} has frame_id {fid} twice (image id {img.get("id")})')
        frames[vid].add(fid)
        size = (img.get('height'), img.get('width'))
        if vid in sizes and sizes[vid][:2] != size:
            h, w, first = sizes[vid]
            raise ValueError(f'{ann_file}: frames of video {vid} differ in size: image id {first} is {h}x{w}, '
                             f'image id {img.get("id")} is {size[0]}x{size[1]}')
        sizes.setdefault(vid, size + (img.get('id'),))


def read_cocovid(path: str | os.PathLike, img_root: str | os.PathLike | None = None
                 ) -> tuple[dict[str, list[dict]], dict[int, list[list[float]]]]:
    """The frames and boxes of a CocoVID json.

    Args:
        path: the json (``videos``, ``images`` with ``video_id`` / ``frame_id`` / ``file_name``, ``annotations``).
        img_root: where ``file_name`` is relative to (default: the json's grandparent, the layout that
            ``tools/make_synthetic_vid.py`` and ``tools/convert_imagenet_vid.py`` write).

    Returns:
        ``({video_id: images sorted by frame_id, each its json dict plus 'path'}, {image id: [[x, y, w, h], ...]})``.
    """
    path = Path(path)
    try:
        coco = json.loads(path.read_text())
        images = coco['images']
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f'{path}: not a CocoVID json with "images" ({type(e).__name__}: {e})') from None
    validate_cocovid(coco, str(path))
    root = Path(img_root) if img_root is not None else path.parent.parent
    videos: dict[str, list[dict]] = {}
    for image in images:
        try:
            key, name, _ = str(image['video_id']), image['file_name'], int(image['frame_id'])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f'{path}: image entry without video_id / frame_id / file_name: {image!r}') from None
        videos.setdefault(key, []).append(dict(image, path=root / name))
    boxes: dict[int, list[list[float]]] = {}
    for ann in coco.get('annotations', []):
        boxes.setdefault(ann['image_id'], []).append(list(ann['bbox']))
    return {k: sorted(v, key=lambda im: int(im['frame_id'])) for k, v in videos.items()}, boxes
