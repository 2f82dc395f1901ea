"""Write the synthetic video-detection set (JPEG frames + CocoVID JSON) used by configs/vid/*synthetic_vid*.

Usage:
    python tools/make_synthetic_vid.py data/synthetic_vid [--num-videos 8 --num-val-videos 4 --frames 30
                                                           --size 160 224 --seed 0 --overwrite]
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
    parser.add_argument('--num-videos', type=int, default=8, help='training videos')
    parser.add_argument('--num-val-videos', type=int, default=4, help='validation videos')
    parser.add_argument('--frames', type=cli.positive_int, default=30, help='frames per video')
    parser.add_argument('--size', type=cli.positive_int, nargs=2, default=(160, 224), metavar=('H', 'W'),
                        help='frame size')
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
                                            overwrite=args.overwrite, progress=True)
    took = time.perf_counter() - start
    for split, data in coco.items():
        print(f'{split}: {len(data["videos"])} videos, {len(data["images"])} frames, '
              f'{len(data["annotations"])} boxes -> {Path(args.out_dir) / "annotations" / (split + ".json")}')
    print(f'done in {took:.1f} s')


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
