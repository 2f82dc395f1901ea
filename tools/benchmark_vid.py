"""Sweep the key-frame interval of a trained video detector: mAP@50 (overall, slow / medium / fast) and CPU/GPU fps.

    PYTHONPATH=. python tools/benchmark_vid.py CONFIG CHECKPOINT [--intervals 1 2 5 10 20] [--out-dir DIR]

Writes DIR/benchmark.md (a markdown table) and DIR/benchmark.png (mAP and fps vs interval), both atomically, and
prints the table. fps is measured inside the detector's ``predict`` (one frame per call), as tools/test_vid.py does.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from mmengine.config import DictAction


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Key-frame interval sweep of a video detector.')
    parser.add_argument('config', help='config file under configs/vid/ (with a motion module)')
    parser.add_argument('checkpoint', help='checkpoint of that config')
    parser.add_argument('--intervals', type=int, nargs='+', default=[1, 2, 5, 10, 20], help='key-frame intervals')
    parser.add_argument('--out-dir', help='where benchmark.md / benchmark.png go (default: the work dir)')
    parser.add_argument('--work-dir', help='where the test logs go (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config keys; data_root=DIR re-points the datasets')
    return parser.parse_args(argv)


def _metric(metrics: dict, name: str) -> float:
    for key, value in metrics.items():
        if key.split('/')[-1] == name:
            return float(value)
    return float('nan')


def markdown_table(rows: list[dict], title: str) -> str:
    """One row per interval: mAP@50 overall / slow / medium / fast (%), fps and latencies (ms)."""
    def pct(v):
        return 'n/a' if math.isnan(v) else f'{100 * v:.1f}'

    lines = [f'# {title}', '', '| interval | mAP@50 | slow | medium | fast | fps | ms/frame | key ms | non-key ms |',
             '|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f'| {r["key_frame_interval"]} | {pct(_metric(r, "mAP"))} | {pct(_metric(r, "mAP_slow"))} | '
                     f'{pct(_metric(r, "mAP_medium"))} | {pct(_metric(r, "mAP_fast"))} | {r["fps"]:.2f} | '
                     f'{r["mean_ms"]:.2f} | {r["key_ms"]:.2f} | '
                     f'{"n/a" if math.isnan(r["nonkey_ms"]) else format(r["nonkey_ms"], ".2f")} |')
    return '\n'.join(lines) + '\n'


def plot(rows: list[dict], path: Path, title: str) -> None:
    """mAP@50 (left axis) and fps (right axis) against the interval, written atomically as PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from lightflow.io import atomic_write

    intervals = [r['key_frame_interval'] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(intervals, [100 * _metric(r, 'mAP') for r in rows], 'o-', color='tab:blue', label='mAP@50')
    for name, style in (('mAP_slow', ':'), ('mAP_medium', '-.'), ('mAP_fast', '--')):
        ax.plot(intervals, [100 * _metric(r, name) for r in rows], style, color='tab:blue', alpha=0.5,
                label=name.replace('mAP_', 'mAP@50 '))
    ax.set_xscale('log')
    ax.set_xticks(intervals, [str(i) for i in intervals])
    ax.set_xlabel('key-frame interval')
    ax.set_ylabel('mAP@50 (%)', color='tab:blue')
    ax2 = ax.twinx()
    ax2.plot(intervals, [r['fps'] for r in rows], 's-', color='tab:red', label='fps')
    ax2.set_ylabel('frames per second', color='tab:red')
    ax.legend(loc='lower left', fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_write(path, 'wb') as f:
        fig.savefig(f, format='png')
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f'{args.checkpoint}: no such checkpoint')
    if min(args.intervals) < 1:
        raise ValueError(f'--intervals must be >= 1, got {args.intervals}')
    from mmengine.runner import Runner

    from lightflow.io import atomic_write
    from mmdet_plugin.models import load_vid_config, run_video_test, unwrap_video_detector

    cfg = load_vid_config(args.config, args.cfg_options, args.work_dir)
    cfg.load_from = args.checkpoint
    runner = Runner.from_cfg(cfg)
    if unwrap_video_detector(runner.model).motion is None and max(args.intervals) > 1:
        raise ValueError(f'{args.config} has no motion module: only --intervals 1 is possible')
    rows = []
    for interval in sorted(set(args.intervals)):
        rows.append(run_video_test(runner, interval))
        r = rows[-1]
        print(f'interval {interval}: mAP@50 {100 * _metric(r, "mAP"):.1f}, fps {r["fps"]:.2f}', flush=True)
    title = f'{Path(args.config).stem} @ {Path(args.checkpoint).name}'
    out_dir = Path(args.out_dir or cfg.work_dir)
    table = markdown_table(rows, title)
    with atomic_write(out_dir / 'benchmark.md', 'w') as f:
        f.write(table)
    plot(rows, out_dir / 'benchmark.png', title)
    print(table)
    print(f'wrote {out_dir / "benchmark.md"} and {out_dir / "benchmark.png"}')
    return rows


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError, KeyError, ImportError) as e:
        sys.exit(f'error: {e}')
