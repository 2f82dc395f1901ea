"""Sweep the key-frame interval of a trained video detector: mAP@50 (overall, slow / medium / fast) and CPU/GPU fps.

    PYTHONPATH=. python tools/benchmark_vid.py CONFIG CHECKPOINT [--intervals 1 2 5 10 20] [--out-dir DIR]
        [--policies fixed motion --motion-thresholds 1 2 4 8 --max-interval 20 --motion-statistic mean]

``--policies`` takes key-frame policies from the registry (``mmdet_plugin.models.KEY_FRAME_POLICIES``): ``fixed`` is
swept over ``--intervals``; ``motion``, the adaptive policy (a frame becomes a key frame when its flow to the key moves
more than the threshold, in input pixels, or after ``--max-interval`` frames), over ``--motion-thresholds``; any other
registered policy runs once with its defaults at the config's interval. Writes
DIR/benchmark.md (a markdown table, one row per interval / threshold) and DIR/benchmark.png (mAP and fps vs interval,
and mAP vs fps for both policies on one chart), both atomically, and prints the table. fps is measured inside the
detector's ``predict`` (one frame per call), as tools/test_vid.py does. Per-run progress lines are printed only to a
terminal.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from lightflow.cli import (ArgumentParser, CfgOptionsAction, check_not_an_input, check_output_dir,
                           load_fitting_checkpoint, metric_value, number_or_na, positive_float, positive_int, run_main)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Key-frame interval sweep of a video detector.')
    parser.add_argument('config', help='config file under configs/vid/ (with a motion module)')
    parser.add_argument('checkpoint', help='checkpoint of that config')
    parser.add_argument('--intervals', type=int, nargs='+', default=[1, 2, 5, 10, 20],
                        help='key-frame intervals of the fixed policy')
    parser.add_argument('--policies', nargs='+', default=['fixed'],
                        help='registered key-frame policies to sweep: fixed (over --intervals), motion (over '
                             '--motion-thresholds), others once each')
    parser.add_argument('--motion-thresholds', type=positive_float, nargs='+',
                        help='motion policy: thresholds in pixels of the input frame (default 1 2 4 8)')
    parser.add_argument('--max-interval', type=positive_int, default=20,
                        help='motion policy: a key frame at least every this many frames')
    parser.add_argument('--motion-statistic', default='mean',
                        help='motion policy: mean or p90 (90th percentile) of the flow magnitude, or p90_relative '
                             '(the 90th percentile of the flow minus its median: motion relative to the camera)')
    parser.add_argument('--profile-interval', type=int, default=None,
                        help='one more run at this fixed interval, timing the parts of key and non-key frames '
                             '(features, flow, warp, GRU, head, post-processing); 0 skips it (default: the '
                             'config\'s key-frame interval)')
    parser.add_argument('--out-dir', help='where benchmark.md / benchmark.png go (default: the work dir)')
    parser.add_argument('--work-dir', help='where the test logs go (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config keys; data_root=DIR re-points the datasets')
    return parser.parse_args(argv)


def _is_motion(row: dict) -> bool:
    return row.get('policy') == 'motion'


def markdown_table(rows: list[dict], title: str) -> str:
    """One row per interval (fixed policy) or threshold (motion policy, its max interval in the interval column):
    mAP@50 overall / slow / medium / fast (%), fps, latencies (ms), the fraction of key frames and the mean motion
    statistic (input pixels; motion policy only)."""
    def pct(v):
        return 'n/a' if math.isnan(v) else f'{100 * v:.1f}'

    every = [r['mean_ms'] for r in rows if r['policy'] == 'fixed' and r['key_frame_interval'] == 1]
    lines = [f'# {title}', '', '| policy | interval | threshold px | mAP@50 | slow | medium | fast | fps | ms/frame | '
             'cost vs interval 1 | key ms | non-key ms | key fraction | motion px |', '|---|---:|---:|' + '---:|' * 11]
    for r in rows:
        if _is_motion(r):
            policy, interval = f'motion ({r["statistic"]})', f'max {r["max_interval"]}'
            threshold = f'{r["threshold"]:g}'
        else:
            policy, interval, threshold = r['policy'], str(r['key_frame_interval']), '-'
        key_fraction = r['key_frames'] / r['frames'] if r['frames'] else float('nan')
        maps = ' | '.join(pct(metric_value(r, name)) for name in ('mAP', 'mAP_slow', 'mAP_medium', 'mAP_fast'))
        lines.append(f'| {policy} | {interval} | {threshold} | {maps} | '
                     f'{r["fps"]:.2f} | {r["mean_ms"]:.2f} | '
                     f'{number_or_na(r["mean_ms"] / every[0] if every else None)} | '
                     f'{r["key_ms"]:.2f} | {number_or_na(r["nonkey_ms"])} | '
                     f'{number_or_na(key_fraction)} | {number_or_na(r.get("mean_motion_px"))} |')
    return '\n'.join(lines) + '\n'


def profile_table(parts: dict[str, dict[str, float]], interval: int) -> str:
    """Markdown: mean ms per part of key and non-key frames (``summarize_parts``), and each as a share of the key
    frame's total."""
    from mmdet_plugin.apis import PROFILE_PARTS

    key_total = parts['key']['total']
    lines = [f'## Profile of a frame at key-frame interval {interval} (ms)', '',
             '| part | key frame | non-key frame | non-key / key frame total |', '|---|---:|---:|---:|']
    for part in (*PROFILE_PARTS, 'other', 'total'):
        k, n = parts['key'][part], parts['non-key'][part]
        lines.append(f'| {part} | {number_or_na(k)} | {number_or_na(n)} | {number_or_na(n / key_total, ".3f")} |')
    return '\n'.join(lines) + '\n'


