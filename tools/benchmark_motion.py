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
import math
import sys
import time
from pathlib import Path

from lightflow.cli import (ArgumentParser, CfgOptionsAction, check_output_dir, metric_value, number_or_na, positive_int,
                           run_main)

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


FEATURE_STRIDE = 16  # the grid the EPE against exact motion is measured on (the detector's coarsest FPN level)


def _box_cells(boxes: list, height: int, width: int, stride: int):
    """(ceil(H / stride), ceil(W / stride)) bool: the feature cells whose centre lies in one of ``boxes``."""
    import torch

    gh, gw = -(-height // stride), -(-width // stride)
    cy, cx = (torch.arange(gh) + 0.5) * stride, (torch.arange(gw) + 0.5) * stride
    mask = torch.zeros(gh, gw, dtype=torch.bool)
    for x, y, w, h in boxes:
        mask |= ((cy >= y) & (cy < y + h))[:, None] & ((cx >= x) & (cx < x + w))[None, :]
    return mask


def key_warp_errors(motion, videos: dict, boxes: dict, interval: int, mean, std, max_videos: int | None = None,
                    max_timed: int = 20, exact=None) -> tuple[dict, list]:
    """Warp each video's key frame (every ``interval`` frames) to its non-key frames with ``motion`` and measure.

    Args:
        exact: an ``OracleMotion`` for the set (None: no EPE against exact motion).

    Returns:
        ``dict(frame=MAE over whole frames, boxes=MAE over GT-box pixels, by_gap={(lo, hi): box MAE},
        epe=EPE against exact motion on the stride-16 grid in GT boxes, in cells)`` (MAE in 0..255 intensity
        levels, pixel-weighted) and the first ``max_timed`` normalised (frame, key, metas), for :func:`time_motions`.
    """
    import torch

    from lightflow.io import read_image
    from lightflow.warp import flow_warp, resize_flow

    third = max(1, math.ceil((interval - 1) / 3))
    buckets = [(lo, min(lo + third - 1, interval - 1)) for lo in range(1, interval, third)]
    sums: dict = {'frame': [0.0, 0], 'boxes': [0.0, 0], 'epe': [0.0, 0], **{b: [0.0, 0] for b in buckets}}
    pairs: list = []
    for video in sorted(videos)[:max_videos]:
        key = None
        for image in videos[video]:
            rgb = torch.from_numpy(read_image(image['path'])).permute(2, 0, 1)[None].float()
            norm = (rgb - mean) / std
            frame_id = int(image['frame_id'])
            meta = dict(img_path=str(image['path']), frame_id=frame_id, img_shape=tuple(rgb.shape[-2:]))
            if key is None or frame_id % interval == 0:
                key = (frame_id, rgb, norm, meta)
                continue
            metas = [(meta, key[3])]
            with torch.no_grad():
                flow = motion(norm, key[2], metas)
                if len(pairs) < max_timed:
                    pairs.append((norm, key[2], metas))
                if exact is not None:
                    cells = _box_cells(boxes.get(image['id'], []), *rgb.shape[-2:], FEATURE_STRIDE)
                    grid = tuple(cells.shape)
                    epe = (resize_flow(flow.float(), grid) - resize_flow(exact(norm, key[2], metas), grid)).norm(dim=1)
                    sums['epe'][0] += float(epe[0][cells].sum())
                    sums['epe'][1] += int(cells.sum())
                flow = resize_flow(flow.float(), tuple(rgb.shape[-2:]))
                err = (flow_warp(key[1], flow, padding_mode='border') - rgb).abs().mean(1)[0]  # (H, W)
            mask = torch.zeros_like(err, dtype=torch.bool)
            for x, y, w, h in boxes.get(image['id'], []):
                mask[int(y):int(math.ceil(y + h)), int(x):int(math.ceil(x + w))] = True
            sums['frame'][0] += float(err.sum())
            sums['frame'][1] += err.numel()
            gap = frame_id - key[0]
            for name in ['boxes'] + [b for b in buckets if b[0] <= gap <= b[1]]:
                sums[name][0] += float(err[mask].sum())
                sums[name][1] += int(mask.sum())

    def mean_of(name):
        total, count = sums[name]
        return total / count if count else float('nan')

    return dict(frame=mean_of('frame'), boxes=mean_of('boxes'), by_gap={b: mean_of(b) for b in buckets},
                epe=mean_of('epe')), pairs


def time_motions(motions: list, pairs: list, rounds: int = 5) -> list[float]:
    """Median ms per call of each motion on the same (frame, key) pairs, the motions interleaved round by round so
    that a busy machine slows them alike (these CPUs are shared and noisy)."""
    import torch

    times: list[list[float]] = [[] for _ in motions]
    with torch.no_grad():
        for _ in range(rounds):
            for motion, spent in zip(motions, times):
                for img, key, metas in pairs:
                    start = time.perf_counter()
                    motion(img, key, metas)
                    spent.append(time.perf_counter() - start)
    return [1000 * sorted(t)[len(t) // 2] if t else float('nan') for t in times]


def markdown_table(rows: list[dict], intervals: list[int], single: float | None) -> str:
    """One row per motion: warped-key MAE (frame, boxes, by frames since key) and EPE against exact motion at the
    first interval, motion ms; then per interval mAP@50 and the recovered share of the zero-flow -> single-frame gap."""
    buckets = list(rows[0]['by_gap']) if rows else []
    head = ['motion', 'whole frame', 'in GT boxes'] + [f'boxes, {lo}-{hi} after key' for lo, hi in buckets] + \
           ['EPE vs exact (cells)', 'motion ms']
    lines = [f'Fixed key frame every {intervals[0]} frames; warped-key error is the mean absolute error (0..255); EPE '
             f'against exact motion on the stride-{FEATURE_STRIDE} feature grid, cells whose centre is in a GT box.', '',
             '| ' + ' | '.join(head) + ' |', '|---|' + '---:|' * (len(head) - 1)]
    for r in rows:
        cells = [r['label']] + [number_or_na(v, '.1f') for v in (r['frame'], r['boxes'], *r['by_gap'].values())]
        cells += [number_or_na(r['epe'], '.3f'), number_or_na(r['ms'], '.2f')]
        lines.append('| ' + ' | '.join(cells) + ' |')
    if single is None:
        return '\n'.join(lines) + '\n'
    lines += ['', f'mAP@50 with only the motion swapped, fixed key frames; single-frame (interval 1): '
                  f'{100 * single:.1f}. Share = (mAP - zero) / (single-frame - zero).', '',
              '| motion | interval | mAP@50 | slow | medium | fast | gap recovered |', '|---|---:|' + '---:|' * 5]
    for interval in intervals:
        zero = next((r['mAP'][interval].get('mAP', float('nan')) for r in rows if r['token'] == 'zero'),
                    float('nan'))
        for r in rows:
            m = r['mAP'][interval]
            share = (m['mAP'] - zero) / (single - zero) if single != zero else float('nan')
            cells = [r['label'], str(interval)]
            cells += [number_or_na(100 * m.get(k, float('nan')), '.1f') for k in ('mAP', 'slow', 'medium', 'fast')]
            cells.append('-' if r['token'] == 'zero' else number_or_na(share, '.2f'))
            lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def flow_strip(motions: list, labels: list[str], videos: dict, interval: int, mean, std,
               num_videos: int = 2):
    """Rows of frame | key | each motion's colour flow (frame -> key, at the frame size, one colour scale per row) for
    the frame ``interval // 2`` after the first key of each of the first ``num_videos`` videos: (H', W', 3) uint8;
    None when no such video has that frame (videos shorter than half an interval)."""
    import numpy as np
    import torch

    from lightflow.io import read_image
    from lightflow.viz import flow_panels
    from lightflow.warp import resize_flow

    names = [label.removeprefix('Light Flow ') for label in labels]
    rows = []
    for video in sorted(videos)[:num_videos]:
        frames = {int(image['frame_id']): image for image in videos[video]}
        key_id = min(frames)
        key_id -= key_id % interval
        if key_id not in frames or key_id + interval // 2 not in frames:
            continue
        key, cur = (read_image(frames[i]['path']) for i in (key_id, key_id + interval // 2))
        key_t, cur_t = ((torch.from_numpy(x).permute(2, 0, 1)[None].float() - mean) / std for x in (key, cur))
        metas = [tuple(dict(img_path=str(frames[i]['path']), frame_id=i, img_shape=cur.shape[:2])
                       for i in (key_id + interval // 2, key_id))]
        with torch.no_grad():
            flows = [resize_flow(m(cur_t, key_t, metas).float(), cur.shape[:2])[0] for m in motions]
        rows.append(np.concatenate([cur, key, flow_panels(flows, names)], axis=1))
    return np.concatenate(rows, axis=0) if rows else None


def plot(rows: list[dict], path: Path) -> None:
    """In-box error of the warped key by frames since the key, one line per motion."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from lightflow.io import atomic_write

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for r in rows:
        xs = [(lo + hi) / 2 for lo, hi in r['by_gap']]
        ax.plot(xs, list(r['by_gap'].values()), marker='o', label=r['label'])
    ax.set_xlabel('frames since the key frame')
    ax.set_ylabel('warped key vs frame, MAE in GT boxes (0..255)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format='png', dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f'{args.checkpoint}: no such checkpoint')
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

    table = markdown_table(rows, args.intervals, single)
    print(table)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / 'motion_benchmark.md', 'w') as f:
        f.write(f'# Motion benchmark: {Path(args.config).name}\n\n{table}')
    plot(rows, out_dir / 'motion_benchmark.png')
    strip = flow_strip(modules, [r['label'] for r in rows], videos, interval, mean, std)
    if strip is None:
        print(f'no motion_flows.png: the first videos have no frame {interval // 2} after a key', file=sys.stderr)
    else:
        with atomic_write(out_dir / 'motion_flows.png') as f:
            f.write(encode_png(strip))
    return rows


if __name__ == '__main__':
    sys.exit(run_main(main))
