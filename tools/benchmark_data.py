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
import sys
from pathlib import Path

import torch

from lightflow.benchmarking import THRESHOLDS_PX, MotionStats, chairs_motion, generator_motion, plot_histograms
from lightflow.cli import ArgumentParser, image_size, run_main
from lightflow.engine.throughput import ThroughputRow, run_timings
from lightflow.io import atomic_write
from lightflow.sysinfo import cpu_name

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('LIGHTFLOW_SHARED_DATA', REPO.parent / 'shared' / 'data'))
CHAIRS_DIR = SHARED_DATA / 'FlyingChairs_mini' / 'data'
# Generator settings of the throughput rows (the library defaults); the motion rows set their own size and scale.
GENERATOR = dict(num_objects=(5, 12), motion_scale=1.0, homography=0.0, seed=0)
CHAIRS_SIZE = (384, 512)
# The CPU training recipe (configs/lightflow/lightflow_w0.5_1xb8-20k_synthetic-256x320.py).
RECIPE_SIZE, RECIPE_MOTION_SCALE = (256, 320), 1.5


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


# ---------------------------------------------------------------------------------------------------- motion
def motion_rows(args: argparse.Namespace) -> tuple[list[MotionStats], list[str]]:
    """The Chairs GT row (when its folder has .flo files) and the generator's rows, with notes on what is missing."""
    rows, notes = [], []
    folder = args.chairs if args.chairs is not None else CHAIRS_DIR
    chairs = chairs_motion(folder) if folder.is_dir() else None
    if chairs is None:
        notes.append(f'No Chairs GT found in {folder}: its row is left out.')
    else:
        rows.append(chairs)
    h, w = CHAIRS_SIZE
    rows.append(MotionStats(f'generator, motion_scale={GENERATOR["motion_scale"]}', f'{h}x{w}', args.motion_samples,
                            generator_motion(CHAIRS_SIZE, args.motion_samples, **GENERATOR)))
    scale = CHAIRS_SIZE[0] / RECIPE_SIZE[0]
    rh, rw = RECIPE_SIZE
    recipe = {**GENERATOR, 'motion_scale': RECIPE_MOTION_SCALE}
    rows.append(MotionStats(f'generator, motion_scale={RECIPE_MOTION_SCALE} at {rh}x{rw} (CPU recipe), magnitudes '
                            f'x{scale:g} = {h}/{rh} to compare at {h}x{w}', f'{rh}x{rw}', args.motion_samples,
                            generator_motion(RECIPE_SIZE, args.motion_samples, scale, **recipe)))
    return rows, notes


# ---------------------------------------------------------------------------------------------------- report
def _fmt_size(size: tuple[int, int]) -> str:
    return f'{size[0]}x{size[1]}'


def markdown(args: argparse.Namespace, rows: list[ThroughputRow], motions: list[MotionStats], notes: list[str],
             load: str) -> str:
    """The three tables (throughput, share of a training step, displacement magnitudes) under a header naming the
    machine, the generator settings and the load."""
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


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    load = ', '.join(f'{v:.2f}' for v in os.getloadavg()) if hasattr(os, 'getloadavg') else 'unknown'
    threads = torch.get_num_threads()
    try:
        rows, notes = run_timings(args.threads, args.sizes, args.cpu_batch, args.cuda_batch, args.repeats, GENERATOR)
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
