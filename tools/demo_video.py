"""Run a detector over a video frame by frame and write the video with boxes drawn.

Usage:
    PYTHONPATH=. python tools/demo_video.py CONFIG CHECKPOINT VIDEO --out OUT.mp4 [--score-thr 0.3] [--device cpu]
                               [--key-frame-interval N] [--fps F] [--max-frames N] [--show-flow]

VIDEO is a video file (any format imageio-ffmpeg reads) or a folder of frames (sorted by name). Frames are streamed:
memory stays constant whatever the length. Works for video detectors whose test pipeline ends in
``PackTrackInputs`` (each frame carries ``video_id`` / ``frame_id`` metainfo, the model keeps its own key-frame
cache) and for plain single-image mmdet detectors (``PackDetInputs``). OUT.mp4 is written to a temp file and
renamed at the end. ``--show-flow`` (propagation detectors) puts two panels beside each frame: the colour flow from
the frame to its key frame by the detector's own motion module (Light Flow) and by OpenCV DIS MEDIUM at the same
flow scale, one colour scale for both (the flow is the part of the detector a person can check by eye).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from lightflow.cli import ArgumentParser, check_device, check_not_an_input, positive_float, positive_int, run_main
from lightflow.frames import WRITABLE_VIDEO_EXTS, iter_frames


def run_demo(config: str, checkpoint: str, video: str, out: str, score_thr: float = 0.3, device: str = 'cpu',
             key_frame_interval: int | None = None, fps: float | None = None,
             max_frames: int | None = None, show_flow: bool = False) -> dict:
    """Detect on every frame of ``video`` and write ``out`` (mp4). Returns ``{'frames', 'model_fps', 'fps'}``."""
    import imageio
    import torch
    from mmengine.dataset import pseudo_collate
    from tqdm import tqdm

    from mmdet_plugin.demo import BoxPainter, FlowPanels, build_frame_pipeline, init_video_detector

    stream = iter_frames(video)
    frames, video_fps, length = iter(stream), stream.fps, stream.length
    try:
        first = next(frames)
    except StopIteration:
        raise ValueError(f'{video}: no frames could be read (empty video or folder without images)') from None
    model = init_video_detector(config, checkpoint, device)
    if key_frame_interval is not None:
        if not hasattr(model, 'key_frame_interval'):
            raise ValueError(f'--key-frame-interval: {type(model).__name__} has no key-frame schedule')
        model.key_frame_interval = key_frame_interval
    pipeline, is_video_model = build_frame_pipeline(model.cfg)
    painter = BoxPainter(tuple(model.dataset_meta.get('classes', ())), score_thr)
    panels = None
    if show_flow:
        if not is_video_model or getattr(model, 'motion', None) is None:
            raise ValueError(f'--show-flow: {config} has no motion module (use a propagation config, '
                             'configs/vid/dff_*)')
        panels = FlowPanels(model)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f'.{out.stem}.{os.getpid()}.tmp{out.suffix}')
    height, width = first.shape[:2]
    out_width = width * 3 if panels is not None else width
    shrink = min(1.0, 1920 / out_width)  # three 1080p panels side by side would be 5760 px wide
    out_size = (max(2, round(out_width * shrink)), max(2, round(height * shrink)))
    # yuv420p needs even sizes: pad odd ones by a pixel.
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    # x264's ultrafast preset: ~10x faster than the default at 1080p for a similar error; a demo is not an archive.
    writer = imageio.get_writer(tmp, format='FFMPEG', mode='I', fps=fps or video_fps or 25.0, codec='libx264',
                                macro_block_size=1, quality=7, ffmpeg_log_level='error',
                                output_params=['-preset', 'ultrafast'])
    total = min(length, max_frames) if length and max_frames else (max_frames or length)
    model_time, count = 0.0, 0
    start = time.perf_counter()
    try:
        with tqdm(total=total, desc='demo', unit='frame', disable=None) as bar:  # quiet off a terminal
            for index, frame in enumerate(_chain(first, frames)):
                if max_frames is not None and index >= max_frames:
                    break
                if frame.shape[:2] != (height, width):
                    raise ValueError(f'{video}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, the first '
                                     f'frame was {width}x{height}')
                bgr = np.ascontiguousarray(frame[..., ::-1])
                meta = dict(img=bgr, img_id=index, frame_id=index, video_id=0)
                if length is not None and Path(video).is_dir():
                    meta['video_length'] = length
                if is_video_model:
                    meta = {k: [v] for k, v in meta.items()}
                data = pipeline(meta)
                tic = time.perf_counter()
                with torch.no_grad():
                    # test_step's two steps, so --show-flow reuses the preprocessed frame
                    batch = model.data_preprocessor(pseudo_collate([data]), False)
                    result = model(**batch, mode='predict')[0]
                model_time += time.perf_counter() - tic
                if is_video_model:
                    result = result[0]
                pred = result.pred_instances
                drawn = painter(frame, pred.bboxes.cpu().numpy(), pred.scores.cpu().numpy(),
                                pred.labels.cpu().numpy())
                if panels is not None:
                    import cv2

                    drawn = np.concatenate([drawn, panels(batch['inputs'][:, 0], (height, width))], axis=1)
                    drawn = cv2.resize(drawn, out_size, interpolation=cv2.INTER_AREA) if shrink < 1 else drawn
                    drawn = np.pad(drawn, ((0, drawn.shape[0] % 2), (0, drawn.shape[1] % 2), (0, 0)), mode='edge')
                    writer.append_data(drawn)
                else:
                    writer.append_data(np.pad(drawn, pad, mode='edge'))
                count += 1
                bar.update(1)
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        if tmp.exists():
            tmp.unlink()
        raise
    elapsed = time.perf_counter() - start
    stats = dict(frames=count, model_fps=count / max(model_time, 1e-9), fps=count / max(elapsed, 1e-9))
    print(f'{count} frames -> {out}: model {stats["model_fps"]:.2f} fps, end to end {stats["fps"]:.2f} fps '
          f'(device {device})')
    return stats


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('video', help='video file or folder of frames')
    parser.add_argument('--out', required=True, help=f'output video: {", ".join(WRITABLE_VIDEO_EXTS)} (H.264)')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--key-frame-interval', type=positive_int, default=None,
                        help="override the video detector's key-frame interval")
    parser.add_argument('--fps', type=positive_float, default=None, help='output fps (default: the input\'s, or 25)')
    parser.add_argument('--max-frames', type=int, default=None)
    parser.add_argument('--show-flow', action='store_true',
                        help='add the colour flow to the key frame: the detector\'s motion module and DIS MEDIUM')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not 0 <= args.score_thr <= 1:
        raise ValueError(f'--score-thr must be in [0, 1], got {args.score_thr}')
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f'--max-frames must be >= 1, got {args.max_frames}')
    check_device(args.device)
    out = Path(args.out).resolve()
    check_not_an_input([args.out], dict(video=args.video, config=args.config, checkpoint=args.checkpoint), '--out')
    if out.is_dir():
        raise ValueError(f'--out {args.out}: is a folder; give the .mp4 file to write')
    if out.suffix.lower() not in WRITABLE_VIDEO_EXTS:
        raise ValueError(f'--out {args.out}: not a video file name; end it in one of {", ".join(WRITABLE_VIDEO_EXTS)}')
    parent = next(p for p in out.parents if p.exists())
    if not parent.is_dir():
        raise ValueError(f'--out {args.out}: {parent} is a file, not a folder')
    for path, what in ((args.config, 'config file'), (args.checkpoint, 'checkpoint')):
        if not Path(path).is_file():
            raise FileNotFoundError(f'{path}: no such {what}')
    return run_demo(args.config, args.checkpoint, args.video, args.out, args.score_thr, args.device,
                    args.key_frame_interval, args.fps, args.max_frames, args.show_flow)


if __name__ == '__main__':
    sys.exit(run_main(main))
