"""Write the synthetic video-detection set (JPEG frames + CocoVID JSON) used by configs/vid/*synthetic_vid*.

Usage:
    python tools/make_synthetic_vid.py data/synthetic_vid [--num-videos 20 --num-val-videos 12 --frames 120
                                                           --size 224 288 --blur-prob 0.15 --seed 0 --overwrite]

Prints each split's statistics: boxes per frame, blurred frames, partly hidden boxes, boxes per class, and the
slow / medium / fast mix both as designed and as the metric measures it (FGFA motion IoU).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lightflow import cli
from lightflow.data.synthetic import vid, vid_stats


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='output folder (written atomically; see --overwrite)')
    parser.add_argument('--num-videos', type=cli.positive_int, default=20, help='training videos')
    parser.add_argument('--num-val-videos', type=cli.positive_int, default=12, help='validation videos')
    parser.add_argument('--frames', type=cli.positive_int, default=120,
                        help='frames per video (>= 80: 8 key frames 10 apart, the paper\'s training clip)')
    parser.add_argument('--size', type=cli.positive_int, nargs=2, default=(224, 288), metavar=('H', 'W'),
                        help='frame size (the paper\'s mobile setting: 224 px short side)')
    parser.add_argument('--blur-prob', type=cli.finite_float, default=0.15,
                        help='share of frames blurred as a whole (camera shake / defocus)')
    parser.add_argument('--no-stats', action='store_true', help='skip the measured speed mix (motion IoU)')
    parser.add_argument('--seed', type=cli.non_negative_int, default=0)
    parser.add_argument('--overwrite', action='store_true',
                        help='replace OUT_DIR if it holds a set this tool wrote (anything else is refused)')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    height, width = args.size
    vid.check_frame_memory(height, width, args.frames, f'--size {height} {width}')
    start = time.perf_counter()
    coco = vid.generate_synthetic_vid(args.out_dir, num_train_videos=args.num_videos,
                                      num_val_videos=args.num_val_videos, num_frames=args.frames, height=height,
                                      width=width, seed=args.seed, blur_prob=args.blur_prob, overwrite=args.overwrite,
                                      progress=sys.stderr.isatty())
    took = time.perf_counter() - start
    for split, data in coco.items():
        print(f'{split}: {len(data["videos"])} videos, {len(data["images"])} frames, '
              f'{len(data["annotations"])} boxes -> {Path(args.out_dir) / "annotations" / (split + ".json")}')
        if data['annotations']:
            measured = None if args.no_stats else vid_stats.measured_speeds(data)
            print('  ' + describe(vid_stats.dataset_statistics(data), measured, not args.no_stats))
    print(f'done in {took:.1f} s')


def _percentages(shares: dict[str, float]) -> str:
    return '/'.join(f'{100 * v:.0f}' for v in shares.values())


def describe(stats: dict, measured: dict | None, with_measured: bool = True) -> str:
    """One line of a split's statistics; the measured speed mix is ``n/a`` when no box has a speed (one frame per
    video) and left out without ``with_measured``."""
    line = (f'{stats["boxes_per_frame"]:.2f} boxes/frame, {stats["instances"]} objects, '
            f'{100 * stats["blurred_frames"]:.0f}% frames blurred, {100 * stats["occluded_boxes"]:.0f}% boxes partly '
            f'hidden; slow/medium/fast % designed {_percentages(stats["designed_speed"])}')
    if with_measured:
        line += ', measured ' + ('n/a (no box has a neighbour frame)' if measured is None else _percentages(measured))
    return line + '; per class ' + ', '.join(f'{k} {v}' for k, v in stats['boxes_per_class'].items())


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
