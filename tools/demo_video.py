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

from lightflow.cli import (ArgumentParser, check_device, check_not_an_input, load_fitting_checkpoint, positive_float,
                           positive_int, run_main)
from lightflow.frames import WRITABLE_VIDEO_EXTS, iter_frames


def _build_pipeline(cfg):
    """The config's test pipeline for in-memory BGR frames (``LoadImageFromNDArray``, no annotations).

    Returns:
        (pipeline, whether it packs video samples with ``PackTrackInputs``)
    """
    from mmcv.transforms import Compose

    drop = ('LoadAnnotations', 'LoadTrackAnnotations')

    def adapt(transforms: list) -> list:
        out = []
        for t in transforms:
            t = dict(t)
            if t['type'].endswith(drop):
                continue
            if t['type'].endswith('LoadImageFromFile'):
                t = dict(type='mmdet.LoadImageFromNDArray')  # prefixed: works from any default scope
            elif 'transforms' in t:
                t['transforms'] = adapt(t['transforms'])
            out.append(t)
        return out

    pipeline = adapt(cfg.test_dataloader.dataset.pipeline)
    return Compose(pipeline), pipeline[-1]['type'].endswith('PackTrackInputs')


class BoxPainter:
    """Draws boxes and 'label score' tags with OpenCV; one colour per class."""

    def __init__(self, classes: tuple[str, ...], score_thr: float) -> None:
        self.classes = classes
        self.score_thr = score_thr
        rng = np.random.default_rng(0)
        self.colors = [tuple(int(c) for c in rng.integers(64, 256, 3)) for _ in range(max(len(classes), 1))]

    def __call__(self, img: np.ndarray, bboxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        import cv2

        img = np.ascontiguousarray(img.copy())
        thick = max(1, round(min(img.shape[:2]) / 300))
        for box, score, label in zip(bboxes, scores, labels):
            if score < self.score_thr:
                continue
            color = self.colors[int(label) % len(self.colors)]
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            cv2.rectangle(img, (x1, y1), (x2, y2), color, thick)
            name = self.classes[int(label)] if int(label) < len(self.classes) else str(int(label))
            cv2.putText(img, f'{name} {score:.2f}', (x1, max(y1 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4 * thick, color, thick, cv2.LINE_AA)
        return img


class FlowPanels:
    """The colour flow panels of ``--show-flow``: frame -> key by the detector's motion and by DIS MEDIUM."""

    def __init__(self, model) -> None:
        from mmdet_plugin.models import DISMotion

        motion = model.motion
        self.model, self.key = model, None
        # The same flow size as the detector's motion (FrameMotion.flow_size, lightflow.sizes.flow_size).
        self.dis = DISMotion('medium', flow_scale=motion.flow_scale, img_mean=motion.img_mean.flatten().tolist(),
                             img_std=motion.img_std.flatten().tolist(), bgr_to_rgb=motion.bgr_to_rgb,
                             resize_to_divisor=motion.resize_to_divisor, size_divisor=motion.size_divisor)

    def __call__(self, img, size: tuple[int, int]) -> np.ndarray:
        """(H, 2W, 3) uint8: the two panels for the frame just predicted, ``img`` its (1, 3, h, w) detector input
        (white on a key frame)."""
        import torch

        from lightflow.viz import flow_panels
        from lightflow.warp import resize_flow

        h, w = size
        if self.model.frame_records[-1].is_key or self.key is None or self.key.shape != img.shape:
            self.key = img
            flows = [torch.zeros(1, 2, h, w)] * 2
        else:
            with torch.no_grad():
                flows = [resize_flow(m(img, self.key).float().cpu(), (h, w)) for m in (self.model.motion, self.dis)]
        return flow_panels([f[0] for f in flows], [f'{type(self.model.motion).__name__} (to key)',
                                                   'DIS MEDIUM (to key)'])


def run_demo(config: str, checkpoint: str, video: str, out: str, score_thr: float = 0.3, device: str = 'cpu',
             key_frame_interval: int | None = None, fps: float | None = None,
             max_frames: int | None = None, show_flow: bool = False) -> dict:
    """Detect on every frame of ``video`` and write ``out`` (mp4). Returns ``{'frames', 'model_fps', 'fps'}``."""
    import imageio
    import torch
    from mmengine.dataset import pseudo_collate
    from tqdm import tqdm

    stream = iter_frames(video)
    frames, video_fps, length = iter(stream), stream.fps, stream.length
    try:
        first = next(frames)
    except StopIteration:
        raise ValueError(f'{video}: no frames could be read (empty video or folder without images)') from None
    model = _load_detector(config, checkpoint, device)
    if key_frame_interval is not None:
        if not hasattr(model, 'key_frame_interval'):
            raise ValueError(f'--key-frame-interval: {type(model).__name__} has no key-frame schedule')
        model.key_frame_interval = key_frame_interval
    pipeline, is_video_model = _build_pipeline(model.cfg)
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


def _load_detector(config: str, checkpoint: str, device: str):
    """The detector of ``config`` with the weights of ``checkpoint``, in eval mode on ``device``.

    ``init_detector(config, checkpoint)`` loads non-strictly: a checkpoint of another model (a Light Flow one, say)
    only logs the missing keys and the demo runs a randomly initialised detector. Here the model is built without
    weights, :func:`lightflow.cli.load_fitting_checkpoint` refuses a checkpoint that lacks any of its weights (loaded
    ``weights_only=True``), and the class names come from the checkpoint's ``meta`` as ``init_detector`` reads them,
    else from the config's test dataset (``metainfo.classes``, or its ``classes`` variable).
    """
    import warnings

    # Noise for a demo: the weights come next; no metrics are computed. (init_detector resets the warning filters,
    # so the warnings are recorded, and all others shown again.)
    expected = ('checkpoint is None', 'faster_coco_eval is not installed')
    with warnings.catch_warnings(record=True) as caught:
        from mmdet.apis import init_detector

        # cfg_options={} (not None): init_detector would otherwise look for model.backbone, absent in video models.
        model = init_detector(config, None, palette='random', device='cpu', cfg_options={})
    for w in caught:
        if not str(w.message).startswith(expected):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    ckpt = load_fitting_checkpoint(model, checkpoint, config, load=True)
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    if isinstance(meta.get('dataset_meta'), dict):
        model.dataset_meta = dict({k.lower(): v for k, v in meta['dataset_meta'].items()}, palette='random')
    elif 'CLASSES' in meta:  # mmdet 2.x checkpoints
        model.dataset_meta = dict(classes=meta['CLASSES'], palette='random')
    elif _config_classes(model.cfg):
        model.dataset_meta = dict(classes=_config_classes(model.cfg), palette='random')
    else:
        print(f'warning: neither {checkpoint} (meta.dataset_meta) nor {config} names the classes; labels are COCO '
              'class names', file=sys.stderr)
    return model.to(device).eval()


def _config_classes(cfg) -> tuple[str, ...] | None:
    """The class names a config's test dataset uses (``metainfo.classes``, else the config's ``classes``)."""
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    classes = (dataset.get('metainfo') or {}).get('classes') or cfg.get('classes')
    return tuple(classes) if classes else None


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
