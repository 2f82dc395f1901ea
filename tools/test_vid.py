"""Evaluate a video detector: mAP@50 overall and for slow / medium / fast objects, fps and key / non-key latency.

    PYTHONPATH=. python tools/test_vid.py CONFIG CHECKPOINT [--key-frame-interval 10] [--cfg-options data_root=DIR]
        [--key-frame-policy motion threshold=4 max_interval=20] [--out metrics.json]

Timings are wall time inside the detector's ``predict`` (features or flow + warp, head, post-processing), one frame
per call, on the current device and thread settings.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lightflow.cli import (ArgumentParser, CfgOptionsAction, check_not_an_input, check_output_dir, config_files,
                           finite_json, load_fitting_checkpoint, metric_value, number_or_na, positive_int, run_main)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Test a video detector (mmengine Runner).')
    parser.add_argument('config', help='config file under configs/vid/')
    parser.add_argument('checkpoint', help='checkpoint of that config (tools/train_vid.py output)')
    parser.add_argument('--key-frame-interval', type=positive_int,
                        help='override the config\'s test key_frame_interval')
    parser.add_argument('--key-frame-policy', nargs='+',
                        help='override the config\'s test key_frame_policy with a registered policy, e.g. fixed, or '
                             'motion threshold=4 statistic=p90 max_interval=20')
    parser.add_argument('--work-dir', help='where the test logs go (default: work_dirs/<config name>)')
    parser.add_argument('--out', help='also write the metrics as JSON to this file (NaN written as null)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config keys; data_root=DIR re-points the datasets')
    return parser.parse_args(argv)


def format_metrics(metrics: dict) -> str:
    """The human-readable report printed by the tools."""
    def pick(suffix):
        return metric_value(metrics, suffix)

    def pct(v):
        return number_or_na(100 * v, '.1f')

    return '\n'.join([
        f'key_frame_interval: {metrics["key_frame_interval"]}',
        f'mAP@50: {pct(pick("mAP"))}  (slow {pct(pick("mAP_slow"))}, medium {pct(pick("mAP_medium"))}, '
        f'fast {pct(pick("mAP_fast"))})',
        f'fps: {metrics["fps"]:.2f} over {metrics["frames"]} frames ({metrics["key_frames"]} key frames)',
        f'mean latency: {metrics["mean_ms"]:.2f} ms/frame; key frames {metrics["key_ms"]:.2f} ms, '
        f'non-key frames {metrics["nonkey_ms"]:.2f} ms',
    ])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f'{args.checkpoint}: no such checkpoint')
    if args.work_dir is not None:
        check_output_dir(args.work_dir, '--work-dir')
    if args.out is not None and Path(args.out).is_dir():
        raise ValueError(f'--out {args.out}: is a folder; give the .json file to write')
    from mmengine.runner import Runner

    from lightflow.engine.config import load_config
    from lightflow.io import atomic_write
    from mmdet_plugin.apis import dataset_inputs, policy_from_option, run_video_test, unwrap_video_detector

    policy = policy_from_option(args.key_frame_policy)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    if args.out is not None:
        check_not_an_input([args.out], dict(checkpoint=args.checkpoint, config=config_files(args.config),
                                            **dataset_inputs(cfg)), '--out')
    cfg.load_from = args.checkpoint
    runner = Runner.from_cfg(cfg)
    # mmengine loads non-strictly: refuse a checkpoint of another model instead of testing random weights.
    load_fitting_checkpoint(unwrap_video_detector(runner.model), args.checkpoint, args.config)
    metrics = run_video_test(runner, args.key_frame_interval, policy)
    print(format_metrics(metrics))
    if args.out:
        with atomic_write(args.out, 'w') as f:
            json.dump(finite_json(metrics), f, indent=2, default=str, allow_nan=False)
    return metrics


if __name__ == '__main__':
    sys.exit(run_main(main))
