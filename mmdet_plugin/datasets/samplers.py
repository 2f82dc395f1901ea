"""``TrackImgSubsetSampler``: mmdet's ``TrackImgSampler`` visiting a fresh random share of the (video, frame) pairs
each epoch, so that long clips (the paper's 8 keys) fit a CPU budget without dropping videos."""
from __future__ import annotations

import math
import random
from typing import Iterator, Optional, Sized

from mmdet.datasets.samplers import TrackImgSampler
from mmdet.registry import DATA_SAMPLERS

__all__ = ['TrackImgSubsetSampler']


@DATA_SAMPLERS.register_module()
class TrackImgSubsetSampler(TrackImgSampler):
    """Training: each epoch a new random ``fraction`` of every (video, frame) target, shuffled (seeded by epoch and
    ``seed``; every rank draws the same subset and takes its share). Test mode: exactly ``TrackImgSampler``.

    Args:
        dataset: a video dataset (as ``TrackImgSampler``).
        fraction: share of the targets visited per epoch, in (0, 1].
        seed: random seed (None: synchronised across ranks).
    """

    def __init__(self, dataset: Sized, fraction: float = 1.0, seed: Optional[int] = None) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f'TrackImgSubsetSampler.fraction must be in (0, 1], got {fraction!r}')
        super().__init__(dataset, seed)
        self.fraction = float(fraction)
        if not self.test_mode:
            per_epoch = max(1, math.ceil(len(self.indices) * self.fraction))
            self.num_samples = math.ceil(per_epoch / self.world_size)
            self.total_size = self.num_samples * self.world_size

    def __iter__(self) -> Iterator:
        if self.test_mode:
            return super().__iter__()
        rng = random.Random(self.epoch + self.seed)
        picked = rng.sample(self.indices, min(self.total_size, len(self.indices)))
        picked += picked[:self.total_size - len(picked)]  # pad to divide by the ranks, as TrackImgSampler does
        return iter(picked[self.rank:self.total_size:self.world_size])