def tradeoff_series(rows: list[dict]) -> list[dict]:
    """The lines of the mAP-vs-fps chart: ``label``, ``fps``, ``map`` (%) and ``points`` (the label of each point):
    the fixed intervals as one line (points labelled by interval), the motion policy as another (by threshold)."""
    series = []
    fixed = [r for r in rows if r['policy'] == 'fixed']
    motion = [r for r in rows if _is_motion(r)]
    if fixed:
        series.append(dict(label='fixed interval', fps=[r['fps'] for r in fixed],
                           map=[100 * metric_value(r, 'mAP') for r in fixed],
                           points=[str(r['key_frame_interval']) for r in fixed]))
    if motion:
        series.append(dict(label=f'adaptive ({motion[0]["statistic"]} motion > threshold px, max interval '
                                 f'{motion[0]["max_interval"]})', fps=[r['fps'] for r in motion],
                           map=[100 * metric_value(r, 'mAP') for r in motion],
                           points=[f'{r["threshold"]:g}px' for r in motion]))
    for name in dict.fromkeys(r['policy'] for r in rows if r['policy'] not in ('fixed', 'motion')):
        chosen = [r for r in rows if r['policy'] == name]
        series.append(dict(label=name, fps=[r['fps'] for r in chosen],
                           map=[100 * metric_value(r, 'mAP') for r in chosen],
                           points=[str(r['key_frame_interval']) for r in chosen]))
    return series


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Fixed-interval rows: mAP@50 (left axis) and fps (right axis) against the interval; all rows: mAP@50 against
    fps, one line per policy (:func:`tradeoff_series`). Written atomically as one PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from lightflow.io import atomic_write

    fixed = [r for r in rows if r['policy'] == 'fixed']
    fig, axes = plt.subplots(1, 2 if fixed else 1, figsize=(12 if fixed else 6, 4), dpi=100, squeeze=False)
    if fixed:
        _plot_intervals(axes[0, 0], fixed, title)
    ax = axes[0, -1]
    styles = (('o-', 'tab:blue'), ('s--', 'tab:green'), ('^:', 'tab:purple'), ('v-.', 'tab:orange'))
    for series, (style, color) in zip(tradeoff_series(rows), styles):
        ax.plot(series['fps'], series['map'], style, color=color, label=series['label'])
        for x, y, text in zip(series['fps'], series['map'], series['points']):
            ax.annotate(text, (x, y), textcoords='offset points', xytext=(4, 4), fontsize=7, color=color)
    ax.set_xlabel('frames per second')
    ax.set_ylabel('mAP@50 (%)')
    ax.legend(loc='best', fontsize=8)
    ax.set_title(f'mAP vs speed: {title}' if not fixed else 'mAP vs speed', fontsize=9)
    fig.tight_layout()
    with atomic_write(path, 'wb') as f:
        fig.savefig(f, format='png')
    plt.close(fig)


def _plot_intervals(ax, rows: list[dict], title: str) -> None:
    """mAP@50 (left axis) and fps (right axis) against the fixed key-frame interval."""
    intervals = [r['key_frame_interval'] for r in rows]
    ax.plot(intervals, [100 * metric_value(r, 'mAP') for r in rows], 'o-', color='tab:blue', label='mAP@50')
    for name, style in (('mAP_slow', ':'), ('mAP_medium', '-.'), ('mAP_fast', '--')):
        ax.plot(intervals, [100 * metric_value(r, name) for r in rows], style, color='tab:blue', alpha=0.5,
                label=name.replace('mAP_', 'mAP@50 '))
    ax.set_xscale('log')
    ax.minorticks_off()  # no '2x10^0' labels between the intervals
    ax.set_xticks(intervals, [str(i) for i in intervals])
    ax.set_xlabel('key-frame interval')
    ax.set_ylabel('mAP@50 (%)', color='tab:blue')
    ax2 = ax.twinx()
    ax2.plot(intervals, [r['fps'] for r in rows], 's-', color='tab:red', label='fps')
    ax2.set_ylabel('frames per second', color='tab:red')
    # One legend on the top axes, so the fps line is not drawn over it.
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax2.legend(handles, [h.get_label() for h in handles], loc='lower left', fontsize=8)
    ax.set_title(title, fontsize=9)


