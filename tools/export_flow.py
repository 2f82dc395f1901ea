"""Export Light Flow to a self-contained ONNX file a deployer can run (ONNX Runtime, OpenVINO, ...).

    PYTHONPATH=. python tools/export_flow.py lightflow_w0.5_synthetic --out lightflow_w0.5.onnx \
        [--height 384 --width 512] [--dynamic-batch] [--check]

The graph takes two RGB frames, float32 (N, 3, H, W) with values 0..255, named ``img1`` and ``img2``, and returns
``flow``, float32 (N, 2, H, W): the motion from img1 to img2 in pixels (``img1[y, x]`` is seen at ``(x + u, y + v)`` in
img2). Normalisation, padding to /64, the five-scale average, ``div_flow`` and the upsampling are inside; BN is folded.
The file is validated with ``onnx.checker``; ``--check`` also runs it in every installed runtime and prints the max
difference to eager PyTorch on random frames (exit status 1 when one differs by more than 0.01 px, or is NaN).
A checkpoint with NaN/inf weights and a size whose export would not fit in the free memory are refused; ``--out``
must be a file, and an existing non-``.onnx`` file there is replaced only with ``--force``.
"""
from __future__ import annotations

import argparse
import sys

from lightflow.cli import ArgumentParser, positive_int, run_main

CHECK_TOLERANCE_PX = 1e-2  # --check: the most a runtime's flow may differ from PyTorch's


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Export Light Flow to ONNX (frames in, flow in pixels out).')
    parser.add_argument('checkpoint', help='Light Flow checkpoint (.pth) or a shipped pretrained name')
    parser.add_argument('--out', required=True, help='output .onnx file (written atomically)')
    parser.add_argument('--height', type=positive_int, default=384, help='frame height (default 384)')
    parser.add_argument('--width', type=positive_int, default=512, help='frame width (default 512)')
    parser.add_argument('--dynamic-batch', action='store_true', help='symbolic batch axis (default: batch 1)')
    parser.add_argument('--check', action='store_true',
                        help='run the file in each installed runtime vs PyTorch (exit 1 if one differs by more '
                             f'than {CHECK_TOLERANCE_PX} px)')
    parser.add_argument('--force', action='store_true', help='replace an existing --out that is not a .onnx file')
    return parser.parse_args(argv)


def check_out(out_arg: str, force: bool):
    """The ``--out`` path, refused when it names a folder (existing, or written with a trailing slash) or an existing
    file that is not ``.onnx`` (unless ``force``)."""
    import os
    from pathlib import Path

    out = Path(out_arg)
    if out.is_dir() or out_arg.endswith(('/', os.sep)):
        raise ValueError(f'--out {out_arg}: is a folder; give the .onnx file to write (e.g. {out / "model.onnx"})')
    if out.exists() and out.suffix.lower() != '.onnx' and not force:
        raise ValueError(f'--out {out_arg}: exists and is not a .onnx file; use --force to replace it')
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pathlib import Path

    import torch

    from lightflow.checkpoint import load_lightflow_checkpoint
    from lightflow.inference import FlowGraph, export_onnx
    from lightflow.pretrained import resolve_weights

    out = check_out(args.out, args.force)
    source = resolve_weights(args.checkpoint)
    if out.resolve() == Path(source).resolve():
        raise ValueError(f'--out {out}: is the input checkpoint; choose another file')
    model = load_lightflow_checkpoint(source).eval()
    export_onnx(model, out, args.height, args.width, dynamic=args.dynamic_batch)
    print(f'wrote {out} ({out.stat().st_size / 1e6:.1f} MB): Light Flow width {model.width_mult}, '
          f'{args.height}x{args.width}, inputs img1/img2 (N, 3, H, W) RGB 0..255, output flow (N, 2, H, W) px')
    if args.check:
        import numpy as np

        from lightflow.inference.backends import available_backends, onnx_session
        g = torch.Generator().manual_seed(0)
        a, b = (torch.rand(1, 3, args.height, args.width, generator=g) * 255 for _ in range(2))
        with torch.no_grad():
            ref = FlowGraph(model, fold=False)(a, b).numpy()
        feeds = {'img1': a.numpy(), 'img2': b.numpy()}
        data = out.read_bytes()
        for backend in available_backends():
            if backend == 'torch':
                continue
            got = onnx_session(backend, data, torch.get_num_threads()).run(feeds)[0]
            diff = float(np.abs(got - ref).max())
            print(f'{backend}: max |flow - PyTorch| = {diff:.2e} px')
            if not diff <= CHECK_TOLERANCE_PX:
                raise ValueError(f'--check: {out} run by {backend} differs from PyTorch by {diff:.3g} px '
                                 f'(> {CHECK_TOLERANCE_PX} px)')
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
