"""Adapt Light Flow to your own videos, without flow labels (mmengine Runner).

    PYTHONPATH=. python tools/adapt_flow.py SOURCE [SOURCE ...] --work-dir DIR [--val SOURCE ...]
        [--pretrained lightflow_w0.5_synthetic] [--size 128x128] [--max-gap 9] [--iters 6000] [--resume]

SOURCE: a CocoVID json (e.g. ``tools/make_synthetic_vid.py``'s ``annotations/train.json``), a folder of frames, a
folder of such folders, or a video file. Frame pairs ``(t, t -/+ g)``, ``g`` in ``1..--max-gap``, are labelled by
OpenCV DIS MEDIUM at the frames' full size where its forward-backward check agrees, resized to ``--size`` (the size
your detector runs Light Flow at: ``LightFlowMotion``'s flow_scale and resize_to_divisor; 128x128 for 224x288 frames)
and trained with UFlow's census and smoothness terms, mixed with generator pairs so the network stays general
(recipe: configs/lightflow/lightflow_w0.5_1xb16-6k-adapt_synthvid-128x128.py). The teacher is computed once per pair
and cached under the work dir. ``--val`` videos (never the ones you report results on) choose the best checkpoint by
EPE against their teacher; without ``--val`` the last checkpoint is the result.

The adapted weights load like any Light Flow checkpoint: ``LightFlowMotion(pretrained='DIR/best_EPE_iter_N.pth')``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lightflow.cli import ArgumentParser, check_output_dir, image_size, positive_int, run_main

DEFAULT_CONFIG = (Path(__file__).resolve().parents[1] / 'configs' / 'lightflow'
                  / 'lightflow_w0.5_1xb16-6k-adapt_synthvid-128x128.py')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Adapt Light Flow to videos without flow labels (teacher + photometric).')
    parser.add_argument('sources', nargs='+', help='CocoVID jsons, frame folders or video files to adapt on')
    parser.add_argument('--work-dir', required=True, help='checkpoints, logs and the teacher cache go here')
    parser.add_argument('--val', nargs='+', help='held-out videos (same kinds) that choose the best checkpoint')
    parser.add_argument('--config', default=str(DEFAULT_CONFIG), help='the adaptation recipe')
    parser.add_argument('--pretrained', help='starting Light Flow (shipped name or checkpoint; default: the config\'s)')
    parser.add_argument('--size', type=image_size(8), help='flow size HxW (default: the config\'s, 128x128)')
    parser.add_argument('--max-gap', type=positive_int, help='largest frame distance of a pair (default 9)')
    parser.add_argument('--iters', type=positive_int, help='training iterations (default: the config\'s)')
    parser.add_argument('--resume', action='store_true', help='resume from the latest checkpoint in --work-dir')
    return parser.parse_args(argv)


def adaptation_config(args: argparse.Namespace):
    """The recipe config with the command line's videos, sizes and schedule filled in."""
    from lightflow.engine.config import load_config

    cfg = load_config(args.config, None, args.work_dir)
    cache = str(Path(args.work_dir) / 'teacher_cache')
    videos = cfg.train_dataloader.dataset.datasets[0]
    videos.update(data_root=None, sources=[str(Path(s).resolve()) for s in args.sources], cache_dir=cache)
    parts = [videos] + list(cfg.train_dataloader.dataset.datasets[1:])
    if args.size is not None:
        for part in parts:
            (part['dataset'] if 'dataset' in part else part)['size'] = tuple(args.size)
    if args.max_gap is not None:
        videos['max_gap'] = args.max_gap
    if args.pretrained is not None:
        cfg.model.pretrained = args.pretrained
    if args.iters is not None:
        cfg.train_cfg.max_iters = args.iters
        cfg.param_scheduler = [s for s in cfg.param_scheduler if s.get('end', 0) <= args.iters // 4] + [
            dict(type='CosineAnnealingLR', by_epoch=False, T_max=args.iters - args.iters // 4, eta_min=1e-5,
                 begin=args.iters // 4, end=args.iters)]
        cfg.train_cfg.val_interval = min(cfg.train_cfg.val_interval, args.iters)
        cfg.default_hooks.checkpoint.interval = min(cfg.default_hooks.checkpoint.interval, args.iters)
    if args.val:
        val = cfg.val_dataloader.dataset
        val.update(data_root=None, sources=[str(Path(s).resolve()) for s in args.val], cache_dir=cache,
                   max_gap=videos['max_gap'], size=videos['size'])
        cfg.test_dataloader = cfg.val_dataloader
    else:
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
        cfg.default_hooks.checkpoint.save_best = None
        cfg.custom_hooks = [h for h in cfg.custom_hooks if h.get('type') != 'FlowVisualizationHook']
    return cfg


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    check_output_dir(args.work_dir, '--work-dir')
    for source in [*args.sources, *(args.val or [])]:
        if not Path(source).exists():
            raise FileNotFoundError(f'{source}: no such video source (CocoVID json, frame folder or video file)')
    from lightflow.data.video_pairs import list_video_frames
    from lightflow.engine.config import train_from_cfg

    cfg = adaptation_config(args)
    # Refuse sources without usable pairs before the Runner starts; a video file's frames are extracted where the
    # dataset will look for them (once).
    list_video_frames(args.sources, frames_dir=Path(cfg.train_dataloader.dataset.datasets[0].cache_dir) / 'frames')
    train_from_cfg(cfg, resume='auto' if args.resume else None,
                   input_names={'model.pretrained': '--pretrained'})  # refuses a --pretrained the run would overwrite


if __name__ == '__main__':
    sys.exit(run_main(main))
