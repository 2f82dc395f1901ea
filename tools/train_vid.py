"""Train a flow-guided video detector (configs/vid/) with mmengine's Runner.

    PYTHONPATH=. python tools/train_vid.py configs/vid/dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-6e_synthvid.py
    PYTHONPATH=. python tools/train_vid.py CONFIG --work-dir work_dirs/x --cfg-options data_root=data/synthvid/
    torchrun --nproc_per_node 8 tools/train_vid.py CONFIG --launcher pytorch
    [--resume [CKPT]] [--amp [fp16|bf16]]

The body is shared with tools/train_flow.py: :func:`lightflow.engine.config.train_main`.
"""
from __future__ import annotations

import sys

from lightflow.cli import run_main


def main(argv: list[str] | None = None) -> None:
    from lightflow.engine.config import train_main

    train_main(argv, 'Train a video detector (mmengine Runner).', 'config file under configs/vid/')


if __name__ == '__main__':
    sys.exit(run_main(main))
