"""Flow quality on real image pairs: the shared GT pairs and videos, EPE tables, a photometric check.

Pure torch + numpy + cv2 (no mmengine), so it serves tests, ``tools/eval_real_flow.py`` and notebooks alike.

* :func:`shared_real_pairs` — the six real pairs with GT in ``../shared/data`` (5 Flying Chairs, RubberWhale).
* :func:`model_flow` — a Light Flow as a flow method beside the references of :mod:`lightflow.baseline_flow`
  (``zero_flow``, ``dis_flow``) that a learned model must beat.
* :func:`epe_table` — per-pair EPE of several methods and their mean *over pairs* (see its docstring).
* :func:`warp_error` / :func:`video_frame_pairs` — a GT-free check on real video: how well the frame-2 pixels the flow
  points at reproduce frame 1.
* :func:`epe_markdown` / :func:`warp_markdown` — those numbers as markdown tables (``tools/eval_real_flow.py``).
* :func:`list_checkpoints` / :func:`curve_markdown` / :func:`plot_curve` — mean EPE over a training run: the
  ``iter_<N>.pth`` of its work dirs on a pairs-seen axis, as a table and a plot.

Images are uint8 RGB numpy arrays (H, W, 3), as :func:`lightflow.read_image` returns them (the form both
:func:`lightflow.estimate_flow` and OpenCV accept); flow is a float32 (2, H, W) tensor in pixels with the project's
backward convention ``img1[y, x] ~ img2[y + v, x + u]`` (the Chairs / Middlebury GT convention, and OpenCV's).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from .frames import iter_frames
from .inference import to_image_batch
from .io import read_flo, read_image
from .metrics import flow_metric_sums
from .warp import flow_warp

__all__ = ['FlowPair', 'FramePair', 'shared_real_pairs', 'video_frame_pairs', 'model_flow', 'baseline_methods',
           'method_labels', 'epe_table', 'warp_error', 'epe_markdown', 'warp_markdown', 'list_checkpoints',
           'curve_markdown', 'plot_curve', 'CHAIRS_STEMS', 'VIDEO_SOURCES', 'ITER_CHECKPOINT']

FlowMethod = Callable[[np.ndarray, np.ndarray], Tensor]

CHAIRS_STEMS = ('00001', '00002', '00003', '00004', '00005')
# Video sources under DATA/video, in reporting order: a folder of frames (sorted by name) or a video file.
VIDEO_SOURCES = ('ILSVRC2015_val_00007010', 'MOT17-05-FRCNN/img1', 'demo.mp4')
# The periodic checkpoints of an mmengine work dir (not best_*.pth, not last_checkpoint).
ITER_CHECKPOINT = re.compile(r'iter_(\d+)\.pth')


class FlowPair(NamedTuple):
    """A real image pair with GT: ``img1``/``img2`` uint8 RGB (H, W, 3), ``flow`` float32 (2, H, W) px (unknown GT
    keeps Middlebury's 1e9 marker; :func:`lightflow.metrics.valid_flow_mask` excludes it)."""
    name: str
    img1: np.ndarray
    img2: np.ndarray
    flow: Tensor


class FramePair(NamedTuple):
    """Two consecutive video frames without GT, uint8 RGB (H, W, 3); ``name`` is ``'<video>/<frame index>'``."""
    name: str
    img1: np.ndarray
    img2: np.ndarray


def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f'{path}: missing real sample (expected the layout of ../shared/data, see its '
                                'SOURCES.md)')
    return path


def shared_real_pairs(data_root: str | os.PathLike) -> list[FlowPair]:
    """The six real pairs with GT flow in the shared data folder, in reporting order.

    ``chairs_00001`` .. ``chairs_00005`` (Flying Chairs, 512x384, ``FlyingChairs_mini/data``) and ``rubberwhale``
    (Middlebury RubberWhale frame10 -> frame11, 584x388; unknown GT stays 1e9 and is never scored).

    Raises:
        FileNotFoundError: ``data_root`` or one of the files is missing (the message names it).
    """
    root = _require(Path(data_root))
    pairs = []
    for stem in CHAIRS_STEMS:
        d = root / 'FlyingChairs_mini' / 'data'
        pairs.append(FlowPair(f'chairs_{stem}', read_image(_require(d / f'{stem}_img1.ppm')),
                              read_image(_require(d / f'{stem}_img2.ppm')), _read_gt(_require(d / f'{stem}_flow.flo'))))
    rw = root / 'middlebury' / 'RubberWhale'
    pairs.append(FlowPair('rubberwhale', read_image(_require(rw / 'frame10.png')),
                          read_image(_require(rw / 'frame11.png')), _read_gt(_require(rw / 'flow10.flo'))))
    for p in pairs:
        if not p.img1.shape == p.img2.shape == (*p.flow.shape[1:], 3):
            raise ValueError(f'{p.name}: images {p.img1.shape} / {p.img2.shape} do not match GT {tuple(p.flow.shape)}')
    return pairs


