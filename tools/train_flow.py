"""Train Light Flow with mmengine's Runner.

    python tools/train_flow.py configs/lightflow/lightflow_w0.5_1xb8-2k_synthetic.py
    torchrun --nproc_per_node 2 tools/train_flow.py CONFIG --launcher pytorch     # DDP (gloo on CPU, nccl on GPU)
    python tools/train_flow.py CONFIG --cfg-options data_root=/data/FlyingChairs_release/ train_cfg.max_epochs=10

Run from the repository root with the package importable (``pip install -e .`` or ``PYTHONPATH=.``, as make does).
"""
from __future__ import annotations

import argparse
import os
import sys

from lightflow.cli import ArgumentParser, CfgOptionsAction, check_output_dir, run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Train Light Flow (mmengine Runner).')
    parser.add_argument('config', help='config file, e.g. configs/lightflow/lightflow_w1.0_2xb64-403e_flyingchairs.py')
    parser.add_argument('--work-dir', help='where logs, checkpoints, TensorBoard and vis/ go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir when CKPT is omitted')
    parser.add_argument('--amp', nargs='?', const='fp16', choices=['fp16', 'bf16'], default=None,
                        help='mixed precision (AmpOptimWrapper; needs a GPU): fp16 (default) or bf16')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config keys, e.g. train_cfg.max_iters=100; data_root=DIR re-points every '
                             'dataset root that uses the config\'s data_root')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher: pytorch for torchrun')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.work_dir is not None:
        check_output_dir(args.work_dir, '--work-dir')
    from lightflow.engine import load_config, train_from_cfg

    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    train_from_cfg(cfg, launcher=args.launcher, amp=args.amp or False, resume=args.resume)


if __name__ == '__main__':
    sys.exit(run_main(main))
