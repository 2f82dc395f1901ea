"""Convert ImageNet VID (ILSVRC2015) XML annotations to CocoVID JSON for ``CocoVIDDataset``.

Usage:
    python tools/convert_imagenet_vid.py data/ILSVRC data/ILSVRC/annotations [--splits train val det]
                                         [--det-list FILE]

Writes ``imagenet_vid_train.json``, ``imagenet_vid_val.json`` and ``imagenet_det_30cls.json`` to OUT_DIR (each
atomically). ``file_name`` is relative to the ILSVRC root (``Data/VID/train/<...>/<video>/000000.JPEG``).

The conversion rules (which videos and DET images, ids, boxes, what bad XML is refused) are those of
``lightflow.data.imagenet_vid``, which does the work.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lightflow.cli import ArgumentParser, check_output_dir, run_main
from lightflow.io import atomic_write

OUTPUT_NAMES = {'train': 'imagenet_vid_train.json', 'val': 'imagenet_vid_val.json', 'det': 'imagenet_det_30cls.json'}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', type=Path, help='ILSVRC root with Annotations/, Data/, ImageSets/')
    parser.add_argument('out_dir', type=Path, help='folder for the JSON files')
    parser.add_argument('--splits', nargs='+', default=['train', 'val', 'det'], choices=sorted(OUTPUT_NAMES))
    parser.add_argument('--det-list', type=Path, default=None,
                        help='DET images to use (FGFA DET_train_30classes.txt format); default: scan all')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    args = parse_args(argv)
    if not (args.root / 'Annotations').is_dir():
        raise FileNotFoundError(f'{args.root}: not an ILSVRC root (no Annotations/ folder)')
    check_output_dir(args.out_dir, 'OUT_DIR')
    from lightflow.data.imagenet_vid import convert_det, convert_vid

    results = {}
    for split in args.splits:
        coco = convert_det(args.root, args.det_list) if split == 'det' else convert_vid(args.root, split)
        path = args.out_dir / OUTPUT_NAMES[split]
        with atomic_write(path, 'w') as f:
            json.dump(coco, f, allow_nan=False)  # a NaN would make the file unreadable for strict parsers
        print(f'{split}: {len(coco["videos"])} videos, {len(coco["images"])} images, '
              f'{len(coco["annotations"])} boxes -> {path}')
        results[split] = coco
    return results


if __name__ == '__main__':
    sys.exit(run_main(main))
