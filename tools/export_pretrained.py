"""Slim a Light Flow checkpoint into the shipped pretrained format and print its registry entry.

    python tools/export_pretrained.py work_dirs/synthetic/best_EPE_iter_2000.pth \
        lightflow/weights/lightflow_w0.5_synthetic.pth --summary 'synthetic pairs, 2k iters; Chairs val EPE 7.1'

CHECKPOINT is a tools/train_flow.py (mmengine) checkpoint, a raw LightFlow state dict, or a checkpoint of a wrapper
(DDP, video detector). OUT gets ``{'state_dict': fp32 LightFlow weights, 'meta': {'lightflow': every LightFlowConfig
field}}`` (no optimizer or mmengine objects), written atomically. The printed line goes into ``PRETRAINED`` in
``lightflow/pretrained.py``; the file goes into ``lightflow/weights/``. Run with the package importable
(``PYTHONPATH=.``).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from lightflow.cli import ArgumentParser, run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Write a slim pretrained Light Flow file and print its registry line.')
    parser.add_argument('checkpoint', help='train_flow.py checkpoint or LightFlow state dict (.pth)')
    parser.add_argument('out', help='output .pth (normally lightflow/weights/<name>.pth)')
    parser.add_argument('--name', help='registry name (default: the stem of OUT)')
    parser.add_argument('--summary', default='', help='one line for the registry: data, schedule, EPE')
    return parser.parse_args(argv)


def registry_line(name: str, file: str, sha256: str, config: dict, summary: str) -> str:
    """The ``PRETRAINED`` entry to paste into lightflow/pretrained.py."""
    fields = ', '.join(f'{k}={v!r}' for k, v in config.items())
    return f'    {name!r}: dict(file={file!r}, sha256={sha256!r}, config=dict({fields}), summary={summary!r}),'


def main(argv: list[str] | None = None) -> str:
    """Export; returns the sha256 of OUT."""
    args = parse_args(argv)
    import torch

    from lightflow.checkpoint import lightflow_config, load_lightflow_checkpoint
    from lightflow.pretrained import save_pretrained

    src, out = Path(args.checkpoint), Path(args.out)
    name = args.name or out.stem
    if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9_.-]*', name):
        raise ValueError(f'--name {name!r}: use letters, digits, "_", "." and "-" only')
    if out.suffix != '.pth':
        raise ValueError(f'{out}: the output must be a .pth file')
    if out.exists() and src.exists() and out.resolve() == src.resolve():
        raise ValueError(f'{out}: the output would overwrite the checkpoint it is made from')
    model = load_lightflow_checkpoint(src)  # FileNotFoundError / one-line ValueError for bad input
    sha256 = save_pretrained(model, out)
    reloaded = load_lightflow_checkpoint(out)
    expected = {k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    if reloaded.state_dict().keys() != expected.keys() or not all(
            torch.equal(reloaded.state_dict()[k], v) for k, v in expected.items()):
        raise ValueError(f'{out}: the written file does not reload to the same weights')
    params = sum(p.numel() for p in model.parameters())
    print(f'wrote {out} ({params / 1e6:.2f} M parameters, {out.stat().st_size / 1e6:.1f} MB)')
    print(f'sha256 {sha256}')
    print(f'registry entry for PRETRAINED in lightflow/pretrained.py (the file goes to lightflow/weights/{out.name}):')
    print(registry_line(name, out.name, sha256, lightflow_config(model), args.summary))
    return sha256


if __name__ == '__main__':
    sys.exit(run_main(main))