def _read_gt(path: Path) -> Tensor:
    return torch.from_numpy(read_flo(path)).permute(2, 0, 1).contiguous()  # (H, W, 2) -> (2, H, W)


def _downscale(img: np.ndarray, max_side: int | None) -> np.ndarray:
    """Area-downscale so the longer side is at most ``max_side`` (aspect kept; never upscales)."""
    h, w = img.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return img
    import cv2

    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 takes (width, height)
    return np.ascontiguousarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA))


def video_frame_pairs(data_root: str | os.PathLike, max_side: int | None = None, max_pairs: int | None = None,
                      sources: Sequence[str] = VIDEO_SOURCES) -> list[FramePair]:
    """Consecutive frame pairs of the shared videos (no GT): ImageNet VID jets (16 frames, 1280x720), MOT17-05 (6
    frames, 640x480, moving camera) and ``demo.mp4`` (8 frames, 1920x1080, 3 fps: large motion).

    Args:
        data_root: the shared data folder (its ``video/`` subfolder is read).
        max_side: area-downscale frames whose longer side exceeds this (aspect kept; e.g. 1280 brings the 1080p video
            to 1280x720); None keeps the native size.
        max_pairs: at most this many pairs per video (the first ones); None for all (15 + 5 + 7).
        sources: which videos, relative to ``data_root/video``.

    Returns:
        list of :class:`FramePair` named ``'<video>/<index of frame 1>'`` (consecutive pairs share frame arrays).
    """
    if max_pairs is not None and max_pairs < 0:
        raise ValueError(f'max_pairs must be >= 0, got {max_pairs}')
    root = _require(Path(data_root) / 'video')
    pairs: list[FramePair] = []
    for source in sources:
        path = _require(root / source)
        video = source.split('/')[0].removesuffix('.mp4')
        prev = None
        for i, frame in enumerate(iter_frames(path)):
            if max_pairs is not None and i > max_pairs:
                break
            frame = _downscale(frame, max_side)
            if prev is not None:
                pairs.append(FramePair(f'{video}/{i - 1:03d}', prev, frame))
            prev = frame
    return pairs


def model_flow(model: torch.nn.Module) -> FlowMethod:
    """``(img1, img2) -> (2, H, W)`` flow of a Light Flow through :func:`lightflow.estimate_flow` (eval mode,
    inference mode: the fast path)."""
    from .inference import estimate_flow

    model.eval()

    def method(img1: np.ndarray, img2: np.ndarray) -> Tensor:
        with torch.inference_mode():
            return estimate_flow(model, img1, img2)[0].float().cpu()

    return method


def baseline_methods() -> dict[str, FlowMethod]:
    """The references of :mod:`lightflow.baseline_flow` as flow methods: ``'zero flow'`` and ``'DIS <preset>'`` for
    each of its presets (ultrafast, fast, medium), in that order."""
    from .baseline_flow import DIS_PRESETS, dis_flow, zero_flow

    methods: dict[str, FlowMethod] = {'zero flow': zero_flow}
    for preset in DIS_PRESETS:
        methods[f'DIS {preset}'] = lambda a, b, preset=preset: dis_flow(a, b, preset)
    return methods


def method_labels(sources: Sequence[str]) -> list[str]:
    """Short row names of checkpoints: the file stem (a pretrained name as is), with its folder when two stems
    clash."""
    stems = [Path(s).stem if Path(s).is_file() else s for s in sources]
    return [f'{Path(s).parent.name}/{stem}' if stems.count(stem) > 1 else stem for s, stem in zip(sources, stems)]


def _as_flow(flow: Tensor, shape: tuple[int, int], name: str) -> Tensor:
    if not isinstance(flow, Tensor):
        flow = torch.as_tensor(np.asarray(flow))
    if flow.dim() == 4 and flow.shape[0] == 1:
        flow = flow[0]
    if flow.dim() != 3 or flow.shape[0] != 2 or tuple(flow.shape[1:]) != tuple(shape):
        raise ValueError(f'{name}: expected a (2, {shape[0]}, {shape[1]}) flow, got {tuple(flow.shape)}')
    return flow.float()


