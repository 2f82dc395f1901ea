"""Optical-flow datasets as file indexes: Flying Chairs, MPI-Sintel, KITTI 2015 and explicit pair lists.

Every dataset returns ``transforms(img1, img2, flow, valid)``. The raw sample handed to the transforms (also available
from :meth:`FlowDataset.read_raw`) is numpy: images uint8 (H, W, 3) RGB (grey replicated, alpha dropped, see
:func:`lightflow.io.read_image`), flow float32 (H, W, 2) in pixels, valid bool (H, W). Invalid ground truth (NaN, inf,
|flow| >= 1e9 such as Middlebury's unknown-flow marker, KITTI pixels without GT) is ``valid=False`` with the flow set
to 0 there, so it can never leak into an average. Samples without ground truth (test splits) have zero flow and an
all-False mask. With ``transforms=None`` the default :class:`~lightflow.data.transforms.ToTensor` returns tensors:
images float32 (3, H, W) in 0..255, flow float32 (2, H, W), valid bool (H, W).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np
from torch.utils.data import Dataset

from ..io import UNKNOWN_FLOW_THRESH, read_flo, read_image, read_kitti_flow
from .registry import register_flow_dataset
from .transforms import ToTensor

__all__ = ['FlowSample', 'FlowDataset', 'FlowPairList', 'FlyingChairs', 'Sintel', 'KITTI2015', 'parse_chairs_split',
           'sanitize_flow', 'CHAIRS_SPLIT_FILE']

CHAIRS_SPLIT_FILE = 'FlyingChairs_train_val.txt'


class FlowSample(NamedTuple):
    """Paths of one pair; ``flow`` is None when there is no ground truth."""

    img1: Path
    img2: Path
    flow: Path | None


def sanitize_flow(flow: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mark non-finite or >= 1e9 flow invalid and zero the flow wherever it is invalid.

    Args:
        flow: (H, W, 2) flow.
        valid: optional (H, W) mask to combine with.

    Returns:
        float32 (H, W, 2) flow (a copy) and bool (H, W) mask.
    """
    flow = np.array(flow, np.float32)
    ok = np.isfinite(flow).all(axis=-1)
    ok &= (np.abs(np.where(np.isfinite(flow), flow, 0)) < UNKNOWN_FLOW_THRESH).all(axis=-1)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    flow[~ok] = 0.0
    return flow, ok


def _read_flow_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``.flo`` (dense) or KITTI ``.png`` (sparse, with its own mask), chosen by extension."""
    suffix = path.suffix.lower()
    if suffix == '.flo':
        return read_flo(path), None
    if suffix == '.png':
        return read_kitti_flow(path)
    raise ValueError(f'{path}: unknown flow format {suffix!r} (expected .flo or a KITTI .png)')


class FlowDataset(Dataset):
    """Base class: a list of :class:`FlowSample` paths plus one ``transforms`` callable.

    Args:
        samples: the pairs.
        transforms: ``transforms(img1, img2, flow, valid) -> same``; None uses ``ToTensor()``.
    """

    def __init__(self, samples: Sequence[FlowSample], transforms: Callable | None = None) -> None:
        self.samples = list(samples)
        self.transforms = ToTensor() if transforms is None else transforms

    def __len__(self) -> int:
        return len(self.samples)

    def read_raw(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Load sample ``index`` without transforms: uint8 (H, W, 3) x2, float32 (H, W, 2), bool (H, W)."""
        sample = self.samples[index]
        img1, img2 = read_image(sample.img1), read_image(sample.img2)
        if img1.shape != img2.shape:
            raise ValueError(f'image sizes differ: {sample.img1} is {img1.shape[:2]}, {sample.img2} is '
                             f'{img2.shape[:2]}')
        if sample.flow is None:
            return img1, img2, np.zeros(img1.shape[:2] + (2,), np.float32), np.zeros(img1.shape[:2], bool)
        flow, valid = _read_flow_file(sample.flow)
        if flow.shape[:2] != img1.shape[:2]:
            raise ValueError(f'{sample.flow}: flow size {flow.shape[:2]} != image size {img1.shape[:2]} of '
                             f'{sample.img1}')
        flow, valid = sanitize_flow(flow, valid)
        return img1, img2, flow, valid

    def __getitem__(self, index: int):
        return self.transforms(*self.read_raw(index))

    def __repr__(self) -> str:
        return f'{type(self).__name__}(num_samples={len(self)}, transforms={self.transforms!r})'


