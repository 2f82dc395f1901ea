"""CPU latency of Light Flow (three widths) and FlowNetS: plain eager PyTorch vs ``lightflow.estimate_flow``.

    PYTHONPATH=. python tools/benchmark_flow.py --threads 2 [--height 384 --width 512 --batch 1]
        [--repeats 50 --warmup 10] [--models lightflow_w1_0 lightflow_w0_75 lightflow_w0_5 flownets] [--out table.md]

Prints a markdown table (written atomically to ``--out`` too). For each model, the plain path
(``model.eval()``, ``torch.no_grad()``, ``model(img1, img2)`` then bilinear upsampling to the input size times
``div_flow``) and the fast path (``torch.inference_mode()``, ``estimate_flow(model, img1, img2)``) are timed
in turn in the same loop (every path of every model once per round), so all see the same machine load; the table
reports medians. FLOPs are counted by
``torch.utils.flop_counter`` on the network (shapes only); GFLOP/s = FLOPs / median latency, compared with the fp32
matrix-multiply rate measured at the start with a large ``torch.mm``. FlowNetS runs the plain path only.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from lightflow import estimate_flow, fuse_lightflow
from lightflow.io import atomic_write
from lightflow.models import LightFlow, flownets, lightflow_w0_5, lightflow_w0_75, lightflow_w1_0
from lightflow.sysinfo import cpu_name

# name -> (factory, label, paper params (M), paper GFLOPs at 384x512).
MODELS: dict[str, tuple[Callable[[], nn.Module], str, float, float]] = {
    'lightflow_w1_0': (lightflow_w1_0, 'Light Flow 1.0', 2.6, 0.82),
    'lightflow_w0_75': (lightflow_w0_75, 'Light Flow 0.75', 1.4, 0.48),
    'lightflow_w0_5': (lightflow_w0_5, 'Light Flow 0.5', 0.7, 0.23),
    'flownets': (flownets, 'FlowNetS', 38.7, 53.48),
}


@dataclass
class Row:
    label: str
    params_m: float
    gflops: float
    paper: str
    times_ms: dict[str, list[float]] = field(default_factory=dict)
    max_diff_px: float = float('nan')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='CPU latency of Light Flow and FlowNetS, plain vs fast path.')
    parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads (default 2)')
    parser.add_argument('--height', type=int, default=384, help='input height, a multiple of 64')
    parser.add_argument('--width', type=int, default=512, help='input width, a multiple of 64')
    parser.add_argument('--batch', type=int, default=1, help='frame pairs per call')
    parser.add_argument('--repeats', type=int, default=50, help='timed calls per path (median reported)')
    parser.add_argument('--warmup', type=int, default=10, help='untimed calls per path first')
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS), help='rows, in order')
    parser.add_argument('--gemm-size', type=int, default=2048, help='n of the n x n x n fp32 torch.mm rate probe')
    parser.add_argument('--out', help='also write the table here (atomically)')
    args = parser.parse_args(argv)
    for name in ('threads', 'batch', 'repeats', 'gemm_size'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got {getattr(args, name)}')
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    if args.height < 64 or args.width < 64 or args.height % 64 or args.width % 64:
        parser.error(f'--height/--width must be positive multiples of 64 (the plain forward needs that), '
                     f'got {args.height}x{args.width}')
    return args


def gemm_gflops(n: int, repeats: int = 5) -> float:
    """Median fp32 ``torch.mm`` rate (GFLOP/s) for n x n @ n x n at the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def count_gflops(factory: Callable[[], nn.Module], batch: int, height: int, width: int) -> tuple[float, float]:
    """(params in M, GFLOPs of ``forward_features`` on a (batch, 6, H, W) pair), counted on the meta device."""
    with torch.device('meta'):
        model = factory().eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    with FlopCounterMode(display=False) as counter:
        model.forward_features(torch.empty(batch, 6, height, width, device='meta'))
    return params, counter.get_total_flops() / 1e9


def plain_flow(model: nn.Module, img1: Tensor, img2: Tensor) -> Tensor:
    """The baseline: the eager network, then the same bilinear upsampling ``estimate_flow`` does."""
    with torch.no_grad():
        pred = model(img1, img2)
        return F.interpolate(pred * model.div_flow, size=img1.shape[-2:], mode='bilinear', align_corners=False)


def fast_flow(model: nn.Module, img1: Tensor, img2: Tensor) -> Tensor:
    with torch.inference_mode():
        return estimate_flow(model, img1, img2)


def folded_flow(model: nn.Module, img1: Tensor, img2: Tensor) -> Tensor:
    """Ablation: BN folded + channels-last in eager PyTorch (``fuse_lightflow(model, 'eager')``)."""
    with torch.inference_mode():
        pred = fuse_lightflow(model, 'eager')(model.normalize(img1, img2))
        return F.interpolate(pred * model.div_flow, size=img1.shape[-2:], mode='bilinear', align_corners=False)