def epe_table(methods: Mapping[str, FlowMethod], pairs: Sequence[FlowPair]) -> dict[str, dict[str, float]]:
    """End-point error of every method on every pair.

    Averaging convention: a pair's EPE is the per-pixel mean over its valid GT pixels (finite and below Middlebury's
    1e9 "unknown" marker); ``'mean'`` is the unweighted mean of the per-pair EPEs, so each pair counts equally whatever
    its size or number of valid pixels (unlike :class:`lightflow.engine.FlowMetric`, which averages over all pixels of
    a dataset).

    Args:
        methods: name -> callable ``(img1, img2) -> flow`` ((2, H, W) or (1, 2, H, W), pixels).
        pairs: :class:`FlowPair` s (e.g. :func:`shared_real_pairs`).

    Returns:
        ``{method: {pair name: EPE, ..., 'mean': mean over pairs}}`` in the order given.
    """
    if not pairs:
        raise ValueError('epe_table needs at least one pair')
    table: dict[str, dict[str, float]] = {}
    for method_name, method in methods.items():
        row = {}
        for pair in pairs:
            flow = _as_flow(method(pair.img1, pair.img2), tuple(pair.flow.shape[1:]), f'{method_name} on {pair.name}')
            sums = flow_metric_sums(flow, pair.flow)
            row[pair.name] = sums['epe_sum'] / sums['count'] if sums['count'] else math.nan
        row['mean'] = float(np.mean([row[p.name] for p in pairs]))
        table[method_name] = row
    return table


def warp_error(img1: np.ndarray | Tensor, img2: np.ndarray | Tensor, flow: Tensor) -> float:
    """Photometric check that needs no GT: mean absolute difference between ``img1`` and ``flow_warp(img2, flow)``.

    Averaged over the RGB channels and over the pixels whose sample point ``(x + u, y + v)`` lies inside frame 2
    (within the outermost pixel centres, so the bilinear sample reads only real pixels); NaN if there is none. The
    value is in intensity levels (0..255). Occlusions and brightness changes keep it above 0 even for the true flow,
    and a flow that points everything out of the frame scores over few pixels: compare methods on the same pairs.

    Args:
        img1, img2: uint8 RGB (H, W, 3) arrays or (3, H, W) / (1, 3, H, W) tensors, 0..255.
        flow: (2, H, W) or (1, 2, H, W) flow in pixels, ``img1[y, x] ~ img2[y + v, x + u]``.
    """
    x1, x2 = to_image_batch(img1, 'img1'), to_image_batch(img2, 'img2')  # (1, 3, H, W) float
    if x1.shape != x2.shape or x1.shape[0] != 1:
        raise ValueError(f'img1 and img2 must be one pair of the same size, got {tuple(x1.shape)} and '
                         f'{tuple(x2.shape)}')
    h, w = x1.shape[-2:]
    flow = _as_flow(flow, (h, w), 'flow').unsqueeze(0)  # (1, 2, H, W)
    warped = flow_warp(x2, flow, fast=False)  # a metric: the exact path (integer flows move pixels exactly)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype), indexing='ij')
    sx, sy = xs + flow[0, 0], ys + flow[0, 1]
    inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)  # (H, W)
    if not inside.any():
        return math.nan
    return float((warped - x1).abs().mean(dim=1)[0][inside].double().mean())


# ----------------------------------------------------------------------------------------------------------------------
# Reports


def _fmt(value: float | None, digits: int = 2) -> str:
    return '-' if value is None or not math.isfinite(value) else f'{value:.{digits}f}'


def epe_markdown(table: Mapping[str, Mapping[str, float]], pair_names: Sequence[str], warp: Mapping[str, float],
                 ms: Mapping[str, float]) -> str:
    """A markdown table with a row per method: :func:`epe_table`'s EPE per pair and mean (over ``'zero flow'``'s
    too, which ``table`` must hold), the video warp error and ms per pair ('-' where a method has none)."""
    zero = table['zero flow']['mean']
    header = ['method', *pair_names, 'mean EPE', 'mean EPE / zero', 'video warp err', 'ms / Chairs pair']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' + '---:|' * (len(header) - 1)]
    for name, row in table.items():
        cells = [name, *(_fmt(row[p]) for p in pair_names), f"**{_fmt(row['mean'])}**", _fmt(row['mean'] / zero),
                 _fmt(warp.get(name, math.nan)), _fmt(ms.get(name, math.nan), 1)]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def warp_markdown(per_video: Mapping[str, Mapping[str, Sequence[float]]], max_side: int | None) -> list[str]:
    """The mean :func:`warp_error` of each method per video, as the lines of a titled markdown table.

    Args:
        per_video: ``{method: {video: [warp error of each pair]}}``, all methods over the same videos and holding
            ``'zero flow'`` (its pair counts are reported).
        max_side: the longer side the frames were downscaled to (named in the title).
    """
    videos = list(next(iter(per_video.values())))
    counts = ', '.join(f'{v}: {len(per_video["zero flow"][v])}' for v in videos)
    doc = [f'\nWarp error per video (pairs: {counts}; longer side <= {max_side}):\n\n',
           '| method | ' + ' | '.join(videos) + ' |\n', '|---|' + '---:|' * len(videos) + '\n']
    doc += [f'| {name} | ' + ' | '.join(_fmt(float(np.mean(e[v]))) for v in videos) + ' |\n'
            for name, e in per_video.items()]
    return doc