@register_flow_dataset
class FlowPairList(FlowDataset):
    """Explicit pairs ``[(img1, img2, flow_or_None), ...]``, e.g. Middlebury RubberWhale.

    Flow files may be ``.flo`` or KITTI 16-bit ``.png``. All files are checked to exist up front.
    """

    def __init__(self, pairs: Sequence[tuple], transforms: Callable | None = None) -> None:
        samples = []
        for i, pair in enumerate(pairs):
            if len(pair) != 3:
                raise ValueError(f'pairs[{i}] must be (img1, img2, flow_or_None), got {pair!r}')
            paths = [None if p is None else Path(p) for p in pair]
            if paths[0] is None or paths[1] is None:
                raise ValueError(f'pairs[{i}]: both image paths are required, got {pair!r}')
            for p in paths:
                if p is not None and not p.is_file():
                    raise FileNotFoundError(f'pairs[{i}]: no such file {p}')
            samples.append(FlowSample(*paths))
        super().__init__(samples, transforms)


def parse_chairs_split(path: str | os.PathLike) -> list[int]:
    """Read a Flying Chairs split file: one line per pair, ``1`` = train, ``2`` = val.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line that is not 1 or 2 (file and line number in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such Flying Chairs split file')
    values = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line not in ('1', '2'):
            raise ValueError(f'{path}:{number}: expected 1 (train) or 2 (val), got {line!r}')
        values.append(int(line))
    return values


@register_flow_dataset
class FlyingChairs(FlowDataset):
    """Flying Chairs (Dosovitskiy et al. 2015).

    Args:
        root: the ``FlyingChairs_release`` folder holding ``data/NNNNN_img1.ppm``, ``NNNNN_img2.ppm``,
            ``NNNNN_flow.flo``.
        split: ``'train'`` or ``'val'``.
        transforms: see :class:`FlowDataset`.
        split_file: the ``FlyingChairs_train_val.txt`` split (1 = train, 2 = val, one line per pair in pair order);
            default ``root/FlyingChairs_train_val.txt``.
    """

    SPLITS = {'train': 1, 'val': 2}

    def __init__(self, root: str | os.PathLike, split: str = 'train', transforms: Callable | None = None,
                 split_file: str | os.PathLike | None = None) -> None:
        if split not in self.SPLITS:
            raise ValueError(f'split must be one of {tuple(self.SPLITS)}, got {split!r}')
        root = Path(root)
        data = root / 'data'
        pattern = re.compile(r'^(\d+)_img1\.ppm$')
        found = sorted(((int(m.group(1)), m.group(1)) for f in (os.listdir(data) if data.is_dir() else [])
                        if (m := pattern.match(f))))
        if not found:
            raise FileNotFoundError(f'{root}: no Flying Chairs pairs found; expected {data}/NNNNN_img1.ppm, '
                                    'NNNNN_img2.ppm and NNNNN_flow.flo (the FlyingChairs_release layout)')
        pairs = []
        for _, stem in found:
            sample = FlowSample(data / f'{stem}_img1.ppm', data / f'{stem}_img2.ppm', data / f'{stem}_flow.flo')
            for p in (sample.img2, sample.flow):
                if not p.is_file():
                    raise FileNotFoundError(f'{p}: missing (every NNNNN_img1.ppm needs _img2.ppm and _flow.flo)')
            pairs.append(sample)

        split_path = Path(split_file) if split_file is not None else root / CHAIRS_SPLIT_FILE
        if not split_path.is_file():
            raise FileNotFoundError(f'Flying Chairs split file not found at {split_path}; pass split_file= or put '
                                    f'{CHAIRS_SPLIT_FILE} (from the FlyingChairs_release download) in {root}')
        labels = parse_chairs_split(split_path)
        if len(labels) != len(pairs):
            raise ValueError(f'{split_path}: {len(labels)} split lines but {len(pairs)} pairs in {data}')
        wanted = self.SPLITS[split]
        super().__init__([s for s, label in zip(pairs, labels) if label == wanted], transforms)
        self.root, self.split = root, split


def _scene_pairs(image_dir: Path, flow_dir: Path | None) -> list[FlowSample]:
    """Consecutive frames of each scene folder; flow ``frame_XXXX.flo`` belongs to the first frame."""
    samples = []
    for scene in sorted(p for p in image_dir.iterdir() if p.is_dir()):
        frames = sorted(scene.glob('frame_*.png'))
        for first, second in zip(frames[:-1], frames[1:]):
            flow = None
            if flow_dir is not None:
                flow = flow_dir / scene.name / (first.stem + '.flo')
                if not flow.is_file():
                    raise FileNotFoundError(f'{flow}: missing ground truth for {first}')
            samples.append(FlowSample(first, second, flow))
    return samples


@register_flow_dataset
class Sintel(FlowDataset):
    """MPI-Sintel (Butler et al. 2012): ``{training,test}/{clean,final}/<scene>/frame_XXXX.png`` and
    ``training/flow/<scene>/frame_XXXX.flo``. Test pairs have no ground truth (zero flow, all-invalid mask).

    Args:
        root: the folder holding ``training`` and/or ``test``.
        split: ``'training'`` or ``'test'``.
        pass_name: ``'clean'`` or ``'final'``.
        transforms: see :class:`FlowDataset`.
    """

    SPLITS = ('training', 'test')
    PASSES = ('clean', 'final')

    def __init__(self, root: str | os.PathLike, split: str = 'training', pass_name: str = 'clean',
                 transforms: Callable | None = None) -> None:
        if split not in self.SPLITS:
            raise ValueError(f'split must be one of {self.SPLITS}, got {split!r}')
        if pass_name not in self.PASSES:
            raise ValueError(f'pass_name must be one of {self.PASSES}, got {pass_name!r}')
        root = Path(root)
        image_dir = root / split / pass_name
        if not image_dir.is_dir():
            raise FileNotFoundError(f'{image_dir}: not found; expected the MPI-Sintel layout '
                                    f'{split}/{pass_name}/<scene>/frame_XXXX.png under {root}')
        flow_dir = root / split / 'flow' if split == 'training' else None
        samples = _scene_pairs(image_dir, flow_dir)
        if not samples:
            raise FileNotFoundError(f'{image_dir}: no frame pairs found (expected <scene>/frame_XXXX.png)')
        super().__init__(samples, transforms)
        self.root, self.split, self.pass_name = root, split, pass_name


@register_flow_dataset
class KITTI2015(FlowDataset):
    """KITTI 2015 flow (Menze & Geiger 2015): ``{training,testing}/image_2/XXXXXX_10.png``, ``_11.png`` and
    ``training/flow_occ/XXXXXX_10.png`` (sparse GT, read with :func:`lightflow.io.read_kitti_flow`).

    Args:
        root: the folder holding ``training`` and/or ``testing``.
        split: ``'training'`` or ``'testing'`` (no ground truth).
        transforms: see :class:`FlowDataset`; prefer nearest flow resampling in geometric augmentation (sparse GT).
    """

    SPLITS = ('training', 'testing')

    def __init__(self, root: str | os.PathLike, split: str = 'training', transforms: Callable | None = None) -> None:
        if split not in self.SPLITS:
            raise ValueError(f'split must be one of {self.SPLITS}, got {split!r}')
        root = Path(root)
        image_dir = root / split / 'image_2'
        firsts = sorted(image_dir.glob('*_10.png')) if image_dir.is_dir() else []
        if not firsts:
            raise FileNotFoundError(f'{image_dir}: no pairs found; expected the KITTI 2015 layout '
                                    f'{split}/image_2/XXXXXX_10.png and XXXXXX_11.png under {root}')
        samples = []
        for first in firsts:
            second = first.with_name(first.name.replace('_10.png', '_11.png'))
            if not second.is_file():
                raise FileNotFoundError(f'{second}: missing second frame for {first}')
            flow = None
            if split == 'training':
                flow = root / split / 'flow_occ' / first.name
                if not flow.is_file():
                    raise FileNotFoundError(f'{flow}: missing ground truth for {first}')
            samples.append(FlowSample(first, second, flow))
        super().__init__(samples, transforms)
        self.root, self.split = root, split
