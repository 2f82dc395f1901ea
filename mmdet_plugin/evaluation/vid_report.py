"""Markdown tables and charts of the video-detection tools: the key-frame policy sweep and per-part profile of
``tools/benchmark_vid.py`` and the detectors x motions x schedules table of ``tools/vid_results.py``.

A row is the dict :func:`mmdet_plugin.apis.run_video_test` returns (metrics such as ``vid/mAP_fast`` in 0..1, ``fps``,
``mean_ms``, ``key_ms``, ``nonkey_ms``, ``frames``, ``key_frames``, ``mean_motion_px``) plus the fields of its run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from lightflow.cli import metric_value, number_or_na

from ..apis import PROFILE_PARTS

__all__ = ['SPEED_MAPS', 'map_cells', 'sweep_table', 'profile_table', 'tradeoff_series', 'plot_sweep',
           'results_table', 'pyplot', 'save_png']

SPEED_MAPS = ('mAP', 'mAP_slow', 'mAP_medium', 'mAP_fast')  # mAP@50 overall and by object speed


def map_cells(metrics: Mapping[str, Any]) -> str:
    """``'a | b | c | d'``: mAP@50 overall / slow / medium / fast of ``metrics`` in %, ``n/a`` where not scored."""
    return ' | '.join(number_or_na(100 * metric_value(metrics, name), '.1f') for name in SPEED_MAPS)


def _is_motion(row: dict) -> bool:
    return row.get('policy') == 'motion'


def sweep_table(rows: list[dict], title: str) -> str:
    """One row per interval (fixed policy) or threshold (motion policy, its max interval in the interval column):
    mAP@50 overall / slow / medium / fast (%), fps, latencies (ms), the fraction of key frames and the mean motion
    statistic (input pixels; motion policy only)."""
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
        lines.append(f'| {policy} | {interval} | {threshold} | {map_cells(r)} | '
                     f'{r["fps"]:.2f} | {r["mean_ms"]:.2f} | '
                     f'{number_or_na(r["mean_ms"] / every[0] if every else None)} | '
                     f'{r["key_ms"]:.2f} | {number_or_na(r["nonkey_ms"])} | '
                     f'{number_or_na(key_fraction)} | {number_or_na(r.get("mean_motion_px"))} |')
    return '\n'.join(lines) + '\n'


def profile_table(parts: dict[str, dict[str, float]], interval: int) -> str:
    """Markdown: mean ms per part of key and non-key frames (``summarize_parts``), and each as a share of the key
    frame's total."""
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


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (the tools only write files)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | Path, dpi: float | None = None) -> None:
    """Write ``fig`` to ``path`` as one PNG, atomically (at ``dpi``, else the figure's), and close it."""
    from lightflow.io import atomic_write

    with atomic_write(path, 'wb') as f:
        fig.savefig(f, format='png', **({} if dpi is None else dict(dpi=dpi)))
    pyplot().close(fig)


def plot_sweep(rows: list[dict], path: Path, title: str) -> None:
    """Fixed-interval rows: mAP@50 (left axis) and fps (right axis) against the interval; all rows: mAP@50 against
    fps, one line per policy (:func:`tradeoff_series`). Written atomically as one PNG."""
    plt = pyplot()
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
    save_png(fig, path)


def _plot_intervals(ax: Any, rows: list[dict], title: str) -> None:
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


def results_table(rows: list[dict]) -> str:
    """One row per run (``detector``, ``motion`` (``-``: single-frame), ``schedule``): detector, motion, key frames,
    mAP@50 overall / slow / medium / fast, ms per frame and the cost against the first single-frame row."""
    single = next((r['mean_ms'] for r in rows if r['motion'] == '-'), None)
    lines = ['| detector | motion | key frames | mAP@50 | slow | medium | fast | ms / frame | vs single-frame |',
             '|---|---|---|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        keys = r['schedule'] + (f', {100 * r["key_frames"] / r["frames"]:.0f} % keys'
                                if r['schedule'].startswith('adaptive') and r['frames'] else '')
        lines.append(f'| {r["detector"]} | {r["motion"]} | {keys} | {map_cells(r)}'
                     f' | {r["mean_ms"]:.2f} | {number_or_na(r["mean_ms"] / single if single else None)} |')
    return '\n'.join(lines) + '\n'
