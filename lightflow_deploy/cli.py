"""``deploy_video``: run a graph folder on a video file or a frame folder, streaming; detections as JSON (and an
annotated video). No torch: OpenCV reads and writes the frames."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from .runtime import BACKENDS, VideoDetectorRuntime

__all__ = ['main', 'frames_of', 'check_not_an_input']

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp')
VIDEO_EXTS = ('.mp4', '.mkv', '.mov', '.avi')


def check_not_an_input(outputs: list[str], inputs: dict[str, str], option: str) -> None:
    """``ValueError`` naming ``option`` when an output resolves to an input file or lies in an input folder (the
    torch-free twin of ``lightflow.cli.check_not_an_input``)."""
    for out in outputs:
        target = Path(out).resolve()
        for what, path in inputs.items():
            source = Path(path).resolve()
            same = target == source or (target.exists() and source.exists() and os.path.samefile(target, source))
            if same or (source.is_dir() and source in target.parents):
                raise ValueError(f'{option} {out}: would overwrite the input {what} {path}; choose another path')


def frames_of(source: str | Path) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a video file or of a folder of images (name order), one at a time.

    ``FileNotFoundError`` for a missing source; ``ValueError`` naming it for an unreadable or empty one (raised
    before the first frame is yielded, so nothing is written)."""
    # FFmpeg's own log lines ("moov atom not found") would come before our one-line error; quiet unless asked for.
    os.environ.setdefault('OPENCV_FFMPEG_LOGLEVEL', '-8')
    import cv2
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f'{source}: no such video file or frame folder')
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise ValueError(f'{source}: no frames ({"/".join(IMAGE_EXTS)}) in this folder')
        for path in files:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f'{path}: not a readable image')
            yield np.ascontiguousarray(bgr[..., ::-1])
        return
    cap = cv2.VideoCapture(str(source))
    try:
        ok, bgr = cap.read() if cap.isOpened() else (False, None)
        if not ok:
            raise ValueError(f'{source}: not a readable video or no frames in it')
        while ok:
            yield np.ascontiguousarray(bgr[..., ::-1])
            ok, bgr = cap.read()
    finally:
        cap.release()


def _draw(frame_rgb: np.ndarray, dets, classes: list[str], thr: float) -> np.ndarray:
    import cv2
    out = np.ascontiguousarray(frame_rgb[..., ::-1])
    for box, score, label in zip(dets.boxes, dets.scores, dets.labels):
        if score < thr:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 0), 1)
        name = classes[label] if label < len(classes) else str(label)
        cv2.putText(out, f'{name} {score:.2f}', (x1, max(y1 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 255, 0), 1)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Run an exported video detector (no PyTorch).')
    parser.add_argument('graphs', help='folder written by tools/export_video_detector.py')
    parser.add_argument('video', help='video file or folder of frames')
    parser.add_argument('--out', required=True, help='detections JSON to write')
    parser.add_argument('--backend', default='onnxruntime', choices=BACKENDS)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out-video', help='also write the frames with their boxes (.mp4/.mkv/.mov/.avi)')
    parser.add_argument('--score-thr', type=float, default=0.3, help='boxes drawn in --out-video above this score')
    parser.add_argument('--fps', type=float, default=25.0, help='frame rate of --out-video for a frame folder')
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    outputs = [args.out] + ([args.out_video] if args.out_video else [])
    check_not_an_input(outputs, {'graph folder': args.graphs, 'video': args.video}, '--out')
    if Path(args.out).is_dir():
        raise ValueError(f'--out {args.out}: is a folder; give the .json file to write')
    if args.out_video and Path(args.out_video).suffix.lower() not in VIDEO_EXTS:
        raise ValueError(f'--out-video {args.out_video}: must end in one of {VIDEO_EXTS}')
    rt = VideoDetectorRuntime(args.graphs, backend=args.backend, threads=args.threads)
    classes = rt.manifest['classes']
    frames = frames_of(args.video)
    records, writer, tmp_video, start = [], None, None, time.perf_counter()
    try:
        for i, frame in enumerate(frames):
            dets = rt.process(frame)
            records.append({'frame': i, 'is_key': rt.last.is_key, 'motion_px': rt.last.motion_px,
                            'detections': dets.to_list(classes)})
            if args.out_video:
                import cv2
                if writer is None:
                    out = Path(args.out_video)
                    tmp_video = out.with_name(f'.{out.stem}.tmp{out.suffix}')
                    writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*'mp4v'), args.fps,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(_draw(frame, dets, classes, args.score_thr))
        if writer is not None:
            writer.release()
            writer = None
            os.replace(tmp_video, args.out_video)
    finally:
        if writer is not None:
            writer.release()
        if tmp_video is not None and tmp_video.exists():
            tmp_video.unlink()
    seconds = time.perf_counter() - start
    result = {'graphs': str(args.graphs), 'video': str(args.video), 'backend': args.backend,
              'frames': records, 'fps': len(records) / seconds if seconds > 0 else None}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{out.name}.', suffix='.tmp', dir=out.parent)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(result, f)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    keys = sum(r['is_key'] for r in records)
    print(f'{len(records)} frames ({keys} key) at {result["fps"]:.1f} fps; detections in {args.out}')
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: user errors print one line ``error: ...`` and exit 1."""
    try:
        run(argv)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0
