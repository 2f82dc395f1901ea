"""The video-detection results table: several trained detectors, each with several motions, at fixed key-frame
intervals and the adaptive policy, in one run: mAP@50 (overall / slow / medium / fast) and ms per frame.

    PYTHONPATH=. python tools/vid_results.py --detector single CONFIG CKPT --detector propagation CONFIG CKPT \\
        [--detector 'GRU, 8 keys' CONFIG CKPT ...] [--motions own dis_medium exact] [--intervals 1 5 10 20] \\
        [--adaptive 3] [--motion-statistic p90_relative] [--max-interval 20] --out-dir DIR [--cfg-options data_root=D]

A detector without a motion module (single-frame) runs once, every frame a key. Each other detector runs with each
motion of ``--motions`` (``own``: the Light Flow it was trained with; ``dis_medium``, ``exact``, ...: swapped in at
test time, the detector otherwise unchanged, see ``mmdet_plugin.motion_zoo``) at every fixed interval and, with
``--adaptive T``, with the motion policy (a key when the motion statistic of the flow to the key exceeds T input
pixels, or after ``--max-interval`` frames). Propagation at interval 1 uses no motion, so it runs once, not once per
motion. ms per frame is wall time inside the detector's ``predict`` (``mmdet_plugin.apis.run_video_test``): exact
motion's time is the cost of rebuilding it from the scene, not of any flow method. ``--key-states L`` adds a table
of where aggregation can gain: each detector's mAP@50 (its own motion, key every L frames; the single-frame detector
as it is) on the frames whose key is blurred or sharp and on the objects hidden or visible at their key
(``mmdet_plugin.evaluation.key_states``), and what goes wrong on the non-key frames at that interval: each ground
truth hit, of the wrong class, lagging (detected on its key-frame box only) or missed, and the false positives that
sit on a key-frame box (``mmdet_plugin.evaluation.error_kinds``). Writes DIR/vid_results.md atomically and prints it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lightflow.cli import (ArgumentParser, CfgOptionsAction, check_not_an_input, check_output_dir,
                           load_fitting_checkpoint, metric_value, positive_float, positive_int, run_main)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Video-detection results: detectors x motions x key-frame schedules.')
    parser.add_argument('--detector', nargs=3, action='append', required=True, metavar=('NAME', 'CONFIG', 'CKPT'),
                        help='a trained detector: table name, config, checkpoint (repeat)')
    parser.add_argument('--motions', nargs='+', default=['own'],
                        help='own, zero, dis_fast, dis_medium, exact, shipped Light Flow names or checkpoints')
    parser.add_argument('--intervals', type=positive_int, nargs='+', default=[1, 5, 10, 20],
                        help='fixed key-frame intervals')
    parser.add_argument('--adaptive', type=positive_float, nargs='*', default=[],
                        help='motion-policy thresholds in input pixels (none: no adaptive rows)')
    parser.add_argument('--motion-statistic', default='p90_relative', help='motion policy: mean, p90, p90_relative')
    parser.add_argument('--max-interval', type=positive_int, default=20, help='motion policy: a key at least this often')
    parser.add_argument('--key-states', type=positive_int, metavar='L',
                        help='also split mAP by the state of each frame\'s key (blurred, objects hidden) at interval L')
    parser.add_argument('--out-dir', required=True, help='where vid_results.md goes')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config keys of every detector; data_root=DIR re-points the datasets')
    return parser.parse_args(argv)


def schedules(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """(label, ``key_frame_policy`` dict) of every run per detector and motion."""
    runs = [(f'interval {n}' if n > 1 else 'every frame', dict(type='fixed', key_frame_interval=n))
            for n in sorted(set(args.intervals))]
    runs += [(f'adaptive (> {t:g} px)', dict(type='motion', statistic=args.motion_statistic, threshold=t,
                                             max_interval=args.max_interval)) for t in sorted(set(args.adaptive))]
    return runs


def run_detector(name: str, config: str, checkpoint: str, args: argparse.Namespace) -> tuple[list[dict], list]:
    """Every (motion, schedule) run of one detector, and the per-frame results of its ``--key-states`` run."""
    from mmengine.runner import Runner

    from lightflow.engine.config import load_config
    from mmdet_plugin.apis import captured_frame_results, run_video_test, unwrap_video_detector
    from mmdet_plugin.motion_zoo import build_motion, check_motion_tokens, motion_label

    cfg = load_config(config, args.cfg_options, str(Path(args.out_dir) / 'work' / Path(config).stem))
    cfg.load_from = checkpoint
    runner = Runner.from_cfg(cfg)
    load_fitting_checkpoint(unwrap_video_detector(runner.model), checkpoint, config)
    model = unwrap_video_detector(runner.model)
    rows, frames = [], []
    if model.motion is None:
        with captured_frame_results() as frames:
            r = run_video_test(runner, 1, dict(type='fixed'))
        return [dict(r, detector=name, motion='-', schedule='every frame')], frames
    check_motion_tokens(args.motions, True)
    own = model.motion
    data = cfg.test_dataloader.dataset
    first = json.loads((Path(data.get('data_root', '')) / data.ann_file).read_text())['images'][0]
    frame_size = (int(first['height']), int(first['width']))
    for token in args.motions:
        model.motion = build_motion(token, dict(cfg.model.motion), own).eval()
        label = motion_label(token, dict(cfg.model.motion), frame_size)
        for schedule, policy in schedules(args):
            if policy.get('key_frame_interval') == 1 and model.aggregator is None and token != args.motions[0]:
                continue  # every frame a key and no aggregation: the motion is never used
            with captured_frame_results() as captured:
                r = run_video_test(runner, key_frame_policy=policy)
            if token == args.motions[0] and policy.get('key_frame_interval') == args.key_states:
                frames = captured
            rows.append(dict(r, detector=name, motion=label, schedule=schedule))
            print(f'{name} / {label} / {schedule}: mAP@50 {100 * metric_value(r, "mAP"):.1f}, '
                  f'{r["mean_ms"]:.1f} ms', file=sys.stderr, flush=True)
    if args.key_states is not None and not frames:  # not among --intervals: one more run, not in the table
        with captured_frame_results() as frames:
            run_video_test(runner, key_frame_policy=dict(type='fixed', key_frame_interval=args.key_states))
    model.motion = own
    return rows, frames


def key_state_section(frames: dict[str, list], cfg_options: dict, config: str, interval: int) -> str:
    """The ``--key-states`` tables of every detector's per-frame results: mAP by key state, error kinds."""
    from lightflow.engine.config import load_config
    from mmdet_plugin.evaluation.error_kinds import error_kind_rows, error_kind_table, read_speeds
    from mmdet_plugin.evaluation.key_states import fixed_keys, key_state_rows, key_state_table, read_key_states

    data = load_config(config, cfg_options).test_dataloader.dataset
    blur, visible = read_key_states(Path(data.get('data_root', '')) / data.ann_file)
    num_classes = len(data.metainfo['classes'])
    keys = {name: fixed_keys(results, interval) for name, results in frames.items()}
    columns = {name: key_state_rows(results, keys[name], blur, visible, interval, num_classes)
               for name, results in frames.items()}
    speeds = read_speeds(Path(data.get('data_root', '')) / data.ann_file)
    errors = {name: error_kind_rows(results, keys[name], speeds) for name, results in frames.items()}
    return ('\n## Where aggregation can gain: mAP@50 by the state of the key frame\n\n'
            + key_state_table(columns, interval)
            + '\n## What goes wrong on non-key frames: outcomes against the key frame\n\n'
            + error_kind_table(errors, interval))


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    for name, config, checkpoint in args.detector:
        for what, path in (('config', config), ('checkpoint', checkpoint)):
            if not Path(path).is_file():
                raise FileNotFoundError(f'--detector {name}: {path}: no such {what}')
    check_output_dir(args.out_dir, '--out-dir')
    out = Path(args.out_dir) / 'vid_results.md'
    check_not_an_input([out], {f'{name} {what}': path for name, config, ckpt in args.detector
                               for what, path in (('config', config), ('checkpoint', ckpt))}, '--out-dir')
    from lightflow.io import atomic_write
    from mmdet_plugin.evaluation.vid_report import results_table

    rows, frames = [], {}
    for name, config, checkpoint in args.detector:
        runs, frames[name] = run_detector(name, config, checkpoint, args)
        rows += runs
    table = results_table(rows)
    if args.key_states is not None:
        table += key_state_section(frames, args.cfg_options, args.detector[0][1], args.key_states)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, 'w') as f:
        f.write('# Video detection results\n\n' + table)
    print(table)
    return rows


if __name__ == '__main__':
    sys.exit(run_main(main))
