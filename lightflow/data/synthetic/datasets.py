"""Datasets of synthetic pairs: :class:`SyntheticChairs` (one pair per item, on the CPU), :class:`SyntheticIndices`
(indices for on-device batch rendering) and :func:`export_chairs_layout` (write any of them as Flying Chairs files)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ...io import atomic_write, write_flo
from ..datasets import CHAIRS_SPLIT_FILE
from ..registry import register_flow_dataset
from ..transforms import ToTensor
from .render import SyntheticFlowGenerator

__all__ = ['SyntheticChairs', 'SyntheticIndices', 'SyntheticSample', 'export_chairs_layout']


class SyntheticSample(NamedTuple):
    """One rendered pair. ``layers1``/``layers2`` (H, W) int16 give the frontmost layer per pixel (0 = background)."""

    img1: np.ndarray  # (H, W, 3) uint8
    img2: np.ndarray  # (H, W, 3) uint8
    flow: np.ndarray  # (H, W, 2) float32
    valid: np.ndarray  # (H, W) bool, all True
    layers1: np.ndarray
    layers2: np.ndarray
    occlusion: np.ndarray  # (H, W) bool


class SyntheticIndices(Dataset):
    """Sample indices ``0 .. num_samples - 1`` as ``dict(synthetic_index=i)``: the dataset side of on-device rendering.

    ``lightflow.engine.SyntheticFlowPreprocessor`` turns a batch of these into rendered pairs on the model's device;
    mmengine's (distributed) samplers hand each rank its own indices, so ranks render different samples.
    """

    def __init__(self, num_samples: int = 10_000_000) -> None:
        if int(num_samples) != num_samples or num_samples <= 0:
            raise ValueError(f'num_samples must be a positive int, got {num_samples}')
        self.num_samples = int(num_samples)
        self.metainfo = dict(dataset_type='SyntheticIndices')

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(f'index {index} out of range for {self.num_samples} samples')
        return dict(synthetic_index=int(index))


@register_flow_dataset
class SyntheticChairs(Dataset):
    """Flying-Chairs-like pairs rendered on the fly with exact flow, one per item, on the CPU.

    Args:
        num_samples: dataset length.
        size: (H, W) of the frames.
        seed: base seed; sample ``i`` depends only on ``(seed, i)``.
        transforms: ``transforms(img1, img2, flow, valid)``; None uses ``ToTensor()``.
        **generator_kwargs: any other :class:`SyntheticFlowGenerator` argument (``num_objects``, ``motion_scale``,
            ``photo_prob``, ``homography``, ...).
    """

    def __init__(self, num_samples: int, size: tuple[int, int] = (384, 512), seed: int = 0,
                 transforms: Callable | None = None, **generator_kwargs) -> None:
        if int(num_samples) != num_samples or num_samples <= 0:
            raise ValueError(f'num_samples must be a positive int, got {num_samples}')
        generator_kwargs.setdefault('render', 'window')
        self.generator = SyntheticFlowGenerator(size=size, seed=seed, device='cpu', **generator_kwargs)
        self.num_samples, self.size, self.seed = int(num_samples), self.generator.size, int(seed)
        self.transforms = ToTensor() if transforms is None else transforms

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int):
        return self.transforms(*self.read_raw(index))

    def read_raw(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``index`` before transforms: uint8 (H, W, 3) x2, float32 (H, W, 2), bool (H, W)."""
        return self.render(index)[:4]

    def render(self, index: int) -> SyntheticSample:
        """Render sample ``index`` with its layer maps and occlusion mask (for occlusion-aware checks)."""
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f'index {index} out of range for {self.num_samples} samples')
        index %= self.num_samples
        b = self.generator.render([index])

        def img(t: Tensor) -> np.ndarray:
            return torch.round(t[0]).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()

        return SyntheticSample(img(b.img1), img(b.img2), b.flow[0].permute(1, 2, 0).contiguous().numpy(),
                               b.valid[0].numpy(), b.layers1[0].to(torch.int16).numpy(),
                               b.layers2[0].to(torch.int16).numpy(), b.occlusion[0].numpy())

    def __repr__(self) -> str:
        return f'{type(self).__name__}(num_samples={self.num_samples}, {self.generator!r}, transforms={self.transforms!r})'


def _ppm_bytes(img: np.ndarray) -> bytes:
    height, width = img.shape[:2]
    return f'P6\n{width} {height}\n255\n'.encode() + np.ascontiguousarray(img, np.uint8).tobytes()


def export_chairs_layout(dataset, root: str | os.PathLike, num_val: int = 0, progress: bool = True) -> Path:
    """Write a dataset to the Flying Chairs layout so :class:`~lightflow.data.FlyingChairs` can read it back.

    Writes ``root/data/NNNNN_img1.ppm``, ``NNNNN_img2.ppm``, ``NNNNN_flow.flo`` (numbered from 00001) and
    ``root/FlyingChairs_train_val.txt``, each atomically. The last ``num_val`` samples are marked val (2).

    Args:
        dataset: anything with ``__len__`` and ``read_raw(i) -> (img1, img2, flow, valid)`` (e.g. SyntheticChairs).
        root: output folder.
        num_val: how many samples (taken from the end) go to the val split.
        progress: show a tqdm bar.

    Returns:
        ``root`` as a Path.
    """
    n = len(dataset)
    if not 0 <= num_val <= n:
        raise ValueError(f'num_val must be in [0, {n}], got {num_val}')
    if not hasattr(dataset, 'read_raw'):
        raise ValueError(f'dataset {type(dataset).__name__} has no read_raw(index) method')
    root = Path(root)
    data = root / 'data'
    data.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    for i in tqdm(range(n), desc='export Chairs layout', disable=not progress):
        img1, img2, flow, _ = dataset.read_raw(i)
        stem = f'{i + 1:05d}'
        for suffix, img in (('img1', img1), ('img2', img2)):
            with atomic_write(data / f'{stem}_{suffix}.ppm') as f:
                f.write(_ppm_bytes(img))
        write_flo(data / f'{stem}_flow.flo', flow)
    with atomic_write(root / CHAIRS_SPLIT_FILE, 'w') as f:
        f.write(''.join('2\n' if i >= n - num_val else '1\n' for i in range(n)))
    return root