def sweep_policies(args: argparse.Namespace) -> list[tuple[dict, dict]]:
    """(row fields, ``test_cfg.key_frame_policy`` dict) of every run of the sweep, each policy built once from the
    registry to check it: ``ValueError`` naming the option."""
    from mmdet_plugin.models.key_frame_policy import (KEY_FRAME_POLICIES, FixedInterval, MotionThreshold,
                                                      build_key_frame_policy)

    runs = []
    for name in dict.fromkeys(args.policies):
        cls = KEY_FRAME_POLICIES.get(name)
        if cls is None:
            raise ValueError(f'--policies: {name!r} is not a registered key-frame policy; one of '
                             f'{tuple(KEY_FRAME_POLICIES.module_dict)}')
        if issubclass(cls, FixedInterval):
            runs += [(dict(policy='fixed', key_frame_interval=i), dict(type=name, key_frame_interval=i))
                     for i in sorted(set(args.intervals))]
        elif issubclass(cls, MotionThreshold):
            for threshold in sorted(set(args.motion_thresholds or [1.0, 2.0, 4.0, 8.0])):
                fields = dict(statistic=args.motion_statistic, threshold=threshold, max_interval=args.max_interval)
                runs.append((dict(policy='motion', **fields), dict(type=name, **fields)))
        else:
            runs.append((dict(policy=name), dict(type=name)))
    for _, cfg in runs:
        try:
            build_key_frame_policy(cfg)
        except ValueError as e:
            option = '--motion-statistic' if 'statistic' in str(e) else '--policies'
            raise ValueError(f'{option}: {e}') from None
    return runs


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f'{args.checkpoint}: no such checkpoint')
    if args.profile_interval is not None and args.profile_interval < 0:
        raise ValueError(f'--profile-interval must be >= 0 (0 skips the profile), got {args.profile_interval}')
    if min(args.intervals) < 1:
        raise ValueError(f'--intervals must be >= 1, got {args.intervals}')
    if args.motion_thresholds is not None and 'motion' not in args.policies:
        raise ValueError('--motion-thresholds sweeps the motion policy: add --policies motion (or fixed motion)')
    for option, folder in (('--out-dir', args.out_dir), ('--work-dir', args.work_dir)):
        if folder is not None:
            check_output_dir(folder, option)
    from mmengine.runner import Runner

    from lightflow.engine.config import load_config
    from lightflow.io import atomic_write
    from mmdet_plugin.apis import (dataset_inputs, profiled_parts, run_video_test, summarize_parts,
                                   unwrap_video_detector, warm_up_motion)

    runs = sweep_policies(args)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    out_dir = Path(args.out_dir or cfg.work_dir)
    outputs = [out_dir / 'benchmark.md', out_dir / 'benchmark.png']
    check_not_an_input(outputs, dict(checkpoint=args.checkpoint, config=args.config, **dataset_inputs(cfg)),
                       '--out-dir')
    cfg.load_from = args.checkpoint
    runner = Runner.from_cfg(cfg)
    # mmengine loads non-strictly: refuse a checkpoint of another model instead of timing random weights.
    load_fitting_checkpoint(unwrap_video_detector(runner.model), args.checkpoint, args.config)
    model = unwrap_video_detector(runner.model)
    profile_interval = model.key_frame_interval if args.profile_interval is None else args.profile_interval
    if model.motion is None and any(row.get('key_frame_interval') != 1 for row, _ in runs):
        raise ValueError(f'{args.config} has no motion module: only --intervals 1 of --policies fixed is possible')
    progress = sys.stdout.isatty()  # quiet in logs and pipes: the table says it all
    rows = []
    for fields, policy in runs:
        r = run_video_test(runner, key_frame_policy=policy)
        if fields['policy'] == 'motion':
            del r['key_frame_interval']  # the fixed policy's setting, unused by this one
        rows.append(dict(r, **fields))
        if progress:
            print(f'{policy}: mAP@50 {100 * metric_value(r, "mAP"):.1f}, fps {r["fps"]:.2f}, '
                  f'key fraction {r["key_frames"] / max(r["frames"], 1):.2f}', flush=True)
    title = f'{Path(args.config).stem} @ {Path(args.checkpoint).name}'
    table = markdown_table(rows, title)
    if profile_interval > 0:
        model.key_frame_policy = dict(type='fixed', key_frame_interval=profile_interval
                                      if model.motion is not None else 1)
        warm_up_motion(runner, model)
        with profiled_parts(model) as frames:
            runner.test()
        table += '\n' + profile_table(summarize_parts(frames), model.key_frame_interval)
    with atomic_write(outputs[0], 'w') as f:
        f.write(table)
    plot(rows, outputs[1], title)
    print(table)
    print(f'wrote {outputs[0]} and {outputs[1]}')
    return rows


if __name__ == '__main__':
    sys.exit(run_main(main))
