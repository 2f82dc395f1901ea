"""Throughput of the synthetic training data and its share of a Light Flow training step (``tools/benchmark_data.py``).

A row times one data path (``SyntheticFlowGenerator.render`` of a whole batch, or ``SyntheticChairs.read_raw`` one
pair per call) and, when asked, one training step on such a batch as mmengine runs it (:class:`TrainStep`). Every
timing is :func:`lightflow.benchmarking.median_seconds`: one warm-up call, then the median of ``repeats`` calls on
fresh sample indices.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from ..benchmarking import median_seconds
from ..data.synthetic import SyntheticChairs, SyntheticFlowGenerator
from .model import LightFlowModel

__all__ = ['ThroughputRow', 'TrainStep', 'step_inputs', 'time_generator', 'time_dataset', 'cuda_step',
           'run_timings']


@dataclass
class ThroughputRow:
    """One timed data path and, when timed, the training step it feeds.

    Attributes:
        device: ``'cpu'`` or ``'cuda'``; threads: the torch thread count (``'-'`` on CUDA).
        path: the data path, as the table names it; size: (H, W); batch: pairs per timed call.
        data_s: median seconds per batch of data; step_s: median seconds per training step (NaN: not timed).
        precision: the step's precision (``'-'`` when not timed).
    """

    device: str
    threads: str
    path: str
    size: tuple[int, int]
    batch: int
    data_s: float
    step_s: float = math.nan
    precision: str = '-'


class TrainStep:
    """One Light Flow alpha = 0.5 training step as mmengine runs it: ``LightFlowModel.loss``, backward, Adam step.

    Adam 1e-3 with weight decay 4e-5 as in the configs (their zero decay on norms and biases costs the same).
    """

    def __init__(self, device: torch.device, amp: bool = False, channels_last: bool = False) -> None:
        torch.manual_seed(0)
        self.model = LightFlowModel(width_mult=0.5, channels_last=channels_last).to(device).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=4e-5)
        self.device, self.amp = device, amp

    def __call__(self, inputs: torch.Tensor, samples: list[dict]) -> float:
        """One step on ``inputs`` (N, 2, 3, H, W) and their ``samples`` (``flow``, ``valid``); returns the loss."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss = self.model.loss(inputs, samples)['loss_flow']
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return loss.item()


def step_inputs(generator: SyntheticFlowGenerator, batch: int) -> tuple[torch.Tensor, list[dict]]:
    """Samples 0..batch-1 as a training step takes them: ``(inputs (N, 2, 3, H, W), [dict(flow, valid), ...])``."""
    b = generator.render(range(batch))
    inputs = torch.stack([b.img1, b.img2], dim=1)  # (N, 2, 3, H, W)
    return inputs, [dict(flow=b.flow[i], valid=b.valid[i]) for i in range(batch)]


def time_generator(device: torch.device, threads: str, size: tuple[int, int], batch: int, repeats: int,
                   step: TrainStep | None, generator: Mapping[str, Any]) -> ThroughputRow:
    """pairs/s of one batched render (``generator``: the generator's keyword arguments), then (``step``) one training
    step on such a batch."""
    render = 'full' if device.type == 'cuda' else 'window'
    flows = SyntheticFlowGenerator(size=size, device=device, render=render, **generator)
    row = ThroughputRow(device.type, threads, f"generator (render='{render}')", size, batch,
                        median_seconds(lambda i: flows.render(range(i * batch, (i + 1) * batch)), repeats, device))
    if step is not None:
        inputs, samples = step_inputs(flows, batch)
        row.step_s = median_seconds(lambda i: step(inputs, samples), repeats, device)
        row.precision = 'bf16 autocast, channels-last' if step.amp else 'fp32'
    return row


def time_dataset(size: tuple[int, int], batch: int, repeats: int, step_s: float,
                 generator: Mapping[str, Any]) -> ThroughputRow:
    """``SyntheticChairs.read_raw`` one pair per call, ``batch`` calls per timed batch, at the current threads."""
    dataset = SyntheticChairs(10_000_000, size=size, **generator)

    def read(i: int) -> None:
        for index in range(i * batch, (i + 1) * batch):
            dataset.read_raw(index)

    seconds = median_seconds(read, repeats, torch.device('cpu'))
    return ThroughputRow('cpu', str(torch.get_num_threads()), 'SyntheticChairs.read_raw (1 pair per call)', size,
                         batch, seconds, step_s, 'fp32')


def cuda_step(device: torch.device, size: tuple[int, int], batch: int,
              generator: Mapping[str, Any]) -> tuple[TrainStep, str]:
    """A bf16 + channels-last step if one runs on this GPU, else fp32 (and why)."""
    flows = SyntheticFlowGenerator(size=size, device=device, render='full', **generator)
    inputs, samples = step_inputs(flows, min(batch, 2))
    try:
        step = TrainStep(device, amp=True, channels_last=True)
        step(inputs, samples)
        return step, ''
    except RuntimeError as e:
        return TrainStep(device), f'bf16 autocast + channels-last failed ({type(e).__name__}: {str(e)[:80]}), fp32 used'


def run_timings(threads: Sequence[int], sizes: Sequence[tuple[int, int]], cpu_batch: int, cuda_batch: int,
                repeats: int, generator: Mapping[str, Any]) -> tuple[list[ThroughputRow], list[str]]:
    """Every row: the generator with a CPU step at each thread count and size, ``read_raw`` at 1 thread, and the
    generator with a CUDA step when CUDA is available.

    Sets ``torch.set_num_threads`` as it goes (the caller restores its own); returns ``(rows, notes)``.
    """
    rows, notes = [], []
    cpu = torch.device('cpu')
    for count in threads:
        torch.set_num_threads(count)
        for size in sizes:
            rows.append(time_generator(cpu, str(count), size, cpu_batch, repeats, TrainStep(cpu), generator))
    torch.set_num_threads(1)
    for size in sizes:
        step_s = next((r.step_s for r in rows if r.threads == '1' and r.size == size), math.nan)
        rows.append(time_dataset(size, cpu_batch, repeats, step_s, generator))
    if torch.cuda.is_available():
        cuda = torch.device('cuda')
        step, note = cuda_step(cuda, sizes[0], cuda_batch, generator)
        if note:
            notes.append(f'CUDA: {note}.')
        for size in sizes:
            rows.append(time_generator(cuda, '-', size, cuda_batch, repeats, step, generator))
    return rows, notes
