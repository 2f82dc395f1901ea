"""What the benchmark tools measure with: median wall time, the fp32 GEMM rate, round-robin timing of several paths, a
timed flow method, a pair of frames to time on, and the displacement magnitudes of GT flow.

One copy for ``tools/benchmark_flow.py``, ``tools/benchmark_data.py`` (with :mod:`lightflow.engine.throughput`) and
``tools/eval_real_flow.py``. Pure torch + numpy; cv2, tqdm and matplotlib are imported by the helpers that use them.
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .io import UNKNOWN_FLOW_THRESH, atomic_write, read_flo

__all__ = ['THRESHOLDS_PX', 'sync', 'median_seconds', 'gemm_gflops', 'timed_rounds', 'TimedMethod', 'benchmark_pair',
           'MotionStats', 'generator_motion', 'chairs_motion', 'plot_histograms']

# Displacements (px) whose share the motion statistics report: large motion for a 384x512 Chairs frame.
THRESHOLDS_PX = (20, 40)


# ---------------------------------------------------------------------------------------------------- timing
def sync(device: torch.device | str) -> None:
    """Wait for the queued work of a CUDA ``device`` (nothing to wait for on the CPU), so a timer reads finished
    work."""
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[int], object], repeats: int, device: torch.device | str = 'cpu') -> float:
    """Median wall time of ``fn(i)`` for i = 1..repeats after the untimed warm-up ``fn(0)``.

    Args:
        fn: the call to time; ``i`` lets it use fresh inputs (e.g. sample indices) on every call.
        repeats: timed calls.
        device: where ``fn`` runs its work (a CUDA device is synchronised before and after each call).

    Returns:
        seconds.
    """
    fn(0)
    times = []
    for i in range(1, repeats + 1):
        sync(device)
        start = time.perf_counter()
        fn(i)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_gflops(n: int, repeats: int = 3) -> float:
    """Median fp32 ``torch.mm`` rate (GFLOP/s) for n x n @ n x n at the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / median_seconds(lambda i: torch.mm(a, b), repeats) / 1e9


def timed_rounds(paths: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1, block: int = 8,
                 pause: float = 0.05, desc: str = 'timing', gemm: list[float] | None = None,
                 gemm_size: int = 1024) -> dict[str, float]:
    """Median ms of each path, timed round after round so that bursts of load from other processes hit all alike.

    Each round runs every path in turn as a block: a pause of ``pause`` s (thread pools busy-wait after their work:
    PyTorch's OpenMP threads, ONNX Runtime's and OpenVINO's pools; without the pause they take the cores from the next
    path), one untimed call, then ``block`` timed calls.

    Args:
        paths: name -> call without arguments.
        repeats: timed calls per path at least (whole blocks: ``ceil(repeats / block)`` timed rounds).
        warmup: untimed rounds first.
        block: consecutive timed calls per path and round.
        pause: seconds of idle before each block.
        desc: label of the progress bar (shown on a terminal only, on stderr).
        gemm: when given, a :func:`gemm_gflops` probe of size ``gemm_size`` is appended to it every third timed round.

    Returns:
        ``{name: median ms}``.
    """
    from tqdm import tqdm

    times: dict[str, list[float]] = {k: [] for k in paths}
    rounds = warmup + -(-repeats // block)
    for i in tqdm(range(rounds), desc=desc, file=sys.stderr, disable=not sys.stderr.isatty(), leave=False):
        for key, fn in paths.items():
            time.sleep(pause)
            fn()
            for _ in range(block if i >= warmup else 0):
                t = time.perf_counter()
                fn()
                times[key].append((time.perf_counter() - t) * 1e3)
        if gemm is not None and i >= warmup and (i - warmup) % 3 == 0:
            gemm.append(gemm_gflops(gemm_size))
    return {k: statistics.median(v) for k, v in times.items()}


class TimedMethod:
    """A flow method ``(img1, img2) -> flow`` that records the seconds of each call on images of one shape.

    Attributes:
        method: the wrapped callable.
        shape: the ``img1.shape`` (e.g. (H, W, 3)) whose calls are timed; calls on other shapes run untimed.
        seconds: the recorded durations, in call order.
    """

    def __init__(self, method: Callable[[Any, Any], Any], shape: tuple[int, ...]) -> None:
        self.method, self.shape, self.seconds = method, shape, []

    def __call__(self, img1: np.ndarray, img2: np.ndarray) -> Any:
        start = time.perf_counter()
        flow = self.method(img1, img2)
        if img1.shape == self.shape:
            self.seconds.append(time.perf_counter() - start)
        return flow


def benchmark_pair(height: int, width: int, images: Sequence[Path]) -> tuple[list[Tensor], list[np.ndarray]]:
    """Two frames to time flow on: ``images`` (e.g. a real Chairs pair) area-resized to ``height`` x ``width`` when
    the first file exists, else random frames (seed 0).

    Returns:
        ``([img1, img2] as (1, 3, H, W) float32 tensors in 0..255, [img1, img2] as uint8 RGB (H, W, 3) arrays)``.
    """
    import cv2

    if Path(images[0]).is_file():
        from .io import read_image

        imgs = [cv2.resize(read_image(path), (width, height), interpolation=cv2.INTER_AREA) for path in images[:2]]
    else:
        rng = np.random.default_rng(0)
        imgs = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2)]
    return [torch.from_numpy(np.ascontiguousarray(i)).permute(2, 0, 1)[None].float() for i in imgs], imgs


