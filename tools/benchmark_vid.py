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
import sys
from pathlib import Path

from lightflow.cli import (ArgumentParser, CfgOptionsAction, check_not_an_input, check_output_dir,
                           load_fitting_checkpoint, metric_value, positive_float, positive_int, run_main)


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
    from mmdet_plugin.evaluation.vid_report import plot_sweep, profile_table, sweep_table

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
    table = sweep_table(rows, title)
    if profile_interval > 0:
        model.key_frame_policy = dict(type='fixed', key_frame_interval=profile_interval
                                      if model.motion is not None else 1)
        warm_up_motion(runner, model)
        with profiled_parts(model) as frames:
            runner.test()
        table += '\n' + profile_table(summarize_parts(frames), model.key_frame_interval)
    with atomic_write(outputs[0], 'w') as f:
        f.write(table)
    plot_sweep(rows, outputs[1], title)
    print(table)
    print(f'wrote {outputs[0]} and {outputs[1]}')
    return rows


if __name__ == '__main__':
    sys.exit(run_main(main))
