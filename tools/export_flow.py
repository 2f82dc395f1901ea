"""Export Light Flow to a self-contained ONNX file a deployer can run (ONNX Runtime, OpenVINO, ...).

    PYTHONPATH=. python tools/export_flow.py lightflow_w0.5_synthetic --out lightflow_w0.5.onnx \
        [--height 384 --width 512] [--dynamic-batch] [--check]

The graph takes two RGB frames, float32 (N, 3, H, W) with values 0..255, named ``img1`` and ``img2``, and returns
``flow``, float32 (N, 2, H, W): the motion from img1 to img2 in pixels (``img1[y, x]`` is seen at ``(x + u, y + v)`` in
img2). Normalisation, padding to /64, the five-scale average, ``div_flow`` and the upsampling are inside; BN is folded.
The file is validated with ``onnx.checker``; ``--check`` also runs it in every installed runtime and prints the max
difference to eager PyTorch on random frames.
"""
from __future__ import annotations

import argparse
import sys

from lightflow.cli import ArgumentParser, positive_int, run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Export Light Flow to ONNX (frames in, flow in pixels out).')
    parser.add_argument('checkpoint', help='Light Flow checkpoint (.pth) or a shipped pretrained name')
    parser.add_argument('--out', required=True, help='output .onnx file (written atomically)')
    parser.add_argument('--height', type=positive_int, default=384, help='frame height (default 384)')
    parser.add_argument('--width', type=positive_int, default=512, help='frame width (default 512)')
    parser.add_argument('--dynamic-batch', action='store_true', help='symbolic batch axis (default: batch 1)')
    parser.add_argument('--check', action='store_true', help='run the file in each installed runtime vs PyTorch')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pathlib import Path

    import torch

    from lightflow.checkpoint import load_lightflow_checkpoint
    from lightflow.export import FlowGraph, export_onnx
    from lightflow.pretrained import resolve_weights

    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f'--out {out}: is a folder; give the .onnx file to write')
    source = resolve_weights(args.checkpoint)
    if out.resolve() == Path(source).resolve():
        raise ValueError(f'--out {out}: is the input checkpoint; choose another file')
    model = load_lightflow_checkpoint(source).eval()
    export_onnx(model, out, args.height, args.width, dynamic=args.dynamic_batch)
    print(f'wrote {out} ({out.stat().st_size / 1e6:.1f} MB): Light Flow width {model.width_mult}, '
          f'{args.height}x{args.width}, inputs img1/img2 (N, 3, H, W) RGB 0..255, output flow (N, 2, H, W) px')
    if args.check:
        import numpy as np

        from lightflow.runtime import available_backends
        g = torch.Generator().manual_seed(0)
        a, b = (torch.rand(1, 3, args.height, args.width, generator=g) * 255 for _ in range(2))
        with torch.no_grad():
            ref = FlowGraph(model, fold=False)(a, b).numpy()
        feeds = {'img1': a.numpy(), 'img2': b.numpy()}
        for backend in available_backends():
            if backend == 'onnxruntime':
                import onnxruntime as ort
                got = ort.InferenceSession(str(out), providers=['CPUExecutionProvider']).run(None, feeds)[0]
            elif backend == 'openvino':
                import openvino as ov
                compiled = ov.Core().compile_model(str(out), 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
                got = compiled(feeds)[compiled.output(0)]
            else:
                continue
            print(f'{backend}: max |flow - PyTorch| = {float(np.abs(got - ref).max()):.2e} px')
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main))
