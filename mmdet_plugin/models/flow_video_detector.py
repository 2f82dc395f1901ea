"""``FlowVideoDetector``: flow-guided feature propagation (+ optional GRU aggregation) around any mmdet detector.

Light Flow paper (arXiv 1804.05830), Section 3: key frames every ``l`` frames run the backbone; other frames warp the
(aggregated) key features by the Light Flow motion ``M_{i->k}`` and run only the detection head.
"""
from __future__ import annotations

import math
import numbers
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.models.utils import samplelist_boxtype2tensor
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from torch import Tensor

__all__ = ['FlowVideoDetector', 'FrameRecord', 'summarize_frame_records', 'check_key_frame_policy']

Feats = tuple[Tensor, ...]


MAX_FRAME_RECORDS = 200_000

KEY_FRAME_POLICIES = ('fixed', 'motion')
MOTION_STATISTICS = ('mean', 'p90', 'p90_relative')
_POLICY_KEYS = {'fixed': {'type'}, 'motion': {'type', 'statistic', 'threshold', 'max_interval', 'min_interval'}}


@dataclass
class FrameRecord:
    """What :meth:`FlowVideoDetector.predict` did with one test frame.

    ``motion_px``: with the ``'motion'`` key-frame policy, its statistic of the flow magnitude from this frame to the
    key frame, in pixels of the input frame; None where the policy computed no flow (a video's first frame, a key
    forced by ``max_interval``, the ``'fixed'`` policy). ``seconds``: the frame's wall time, filled in by the tool
    that timed the call (``runner_utils.timed_predict``); the model itself does not time anything.
    """

    video_id: object
    frame_id: int
    is_key: bool
    motion_px: Optional[float] = None
    seconds: Optional[float] = None


@dataclass
class _KeyState:
    """The only test-time cache (flat memory): the current key frame of the current video."""

    video_id: object
    frame_id: int              # the key frame's id
    last_frame_id: int         # the latest frame seen in this video
    image: Tensor              # (1, 3, H, W) normalised key image, for the flow to it
    state: Optional[Feats]     # aggregator state per level (None without an aggregator)
    feats: Feats               # head features of the key frame per level (aggregated if an aggregator is used)


@contextmanager
def patched_attributes(patches: Sequence[tuple[object, str, object]]) -> Iterator[None]:
    """Set instance attributes ``(object, name, value)`` for the block, then restore what each object held before
    (back to the class's method where it held nothing)."""
    missing = object()
    saved = [(obj, attr, vars(obj).get(attr, missing)) for obj, attr, _ in patches]
    for obj, attr, value in patches:
        setattr(obj, attr, value)
    try:
        yield
    finally:
        for obj, attr, old in reversed(saved):
            if old is missing:
                vars(obj).pop(attr, None)
            else:
                setattr(obj, attr, old)


def summarize_frame_records(records: Sequence[FrameRecord]) -> dict:
    """Frames, fps and mean latency (ms) over all / key / non-key frames of a run (the timed records), and the mean
    ``motion_px`` over the frames that have one (NaN if none)."""
    def mean_ms(rs):
        return 1000.0 * sum(r.seconds for r in rs) / len(rs) if rs else float('nan')

    timed = [r for r in records if r.seconds is not None]
    keys = [r for r in timed if r.is_key]
    others = [r for r in timed if not r.is_key]
    total = sum(r.seconds for r in timed)
    motion = [r.motion_px for r in records if r.motion_px is not None]
    return dict(frames=len(timed), key_frames=len(keys), fps=len(timed) / total if total > 0 else float('nan'),
                mean_ms=mean_ms(timed), key_ms=mean_ms(keys), nonkey_ms=mean_ms(others),
                mean_motion_px=sum(motion) / len(motion) if motion else float('nan'))


