"""Train a flow-guided video detector (configs/vid/) with mmengine's Runner.

    PYTHONPATH=. python tools/train_vid.py configs/vid/dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid.py
    PYTHONPATH=. python tools/train_vid.py CONFIG --work-dir work_dirs/x --cfg-options data_root=data/synthvid/
    torchrun --nproc_per_node 8 tools/train_vid.py CONFIG --launcher pytorch
"""
from __future__ import annotations

import argparse
import sys

from lightflow.cli import ArgumentParser, CfgOptionsAction, check_output_dir, run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Train a video detector (mmengine Runner).')
    parser.add_argument('config', help='config file under configs/vid/')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir when CKPT is omitted')
    parser.add_argument('--amp', nargs='?', const='fp16', choices=['fp16', 'bf16'], default=None,
                        help='mixed precision (AmpOptimWrapper; needs a GPU): fp16 (default) or bf16')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config keys, e.g. train_cfg.max_epochs=1; data_root=DIR re-points every '
                             'dataset that uses the config\'s data_root')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher for distributed training')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.work_dir is not None:
        check_output_dir(args.work_dir, '--work-dir')
    from lightflow.engine import train_from_cfg
    from mmdet_plugin.models import load_vid_config

    cfg = load_vid_config(args.config, args.cfg_options, args.work_dir)
    train_from_cfg(cfg, launcher=args.launcher, amp=args.amp or False, resume=args.resume)


if __name__ == '__main__':
    sys.exit(run_main(main))