# ---------------------------------------------------------------------------------------------------- motion
@dataclass
class MotionStats:
    """The GT displacement magnitudes of one source of flow, pooled.

    Attributes:
        label: the source, as a table row names it.
        frames: the frame size(s), e.g. ``'384x512'``.
        pairs: how many pairs were pooled.
        magnitudes: (M,) float64 px, every valid pixel of every pair.
    """
    label: str
    frames: str
    pairs: int
    magnitudes: np.ndarray

    def stats(self, thresholds: Sequence[float] = THRESHOLDS_PX) -> list[float]:
        """``[mean, median, p90, p99, max]`` (px), then the % of pixels above each of ``thresholds``."""
        m = self.magnitudes
        return [m.mean(), np.median(m), *np.percentile(m, [90, 99]), m.max(),
                *(100 * (m > t).mean() for t in thresholds)]


def generator_motion(size: tuple[int, int], samples: int, scale: float = 1.0, batch: int = 8,
                     **generator: Any) -> np.ndarray:
    """GT magnitudes of the synthetic generator, rendered on the CPU (``render='window'``).

    Args:
        size: (H, W) of the frames.
        samples: pairs 0..samples-1 are rendered, ``batch`` at a time.
        scale: factor on the magnitudes (e.g. to compare a smaller size at 384x512).
        generator: keyword arguments of :class:`lightflow.data.SyntheticFlowGenerator` (``motion_scale``, ``seed``..).

    Returns:
        (samples * H * W,) float64 px.
    """
    from .data.synthetic import SyntheticFlowGenerator

    flows = SyntheticFlowGenerator(size=size, device='cpu', render='window', **generator)
    chunks = []
    for start in range(0, samples, batch):
        flow = flows.render(range(start, min(start + batch, samples))).flow  # (N, 2, H, W)
        chunks.append(torch.linalg.vector_norm(flow, dim=1).flatten().numpy())
    return np.concatenate(chunks).astype(np.float64) * scale


def chairs_motion(folder: Path) -> MotionStats | None:
    """The valid GT magnitudes of every ``*_flow.flo`` in ``folder`` (e.g. Flying Chairs), or None without one."""
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
    return MotionStats(label, ', '.join(sorted(shapes)), len(files), np.concatenate(chunks))


def plot_histograms(motions: Sequence[MotionStats], path: str, thresholds: Sequence[float] = THRESHOLDS_PX) -> None:
    """Normalised magnitude histograms (1 px bins), linear and log density side by side, written to ``path`` as a
    PNG (atomically); ``thresholds`` are drawn as dotted lines."""
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
        for t in thresholds:
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