@dataclass
class Case:
    """One model, its inputs and the paths to time on it."""

    row: Row
    model: nn.Module
    img1: Tensor
    img2: Tensor
    paths: dict[str, Callable[[nn.Module, Tensor, Tensor], Tensor]]


def setup_case(name: str, args: argparse.Namespace) -> Case:
    factory, label, paper_params, paper_gflops = MODELS[name]
    params, gflops = count_gflops(factory, args.batch, args.height, args.width)
    row = Row(label, params, gflops, f'{paper_params} M / {paper_gflops} G')
    torch.manual_seed(0)
    model = factory().eval()
    g = torch.Generator().manual_seed(0)
    img1 = torch.rand(args.batch, 3, args.height, args.width, generator=g) * 255
    img2 = torch.rand(args.batch, 3, args.height, args.width, generator=g) * 255
    paths = {'plain': plain_flow}
    if isinstance(model, LightFlow):
        paths.update(folded=folded_flow, fast=fast_flow)
        row.max_diff_px = (fast_flow(model, img1, img2) - plain_flow(model, img1, img2)).abs().max().item()
    row.times_ms = {k: [] for k in paths}
    return Case(row, model, img1, img2, paths)


def run_rounds(cases: list[Case], args: argparse.Namespace) -> list[float]:
    """Time every path of every model once per round, round after round, so that bursts of load from other processes
    hit all rows alike; returns the GEMM rates measured between rounds."""
    gemm = []
    for i in tqdm(range(args.warmup + args.repeats), desc='rounds (warm-up first)', file=sys.stderr):
        for case in cases:
            for key, fn in case.paths.items():
                t = time.perf_counter()
                fn(case.model, case.img1, case.img2)
                if i >= args.warmup:
                    case.row.times_ms[key].append((time.perf_counter() - t) * 1e3)
        if i >= args.warmup and (i - args.warmup) % 10 == 0:
            gemm.append(gemm_gflops(args.gemm_size, repeats=3))
    for case in cases:
        med = {k: statistics.median(v) for k, v in case.row.times_ms.items()}
        print(f'{case.row.label}: ' + ', '.join(f'{k} {v:.2f} ms' for k, v in med.items()), file=sys.stderr)
    return gemm


def markdown_table(rows: list[Row], args: argparse.Namespace, gemm: float) -> str:
    """One row per model; latencies are medians in ms, GFLOP/s of the fastest path."""
    lines = [
        f'# Optical-flow CPU latency, {args.height}x{args.width}, batch {args.batch}, {args.threads} threads, fp32',
        '',
        f'CPU: {cpu_name()}; torch {torch.__version__}; fp32 GEMM '
        f'(torch.mm {args.gemm_size}^3): **{gemm:.1f} GFLOP/s**; median of {args.repeats} calls after '
        f'{args.warmup} warm-up calls; all paths of all models timed in turn, round after round; GEMM rate = median '
        'of probes between rounds.',
        '',
        '| model | params (M) | FLOPs (G) | paper params / FLOPs @384x512 | plain eager (ms) | BN-folded eager (ms) | '
        'estimate_flow (ms) | speed-up | GFLOP/s (% of GEMM) | max abs diff (px) |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    for r in rows:
        med = {k: statistics.median(v) for k, v in r.times_ms.items()}
        best = med.get('fast', med['plain'])
        rate = r.gflops / (best / 1e3)
        cells = [r.label, f'{r.params_m:.3f}', f'{r.gflops:.2f}', r.paper]
        cells += [f'{med[k]:.1f}' if k in med else '-' for k in ('plain', 'folded', 'fast')]
        cells.append(f'{med["plain"] / med["fast"]:.2f}x' if 'fast' in med else '-')
        cells.append(f'{rate:.1f} ({100 * rate / gemm:.0f} %)')
        cells.append('-' if math.isnan(r.max_diff_px) else f'{r.max_diff_px:.1e}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += [
        '',
        'FLOPs: `torch.utils.flop_counter` (2 per multiply-add) of the network at the input size. FlowNetS: '
        'torch >= 2.3 counts its stride-2 deconvs at their input resolution; the reference 53.48 G matches the older '
        'convention (deconvs at output resolution), 53.39 G for this network (see lightflow/models/flownets.py). '
        'FlowNetS runs the plain path only. Speed-up = plain / estimate_flow; BN-folded eager = '
        "`fuse_lightflow(model, 'eager')`, the ablation without oneDNN weight packing and fused activations.",
    ]
    return '\n'.join(lines) + '\n'


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f'building {", ".join(args.models)} ...', file=sys.stderr)
    cases = [setup_case(name, args) for name in args.models]
    gemm = statistics.median([gemm_gflops(args.gemm_size)] + run_rounds(cases, args))
    table = markdown_table([c.row for c in cases], args, gemm)
    print(table)
    if args.out:
        with atomic_write(args.out, 'w') as f:
            f.write(table)


if __name__ == '__main__':
    main()
