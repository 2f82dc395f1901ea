"""Exact-motion frame pairs of a synthetic VID set: Light Flow supervised on the detector's own videos by the flow the
generator knows (issue 20: "the same exact flow supervises Light Flow on the detector's own videos").

Each pair is ``(frame t, its key frame k = t - g)``, ``g`` in ``1..max_gap``, read from the set's JPEGs as the
detector reads them; the target is :func:`~lightflow.data.synthetic.vid_motion.exact_flow` ``(scene, t, k)``: the flow
on frame ``t`` pointing to frame ``k``, the direction the detector asks its motion for (``motion(img=t, ref=key)``),
so ``img1[y, x] ~ img2[y + v, x + u]`` as in every flow dataset of the project. Nothing is stored: the scenes are
rebuilt from the generator arguments the set's marker records.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..io import read_image
from ..warp import resize_flow
from .registry import register_flow_dataset
from .synthetic.vid_motion import exact_flow, scene_args, scene_in_set
from .transforms import ToTensor
from .video_pairs import resize_frame

__all__ = ['SyntheticVIDExactPairs', 'resize_valid']

SPLITS = ('train', 'val')


def resize_valid(valid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool -> (h, w) bool: a pixel of the resized grid is valid only if every source pixel the bilinear resize
    of the frames and flow (:func:`~lightflow.data.video_pairs.resize_frame`, :func:`~lightflow.warp.resize_flow`)
    reads for it is valid, so no hidden pixel's flow leaks into a valid target. (``VideoPairs`` resizes its teacher
    mask with ``nearest``, whose source pixel can lie outside the bilinear support: the exact mask allows better.)"""
    if tuple(valid.shape) == tuple(size):
        return np.asarray(valid, bool).copy()
    x = torch.from_numpy(np.ascontiguousarray(valid, dtype=np.float32))[None, None]
    covered = F.interpolate(x, size=tuple(size), mode='bilinear', align_corners=False)[0, 0]
    return (covered > 1 - 1e-4).numpy()


