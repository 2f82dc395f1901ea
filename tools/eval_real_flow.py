"""Flow quality on real image pairs with GT, next to zero flow and OpenCV DIS; optionally an EPE-vs-training curve.

    python tools/eval_real_flow.py work_dirs/chairs/iter_40000.pth --data ../shared/data --out-dir out/real
    python tools/eval_real_flow.py --curve work_dirs/stage1 work_dirs/stage2 --pairs-per-iter 16 --out-dir out/curve

**Table** (``OUT_DIR/real_pairs.md``, also printed): one row per method (zero flow, DIS ultrafast / fast / medium, each
MODEL), columns the EPE of each real pair (5 Flying Chairs pairs, Middlebury RubberWhale; unknown GT excluded), their
mean (each pair weighs the same, see :func:`lightflow.evaluation.epe_table`), that mean over zero flow's, the mean
photometric warp error (0..255 levels, :func:`lightflow.evaluation.warp_error`) over the consecutive frame pairs of
the shared videos (no GT: ImageNet VID, MOT17-05, demo.mp4 downscaled to ``--video-max-side``), and the median time
per 512x384 Chairs pair on ``--threads`` threads (after one warm-up call; noisy on a loaded machine).
``OUT_DIR/flow_<pair>.png``: GT | each MODEL | DIS medium, all coloured on the GT's scale (its largest valid magnitude).

**Curve** (``--curve WORK_DIR [WORK_DIR ...]``): every ``iter_<N>.pth`` of each mmengine work dir, in iteration order,
scored on the same pairs -> ``OUT_DIR/curve.csv``, ``curve.md`` and ``curve.png`` (mean EPE vs training pairs seen,
with zero flow, DIS fast and DIS medium as horizontal lines). Pairs seen = ``offset + N * pairs_per_iter`` (the
global batch size: GPUs x per-GPU batch). Several work dirs are stages of one run, in order: by default each later
stage continues the axis from the previous stage's last checkpoint (right for a stage started with ``load_from``,
whose counter restarts at 0); ``--pairs-offset`` sets each stage's offset explicitly (``0 0`` for a run resumed with
``--resume`` into another dir, whose counter keeps going). ``--pairs-per-iter`` takes one value for all stages or one
per stage. Wall time is each checkpoint file's mtime minus the first checkpoint's: it leaves out the time before the
first checkpoint and includes any pause between stages, and it is wrong for copied files whose mtimes were not kept.

MODEL is a checkpoint (``tools/train_flow.py``'s or a raw LightFlow state dict) or, when ``lightflow.pretrained``
provides it, a pretrained name. Run with the package importable (``PYTHONPATH=.``).
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import numpy as np

from lightflow.cli import ArgumentParser, check_output_dir, positive_int, run_main

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / 'shared' / 'data'
BASELINES = ('zero flow', 'DIS ultrafast', 'DIS fast', 'DIS medium')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(
        description='EPE on real pairs with GT (Flying Chairs, RubberWhale) next to zero flow and OpenCV DIS, a '
                    'photometric warp error on real video, and optionally mean EPE over a training run.')
    parser.add_argument('models', nargs='*', metavar='MODEL', help='checkpoint (.pth) or pretrained name')
    parser.add_argument('--data', default=str(DEFAULT_DATA), help=f'shared data folder (default {DEFAULT_DATA})')
    parser.add_argument('--out-dir', default='work_dirs/eval_real_flow', help='output folder')
    parser.add_argument('--curve', nargs='+', metavar='WORK_DIR', help='mmengine work dir(s) of one run, in order')
    parser.add_argument('--pairs-per-iter', nargs='+', type=int, metavar='N',
                        help='training pairs per iteration (global batch), one value or one per WORK_DIR')
    parser.add_argument('--pairs-offset', nargs='+', type=int, metavar='P',
                        help='pairs seen before each WORK_DIR (default: continue from the previous stage)')
    parser.add_argument('--video-max-side', type=positive_int, default=1280,
                        help='downscale video frames whose longer side exceeds this (default 1280: 1080p -> 720p)')
    parser.add_argument('--video-max-pairs', type=int, default=None,
                        help='at most this many frame pairs per video (default all; 0 skips the warp-error column)')
    parser.add_argument('--threads', type=int, default=1, help='torch and OpenCV threads (default 1)')
    args = parser.parse_args(argv)
    if args.curve:
        if not args.pairs_per_iter:
            parser.error('--curve needs --pairs-per-iter')
        if len(args.pairs_per_iter) not in (1, len(args.curve)):
            parser.error(f'--pairs-per-iter takes one value or one per WORK_DIR ({len(args.curve)}), got '
                         f'{len(args.pairs_per_iter)}')
        if args.pairs_offset is not None and len(args.pairs_offset) != len(args.curve):
            parser.error(f'--pairs-offset takes one value per WORK_DIR ({len(args.curve)}), got '
                         f'{len(args.pairs_offset)}')
    elif args.pairs_per_iter or args.pairs_offset:
        parser.error('--pairs-per-iter / --pairs-offset only apply with --curve')
    if args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    return args


def _progress(iterable, desc: str):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, leave=False, disable=not sys.stdout.isatty())


# ----------------------------------------------------------------------------------------------------------------------
# The real-pairs table


def evaluate_table(args: argparse.Namespace, pairs: list, models: dict, out: Path) -> dict:
    """EPE table + video warp error + timings + colour panels; returns the numbers and writes real_pairs.md."""
    import torch

    from lightflow.benchmarking import TimedMethod
    from lightflow.evaluation import (baseline_methods, epe_markdown, epe_table, model_flow, video_frame_pairs,
                                      warp_error, warp_markdown)
    from lightflow.io import write_png
    from lightflow.metrics import valid_flow_mask
    from lightflow.viz import flow_strip

    methods = {**baseline_methods(), **{name: model_flow(m) for name, m in models.items()}}
    chairs_shape = pairs[0].img1.shape
    timed = {name: TimedMethod(method, chairs_shape) for name, method in methods.items()}
    for method in methods.values():  # warm-up (builds the model fast path), untimed
        method(pairs[0].img1, pairs[0].img2)
    table = epe_table(timed, pairs)
    ms = {name: 1000 * statistics.median(t.seconds) for name, t in timed.items() if t.seconds}

    warp: dict[str, float] = {}
    per_video: dict[str, dict[str, list[float]]] = {}
    if args.video_max_pairs != 0:
        frames = video_frame_pairs(args.data, max_side=args.video_max_side, max_pairs=args.video_max_pairs)
        for name, method in _progress(methods.items(), 'video warp error'):
            errors = per_video.setdefault(name, {})
            for pair in frames:
                errors.setdefault(pair.name.split('/')[0], []).append(
                    warp_error(pair.img1, pair.img2, method(pair.img1, pair.img2)))
            warp[name] = float(np.mean([e for v in errors.values() for e in v]))

    names = [p.name for p in pairs]
    text = epe_markdown(table, names, warp, ms)
    print(text, end='')
    doc = ['# Light Flow on real pairs with GT\n\n', text,
           '\nEPE in pixels per pair (valid GT pixels only); mean EPE = unweighted mean over the pairs; video warp '
           'err = mean |img1 - flow_warp(img2, flow)| (0..255, in-frame samples) over the video frame pairs; time = '
           f'median per 512x384 pair on {args.threads} thread(s). Panels flow_<pair>.png: GT | '
           f'{" | ".join([*models, "DIS medium"])}.\n']
    if per_video:
        doc += warp_markdown(per_video, args.video_max_side)
    (out / 'real_pairs.md').write_text(''.join(doc))

    shown = [*models, 'DIS medium']
    for pair in pairs:
        valid = valid_flow_mask(pair.flow)
        max_flow = float(pair.flow.norm(dim=0)[valid].max()) if valid.any() else 1.0
        flows = [torch.where(valid, pair.flow, torch.zeros_like(pair.flow))]
        flows += [methods[name](pair.img1, pair.img2) for name in shown]
        write_png(out / f'flow_{pair.name}.png', flow_strip(flows, max(max_flow, 1e-3)))
    return dict(table=table, warp=warp, ms=ms, panels=['GT', *shown])


# ----------------------------------------------------------------------------------------------------------------------
# The training curve


def evaluate_curve(args: argparse.Namespace, pairs: list, out: Path) -> list[dict]:
    """Mean EPE of every checkpoint of the ``--curve`` work dirs; writes curve.csv, curve.md and curve.png."""
    from lightflow.checkpoint import load_lightflow_checkpoint
    from lightflow.evaluation import (baseline_methods, curve_markdown, epe_table, list_checkpoints, model_flow,
                                      plot_curve)

    baselines = {k: v for k, v in baseline_methods().items() if k in ('zero flow', 'DIS fast', 'DIS medium')}
    reference = {name: row['mean'] for name, row in epe_table(baselines, pairs).items()}
    rows = list_checkpoints(args.curve, args.pairs_per_iter, args.pairs_offset)
    names = [p.name for p in pairs]
    scored = []
    for i, row in enumerate(_progress(rows, 'checkpoints')):
        path = Path(row['work_dir']) / row['checkpoint']
        try:
            model = load_lightflow_checkpoint(path)
        except ValueError:
            if i == len(rows) - 1:  # a live run may still be writing its newest checkpoint
                print(f'warning: skipped {path} (unreadable; still being written?)', file=sys.stderr)
                continue
            raise
        epe = epe_table({'model': model_flow(model)}, pairs)['model']
        scored.append({**row, **{n: round(epe[n], 4) for n in names}, 'mean_EPE': round(epe['mean'], 4),
                       'mean_EPE_over_zero': round(epe['mean'] / reference['zero flow'], 4)})

    if not scored:
        raise ValueError(f'no readable checkpoint in {" ".join(args.curve)}')
    with open(out / 'curve.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(scored[0]))
        writer.writeheader()
        writer.writerows(scored)
    lines = curve_markdown(scored, reference, names)
    (out / 'curve.md').write_text(''.join(lines))
    plot_curve(scored, reference, out / 'curve.png')
    print(''.join(lines[1:]), end='')
    return scored


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not Path(args.data).is_dir():
        raise FileNotFoundError(f'{args.data}: no such data folder (the shared real samples, see SOURCES.md there)')
    out = check_output_dir(args.out_dir, '--out-dir')
    import cv2
    import torch

    from lightflow.evaluation import method_labels, shared_real_pairs
    from lightflow.pretrained import load_flow_model

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    pairs = shared_real_pairs(args.data)
    models = {}
    for label, source in zip(method_labels(args.models), args.models):
        model = load_flow_model(source)
        models[f'Light Flow α={model.width_mult:g} ({label})'] = model
    out.mkdir(parents=True, exist_ok=True)
    result = {}
    if args.models or not args.curve:
        result.update(evaluate_table(args, pairs, models, out))
    if args.curve:
        result['curve'] = evaluate_curve(args, pairs, out)
    print(f'wrote {out}/')
    return result


if __name__ == '__main__':
    sys.exit(run_main(main))
