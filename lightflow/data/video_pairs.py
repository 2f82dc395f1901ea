"""Label-free adaptation data: frame pairs of a user's videos, labelled by a teacher (OpenCV DIS at full resolution,
kept where a forward-backward check agrees), at the flow size a detector runs Light Flow at.

The pairs see frames only (a CocoVID json, frame folders or video files), as a user's own videos would: no ground
truth motion is read. The detector warps the key frame to frame ``t`` with the flow ``t -> key``, so each pair is
``(frame t, frame t - g)`` or, for the reverse motions, ``(frame t, frame t + g)``, ``g`` in ``1..max_gap``.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..baseline_flow import dis_flow
from ..frames import VIDEO_EXTS, extract_frames, list_image_files, read_cocovid
from ..io import atomic_write, read_image
from ..warp import flow_warp, resize_flow
from .transforms import ToTensor

__all__ = ['VideoPairs', 'add_videos', 'check_pair_frames', 'list_video_frames', 'consistent_teacher_flow',
           'resize_frame']

Frames = list  # one video: frame paths in time order


def list_video_frames(sources: Sequence[str | os.PathLike], img_root: str | os.PathLike | None = None,
                      frames_dir: str | os.PathLike | None = None) -> dict[str, Frames]:
    """The videos of ``sources``, each a list of frame paths in time order.

    Args:
        sources: CocoVID jsons (frames ordered by ``frame_id`` per ``video_id``), folders of frames (one video), folders
            of such folders (one video each) or video files.
        img_root: where a json's ``file_name`` is relative to (default: the json's grandparent, the layout of
            ``tools/make_synthetic_vid.py``).
        frames_dir: where a video file's frames are extracted to (:func:`lightflow.frames.extract_frames`: once,
            streamed, reused by later calls); default: ``lightflow_frames`` in the system's temp folder.

    Returns:
        ``{video name: frame paths}``.
    """
    if frames_dir is None:
        frames_dir = Path(tempfile.gettempdir()) / 'lightflow_frames'
    videos: dict[str, Frames] = {}
    for source in _once_each(sources):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f'adaptation source {path} does not exist')
        if path.is_file() and path.suffix.lower() == '.json':
            found = {f'{path.stem}/{k}': [im['path'] for im in v] for k, v in read_cocovid(path, img_root)[0].items()}
        elif path.is_file() and path.suffix.lower() in VIDEO_EXTS:
            found = {path.stem: extract_frames(path, frames_dir)}  # streamed to PNGs, not held in memory
        elif path.is_dir():
            frames = list_image_files(path)
            found = {path.name: frames} if frames else {
                f'{path.name}/{d.name}': list_image_files(d) for d in sorted(path.iterdir()) if d.is_dir()}
        else:
            raise ValueError(f'adaptation source {path}: expected a CocoVID .json, a video file '
                             f'({", ".join(VIDEO_EXTS)}) or a folder of frames')
        if not any(len(v) >= 2 for v in found.values()):
            raise ValueError(f'adaptation source {path}: no video with at least two frames (found {len(found)} '
                             'video(s))')
        add_videos(videos, found, path)
    return videos


def _once_each(sources: Sequence[str | os.PathLike]) -> Sequence[str | os.PathLike]:
    """``sources``, refused (one line) if one of them is given twice, under any spelling of its path."""
    seen: dict[Path, str | os.PathLike] = {}
    for source in sources:
        key = Path(source).resolve()
        if key in seen:
            raise ValueError(f'adaptation source {source}: given twice (as {seen[key]} too)')
        seen[key] = source
    return sources


def add_videos(videos: dict[str, Frames], found: dict[str, Frames], source: str | os.PathLike) -> list[str]:
    """Add ``found`` (videos of ``source``) to ``videos`` under names no earlier source took: a repeated name (two
    ``frames/`` folders, two sets' ``train.json``) gets its source appended, instead of replacing the earlier video.

    Returns:
        the names the videos of ``found`` were added under, in order.
    """
    names = []
    for name, frames in found.items():
        if name in videos:
            name = f'{name} ({source})'
        assert name not in videos, name  # sources are unique (_once_each), so are their paths
        videos[name] = frames
        names.append(name)
    return names


def check_pair_frames(videos: dict[str, Frames], pairs: Sequence[tuple[str, int, int]]) -> None:
    """Before any teacher runs: every frame the pairs read exists, is an image, and has its video's size.

    Raises:
        FileNotFoundError / ValueError: one line naming the video and the frame.
    """
    import imageio.v3 as iio

    def size_of(video: str, index: int) -> tuple[int, int]:
        frame = videos[video][index]
        if not Path(frame).is_file():
            raise FileNotFoundError(f'video {video}: frame {index} {frame} does not exist')
        try:
            return tuple(iio.improps(frame).shape[:2])  # the header only
        except Exception as e:
            raise ValueError(f'video {video}: frame {index} {frame} is not a readable image '
                             f'({type(e).__name__})') from None

    first: dict[str, tuple[int, int]] = {}
    for video, *indices in pairs:
        if video not in first:
            first[video] = size_of(video, 0)
        for index in indices:
            size = size_of(video, index)
            if size != first[video]:
                h, w = first[video]
                raise ValueError(f'video {video}: frame {index} {videos[video][index]} is {size[1]}x{size[0]}, '
                                 f'frame 0 is {w}x{h}: a video\'s frames must have one size')


def resize_frame(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (h, w, 3) 0..255, resized as ``LightFlowMotion.flow_inputs`` resizes the detector's
    frames (one bilinear ``F.interpolate``, ``align_corners=False``, no antialiasing), so the network adapts to the
    very images it will see."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=False)
    return x[0].permute(1, 2, 0).numpy()


def consistent_teacher_flow(img1: np.ndarray, img2: np.ndarray, preset: str = 'medium', alpha: float = 0.01,
                            beta: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """DIS flow ``img1 -> img2`` and where it passes the forward-backward check of UnFlow (Meister et al. 2018):
    ``|f + b(x + f)|^2 < alpha (|f|^2 + |b(x + f)|^2) + beta``.

    Args:
        img1, img2: uint8 (H, W, 3) RGB frames of one size.
        preset: the DIS preset of the teacher.

    Returns:
        ``(flow, valid)``: (2, H, W) float32 flow in pixels, ``img1[y, x] ~ img2[y + v, x + u]``; (H, W) bool mask.
    """
    forward = dis_flow(img1, img2, preset)[None]
    backward = dis_flow(img2, img1, preset)[None]
    back_at = flow_warp(backward, forward, padding_mode='border', fast=False)
    lhs = (forward + back_at).square().sum(1)
    rhs = alpha * (forward.square().sum(1) + back_at.square().sum(1)) + beta
    return forward[0], (lhs < rhs)[0]


class VideoPairs(torch.utils.data.Dataset):
    """Teacher-labelled frame pairs of a video set at the detector's flow size, for :func:`tools/adapt_flow.py`.

    Pair ``i`` is fixed by ``(seed, i)``: per video ``pairs_per_video`` distinct pairs ``(t, t -/+ g)``, ``g`` in
    ``1..max_gap``, the backward direction (``t -> t - g``, what the detector asks for) with probability
    ``1 - reverse_prob``. The teacher runs once per pair at the frames' full resolution and is cached in
    ``cache_dir`` (npz, written atomically) at the flow size, so later epochs and runs read it. The cache key holds
    the source's path and a digest of both frames' pixels besides the pair, size and preset: a regenerated set or
    another source with the same video names never reads flows of other frames (issue 22).

    Args:
        sources: see :func:`list_video_frames`.
        size: (h, w) the network sees, e.g. (128, 128) for the synthvid configs (224x288 frames at flow_scale 0.5,
            resized to the /64 grid).
        max_gap: largest frame distance (the key-frame interval minus 1).
        pairs_per_video: pairs drawn per video (at most all of them).
        cache_dir: teacher cache (None: recompute every time).
        min_valid: refuse a pair whose teacher keeps less than this fraction of the pixels (``ValueError`` naming the
            frames: a pair the check rejects everywhere would train on nothing).
        data_root: folder that relative ``sources`` and ``cache_dir`` are relative to.
        transforms: ``transforms(img1, img2, flow, valid)`` (numpy in, ``ToTensor`` last); None: ``ToTensor()``.
    """

    def __init__(self, sources: Sequence[str | os.PathLike] | str, size: tuple[int, int] = (128, 128),
                 max_gap: int = 9, pairs_per_video: int = 64, reverse_prob: float = 0.25, preset: str = 'medium',
                 cache_dir: str | os.PathLike | None = None, img_root: str | os.PathLike | None = None,
                 seed: int = 0, min_valid: float = 0.01, data_root: str | os.PathLike | None = None,
                 transforms: Callable | None = None) -> None:
        if isinstance(sources, (str, os.PathLike)):
            sources = [sources]
        if data_root is not None:  # relative sources and cache live under it (configs: data_root=... re-points both)
            sources = [Path(data_root) / s for s in sources]
            cache_dir = Path(data_root) / cache_dir if cache_dir is not None else None
        if int(max_gap) < 1 or int(pairs_per_video) < 1:
            raise ValueError(f'max_gap and pairs_per_video must be >= 1, got {max_gap} and {pairs_per_video}')
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f'size must be (h, w) >= 8, got {size}')
        self.size, self.preset, self.min_valid = (int(size[0]), int(size[1])), preset, float(min_valid)
        self.videos: dict[str, Frames] = {}
        self.sources: dict[str, Path] = {}  # video name -> its source (part of the teacher cache key)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        # A video file's frames are extracted beside the teacher cache (once; later runs reuse them).
        frames_dir = self.cache_dir / 'frames' if self.cache_dir is not None else None
        for source in _once_each(sources):
            names = add_videos(self.videos, list_video_frames([source], img_root, frames_dir), source)
            self.sources.update(dict.fromkeys(names, Path(source).resolve()))
        self.transforms = ToTensor() if transforms is None else transforms
        self.pairs: list[tuple[str, int, int]] = []
        for v, (name, frames) in enumerate(sorted(self.videos.items())):
            n = len(frames)
            candidates = [(t, t + d * g) for t in range(n) for g in range(1, int(max_gap) + 1) for d in (-1, 1)
                          if 0 <= t + d * g < n]
            if not candidates:
                continue
            rng = np.random.default_rng([int(seed), v])
            # Drawn without replacement, each pool in a random order.
            backward = [candidates[i] for i in rng.permutation(len(candidates)) if candidates[i][1] < candidates[i][0]]
            forward = [candidates[i] for i in rng.permutation(len(candidates)) if candidates[i][1] > candidates[i][0]]
            available = len(backward) * (reverse_prob < 1) + len(forward) * (reverse_prob > 0)
            for _ in range(min(int(pairs_per_video), available)):
                pool = forward if (rng.random() < reverse_prob and forward) or not backward else backward
                t, s = pool.pop()
                self.pairs.append((name, t, s))
        if not self.pairs:
            raise ValueError(f'adaptation sources {[str(s) for s in sources]}: no usable frame pairs '
                             '(every video has fewer than two frames)')
        check_pair_frames(self.videos, self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def _frame(self, video: str, index: int) -> np.ndarray:
        frame = self.videos[video][index]
        if not Path(frame).is_file():
            raise FileNotFoundError(f'video {video}: frame {index} {frame} does not exist')
        return read_image(frame)

    def _cache_file(self, index: int, frame1: np.ndarray, frame2: np.ndarray) -> Path:
        """Where pair ``index``'s teacher is cached: keyed by source, pair, size, preset and both frames' pixels."""
        video, t, s = self.pairs[index]
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f'{self.sources[video]}|{video}|{t}|{s}|{self.size}|{self.preset}|{frame1.shape}'.encode())
        digest.update(np.ascontiguousarray(frame1).data)
        digest.update(np.ascontiguousarray(frame2).data)
        key = digest.hexdigest()
        return self.cache_dir / key[:2] / f'{key}.npz'

    def _read_cache(self, cache: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """A cached ``(flow, valid)``, or None when absent; a damaged entry is named in a warning and recomputed."""
        if not cache.is_file():
            return None
        try:
            with np.load(cache) as z:
                flow, valid = z['flow'].astype(np.float32), z['valid']
            if flow.shape != (*self.size, 2) or valid.shape != self.size:
                raise ValueError(f'flow {flow.shape} / valid {valid.shape} for size {self.size}')
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            warnings.warn(f'{cache}: damaged teacher cache entry ({type(e).__name__}: {e}); computing it again')
            return None
        return flow, valid.astype(bool)

    def teacher(self, index: int, frame1: np.ndarray, frame2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Teacher flow (h, w, 2) in pixels of the flow size and its (h, w) valid mask, cached."""
        video, t, s = self.pairs[index]
        cache = self._cache_file(index, frame1, frame2) if self.cache_dir is not None else None
        cached = self._read_cache(cache) if cache is not None else None
        if cached is not None:
            return cached
        flow, valid = consistent_teacher_flow(frame1, frame2, self.preset)
        if float(valid.float().mean()) < self.min_valid:
            raise ValueError(f'video {video}: the teacher flow of frames {t} -> {s} fails the forward-backward check '
                             f'on {100 * (1 - float(valid.float().mean())):.1f} % of the pixels (min_valid='
                             f'{self.min_valid}); remove the pair\'s video or lower min_valid')
        flow = resize_flow(flow[None], self.size)[0].permute(1, 2, 0).numpy()
        valid = F.interpolate(valid[None, None].float(), size=self.size, mode='nearest')[0, 0].numpy() > 0.5
        if cache is not None:
            with atomic_write(cache) as f:
                np.savez(f, flow=flow.astype(np.float16), valid=valid)
        return flow.astype(np.float32), valid

    def read_raw(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pair ``index`` before transforms: float32 (h, w, 3) x2 in 0..255, float32 (h, w, 2) flow, bool (h, w)."""
        video, t, s = self.pairs[index]
        frame1, frame2 = self._frame(video, t), self._frame(video, s)
        if frame1.shape != frame2.shape:
            raise ValueError(f'video {video}: frames {t} and {s} differ in size ({frame1.shape} vs {frame2.shape})')
        flow, valid = self.teacher(index, frame1, frame2)
        return resize_frame(frame1, self.size), resize_frame(frame2, self.size), flow, valid

    def __getitem__(self, index: int):
        return self.transforms(*self.read_raw(index))

    def __repr__(self) -> str:
        return f'{type(self).__name__}({len(self.videos)} videos, {len(self.pairs)} pairs, size={self.size})'
