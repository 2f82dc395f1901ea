"""What ``tools/benchmark_motion.py`` measures of a motion module where the detector uses it: the key frame warped to
the later frames by the motion's flow (error against the frame, whole and in GT boxes, by frames since the key), the
end-point error against exact motion on the detector's feature grid, the motion's time per call; and its tables and
pictures.

Frames come as :func:`lightflow.frames.read_cocovid` gives them: ``videos`` {video id: [image info with ``path``,
``frame_id``, ``id``]}, ``boxes`` {image id: [(x, y, w, h)]}; ``mean`` / ``std`` are the detector's (1, 3, 1, 1)
normalisation; a motion is called as the detector calls it, ``motion(img, key_img, metas) -> (1, 2, h, w)`` flow.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from lightflow.cli import number_or_na

from .vid_report import pyplot, save_png

__all__ = ['FEATURE_STRIDE', 'box_cells', 'key_warp_errors', 'time_motions', 'motion_table', 'flow_strip',
           'plot_gap_errors']

FEATURE_STRIDE = 16  # the grid the EPE against exact motion is measured on (the detector's coarsest FPN level)


def box_cells(boxes: list, height: int, width: int, stride: int) -> Any:
    """(ceil(H / stride), ceil(W / stride)) bool tensor: the feature cells whose centre lies in one of ``boxes``
    ((x, y, w, h) each, in pixels of the (H, W) frame)."""
    import torch

    gh, gw = -(-height // stride), -(-width // stride)
    cy, cx = (torch.arange(gh) + 0.5) * stride, (torch.arange(gw) + 0.5) * stride
    mask = torch.zeros(gh, gw, dtype=torch.bool)
    for x, y, w, h in boxes:
        mask |= ((cy >= y) & (cy < y + h))[:, None] & ((cx >= x) & (cx < x + w))[None, :]
    return mask


def key_warp_errors(motion: Any, videos: dict, boxes: dict, interval: int, mean: Any, std: Any,
                    max_videos: int | None = None, max_timed: int = 20, exact: Any = None) -> tuple[dict, list]:
    """Warp each video's key frame (every ``interval`` frames) to its non-key frames with ``motion`` and measure.

    Args:
        motion: called as the detector calls it, ``motion(img, key_img, metas)`` -> (1, 2, h, w) flow, on frames
            normalised with ``mean`` / ``std`` ((1, 3, 1, 1), the detector's data preprocessor's).
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
                    cells = box_cells(boxes.get(image['id'], []), *rgb.shape[-2:], FEATURE_STRIDE)
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


def time_motions(motions: list[Any], pairs: list, rounds: int = 5) -> list[float]:
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


def motion_table(rows: list[dict], intervals: list[int], single: float | None) -> str:
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


def flow_strip(motions: list[Any], labels: list[str], videos: dict, interval: int, mean: Any, std: Any,
               num_videos: int = 2) -> Any:
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


def plot_gap_errors(rows: list[dict], path: Path) -> None:
    """In-box error of the warped key by frames since the key, one line per motion (``rows`` of
    :func:`key_warp_errors` with a ``label``), written atomically as one PNG."""
    fig, ax = pyplot().subplots(figsize=(6.4, 4.0))
    for r in rows:
        xs = [(lo + hi) / 2 for lo, hi in r['by_gap']]
        ax.plot(xs, list(r['by_gap'].values()), marker='o', label=r['label'])
    ax.set_xlabel('frames since the key frame')
    ax.set_ylabel('warped key vs frame, MAE in GT boxes (0..255)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
