"""The synthetic training data, measured: generator throughput, its share of a Light Flow training step, and how its
displacements compare with real Flying Chairs.

    PYTHONPATH=. python tools/benchmark_data.py [--sizes 128x192 384x512] [--threads 1 2] [--cpu-batch 8]
        [--cuda-batch 64] [--repeats 5] [--motion-samples 64] [--chairs DIR] [--out table.md] [--plot hist.png]
        [--quick]

Prints three markdown tables (written atomically to ``--out`` too):

1. pairs/s of ``SyntheticFlowGenerator.render`` (a whole batch at once; render='window' on the CPU at each
   ``--threads`` count, render='full' on CUDA when available) and of ``SyntheticChairs.read_raw`` one pair at a time
   at 1 thread (what a DataLoader worker does);
2. for each of those, one Light Flow alpha = 0.5 training step on the same batch, device and threads (forward + the
   L1 loss of ``LightFlowModel.loss`` + backward + Adam step, as mmengine's OptimWrapper runs it; bf16 autocast and
   channels-last on CUDA, fp32 if that fails) and the data's share, data / (data + step);
3. displacement magnitudes of the generator's GT against the real Chairs GT in ``--chairs``: mean, median, 90th / 99th
   percentile, max and the fraction above 20 / 40 px; ``--plot`` overlays the normalised histograms.

Every timing is one warm-up call, then the median of ``--repeats`` calls, settings one after another in this process
(fresh sample indices on every call). Other processes on the machine slow all rows alike only if their load is steady:
the header gives the load average.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lightflow.data.synthetic import SyntheticChairs, SyntheticFlowGenerator
from lightflow.engine.model import LightFlowModel
from lightflow.cli import ArgumentParser, image_size, run_main
from lightflow.io import UNKNOWN_FLOW_THRESH, atomic_write, read_flo
from lightflow.sysinfo import cpu_name

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('LIGHTFLOW_SHARED_DATA', REPO.parent / 'shared' / 'data'))
CHAIRS_DIR = SHARED_DATA / 'FlyingChairs_mini' / 'data'
# Generator settings of the throughput rows (the library defaults); the motion rows set their own size and scale.
GENERATOR = dict(num_objects=(5, 12), motion_scale=1.0, homography=0.0, seed=0)
CHAIRS_SIZE = (384, 512)
# The CPU training recipe (configs/lightflow/lightflow_w0.5_1xb8-20k_synthetic-256x320.py).
RECIPE_SIZE, RECIPE_MOTION_SCALE = (256, 320), 1.5
MOTION_BATCH = 8
THRESHOLDS_PX = (20, 40)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(
        description='Synthetic data: throughput, share of a training step, motion vs Flying Chairs.')
    parser.add_argument('--sizes', type=image_size(16), nargs='+', help='HxW frame sizes to time (default 128x192 384x512; '
                        '--quick: 128x192)')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2], help='CPU thread counts (default 1 2)')
    parser.add_argument('--cpu-batch', type=int, help='pairs per CPU batch (default 8; --quick: 4)')
    parser.add_argument('--cuda-batch', type=int, help='pairs per CUDA batch (default 64; --quick: 8)')
    parser.add_argument('--repeats', type=int, help='timed calls per setting, median reported (default 5; --quick: 1)')
    parser.add_argument('--motion-samples', type=int, help='generator pairs per motion row (default 64; --quick: 4)')
    parser.add_argument('--chairs', type=Path, help=f'folder of Chairs *_flow.flo files (default {CHAIRS_DIR}; the '
                        'row is left out when the default folder is absent)')
    parser.add_argument('--out', help='also write the tables here (atomically)')
    parser.add_argument('--plot', help='write the magnitude histograms here (PNG)')
    parser.add_argument('--quick', action='store_true', help='a smoke run in seconds (tiny defaults, see above)')
    args = parser.parse_args(argv)
    defaults = dict(sizes=[(128, 192)], cpu_batch=4, cuda_batch=8, repeats=1, motion_samples=4) if args.quick else \
        dict(sizes=[(128, 192), (384, 512)], cpu_batch=8, cuda_batch=64, repeats=5, motion_samples=64)
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ('cpu_batch', 'cuda_batch', 'repeats', 'motion_samples'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got {getattr(args, name)}')
    if min(args.threads) < 1:
        parser.error(f'--threads must be >= 1, got {min(args.threads)}')
    if args.chairs is not None and not args.chairs.is_dir():
        parser.error(f'--chairs: no such folder {args.chairs}')
    return args


# ---------------------------------------------------------------------------------------------------- timing
def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[int], object], repeats: int, device: torch.device) -> float:
    """Median wall time of ``fn(i)`` for i = 1..repeats after the untimed warm-up ``fn(0)``."""
    fn(0)
    times = []
    for i in range(1, repeats + 1):
        _sync(device)
        start = time.perf_counter()
        fn(i)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@dataclass
class Row:
    """One timed data path and, when timed, the training step it feeds."""

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
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss = self.model.loss(inputs, samples)['loss_flow']
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return loss.item()


def _step_inputs(generator: SyntheticFlowGenerator, batch: int) -> tuple[torch.Tensor, list[dict]]:
    b = generator.render(range(batch))
    inputs = torch.stack([b.img1, b.img2], dim=1)  # (N, 2, 3, H, W)
    return inputs, [dict(flow=b.flow[i], valid=b.valid[i]) for i in range(batch)]


def time_generator(device: torch.device, threads: str, size: tuple[int, int], batch: int, repeats: int,
                   step: TrainStep | None) -> Row:
    """pairs/s of one batched render, then (``step``) one training step on such a batch."""
    render = 'full' if device.type == 'cuda' else 'window'
    generator = SyntheticFlowGenerator(size=size, device=device, render=render, **GENERATOR)
    row = Row(device.type, threads, f"generator (render='{render}')", size, batch,
              median_seconds(lambda i: generator.render(range(i * batch, (i + 1) * batch)), repeats, device))
    if step is not None:
        inputs, samples = _step_inputs(generator, batch)
        row.step_s = median_seconds(lambda i: step(inputs, samples), repeats, device)
        row.precision = 'bf16 autocast, channels-last' if step.amp else 'fp32'
    return row


def time_dataset(size: tuple[int, int], batch: int, repeats: int, step_s: float) -> Row:
    """``SyntheticChairs.read_raw`` one pair per call, ``batch`` calls per timed batch, at the current threads."""
    dataset = SyntheticChairs(10_000_000, size=size, **GENERATOR)

    def read(i: int) -> None:
        for index in range(i * batch, (i + 1) * batch):
            dataset.read_raw(index)

    seconds = median_seconds(read, repeats, torch.device('cpu'))
    return Row('cpu', str(torch.get_num_threads()), 'SyntheticChairs.read_raw (1 pair per call)', size, batch,
               seconds, step_s, 'fp32')


def cuda_step(device: torch.device, size: tuple[int, int], batch: int) -> tuple[TrainStep, str]:
    """A bf16 + channels-last step if one runs on this GPU, else fp32 (and why)."""
    generator = SyntheticFlowGenerator(size=size, device=device, render='full', **GENERATOR)
    inputs, samples = _step_inputs(generator, min(batch, 2))
    try:
        step = TrainStep(device, amp=True, channels_last=True)
        step(inputs, samples)
        return step, ''
    except RuntimeError as e:
        return TrainStep(device), f'bf16 autocast + channels-last failed ({type(e).__name__}: {str(e)[:80]}), fp32 used'


def run_timings(args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    rows, notes = [], []
    cpu = torch.device('cpu')
    for threads in args.threads:
        torch.set_num_threads(threads)
        for size in args.sizes:
            rows.append(time_generator(cpu, str(threads), size, args.cpu_batch, args.repeats, TrainStep(cpu)))
    torch.set_num_threads(1)
    for size in args.sizes:
        step_s = next((r.step_s for r in rows if r.threads == '1' and r.size == size), math.nan)
        rows.append(time_dataset(size, args.cpu_batch, args.repeats, step_s))
    if torch.cuda.is_available():
        cuda = torch.device('cuda')
        step, note = cuda_step(cuda, args.sizes[0], args.cuda_batch)
        if note:
            notes.append(f'CUDA: {note}.')
        for size in args.sizes:
            rows.append(time_generator(cuda, '-', size, args.cuda_batch, args.repeats, step))
    return rows, notes


# ---------------------------------------------------------------------------------------------------- motion
@dataclass
class Motion:
    label: str
    frames: str
    pairs: int
    magnitudes: np.ndarray  # px, every valid pixel of every pair

    def stats(self) -> list[float]:
        m = self.magnitudes
        return [m.mean(), np.median(m), *np.percentile(m, [90, 99]), m.max(),
                *(100 * (m > t).mean() for t in THRESHOLDS_PX)]


def generator_motion(size: tuple[int, int], motion_scale: float, samples: int, scale: float = 1.0) -> np.ndarray:
    """GT magnitudes (px) of samples 0..samples-1 (seed 0) at ``size``, times ``scale``; rendered on the CPU."""
    generator = SyntheticFlowGenerator(size=size, device='cpu', render='window',
                                       **{**GENERATOR, 'motion_scale': motion_scale})
    chunks = []
    for start in range(0, samples, MOTION_BATCH):
        flow = generator.render(range(start, min(start + MOTION_BATCH, samples))).flow  # (N, 2, H, W)
        chunks.append(torch.linalg.vector_norm(flow, dim=1).flatten().numpy())
    return np.concatenate(chunks).astype(np.float64) * scale


def chairs_motion(folder: Path) -> Motion | None:
    files = sorted(folder.glob('*_flow.flo'))
    if not files:
        return None
    chunks, shapes = [], set()
    for path in files:
        flow = read_flo(path).astype(np.float64)  # (H, W, 2)
        valid = np.isfinite(flow).all(-1) & (np.abs(flow) < UNKNOWN_FLOW_THRESH).all(-1)
        chunks.append(np.linalg.norm(flow[valid], axis=-1))
        shapes.add(f'{flow.shape[0]}x{flow.shape[1]}')
    label = f'Flying Chairs GT ({folder.parent.name}/{folder.name}/*_flow.flo)'
    return Motion(label, ', '.join(sorted(shapes)), len(files), np.concatenate(chunks))


def motion_rows(args: argparse.Namespace) -> tuple[list[Motion], list[str]]:
    rows, notes = [], []
    folder = args.chairs if args.chairs is not None else CHAIRS_DIR
    chairs = chairs_motion(folder) if folder.is_dir() else None
    if chairs is None:
        notes.append(f'No Chairs GT found in {folder}: its row is left out.')
    else:
        rows.append(chairs)
    h, w = CHAIRS_SIZE
    rows.append(Motion(f'generator, motion_scale={GENERATOR["motion_scale"]}', f'{h}x{w}', args.motion_samples,
                       generator_motion(CHAIRS_SIZE, GENERATOR['motion_scale'], args.motion_samples)))
    scale = CHAIRS_SIZE[0] / RECIPE_SIZE[0]
    rh, rw = RECIPE_SIZE
    rows.append(Motion(f'generator, motion_scale={RECIPE_MOTION_SCALE} at {rh}x{rw} (CPU recipe), magnitudes '
                       f'x{scale:g} = {h}/{rh} to compare at {h}x{w}', f'{rh}x{rw}', args.motion_samples,
                       generator_motion(RECIPE_SIZE, RECIPE_MOTION_SCALE, args.motion_samples, scale)))
    return rows, notes


# ---------------------------------------------------------------------------------------------------- report
def _fmt_size(size: tuple[int, int]) -> str:
    return f'{size[0]}x{size[1]}'


def markdown(args: argparse.Namespace, rows: list[Row], motions: list[Motion], notes: list[str], load: str) -> str:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'not available'
    env = ', '.join(f'{k}={os.environ.get(k, "unset")}' for k in ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY'))
    g = GENERATOR
    lines = [
        '# Synthetic training data: throughput, share of a training step, motion vs Flying Chairs',
        '',
        f'Machine: {cpu_name()} ({os.cpu_count()} logical CPUs), CUDA: {gpu}; torch {torch.__version__}; CPU thread '
        f'counts timed: {", ".join(map(str, args.threads))} (torch.set_num_threads; {env}); load average at start: '
        f'{load}.',
        '',
        f'Generator: `SyntheticFlowGenerator(num_objects={g["num_objects"]}, motion_scale={g["motion_scale"]}, '
        f'homography={g["homography"]}, seed={g["seed"]})`, no photometric augmentation. Each setting: one warm-up '
        f'call, then the median of {args.repeats} timed calls on fresh sample indices.',
        '',
        '## Data throughput',
        '',
        '| device | threads | data path | size | batch | ms / batch | pairs/s |',
        '|---|---:|---|---:|---:|---:|---:|',
    ]
    for r in rows:
        lines.append(f'| {r.device} | {r.threads} | {r.path} | {_fmt_size(r.size)} | {r.batch} | '
                     f'{1e3 * r.data_s:.1f} | {r.batch / r.data_s:.1f} |')
    lines += [
        '',
        '## Share of a Light Flow alpha = 0.5 training step',
        '',
        'Step: `LightFlowModel(width_mult=0.5).loss` (forward + L1 loss), backward, Adam step, on the same batch, '
        'device and threads as the data row. Share = data / (data + step): the cost of rendering in the training '
        'process (a DataLoader worker on another core hides it instead).',
        '',
        '| device | threads | data path | size | batch | step precision | data (ms) | step (ms) | data share |',
        '|---|---:|---|---:|---:|---|---:|---:|---:|',
    ]
    for r in rows:
        if math.isnan(r.step_s):
            continue
        lines.append(f'| {r.device} | {r.threads} | {r.path} | {_fmt_size(r.size)} | {r.batch} | {r.precision} | '
                     f'{1e3 * r.data_s:.1f} | {1e3 * r.step_s:.1f} | {100 * r.data_s / (r.data_s + r.step_s):.1f} % |')
    lines += [
        '',
        '## Displacement magnitude of the GT flow',
        '',
        'All valid pixels of all pairs pooled; generator pairs are samples 0, 1, ... of seed 0.',
        '',
        '| source | frames | pairs | mean (px) | median (px) | p90 (px) | p99 (px) | max (px) | '
        + ' | '.join(f'> {t} px' for t in THRESHOLDS_PX) + ' |',
        '|---|---|---:|---:|---:|---:|---:|---:|' + '---:|' * len(THRESHOLDS_PX),
    ]
    for m in motions:
        s = m.stats()
        lines.append(f'| {m.label} | {m.frames} | {m.pairs} | ' + ' | '.join(f'{v:.2f}' for v in s[:5]) + ' | '
                     + ' | '.join(f'{v:.2f} %' for v in s[5:]) + ' |')
    if notes:
        lines += [''] + notes
    return '\n'.join(lines) + '\n'


def plot_histograms(motions: list[Motion], path: str) -> None:
    """Normalised magnitude histograms (1 px bins), linear and log density side by side."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    top = math.ceil(max(m.magnitudes.max() for m in motions)) + 1
    edges = np.arange(0, top + 1, 1.0)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, log in zip(axes, (False, True)):
        for m in motions:
            density, _ = np.histogram(m.magnitudes, bins=edges, density=True)
            ax.stairs(density, edges, label=f'{m.label} [{m.pairs} pairs]', linewidth=1.5)
        for t in THRESHOLDS_PX:
            ax.axvline(t, color='grey', linestyle=':', linewidth=1)
        ax.set_xlabel('displacement magnitude (px at 384x512)')
        ax.set_ylabel('density (1 px bins)')
        if log:
            ax.set_yscale('log')
    fig.legend(*axes[0].get_legend_handles_labels(), loc='lower center', fontsize=8)
    fig.suptitle('GT displacement magnitude: synthetic generator vs Flying Chairs')
    fig.tight_layout(rect=(0, 0.03 + 0.04 * len(motions), 1, 1))
    with atomic_write(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg()) if hasattr(os, 'getloadavg') else 'unknown'
    threads = torch.get_num_threads()
    try:
        rows, notes = run_timings(args)
    finally:
        torch.set_num_threads(threads)
    motions, motion_notes = motion_rows(args)  # untimed: at the process's own thread count
    table = markdown(args, rows, motions, notes + motion_notes, load)
    print(table, end='')
    if args.out:
        with atomic_write(args.out, 'w') as f:
            f.write(table)
    if args.plot:
        plot_histograms(motions, args.plot)
    return table


if __name__ == '__main__':
    sys.exit(run_main(main))
