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
from typing import Any, Optional

from lightflow.cli import ArgumentParser, CfgOptionsAction, check_not_an_input, load_fitting_checkpoint, run_main


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


def find_resize_scale(pipeline: Any) -> Optional[tuple[int, int]]:
    """The (w, h) scale of the first ``Resize`` in a (nested) test pipeline; None if there is none."""
    if isinstance(pipeline, dict):
        if pipeline.get('type') == 'Resize':
            if not pipeline.get('keep_ratio', False):
                raise ValueError('the test pipeline\'s Resize has keep_ratio=False; the runtime resizes as '
                                 'keep_ratio=True only')
            scale = pipeline.get('scale')
            return (int(scale[0]), int(scale[1])) if scale is not None else None
        pipeline = list(pipeline.values())
    if isinstance(pipeline, (list, tuple)):
        for item in pipeline:
            found = find_resize_scale(item)
            if found is not None:
                return found
    return None


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f'{args.checkpoint}: no such checkpoint')
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f'--out {args.out}: exists and is not a folder')
    check_not_an_input([args.out], {'config': args.config, 'checkpoint': args.checkpoint}, '--out')
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import mmdet_plugin  # noqa: F401  (registers the plugin)
    from lightflow.engine.config import load_config
    from mmdet_plugin.export_video import export_video_detector

    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    if type(model).__name__ != 'FlowVideoDetector':
        raise ValueError(f'{args.config}: model is a {type(model).__name__}, not a FlowVideoDetector')
    ckpt = load_fitting_checkpoint(model, args.checkpoint, args.config)
    state = ckpt.get('state_dict', ckpt)
    model.load_state_dict({k.removeprefix('module.'): v for k, v in state.items()}, strict=False)
    model.eval()
    pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get('pipeline', [])
    scale = find_resize_scale(pipeline)
    if args.frame_size is not None:
        frame_size = tuple(args.frame_size)
    elif scale is not None:
        frame_size = (min(scale), max(scale)) if scale[0] >= scale[1] else (max(scale), min(scale))
    else:
        raise ValueError(f'{args.config}: the test pipeline has no Resize; give --frame-size H W')
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    classes = (meta.get('dataset_meta') or {}).get('classes') \
        or cfg.get('test_dataloader', {}).get('dataset', {}).get('metainfo', {}).get('classes') \
        or [str(i) for i in range(model.detector.bbox_head.num_classes)]
    manifest = export_video_detector(model, args.out, frame_size, list(classes), resize_scale=scale)
    print(f'wrote {", ".join(g["file"] for g in manifest["graphs"].values())} and manifest.json to {args.out} '
          f'(frames {frame_size[1]}x{frame_size[0]}, policy {manifest["key_frame_policy"]["type"]})')
    return manifest


if __name__ == '__main__':
    sys.exit(run_main(main))