@register_flow_dataset
class SyntheticVIDExactPairs(Dataset):
    """Frame pairs ``(t, key)`` of a synthetic VID set's split with the exact flow ``t -> key`` at a flow size.

    Pair ``i`` is fixed by ``(seed, i)``: per video (in order), ``pairs_per_video`` distinct pairs drawn without
    replacement by ``np.random.default_rng([seed, video])`` from every ``(t, t - g)``, ``g`` in ``1..max_gap`` (with
    ``key_interval=l``, only the fixed keys ``k = t - t % l``). Scenes are rebuilt (and cached, 64 at a time, by
    :func:`~lightflow.data.synthetic.vid_motion.scene_in_set`) on first use: ~0.7 s per 120-frame 224x288 video.

    Args:
        data_root: a set of :func:`~lightflow.data.synthetic.vid.generate_synthetic_vid`
            (``tools/make_synthetic_vid.py``) whose marker records its generator arguments (``ValueError`` naming the
            folder otherwise).
        split: ``'train'`` or ``'val'``.
        size: (h, w) the network sees, e.g. (128, 128): the synthvid detectors' flow size
            (:func:`lightflow.sizes.flow_size` ``(224, 288, 0.5, 64)``). Frames are resized as
            :func:`~lightflow.data.video_pairs.resize_frame` (the detector's resize), the flow by
            :func:`~lightflow.warp.resize_flow` (values rescaled per axis).
        max_gap: largest ``t - k`` (the key-frame interval minus 1).
        pairs_per_video: pairs drawn per video (at most all of them).
        key_interval: None: keys at any earlier frame (any interval, the adaptive policy); ``l``: only the keys of a
            fixed interval ``l`` (``k = t - t % l``, gaps ``1..min(max_gap, l - 1)``).
        seed: the draw of the pairs.
        transforms: ``transforms(img1, img2, flow, valid)`` (numpy in, ``ToTensor`` last); None: ``ToTensor()``.

    Each raw sample (:meth:`read_raw`): img1 = frame t, img2 = frame k, float32 (h, w, 3) 0..255; flow float32
    (h, w, 2) px of the (h, w) grid, ``img1[y, x] ~ img2[y + v, x + u]``; valid bool (h, w) = not hidden (the point
    of t is inside k and not covered there), see :func:`resize_valid`.
    """

    def __init__(self, data_root: str | os.PathLike, split: str = 'train', size: tuple[int, int] = (128, 128),
                 max_gap: int = 9, pairs_per_video: int = 64, key_interval: int | None = None, seed: int = 0,
                 transforms: Callable | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        if len(size) != 2 or min(int(s) for s in size) < 8:
            raise ValueError(f'size must be (h, w) >= 8, got {size}')
        for name, value in (('max_gap', max_gap), ('pairs_per_video', pairs_per_video)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f'{name} must be an integer >= 1, got {value!r}')
        if key_interval is not None and (isinstance(key_interval, bool) or not isinstance(key_interval, int)
                                         or key_interval < 2):
            raise ValueError(f'key_interval must be None or an integer >= 2, got {key_interval!r}')
        self.root, self.split = Path(data_root), split
        self.size = (int(size[0]), int(size[1]))
        self.transforms = ToTensor() if transforms is None else transforms
        args = scene_args(self.root)  # ValueError naming the folder for a set without recorded arguments
        num_videos, num_frames = args[f'num_{split}_videos'], args['num_frames']
        self.frame_shape = (args['height'], args['width'])
        self.pairs: list[tuple[int, int, int]] = []  # (video index in the split, t, key)
        for video in range(num_videos):
            folder = self.video_dir(video)
            if not folder.is_dir():
                raise FileNotFoundError(f'{folder}: missing (data_root {self.root} records {num_videos} {split} '
                                        'videos); regenerate the set with tools/make_synthetic_vid.py --overwrite')
            candidates = [(t, t - g) for t in range(num_frames) for g in range(1, int(max_gap) + 1)
                          if t - g >= 0 and (key_interval is None or g == t % key_interval)]
            rng = np.random.default_rng([int(seed), video])
            order = rng.permutation(len(candidates))[:int(pairs_per_video)]
            self.pairs += [(video, *candidates[i]) for i in order]
        if not self.pairs:
            raise ValueError(f'data_root {self.root}: no {split} frame pairs with gap 1..{max_gap} (videos of '
                             f'{num_frames} frames, key_interval={key_interval})')

    def video_dir(self, video: int) -> Path:
        """The frame folder of video ``video`` of the split: ``<root>/Data/<split>/<split>_NNNN``."""
        return self.root / 'Data' / self.split / f'{self.split}_{video:04d}'

    def frame_path(self, video: int, t: int) -> Path:
        """Frame ``t``'s JPEG (the layout of :func:`~lightflow.data.synthetic.vid.generate_synthetic_vid`)."""
        return self.video_dir(video) / f'{t:06d}.JPEG'

    def __len__(self) -> int:
        return len(self.pairs)

    def _read_frame(self, video: int, t: int) -> np.ndarray:
        path = self.frame_path(video, t)
        if not path.is_file():
            raise FileNotFoundError(f'{path}: frame {t} of {self.split} video {video} does not exist')
        frame = read_image(path)
        if frame.shape[:2] != self.frame_shape:
            raise ValueError(f'{path}: frame size {frame.shape[:2]} != the size {self.frame_shape} the set\'s marker '
                             'records')
        return frame

    def exact(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair ``index``'s exact flow at the frames' size: float32 (H, W, 2) px ``t -> key`` and (H, W) bool hidden."""
        video, t, key = self.pairs[index]
        return exact_flow(scene_in_set(self.root, self.split, video), t, key)

    def read_raw(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pair ``index`` before transforms: float32 (h, w, 3) x2 in 0..255, float32 (h, w, 2) flow, bool (h, w)."""
        video, t, key = self.pairs[index]
        img1, img2 = self._read_frame(video, t), self._read_frame(video, key)
        flow, hidden = self.exact(index)
        flow = resize_flow(torch.from_numpy(flow).permute(2, 0, 1)[None], self.size)[0].permute(1, 2, 0).numpy()
        return (resize_frame(img1, self.size), resize_frame(img2, self.size), np.ascontiguousarray(flow, np.float32),
                resize_valid(~hidden, self.size))

    def __getitem__(self, index: int):
        return self.transforms(*self.read_raw(index))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.root}, split={self.split!r}, {len(self.pairs)} pairs, '
                f'size={self.size})')
