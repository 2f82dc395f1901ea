"""Train Light Flow with mmengine's Runner.

    python tools/train_flow.py configs/lightflow/lightflow_w0.5_1xb8-2k_synthetic.py
    torchrun --nproc_per_node 2 tools/train_flow.py CONFIG --launcher pytorch     # DDP (gloo on CPU, nccl on GPU)
    python tools/train_flow.py CONFIG --cfg-options data_root=/data/FlyingChairs_release/ train_cfg.max_epochs=10
    [--work-dir DIR] [--resume [CKPT]] [--amp [fp16|bf16]]

Run from the repository root with the package importable (``pip install -e .`` or ``PYTHONPATH=.``, as make does).
The body is shared with tools/train_vid.py: :func:`lightflow.engine.config.train_main`.
"""
from __future__ import annotations

import sys

from lightflow.cli import run_main


def main(argv: list[str] | None = None) -> None:
    from lightflow.engine.config import train_main

    train_main(argv, 'Train Light Flow (mmengine Runner).',
               'config file, e.g. configs/lightflow/lightflow_w1.0_2xb64-403e_flyingchairs.py')


if __name__ == '__main__':
    sys.exit(run_main(main))
