"""Write the synthetic video-detection set (JPEG frames + CocoVID JSON) used by configs/vid/*synthetic_vid*.

Usage:
    python tools/make_synthetic_vid.py data/synthetic_vid [--num-videos 40 --num-val-videos 12 --frames 30
                                                           --size 224 288 --blur-prob 0.15 --seed 0 --overwrite]

Prints each split's statistics: boxes per frame, blurred frames, partly hidden boxes, boxes per class, and the
slow / medium / fast mix both as designed and as the metric measures it (FGFA motion IoU).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path


def _load(relative_path: str):
    """Load a pure-Python module of this repository by path (mmdet_plugin/synthetic_vid.py, lightflow/cli.py):
    importing its package would pull in mmdet and torch (seconds)."""
    path = Path(__file__).resolve().parents[1] / relative_path
    spec = importlib.util.spec_from_file_location(f'_lightflow_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


cli = _load('lightflow/cli.py')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='output folder (written atomically; see --overwrite)')
    parser.add_argument('--num-videos', type=int, default=40, help='training videos')
    parser.add_argument('--num-val-videos', type=int, default=12, help='validation videos')
    parser.add_argument('--frames', type=cli.positive_int, default=30, help='frames per video')
    parser.add_argument('--size', type=cli.positive_int, nargs=2, default=(224, 288), metavar=('H', 'W'),
                        help='frame size (the paper\'s mobile setting: 224 px short side)')
    parser.add_argument('--blur-prob', type=cli.finite_float, default=0.15,
                        help='share of frames blurred as a whole (camera shake / defocus)')
    parser.add_argument('--no-stats', action='store_true',
                        help="skip the measured speed mix (it imports mmdet's metric code, a few seconds)")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing OUT_DIR')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    generator = _load('mmdet_plugin/synthetic_vid.py')
    coco = generator.generate_synthetic_vid(args.out_dir, num_train_videos=args.num_videos,
                                            num_val_videos=args.num_val_videos, num_frames=args.frames,
                                            height=args.size[0], width=args.size[1], seed=args.seed,
                                            blur_prob=args.blur_prob, overwrite=args.overwrite,
                                            progress=sys.stderr.isatty())
    took = time.perf_counter() - start
    for split, data in coco.items():
        print(f'{split}: {len(data["videos"])} videos, {len(data["images"])} frames, '
              f'{len(data["annotations"])} boxes -> {Path(args.out_dir) / "annotations" / (split + ".json")}')
        if data['annotations']:
            print('  ' + describe(generator.dataset_statistics(data), None if args.no_stats else measured_speeds(data)))
    print(f'done in {took:.1f} s')


def measured_speeds(coco: dict) -> dict[str, float]:
    """The slow / medium / fast share of a split's boxes as ``VIDMotionMetric`` measures it (motion IoU)."""
    import numpy as np

    from mmdet_plugin.evaluation import motion_ious, speed_of

    frame_of = {i['id']: i['frame_id'] for i in coco['images']}
    speeds = []
    for video in coco['videos']:
        anns = [a for a in coco['annotations'] if a['video_id'] == video['id']]
        if not anns:
            continue
        boxes = np.array([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2], a['bbox'][1] + a['bbox'][3]]
                          for a in anns], np.float64)
        speeds.append(speed_of(motion_ious([frame_of[a['image_id']] for a in anns],
                                           [a['instance_id'] for a in anns], boxes)))
    speeds = np.concatenate(speeds)
    return {name: float(np.mean(speeds == i)) for i, name in enumerate(('slow', 'medium', 'fast'))}


def describe(stats: dict, measured: dict | None) -> str:
    """One line of a split's statistics."""
    mix = '/'.join(f'{100 * v:.0f}' for v in stats['designed_speed'].values())
    line = (f'{stats["boxes_per_frame"]:.2f} boxes/frame, {stats["instances"]} objects, '
            f'{100 * stats["blurred_frames"]:.0f}% frames blurred, {100 * stats["occluded_boxes"]:.0f}% boxes partly '
            f'hidden; slow/medium/fast % designed {mix}')
    if measured is not None:
        line += ', measured ' + '/'.join(f'{100 * v:.0f}' for v in measured.values())
    return line + '; per class ' + ', '.join(f'{k} {v}' for k, v in stats['boxes_per_class'].items())


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
