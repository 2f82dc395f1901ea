"""Export every step of a trained FlowVideoDetector as ONNX graphs + manifest.json (run them with deploy_video.py).

    PYTHONPATH=. python tools/export_video_detector.py CONFIG CHECKPOINT --out graphs/ [--cfg-options k=v ...]
        [--frame-size H W]

Writes key_feats.onnx, head.onnx, nonkey.onnx (and gru_init.onnx, gru_step.onnx with an aggregator) and
manifest.json (format version, frame size, normalisation, classes, key-frame policy, head decoding settings, sha256
of every graph). The frame size defaults to the test pipeline's Resize scale (w, h).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lightflow.cli import ArgumentParser, CfgOptionsAction, check_not_an_input, run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Export a FlowVideoDetector as ONNX graphs for lightflow_deploy.')
    parser.add_argument('config', help='FlowVideoDetector config (configs/vid/dff*.py)')
    parser.add_argument('checkpoint', help='checkpoint of that config (tools/train_vid.py output)')
    parser.add_argument('--out', required=True, help='output folder for the graphs and manifest.json')
    parser.add_argument('--frame-size', nargs=2, type=int, metavar=('H', 'W'),
                        help='frame size the graphs take (default: the test pipeline\'s Resize scale)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config keys')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f'{args.checkpoint}: no such checkpoint')
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f'--out {args.out}: exists and is not a folder')
    check_not_an_input([args.out], {'config': args.config, 'checkpoint': args.checkpoint}, '--out')
    import mmdet_plugin  # noqa: F401  (registers the plugin)
    from mmdet_plugin.export_video import export_trained_detector

    manifest = export_trained_detector(args.config, args.checkpoint, args.out, args.frame_size, args.cfg_options)
    frame_size = manifest['frame_size']
    print(f'wrote {", ".join(g["file"] for g in manifest["graphs"].values())} and manifest.json to {args.out} '
          f'(frames {frame_size[1]}x{frame_size[0]}, policy {manifest["key_frame_policy"]["type"]})')
    return manifest


if __name__ == '__main__':
    sys.exit(run_main(main))
