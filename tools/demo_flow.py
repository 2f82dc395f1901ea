"""Run a trained Light Flow on an image pair, a folder of frames or a video; write .flo files and colour PNGs.

    python tools/demo_flow.py work_dirs/synthetic/best_EPE_iter_300.pth frame10.png frame11.png --out out/
    python tools/demo_flow.py CKPT frames_dir/ --out out/          # consecutive pairs of the sorted frames
    python tools/demo_flow.py CKPT clip.mp4 --out out/             # also writes out/clip_flow.mp4
    python tools/demo_flow.py lightflow_w0.5_synthetic a.png b.png --out out/   # shipped weights, by name

The first argument is a checkpoint (train_flow.py's or a raw LightFlow state dict; the width is read from it), the
name of shipped weights (``lightflow.list_pretrained()``), or a config whose ``model.pretrained`` / ``load_from``
names either. A config without a checkpoint is refused: random weights give meaningless flow. Every file is written
atomically. Run with the package importable (``PYTHONPATH=.``).
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import os
import sys
from pathlib import Path

from lightflow.cli import ArgumentParser, check_device, check_output_dir, positive_float, positive_int, run_main
from lightflow.frames import collect_inputs, frame_names, iter_frames, named_frames


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(
        description='Estimate optical flow with Light Flow; writes NAME.flo and NAME.png (colour) per pair.',
        epilog='A checkpoint is required (directly, or named by the config): the tool refuses to run random weights.')
    parser.add_argument('model', metavar='CHECKPOINT_OR_CONFIG',
                        help='.pth checkpoint, a shipped pretrained name, or a config .py whose model.pretrained / '
                             'load_from names one')
    parser.add_argument('inputs', nargs='+', metavar='INPUT',
                        help='two images (a pair), one folder of frames, or one video file')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--width', type=positive_float,
                        help='expected width multiplier; error if the checkpoint differs')
    parser.add_argument('--max-flow', type=positive_float,
                        help='flow magnitude of full colour saturation (default per frame)')
    parser.add_argument('--max-pairs', type=positive_int, default=None, help='stop after this many pairs (long videos)')
    parser.add_argument('--device', default=None, help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--force', action='store_true',
                        help='replace output files already in --out (default: refuse, naming the first)')
    return parser.parse_args(argv)


def check_outputs(kind: str, paths: list[Path], out: Path, force: bool = False) -> None:
    """Refuse an output folder where a written file would replace one of the inputs, or (without ``force``) a file
    already there. A video's per-frame names are known only while decoding: they are checked by a name pattern."""
    if kind == 'video':
        outputs = [out / f'{paths[0].stem}_flow.mp4']
        existing = sorted(out.glob(f'{glob.escape(paths[0].stem)}_[0-9][0-9][0-9][0-9][0-9][0-9].*')) \
            if out.is_dir() else []
        existing = [p for p in existing if p.suffix in ('.flo', '.png')]
    else:
        names = frame_names(paths)[:-1]
        outputs = [out / f'{n}{ext}' for n in names for ext in ('.flo', '.png')]
        existing = []
    inputs = {p.resolve() for p in paths}
    for o in outputs:
        if o.resolve() in inputs:
            raise ValueError(f'--out {out}: writing {o.name} would overwrite the input {o}; choose another folder')
    existing += [o for o in outputs if o.exists()]
    if existing and not force:
        more = f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''
        raise ValueError(f'--out {out}: already holds {existing[0].name}{more}, which this run would replace; use '
                         '--force or another folder')


def run(args: argparse.Namespace) -> list[Path]:
    """Estimate and write the flow of every consecutive pair; returns the written .flo paths."""
    import torch
    from tqdm import tqdm

    from lightflow import estimate_flow, flow_to_color, write_flo
    from lightflow.io import write_png
    from lightflow.pretrained import load_flow_source

    out = check_output_dir(args.out, '--out')
    device = check_device(args.device) or ('cuda' if torch.cuda.is_available() else 'cpu')
    kind, paths = collect_inputs(args.inputs)
    check_outputs(kind, paths, out, args.force)
    stream = iter_frames(paths[0]) if kind == 'video' else None  # an unreadable video fails before the model loads
    model = load_flow_source(args.model, args.width, device)
    out.mkdir(parents=True, exist_ok=True)
    total = len(paths) - 1 if stream is None else None if stream.length is None else max(stream.length - 1, 0)
    if args.max_pairs is not None:
        total = args.max_pairs if total is None else min(total, args.max_pairs)

    writer, tmp_video, final_video, written = None, None, None, []
    try:
        prev = None
        with torch.inference_mode(), tqdm(total=total, unit='pair', desc='flow', disable=None) as bar:
            for name, frame in named_frames(kind, paths, stream):
                if prev is not None:
                    prev_name, prev_frame = prev
                    if prev_frame.shape != frame.shape:
                        h1, w1 = prev_frame.shape[:2]
                        h2, w2 = frame.shape[:2]
                        raise ValueError(f'{prev_name} is {w1}x{h1} but {name} is {w2}x{h2}: both frames of a pair '
                                         'must have the same size')
                    flow = estimate_flow(model, prev_frame, frame)[0].permute(1, 2, 0).float().cpu().numpy()
                    write_flo(out / f'{prev_name}.flo', flow)
                    color = flow_to_color(flow, max_flow=args.max_flow)
                    write_png(out / f'{prev_name}.png', color)
                    written.append(out / f'{prev_name}.flo')
                    if kind == 'video':
                        if writer is None:
                            import imageio.v2 as iio2

                            fps = stream.fps or 10.0
                            final_video = out / f'{paths[0].stem}_flow.mp4'
                            tmp_video = out / f'.{final_video.stem}.tmp.mp4'
                            # macro_block_size=2: keep the size (x264 only needs even dimensions).
                            writer = iio2.get_writer(tmp_video, format='FFMPEG', fps=fps, macro_block_size=2)
                        writer.append_data(color)
                    bar.update(1)
                    if args.max_pairs is not None and len(written) >= args.max_pairs:
                        break
                prev = (name, frame)
        if kind == 'video' and not written:
            raise ValueError(f'{paths[0]}: the video has a single frame; flow needs at least 2')
        if writer is not None:
            writer.close()
            writer = None
            os.replace(tmp_video, final_video)
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        if tmp_video is not None and tmp_video.exists():
            tmp_video.unlink()
    print(f'wrote {len(written)} flow field(s) (.flo + .png) to {out}' +
          (f' and {final_video}' if final_video is not None else ''))
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    return run(parse_args(argv))


if __name__ == '__main__':
    sys.exit(run_main(main))