def check_key_frame_policy(policy: Optional[dict]) -> dict:
    """Validate a ``test_cfg.key_frame_policy`` and fill its defaults; ``ValueError`` naming the bad field.

    ``dict(type='fixed')`` (the default, also for None): a key frame every ``key_frame_interval`` frames.
    ``dict(type='motion', threshold=PX, statistic='mean', max_interval=None, min_interval=1)``: a frame becomes a key
    frame when ``statistic`` (``'mean'``; ``'p90'``, the 90th percentile; ``'p90_relative'``, the 90th percentile of
    the flow minus its median, i.e. motion relative to the camera's) of its flow magnitude to the key, in
    pixels of the input frame, exceeds ``threshold`` and at least ``min_interval`` frames passed since the key; and
    always after ``max_interval`` frames (None: ``key_frame_interval``, resolved when used).
    """
    name = 'test_cfg.key_frame_policy'
    if policy is None:
        policy = dict(type='fixed')
    if not isinstance(policy, dict):
        raise ValueError(f'{name} must be a dict such as dict(type=\'fixed\'), got {policy!r}')
    policy = dict(policy)
    if 'type' not in policy:
        raise ValueError(f'{name}.type is required, one of {KEY_FRAME_POLICIES}; got {policy!r}')
    kind = policy['type']
    if kind not in KEY_FRAME_POLICIES:
        raise ValueError(f'{name}.type must be one of {KEY_FRAME_POLICIES}, got {kind!r}')
    unknown = sorted(set(policy) - _POLICY_KEYS[kind])
    if unknown:
        raise ValueError(f'{name} has unknown key(s) {unknown} for type={kind!r}; allowed: '
                         f'{sorted(_POLICY_KEYS[kind])}')
    if kind == 'fixed':
        return dict(type='fixed')

    def integer(field: str, value) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f'{name}.{field} must be an integer >= 1, got {value!r}')
        return int(value)

    statistic = policy.get('statistic', 'mean')
    if statistic not in MOTION_STATISTICS:
        raise ValueError(f'{name}.statistic must be one of {MOTION_STATISTICS}, got {statistic!r}')
    if 'threshold' not in policy:
        raise ValueError(f'{name}.threshold (pixels of the input frame) is required for type=\'motion\'')
    threshold = policy['threshold']
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold) \
            or threshold <= 0:
        raise ValueError(f'{name}.threshold must be > 0, got {threshold!r}')
    max_interval = policy.get('max_interval')
    if max_interval is not None:
        max_interval = integer('max_interval', max_interval)
    min_interval = integer('min_interval', policy.get('min_interval', 1))
    if max_interval is not None and min_interval > max_interval:
        raise ValueError(f'{name}.min_interval must be <= max_interval ({max_interval}), got {min_interval}')
    return dict(type='motion', statistic=statistic, threshold=float(threshold), max_interval=max_interval,
                min_interval=min_interval)


def motion_statistic(flow: Tensor, frame_size: tuple[int, int], statistic: str) -> float:
    """``statistic`` (``'mean'`` / ``'p90'`` / ``'p90_relative'``) of the magnitude of a (1, 2, h, w) flow in pixels
    of its own grid, converted to pixels of a ``frame_size`` (H, W) frame (u scaled by W / w, v by H / h, as
    :func:`lightflow.resize_flow` does). ``'p90_relative'`` first subtracts the per-axis median flow (the camera's
    motion, which the flow propagates well), so it measures objects moving against the scene."""
    h, w = flow.shape[-2:]
    scale = flow.new_tensor([frame_size[1] / w, frame_size[0] / h]).view(1, 2, 1, 1)
    flow = flow.float() * scale
    if statistic == 'p90_relative':
        flow = flow - flow.flatten(2).median(dim=2).values[..., None, None]
    magnitude = flow.norm(dim=1).flatten()
    if statistic == 'mean':
        return float(magnitude.mean())
    return float(torch.quantile(magnitude, 0.9))


