"""The parts of ``tools/demo_video.py`` that are not command-line plumbing: load a trained detector for a demo, adapt
its test pipeline to in-memory frames, draw its boxes and the colour flow panels of ``--show-flow``."""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from lightflow.cli import load_fitting_checkpoint

__all__ = ['init_video_detector', 'config_classes', 'build_frame_pipeline', 'BoxPainter', 'FlowPanels']


def build_frame_pipeline(cfg: Any) -> tuple[Any, bool]:
    """The config's test pipeline for in-memory BGR frames (``LoadImageFromNDArray``, no annotations).

    Args:
        cfg: an mmengine config with ``test_dataloader.dataset.pipeline``.

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
        """A copy of ``img`` (H, W, 3) uint8 with the (N, 4) x1y1x2y2 ``bboxes`` scoring at least ``score_thr``
        drawn, each tagged with its class name (``labels`` (N,)) and score (``scores`` (N,))."""
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

    def __init__(self, model: Any) -> None:
        from .models import DISMotion

        motion = model.motion
        self.model, self.key = model, None
        # The same flow size as the detector's motion (FrameMotion.flow_size, lightflow.sizes.flow_size).
        self.dis = DISMotion('medium', flow_scale=motion.flow_scale, img_mean=motion.img_mean.flatten().tolist(),
                             img_std=motion.img_std.flatten().tolist(), bgr_to_rgb=motion.bgr_to_rgb,
                             resize_to_divisor=motion.resize_to_divisor, size_divisor=motion.size_divisor)

    def __call__(self, img: Any, size: tuple[int, int]) -> np.ndarray:
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


def init_video_detector(config: str, checkpoint: str, device: str) -> Any:
    """The detector of ``config`` with the weights of ``checkpoint``, in eval mode on ``device``.

    ``init_detector(config, checkpoint)`` loads non-strictly: a checkpoint of another model (a Light Flow one, say)
    only logs the missing keys and the demo runs a randomly initialised detector. Here the model is built without
    weights, :func:`lightflow.cli.load_fitting_checkpoint` refuses a checkpoint that lacks any of its weights (loaded
    ``weights_only=True``), and the class names come from the checkpoint's ``meta`` as ``init_detector`` reads them,
    else from the config's test dataset (``metainfo.classes``, or its ``classes`` variable).

    Args:
        config: the detector's config file (a single-image mmdet detector or a video detector of this plugin).
        checkpoint: its weights.
        device: ``cpu``, ``cuda`` or ``cuda:N``.

    Returns:
        the model (its ``cfg`` and ``dataset_meta`` set, as ``mmdet.apis.init_detector`` sets them).
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
    elif config_classes(model.cfg):
        model.dataset_meta = dict(classes=config_classes(model.cfg), palette='random')
    else:
        print(f'warning: neither {checkpoint} (meta.dataset_meta) nor {config} names the classes; labels are COCO '
              'class names', file=sys.stderr)
    return model.to(device).eval()


def config_classes(cfg: Any) -> tuple[str, ...] | None:
    """The class names a config's test dataset uses (``metainfo.classes``, else the config's ``classes``)."""
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    classes = (dataset.get('metainfo') or {}).get('classes') or cfg.get('classes')
    return tuple(classes) if classes else None
