"""Evaluate a Light Flow checkpoint on a config's test set and print EPE, 1px/3px/5px and Fl-all.

    python tools/test_flow.py configs/lightflow/lightflow_w1.0_2xb64-403e_flyingchairs.py work_dirs/.../best_EPE.pth \
        --cfg-options data_root=/data/FlyingChairs_release/

The checkpoint may be a train_flow.py checkpoint, a raw LightFlow state dict or the name of shipped weights
(``lightflow.list_pretrained()``); its width must match the config's
``model.width_mult`` (a mismatch is an error naming the checkpoint's width). Metrics are per-pixel averages over the
whole test set (see lightflow/metrics.py). Run with the package importable (``pip install -e .`` or ``PYTHONPATH=.``).
"""
from __future__ import annotations

import argparse
import os
import sys

from lightflow.cli import ArgumentParser, CfgOptionsAction, check_output_dir, run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Evaluate Light Flow on the test set of a config.')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint (.pth) from tools/train_flow.py, a LightFlow state dict, or '
                                           'a shipped pretrained name')
    parser.add_argument('--work-dir', help='where the test log goes (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config keys; data_root=DIR re-points every dataset that uses data_root')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the test loop; returns the metrics dict (also printed as a table)."""
    args = parse_args(argv)
    if args.work_dir is not None:
        check_output_dir(args.work_dir, '--work-dir')
    from mmengine.runner import Runner

    from lightflow.engine import load_config, prepare_cpu_distributed
    from lightflow.pretrained import resolve_weights

    checkpoint = resolve_weights(args.checkpoint)  # a file, or a shipped name (sha256 checked)
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    if cfg.get('test_dataloader') is None:
        raise ValueError(f'{args.config}: the config defines no test_dataloader')
    cfg.launcher = args.launcher
    if args.launcher == 'pytorch':
        prepare_cpu_distributed(cfg)  # no-op with CUDA; gloo + device-less DDP on CPU
    # LightFlowModel loads the weights itself: a width mismatch is a ValueError, not mmengine's size-mismatch warning.
    cfg.model.pretrained = str(checkpoint)
    cfg.model.backend = 'auto'  # weights fixed: compile once per input shape with the fastest runtime
    cfg.load_from = None
    cfg.resume = False
    # Nothing to visualise or save; keep the test run to the metric.
    cfg.custom_hooks = []
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    print(f'{"metric":<8} value')
    for key in ('EPE', '1px', '3px', '5px', 'Fl-all'):
        print(f'{key:<8} {metrics[key]:.4f}')
    return metrics


if __name__ == '__main__':
    sys.exit(run_main(main))