@MODELS.register_module()
class FlowVideoDetector(BaseDetector):
    """Video object detection by flow-guided feature propagation (and optional flow-guided GRU aggregation).

    Test time (``predict``): one frame per call, videos in order, frames in ``frame_id`` order. With the default
    ``'fixed'`` key-frame policy a frame is a key frame iff it starts a new video (``video_id`` changed) or
    ``frame_id % key_frame_interval == 0``. With the adaptive ``'motion'`` policy (not in the paper) a frame is a key
    frame iff it starts a new video, ``max_interval`` frames passed since the key, or the flow to the key (computed
    anyway to warp) moves more than ``threshold`` input pixels (its mean or 90th percentile magnitude) and at least
    ``min_interval`` frames passed; the flow of such a promoted frame is wasted (it feeds the aggregator, if any).
    Key frames run the
    wrapped detector's ``extract_feat`` (and, with an aggregator, ``F̂_k' = GRU(F_k', warp(F̂_k, M_{k'->k}))``);
    other frames warp the key features: ``F_i = W(F̂_k, M_{i->k})``. The head runs on every frame. The cache holds
    the current key only (flat memory) and resets at a new video. ``frame_records`` keeps which of the latest
    ``MAX_FRAME_RECORDS`` frames were keys (timed by the tools, see ``runner_utils.timed_predict``).

    Training (``loss``): inputs (N, T, 3, H, W) clips; frames 0..T-2 are key frames (in time order), T-1 the current
    frame whose ground truth gives the loss. With an aggregator the key features are aggregated sequentially with flow
    between consecutive keys, starting from F̂ = F of the first key; without one only the last key runs the backbone.
    T == 1 (or no motion module) trains on the current frame's own features.

    The heads run through the wrapped detector's own ``loss``/``predict``/``_forward`` with its ``extract_feat``
    replaced by the given features, so any mmdet detector that extracts features once per call works unchanged
    (single-stage RetinaNet/FCOS, two-stage Faster R-CNN, DETR-style).

    Args:
        detector: config of any mmdet detector with ``extract_feat`` (its own train_cfg/test_cfg inside).
        motion: flow module config (``LightFlowMotion``), or None for a single-frame detector
            (``key_frame_interval`` must then be 1).
        aggregator: optional ``FlowGuidedGRU`` config.
        warp: feature warping module config (``FlowWarp``).
        train_cfg: unused, kept for mmdet's config layout.
        test_cfg: ``dict(key_frame_interval=10, key_frame_policy=dict(type='fixed'))``; see
            :func:`check_key_frame_policy` for ``dict(type='motion', threshold=PX, ...)``.
        data_preprocessor: usually ``dict(type='TrackDataPreprocessor', ...)``.
        init_cfg: mmengine init config.
    """

    def __init__(self, detector: dict, motion: dict | None = None, aggregator: dict | None = None,
                 warp: dict | None = None, train_cfg: dict | None = None, test_cfg: dict | None = None,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.detector = MODELS.build(detector)
        if not callable(getattr(self.detector, 'extract_feat', None)):
            raise ValueError(f'detector {type(self.detector).__name__} (type={detector.get("type")!r}) has no '
                             'extract_feat(); FlowVideoDetector needs a feature extractor to propagate')
        self.motion = MODELS.build(motion) if motion is not None else None
        self.aggregator = MODELS.build(aggregator) if aggregator is not None else None
        self.warp = MODELS.build(warp if warp is not None else dict(type='FlowWarp'))
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        self._key_frame_policy = dict(type='fixed')
        self.key_frame_interval = int(self.test_cfg.get('key_frame_interval', 10))  # validated by the setters
        self.key_frame_policy = self.test_cfg.get('key_frame_policy')
        if self.aggregator is not None and self.motion is None:
            raise ValueError('an aggregator needs a motion module (flow between key frames)')
        # Bounded so that streaming an endless video keeps memory flat; summaries cover the latest frames.
        self.frame_records: deque[FrameRecord] = deque(maxlen=MAX_FRAME_RECORDS)
        self._key: Optional[_KeyState] = None

    # ---------------------------------------------------------------- configuration / cache
    @property
    def key_frame_interval(self) -> int:
        return self._key_frame_interval

    @key_frame_interval.setter
    def key_frame_interval(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f'key_frame_interval must be >= 1, got {value}')
        if self.motion is None and int(value) != 1:
            raise ValueError(f'key_frame_interval={value} needs a motion module; without one every frame is a key')
        if self._key_frame_policy['type'] == 'motion' and self._key_frame_policy['max_interval'] is None \
                and self._key_frame_policy['min_interval'] > int(value):
            raise ValueError(f'key_frame_interval={value} is the max_interval of the motion key-frame policy: '
                             f'test_cfg.key_frame_policy.min_interval must be <= it, got '
                             f'{self._key_frame_policy["min_interval"]}')
        self._key_frame_interval = int(value)
        self.test_cfg['key_frame_interval'] = int(value)
        self.reset()

    @property
    def key_frame_policy(self) -> dict:
        """The key-frame policy with its defaults filled (``max_interval`` None: ``key_frame_interval``)."""
        return dict(self._key_frame_policy)

    @key_frame_policy.setter
    def key_frame_policy(self, value: Optional[dict]) -> None:
        policy = check_key_frame_policy(value)
        if policy['type'] == 'motion':
            if self.motion is None:
                raise ValueError('test_cfg.key_frame_policy type=\'motion\' needs a motion module (the flow to the '
                                 'key frame decides)')
            if policy['max_interval'] is None and policy['min_interval'] > self.key_frame_interval:
                raise ValueError(f'test_cfg.key_frame_policy.min_interval must be <= max_interval (default: '
                                 f'key_frame_interval={self.key_frame_interval}), got {policy["min_interval"]}')
        self._key_frame_policy = policy
        self.test_cfg['key_frame_policy'] = dict(policy)
        self.reset()

    def reset(self) -> None:
        """Forget the cached key frame (the next frame becomes a key)."""
        self._key = None

    def train(self, mode: bool = True) -> 'FlowVideoDetector':
        # Weights change between evaluations: never reuse a key cached before training.
        self.reset()
        return super().train(mode)

    @property
    def with_neck(self) -> bool:
        return getattr(self.detector, 'with_neck', False)

    # ---------------------------------------------------------------- features
    def extract_feat(self, batch_inputs: Tensor) -> Feats:
        """Frames (N, 3, H, W) -> the wrapped detector's features; clips (N, T, 3, H, W) -> current-frame features."""
        if batch_inputs.dim() == 5:
            return self._clip_features(batch_inputs)
        return tuple(self.detector.extract_feat(batch_inputs))

    def _backbone(self, frames: Tensor) -> Feats:
        return tuple(self.detector.extract_feat(frames))

    def _aggregate(self, state: Optional[Feats], feats: Feats, key_img: Optional[Tensor], img: Tensor,
                   flow: Optional[Tensor] = None) -> Feats:
        """New aggregator state of key frame ``img``: GRU(F, warp(previous state, flow img -> key_img)); ``flow``:
        that flow if already computed."""
        if state is None:
            return tuple(self.aggregator.init_state(feats))
        warped = self.warp(state, self.motion(img, key_img) if flow is None else flow)
        return tuple(self.aggregator(feats, warped))

    def _clip_features(self, inputs: Tensor) -> Feats:
        """Features of the last frame of (N, T, 3, H, W) clips, propagated from the key frames 0..T-2."""
        n, t = inputs.shape[:2]
        current = inputs[:, -1]
        if t == 1 or self.motion is None:
            return self._backbone(current)  # a frame that is its own key: zero motion, features directly
        if self.aggregator is None:
            key_feats = self._backbone(inputs[:, -2])
        else:
            keys = inputs[:, :-1]  # (N, T-1, 3, H, W)
            # One batched backbone call over all N * (T-1) key frames, then split back per time step.
            levels = [f.unflatten(0, (n, t - 1)) for f in self._backbone(keys.flatten(0, 1))]
            state = tuple(self.aggregator.init_state(tuple(f[:, 0] for f in levels)))
            if t > 2:
                # Flow k_j -> k_{j-1} for all consecutive key pairs in one motion call.
                flows = self.motion(keys[:, 1:].flatten(0, 1), keys[:, :-1].flatten(0, 1)).unflatten(0, (n, t - 2))
                for j in range(1, t - 1):
                    warped = self.warp(state, flows[:, j - 1])
                    state = tuple(self.aggregator(tuple(f[:, j] for f in levels), warped))
            key_feats = tuple(self.aggregator.output(state))
        return tuple(self.warp(key_feats, self.motion(current, inputs[:, -2])))

    # ---------------------------------------------------------------- heads of the wrapped detector
    @contextmanager
    def _given_features(self, feats: Feats) -> Iterator[None]:
        """Make the wrapped detector's ``extract_feat`` return ``feats`` (its own loss/predict code path then runs
        from these features: RPN + RoI heads for two-stage detectors, the bbox head for single-stage ones)."""
        # An instance attribute shadows the method; a wrapper someone set (a profiler) comes back afterwards.
        with patched_attributes([(self.detector, 'extract_feat', lambda *args, **kwargs: feats)]):
            yield

    def _head_loss(self, images: Tensor, feats: Feats, samples: list[DetDataSample]) -> dict:
        with self._given_features(feats):
            return self.detector.loss(images, samples)

    def _head_predict(self, images: Tensor, feats: Feats, samples: list[DetDataSample], rescale: bool) -> list:
        with self._given_features(feats):
            return self.detector.predict(images, samples, rescale=rescale)

    # ---------------------------------------------------------------- modes
    @staticmethod
    def _frames(inputs: Tensor, data_samples: Sequence[TrackDataSample], mode: str) -> list[DetDataSample]:
        if inputs.dim() != 5:
            raise ValueError(f'{mode}: expected (N, T, 3, H, W) clips from TrackDataPreprocessor, got '
                             f'{tuple(inputs.shape)}')
        if len(data_samples) != inputs.shape[0]:
            raise ValueError(f'{mode}: {inputs.shape[0]} clips but {len(data_samples)} data samples')
        current = []
        for sample in data_samples:
            frames = sample.video_data_samples if isinstance(sample, TrackDataSample) else [sample]
            if len(frames) != inputs.shape[1]:
                raise ValueError(f'{mode}: clips have {inputs.shape[1]} frames but a sample has {len(frames)}')
            current.append(frames[-1])
        return current

    def loss(self, batch_inputs: Tensor, batch_data_samples: Sequence[TrackDataSample]) -> dict:
        """Detection loss on the last frame of each (N, T, 3, H, W) clip, from features propagated from its keys."""
        samples = self._frames(batch_inputs, batch_data_samples, 'loss')
        samplelist_boxtype2tensor(samples)  # TrackDataPreprocessor leaves boxes as BaseBoxes; heads want tensors
        return self._head_loss(batch_inputs[:, -1], self._clip_features(batch_inputs), samples)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: Optional[Sequence[TrackDataSample]] = None):
        """Raw head outputs for the last frame of each clip (``mode='tensor'``)."""
        samples = None
        if batch_data_samples is not None:
            samples = self._frames(batch_inputs, batch_data_samples, 'tensor')
        elif batch_inputs.dim() != 5:
            raise ValueError(f'tensor: expected (N, T, 3, H, W) clips, got {tuple(batch_inputs.shape)}')
        with self._given_features(self._clip_features(batch_inputs)):
            return self.detector._forward(batch_inputs[:, -1], samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: Sequence[TrackDataSample],
                rescale: bool = True) -> Sequence[TrackDataSample]:
        """Detect objects in one video frame, propagating features from the cached key frame.

        Args:
            batch_inputs: (1, 1, 3, H, W) normalised frame.
            batch_data_samples: one ``TrackDataSample`` holding the frame's ``DetDataSample`` (metainfo ``frame_id``
                and ``video_id``).
            rescale: rescale boxes to the original image size.

        Returns:
            The input samples, their frame's ``DetDataSample`` holding ``pred_instances``.
        """
        samples = self._frames(batch_inputs, batch_data_samples, 'predict')
        if batch_inputs.shape[:2] != (1, 1):
            raise ValueError(f'predict takes one frame per call (N=1, T=1, frames of a video in order), got '
                             f'N={batch_inputs.shape[0]}, T={batch_inputs.shape[1]}; use a test batch_size of 1')
        sample = samples[0]
        img = batch_inputs[:, 0]
        meta = sample.metainfo
        if 'frame_id' not in meta:
            raise ValueError(f'predict: the frame metainfo has no frame_id (keys: {sorted(meta)})')
        frame_id = int(meta['frame_id'])
        video_id = meta.get('video_id', meta.get('video_name'))
        key = self._key
        # Without a video_id, a frame_id that does not move forward starts a new video.
        new_video = key is None or video_id != key.video_id or (video_id is None and frame_id <= key.last_frame_id)
        if not new_video and img.shape != key.image.shape:
            raise ValueError(f'frame size changed inside video {video_id!r}: frame {frame_id} is '
                             f'{tuple(img.shape[-2:])}, its key frame {key.frame_id} was {tuple(key.image.shape[-2:])}')
        flow, motion_px = None, None
        policy = self._key_frame_policy
        if policy['type'] == 'fixed':
            is_key = new_video or frame_id % self.key_frame_interval == 0
        elif new_video:
            is_key = True
        else:
            since_key = frame_id - key.frame_id
            max_interval = policy['max_interval'] or self.key_frame_interval
            is_key = since_key >= max_interval
            if not is_key:
                # The flow a non-key frame needs anyway decides; a promoted frame wastes it (the policy's cost).
                flow = self.motion(img, key.image)
                motion_px = motion_statistic(flow, tuple(img.shape[-2:]), policy['statistic'])
                is_key = motion_px > policy['threshold'] and since_key >= policy['min_interval']
        if is_key:
            feats = self._backbone(img)
            state = None
            if self.aggregator is not None:
                prev = None if new_video else key
                state = self._aggregate(prev.state if prev else None, feats, prev.image if prev else None, img, flow)
                feats = tuple(self.aggregator.output(state))
            self._key = _KeyState(video_id, frame_id, frame_id, img, state, feats)
        else:
            feats = tuple(self.warp(key.feats, self.motion(img, key.image) if flow is None else flow))
            key.last_frame_id = frame_id
        self._head_predict(img, feats, samples, rescale)
        self.frame_records.append(FrameRecord(video_id, frame_id, is_key, motion_px))
        return batch_data_samples
