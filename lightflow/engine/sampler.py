"""Samplers whose indices carry the seed of each sample's augmentation, so a resumed run augments exactly as an
uninterrupted one.

The random transforms of :mod:`lightflow.data` draw from torch's global RNG, whose state depends on the process
(main or DataLoader worker) and on everything drawn before: on ``--resume`` mmengine fast-forwards the sampler without
loading the skipped samples, reseeds, and starts fresh workers, so every augmentation after a resume differed from the
uninterrupted run. These samplers yield :class:`SeededIndex` values: the dataset index plus a seed derived from the
sampler seed (the config's ``randomness.seed``) and the sample's position in the run's stream of samples (counted over
all ranks), and :class:`~lightflow.engine.PackedFlowDataset` runs the transforms on an RNG seeded with it. The
augmentation of the n-th sample of a run is then fixed by ``(seed, n)``, whatever the worker count, rank or restart.
"""
from __future__ import annotations

import itertools
from typing import Iterator

import numpy as np
from mmengine.dataset import DefaultSampler, InfiniteSampler

from .registry import DATA_SAMPLERS

__all__ = ['SeededIndex', 'SeededDefaultSampler', 'SeededInfiniteSampler', 'draw_seed']


class SeededIndex(int):
    """A dataset index (an ``int``, so any dataset accepts it) with the ``seed`` of its sample's augmentation."""

    def __new__(cls, index: int, seed: int) -> 'SeededIndex':
        self = super().__new__(cls, index)
        self.seed = int(seed)
        return self

    def __getnewargs__(self) -> tuple[int, int]:  # pickling to DataLoader workers
        return int(self), self.seed

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, seed={self.seed})'


def draw_seed(seed: int, position: int) -> int:
    """The augmentation seed of the sample at ``position`` in the stream of a sampler seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed) % 2 ** 64, int(position)]).generate_state(1, np.uint64)[0] >> 1)


@DATA_SAMPLERS.register_module()
class SeededInfiniteSampler(InfiniteSampler):
    """mmengine's ``InfiniteSampler`` (same arguments, order and ``skip`` for resuming) yielding :class:`SeededIndex`.

    Position ``n`` of the infinite (all-rank) index stream gets ``draw_seed(seed, n)``; rank ``r`` of ``w`` takes
    positions ``r, r + w, ...`` as mmengine's sampler does.
    """

    def _indices_of_rank(self) -> Iterator[SeededIndex]:
        stream = itertools.islice(enumerate(self._infinite_indices()), self.rank, None, self.world_size)
        for position, index in stream:
            yield SeededIndex(index, draw_seed(self.seed, position))


@DATA_SAMPLERS.register_module()
class SeededDefaultSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` (same arguments and order, ``set_epoch``) yielding :class:`SeededIndex`.

    Sample ``k`` of rank ``r`` in epoch ``e`` is position ``e * total_size + r + k * world_size`` of the run.
    """

    def __iter__(self) -> Iterator[SeededIndex]:
        start = self.epoch * self.total_size + self.rank
        indices = list(super().__iter__())
        return iter([SeededIndex(index, draw_seed(self.seed, start + k * self.world_size))
                     for k, index in enumerate(indices)])