def list_checkpoints(work_dirs: Sequence[str], pairs_per_iter: Sequence[int],
                     pairs_offset: Sequence[int] | None) -> list[dict]:
    """The ``iter_<N>.pth`` of each mmengine work dir (stages of one run, in order), in iteration order.

    Args:
        work_dirs: the stages' work dirs.
        pairs_per_iter: training pairs per iteration (global batch), one value for all stages or one per stage.
        pairs_offset: pairs seen before each stage; None continues each stage from the previous stage's last
            checkpoint (a stage started with ``load_from``, whose counter restarts at 0).

    Returns:
        one dict per checkpoint: ``stage``, ``work_dir``, ``checkpoint`` (file name), ``iteration``, ``pairs_seen``
        (offset + iteration x pairs per iteration) and ``wall_s`` (its mtime minus the first checkpoint's).

    Raises:
        FileNotFoundError: a work dir is missing or holds no ``iter_<N>.pth``.
    """
    rows, offset, t0 = [], 0, None
    per_iter = list(pairs_per_iter) * len(work_dirs) if len(pairs_per_iter) == 1 else pairs_per_iter
    for k, work_dir in enumerate(work_dirs):
        d = Path(work_dir)
        if not d.is_dir():
            raise FileNotFoundError(f'{d}: no such work dir')
        ckpts = sorted((int(m.group(1)), p) for p in d.glob('iter_*.pth') if (m := ITER_CHECKPOINT.fullmatch(p.name)))
        if not ckpts:
            raise FileNotFoundError(f'{d}: no iter_<N>.pth checkpoints')
        if pairs_offset is not None:
            offset = pairs_offset[k]
        for iteration, path in ckpts:
            mtime = path.stat().st_mtime
            t0 = mtime if t0 is None else t0
            rows.append(dict(stage=k, work_dir=str(d), checkpoint=path.name, iteration=iteration,
                             pairs_seen=offset + iteration * per_iter[k], wall_s=round(mtime - t0, 1)))
        offset = rows[-1]['pairs_seen']
    return rows


def curve_markdown(scored: Sequence[Mapping], reference: Mapping[str, float], pair_names: Sequence[str]) -> list[str]:
    """The training curve as the lines of a markdown document: a title, the references' mean EPE, and a row per
    checkpoint (:func:`list_checkpoints`' fields plus the EPE of each pair, ``mean_EPE`` and ``mean_EPE_over_zero``).
    """
    ref_text = ', '.join(f'{k} {v:.3f}' for k, v in reference.items())
    lines = ['# Mean EPE on the real pairs during training\n\n', f'References (mean EPE): {ref_text}.\n\n',
             '| stage | checkpoint | pairs seen | wall (h) | ' + ' | '.join(pair_names) + ' | mean EPE | / zero |\n',
             '|---|---|---:|---:|' + '---:|' * (len(pair_names) + 2) + '\n']
    lines += [f"| {r['stage']} | {r['checkpoint']} | {r['pairs_seen']:,} | {r['wall_s'] / 3600:.2f} | "
              + ' | '.join(_fmt(r[n]) for n in pair_names) + f" | **{_fmt(r['mean_EPE'], 3)}** | "
              f"{_fmt(r['mean_EPE_over_zero'])} |\n" for r in scored]
    return lines


def plot_curve(rows: Sequence[Mapping], reference: Mapping[str, float], path: str | os.PathLike) -> None:
    """Mean EPE vs training pairs seen, a line per stage, with the references (``'zero flow'``, ``'DIS fast'``,
    ``'DIS medium'``) as horizontal lines; written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for stage in sorted({r['stage'] for r in rows}):
        pts = [r for r in rows if r['stage'] == stage]
        ax.plot([r['pairs_seen'] for r in pts], [r['mean_EPE'] for r in pts], 'o-', ms=3,
                label=f"Light Flow ({Path(pts[0]['work_dir']).name})")
    styles = {'zero flow': ('k', ':'), 'DIS fast': ('tab:red', '--'), 'DIS medium': ('tab:purple', '-.')}
    for name, value in reference.items():
        color, style = styles[name]
        ax.axhline(value, color=color, linestyle=style, linewidth=1, label=f'{name} ({value:.2f})')
    ax.set_xlabel('training pairs seen')
    ax.set_ylabel('mean EPE over the 6 real pairs (px)')
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
