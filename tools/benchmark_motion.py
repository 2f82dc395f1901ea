"""Rank motion modules where the detector uses them: zero flow, OpenCV DIS, Light Flow checkpoints and (on the
synthetic VID set) exact motion, side by side.

    PYTHONPATH=. python tools/benchmark_motion.py CONFIG [CHECKPOINT] [--motions zero dis_fast dis_medium own exact
        lightflow_w0.5_synthetic path/to/flow.pth] [--intervals 10 5 20] [--out-dir DIR] [--cfg-options data_root=DIR]

For each motion, on the config's test videos (CocoVID) with a key frame every N frames (the fixed schedule, whatever
policy the config names, so that every motion sees the same key frames):

1. **Warped-key error and feature-grid EPE** at the first of ``--intervals`` (no detector needed): the motion module
   computes the flow ``t -> key`` exactly as the detector would (un-normalised frames at the flow size), the flow is
   upsampled to the frame and the key frame warped by it; the table gives the mean absolute error (0..255) over the
   whole frame and inside the frame's GT boxes, by frames since the key, the motion's median ms per call, and, on a
   synthetic VID set, the end-point error against exact motion on the stride-16 feature grid the detector warps
   (cells whose centre is in a GT box; in cells).
2. **mAP@50** (overall / slow / medium / fast) at every interval of ``--intervals``, of a trained detector
   (CHECKPOINT of CONFIG, or a single-frame detector's: its detector weights are what is loaded) with only the motion
   module swapped, and the share of the gap between zero flow and the interval-1 (single-frame) result that the
   motion recovers.

Motions: ``zero``; ``dis_ultrafast`` / ``dis_fast`` / ``dis_medium`` (at the config's flow size, ``resize_to_divisor``
off); ``exact`` (``OracleMotion``: the synthetic set's exact motion, on the same grid as DIS); ``own`` (the Light Flow
inside CHECKPOINT); any shipped Light Flow name or checkpoint path (loaded into the config's ``LightFlowMotion``).
Writes DIR/motion_benchmark.md, DIR/motion_benchmark.png (in-box error by frames since the key) and
DIR/motion_flows.png (frame | key | each motion's flow to the key, one colour scale per row, on the frame halfway
between two keys of the first videos) atomically.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from lightflow.cli import ArgumentParser, CfgOptionsAction, check_output_dir, metric_value, positive_int, run_main

DEFAULT_MOTIONS = ('zero', 'dis_fast', 'dis_medium', 'own')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Rank motion modules on a CocoVID set: warped-key error and detector mAP.')
    parser.add_argument('config', help='video detector config with a LightFlowMotion (configs/vid/dff_*.py)')
    parser.add_argument('checkpoint', nargs='?', help='trained detector checkpoint (omit: photometric table only)')
    parser.add_argument('--motions', nargs='+', default=list(DEFAULT_MOTIONS),
                        help='zero, dis_ultrafast, dis_fast, dis_medium, own (the checkpoint\'s Light Flow), shipped '
                             'Light Flow names or checkpoint paths')
    parser.add_argument('--intervals', type=positive_int, nargs='+', default=None,
                        help='key frame every N frames (fixed schedule); the first also gives the error table '
                             '(default: the config\'s key-frame interval)')
    parser.add_argument('--max-videos', type=positive_int, help='photometric table: at most this many videos')
    parser.add_argument('--out-dir', help='where motion_benchmark.md / .png go (default: the work dir)')
    parser.add_argument('--work-dir', help='where the test logs go (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config keys; data_root=DIR re-points the datasets')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f'{args.checkpoint}: no such checkpoint')
    from mmdet_plugin.evaluation.motion_report import (flow_strip, key_warp_errors, motion_table, plot_gap_errors,
                                                       time_motions)
    from mmdet_plugin.motion_zoo import build_motion, check_motion_tokens, motion_label

    check_motion_tokens(args.motions, args.checkpoint is not None)
    for name in ('work_dir', 'out_dir'):
        if getattr(args, name) is not None:
            check_output_dir(getattr(args, name), '--' + name.replace('_', '-'))
    import torch

    from lightflow.engine.config import load_config
    from lightflow.frames import read_cocovid
    from lightflow.io import atomic_write, encode_png

    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    motion_cfg = cfg.model.get('motion')
    if not motion_cfg or motion_cfg.get('type') != 'LightFlowMotion':
        raise ValueError(f'{args.config}: model.motion must be a LightFlowMotion (the flow-input settings are read '
                         'from it); use a propagation config such as configs/vid/dff_*.py')
    motion_cfg = dict(motion_cfg)
    preproc = cfg.model.data_preprocessor
    if args.intervals is None:  # the config's schedule (what the detector was tested with), else the plugin default
        from mmdet_plugin.utils import KEY_FRAME_INTERVAL

        args.intervals = [int((cfg.model.get('test_cfg') or {}).get('key_frame_interval', KEY_FRAME_INTERVAL))]
    if 1 in args.intervals:
        raise ValueError('--intervals: 1 has no non-key frames, so no motion is used; the single-frame result is '
                         'measured anyway as the reference')
    mean = torch.tensor(preproc['mean'], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(preproc['std'], dtype=torch.float32).view(1, 3, 1, 1)
    data = cfg.test_dataloader.dataset
    ann = Path(data.get('data_root', '')) / data.ann_file
    if not ann.is_file():
        raise FileNotFoundError(f'{ann}: the config\'s test annotation file does not exist (set data_root=...)')
    img_root = Path(data.get('data_root', '')) / data.get('data_prefix', {}).get('img_path', '')
    videos, boxes = read_cocovid(ann, img_root)
    if not videos:
        raise ValueError(f'{ann}: holds no frames to benchmark on')
    out_dir = Path(args.out_dir or cfg.work_dir)
    if out_dir.resolve().is_relative_to((img_root / 'Data').resolve()) or any(
            out_dir.resolve().is_relative_to(Path(im['path']).parent.resolve()) for v in videos.values() for im in v[:1]):
        raise ValueError(f'--out-dir {out_dir}: is inside the data set\'s frame folders; its PNGs would be read as '
                         'frames later')
    first = videos[sorted(videos)[0]][0]
    frame_size = (int(first['height']), int(first['width']))

    runner, model, own = None, None, None
    if args.checkpoint is not None:
        from mmengine.runner import Runner

        from lightflow.checkpoint import _torch_load
        from mmdet_plugin.apis import unwrap_video_detector

        cfg.load_from = None
        runner = Runner.from_cfg(cfg)
        model = unwrap_video_detector(runner.model)
        ckpt = _torch_load(args.checkpoint, 'cpu')
        state = {k.removeprefix('module.'): v for k, v in ckpt.get('state_dict', ckpt).items()}
        missing = [k for k in model.detector.state_dict() if f'detector.{k}' not in state]
        if missing:
            raise ValueError(f'{args.checkpoint}: {len(missing)} detector weights missing (e.g. detector.{missing[0]});'
                             f' is it a checkpoint of a detector like {args.config}?')
        has_flow = any(k.startswith('motion.') for k in state)
        if 'own' in args.motions and not has_flow:
            raise ValueError(f'--motions own: {args.checkpoint} holds no Light Flow (a single-frame detector?)')
        model.load_state_dict(state, strict=False)
        own = model.motion if has_flow else None

    exact = None
    with contextlib.suppress(ValueError):  # not a synthetic VID set (or one without the scene record): no EPE
        from lightflow.data.synthetic.vid_motion import scene_of_frame

        scene_of_frame(first['path'])
        exact = build_motion('exact', motion_cfg)
    if 'exact' in args.motions and exact is None:
        scene_of_frame(first['path'])  # raises the one-line reason
    interval = args.intervals[0]
    rows: list[dict] = []
    modules = []
    single = None
    for token in args.motions:
        motion = build_motion(token, motion_cfg, own).eval()
        errors, pairs = key_warp_errors(motion, videos, boxes, interval, mean, std, args.max_videos, exact=exact)
        with torch.no_grad():  # first call per shape compiles the runtime backends; no timed frame should carry it
            motion(*pairs[0])
        row = dict(token=token, label=motion_label(token, motion_cfg, frame_size), mAP={}, **errors)
        if runner is not None:
            from mmdet_plugin.apis import run_video_test

            model.motion = motion
            if single is None:
                single = metric_value(run_video_test(runner, 1, dict(type='fixed')), 'mAP')
            for n in args.intervals:
                metrics = run_video_test(runner, n, dict(type='fixed'))  # one schedule for every motion
                row['mAP'][n] = {k: metric_value(metrics, name) for k, name in (
                    ('mAP', 'mAP'), ('slow', 'mAP_slow'), ('medium', 'mAP_medium'), ('fast', 'mAP_fast'))}
        rows.append(row)
        modules.append(motion)
        print(f'{row["label"]}: box MAE {row["boxes"]:.2f}, EPE {row["epe"]:.3f}' + ''.join(
            f', mAP@50 {100 * m["mAP"]:.1f} at {n}' for n, m in row['mAP'].items()), file=sys.stderr)
    for row, ms in zip(rows, time_motions(modules, pairs)):
        row['ms'] = ms

    table = motion_table(rows, args.intervals, single)
    print(table)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / 'motion_benchmark.md', 'w') as f:
        f.write(f'# Motion benchmark: {Path(args.config).name}\n\n{table}')
    plot_gap_errors(rows, out_dir / 'motion_benchmark.png')
    strip = flow_strip(modules, [r['label'] for r in rows], videos, interval, mean, std)
    if strip is None:
        print(f'no motion_flows.png: the first videos have no frame {interval // 2} after a key', file=sys.stderr)
    else:
        with atomic_write(out_dir / 'motion_flows.png') as f:
            f.write(encode_png(strip))
    return rows


if __name__ == '__main__':
    sys.exit(run_main(main))
