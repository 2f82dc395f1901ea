"""``FlowVideoDetector``: flow-guided feature propagation (+ optional GRU aggregation) around any mmdet detector.

Light Flow paper (arXiv 1804.05830), Section 3: key frames every ``l`` frames run the backbone; other frames warp the
(aggregated) key features by the Light Flow motion ``M_{i->k}`` and run only the detection head. Which frames are key
frames is the job of a key-frame policy (``key_frame_policy.py``).
"""
from __future__ import annotations

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

from .aggregator import AggregatorState, KeyFrameAggregator
from ..utils import positive_integer
from .key_frame_policy import KeyFrameDecision, KeyFramePolicy, build_key_frame_policy
from .utils import patched_attributes

__all__ = ['FlowVideoDetector', 'FrameRecord']

Feats = tuple[Tensor, ...]
Metas = Optional[list[tuple[dict, dict]]]  # per batch item: (metainfo of the frame, metainfo of the frame it points to)

MAX_FRAME_RECORDS = 200_000


@dataclass
class FrameRecord:
    """What :meth:`FlowVideoDetector.predict` did with one test frame. ``motion_px``: the policy's motion statistic
    of the flow to the key (input pixels; None where it measured none); ``seconds``: wall time, filled in by the tool
    that timed the call (``mmdet_plugin.apis.timed_predict``); the model itself times nothing."""

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
    meta: dict                 # the key frame's metainfo (motions that need to know the frame: OracleMotion)
    state: Optional[AggregatorState]  # the aggregator's state (None without an aggregator)
    feats: Feats               # head features of the key frame per level (aggregated if an aggregator is used)


@MODELS.register_module()
class FlowVideoDetector(BaseDetector):
    """Video object detection by flow-guided feature propagation (and optional flow-guided GRU aggregation).

    Test time (``predict``, as mmtracking's DFF): one frame per call, videos in order, frames in ``frame_id`` order.
    A frame that starts a new video is a key frame; otherwise the key-frame policy (``test_cfg.key_frame_policy``, a
    :class:`~.key_frame_policy.KeyFramePolicy`; default: a key every ``key_frame_interval`` frames) decides. Key frames
    run the wrapped detector's ``extract_feat`` (and, with an aggregator, ``F̂_k' = GRU(F_k', warp(F̂_k, M_{k'->k}))``);
    other frames warp the key features: ``F_i = W(F̂_k, M_{i->k})``. The head runs on every frame. The cache holds the
    current key only (flat memory) and resets at a new video. ``frame_records`` keeps what the latest
    ``MAX_FRAME_RECORDS`` frames were (timed by the tools, see ``mmdet_plugin.apis.timed_predict``).

    Training (``loss``): inputs (N, T, 3, H, W) clips; frames 0..T-2 are key frames (in time order), T-1 the current
    frame whose ground truth gives the loss (the paper: 8 keys l apart, loss on the last frame only). With an
    aggregator the key features are aggregated sequentially with flow between consecutive keys, starting from F̂ = F
    of the first key; without one only the last key runs the backbone. T == 1 (or no motion module) trains on the
    current frame's own features. ``train_cfg.grad_key_frames`` N truncates backpropagation: the backbone of older
    keys (and the flow between them) runs without gradients, the aggregation steps keep theirs.

    Every motion call passes the frames' metainfo (``motion(img, ref_img, metas)``, as mmtracking's motions), so a
    motion that needs to know which frames it sees (``OracleMotion``) gets it; the others ignore it.

    The heads run through the wrapped detector's own ``loss``/``predict``/``_forward`` with its ``extract_feat``
    replaced by the given features, so any mmdet detector that extracts features once per call works unchanged
    (single-stage RetinaNet/FCOS, two-stage Faster R-CNN, DETR-style).

    Args:
        detector: config of any mmdet detector with ``extract_feat`` (its own train_cfg/test_cfg inside).
        motion: flow module config (``LightFlowMotion``), or None for a single-frame detector
            (``key_frame_interval`` must then be 1).
        aggregator: optional key-frame aggregator config (a :class:`~.aggregator.KeyFrameAggregator`:
            ``FlowGuidedGRU``, ``FlowGuidedWeightedAverage``); its ``max_chain`` restarts its state.
        warp: feature warping module config (``FlowWarp``).
        train_cfg: ``dict(grad_key_frames=None)``: backpropagate into the last N key frames only (None: all).
        test_cfg: ``dict(key_frame_interval=10, key_frame_policy=dict(type='fixed'))`` (the interval's default:
            ``mmdet_plugin.utils.KEY_FRAME_INTERVAL``); any policy of ``KEY_FRAME_POLICIES`` (e.g. ``dict(type='motion',
            threshold=PX)``).
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
        if self.aggregator is not None and not isinstance(self.aggregator, KeyFrameAggregator):
            raise ValueError(f'aggregator {type(self.aggregator).__name__} is not a KeyFrameAggregator')
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        if 'aggregator_max_chain' in self.test_cfg:
            raise ValueError('test_cfg.aggregator_max_chain moved to the aggregator: aggregator=dict(..., max_chain='
                             f'{self.test_cfg["aggregator_max_chain"]!r})')
        grad_keys = self.train_cfg.get('grad_key_frames')
        self.grad_key_frames = None if grad_keys is None else positive_integer('train_cfg.grad_key_frames',
                                                                               grad_keys)
        self._key: Optional[_KeyState] = None
        self.key_frame_policy = build_key_frame_policy(self.test_cfg.get('key_frame_policy'),
                                                       self.test_cfg.get('key_frame_interval'))  # None: default
        if self.aggregator is not None and self.motion is None:
            raise ValueError('an aggregator needs a motion module (flow between key frames)')
        # Bounded so that streaming an endless video keeps memory flat; summaries cover the latest frames.
        self.frame_records: deque[FrameRecord] = deque(maxlen=MAX_FRAME_RECORDS)

    # ---------------------------------------------------------------- configuration / cache
    @property
    def key_frame_policy(self) -> KeyFramePolicy:
        """The key-frame policy; set it with a policy or a ``test_cfg.key_frame_policy`` dict (built from the
        registry with the current ``key_frame_interval``, validated by its constructor). Setting resets the cache."""
        return self._key_frame_policy

    @key_frame_policy.setter
    def key_frame_policy(self, value: KeyFramePolicy | dict | None) -> None:
        current = getattr(self, '_key_frame_policy', None)
        policy = build_key_frame_policy(value, current.key_frame_interval if current is not None else None)
        if self.motion is None and policy.needs_motion:
            raise ValueError(f'{policy} needs a motion module (non-key frames warp the key frame\'s features by the '
                             'flow); without one every frame is a key: key_frame_interval=1')
        self._key_frame_policy = policy
        self.reset()

    @property
    def key_frame_interval(self) -> int:
        """The policy's key-frame interval (``test_cfg.key_frame_interval``); setting it keeps the policy's type."""
        return self._key_frame_policy.key_frame_interval

    @key_frame_interval.setter
    def key_frame_interval(self, value: int) -> None:
        self.key_frame_policy = self._key_frame_policy.replace(key_frame_interval=value)

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

    @staticmethod
    def _pairs(metas: Optional[list[list[dict]]], frames: range, refs: range) -> Metas:
        """Motion metas for frames ``frames[j]`` -> ``refs[j]`` of every clip, batch-major as ``flatten(0, 1)``."""
        if metas is None:
            return None
        return [(clip[a], clip[b]) for clip in metas for a, b in zip(frames, refs)]

    def _key_backbone(self, keys: Tensor) -> list[Tensor]:
        """Features (per level, (N, K, C, h, w)) of (N, K, 3, H, W) key frames in one batched call, or two with
        ``grad_key_frames``: the older keys without gradients."""
        n, k = keys.shape[:2]
        old = self._old_keys(k)
        parts = []
        if old:
            with torch.no_grad():
                parts.append(self._backbone(keys[:, :old].flatten(0, 1)))
        parts.append(self._backbone(keys[:, old:].flatten(0, 1)))
        return [torch.cat([p[i].unflatten(0, (n, -1)) for p in parts], dim=1) for i in range(len(parts[0]))]

    def _old_keys(self, num_keys: int) -> int:
        """How many of the oldest keys of a training clip get no gradients."""
        if self.grad_key_frames is None or not torch.is_grad_enabled():
            return 0
        return max(num_keys - self.grad_key_frames, 0)

    def _clip_features(self, inputs: Tensor, metas: Optional[list[list[dict]]] = None) -> Feats:
        """Features of the last frame of (N, T, 3, H, W) clips, propagated from the key frames 0..T-2. ``metas``:
        per clip, the T frames' metainfo (for the motion)."""
        n, t = inputs.shape[:2]
        current = inputs[:, -1]
        if t == 1 or self.motion is None:
            return self._backbone(current)  # a frame that is its own key: zero motion, features directly
        if self.aggregator is None:
            key_feats = self._backbone(inputs[:, -2])
        else:
            keys, k = inputs[:, :-1], t - 1  # (N, K, 3, H, W)
            levels = self._key_backbone(keys)
            flows = None
            if k > 1:
                # Flow k_j -> k_{j-1} for all consecutive key pairs in one motion call (two with grad_key_frames).
                old = min(max(self._old_keys(k), 1), k)  # pairs ending at a key without gradients: no gradients
                parts = []
                for lo, hi, grad in ((1, old, False), (old, k, True)):
                    if hi > lo:
                        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
                            flow = self.motion(keys[:, lo:hi].flatten(0, 1), keys[:, lo - 1:hi - 1].flatten(0, 1),
                                               self._pairs(metas, range(lo, hi), range(lo - 1, hi - 1)))
                        parts.append(flow.unflatten(0, (n, hi - lo)))
                flows = torch.cat(parts, dim=1)
            state = None
            for j in range(k):
                state = self.aggregator.step(state, tuple(f[:, j] for f in levels),
                                             lambda s, j=j: tuple(self.warp(s, flows[:, j - 1])))
            key_feats = tuple(self.aggregator.features(state))
        flow = self.motion(current, inputs[:, -2], self._pairs(metas, range(t - 1, t), range(t - 2, t - 1)))
        return tuple(self.warp(key_feats, flow))

    # ---------------------------------------------------------------- heads of the wrapped detector
    @contextmanager
    def _given_features(self, feats: Feats) -> Iterator[None]:
        """Make the wrapped detector's ``extract_feat`` return ``feats`` (its own loss/predict code path then runs
        from these features: RPN + RoI heads for two-stage detectors, the bbox head for single-stage ones)."""
        # An instance attribute shadows the method; a wrapper someone set (a profiler) comes back afterwards.
        with patched_attributes([(self.detector, 'extract_feat', lambda *args, **kwargs: feats)]):
            yield

    def _head_predict(self, images: Tensor, feats: Feats, samples: list[DetDataSample], rescale: bool) -> list:
        with self._given_features(feats):
            return self.detector.predict(images, samples, rescale=rescale)

    # ---------------------------------------------------------------- modes
    @staticmethod
    def _clip_metas(data_samples: Optional[Sequence[TrackDataSample]]) -> Optional[list[list[dict]]]:
        """Per clip, every frame's metainfo."""
        if data_samples is None:
            return None
        return [[f.metainfo for f in (s.video_data_samples if isinstance(s, TrackDataSample) else [s])]
                for s in data_samples]

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
        with self._given_features(self._clip_features(batch_inputs, self._clip_metas(batch_data_samples))):
            return self.detector.loss(batch_inputs[:, -1], samples)

    def _forward(self, batch_inputs: Tensor, batch_data_samples: Optional[Sequence[TrackDataSample]] = None):
        """Raw head outputs for the last frame of each clip (``mode='tensor'``)."""
        samples = None
        if batch_data_samples is not None:
            samples = self._frames(batch_inputs, batch_data_samples, 'tensor')
        elif batch_inputs.dim() != 5:
            raise ValueError(f'tensor: expected (N, T, 3, H, W) clips, got {tuple(batch_inputs.shape)}')
        with self._given_features(self._clip_features(batch_inputs, self._clip_metas(batch_data_samples))):
            return self.detector._forward(batch_inputs[:, -1], samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples: Sequence[TrackDataSample],
                rescale: bool = True) -> Sequence[TrackDataSample]:
        """Detect objects in one (1, 1, 3, H, W) normalised video frame (its ``TrackDataSample`` metainfo holds
        ``frame_id`` and ``video_id``), propagating features from the cached key frame. Returns the input samples,
        the frame's ``DetDataSample`` holding ``pred_instances`` (boxes in the original image size if ``rescale``)."""
        samples = self._frames(batch_inputs, batch_data_samples, 'predict')
        img, meta = batch_inputs[:, 0], samples[0].metainfo
        video_id, frame_id = self._frame_ids(batch_inputs, samples[0])
        key = self._current_key(video_id, frame_id, img)  # None: the frame starts a new video
        if key is None:
            decision = KeyFrameDecision(True)
        else:
            decision = self.key_frame_policy.decide(frame_id, key.frame_id,
                                                    lambda: self.motion(img, key.image, [(meta, key.meta)]),
                                                    tuple(img.shape[-2:]))
        if decision.is_key:
            feats = self._key_frame_features(img, meta, video_id, frame_id, key, decision.flow)
        else:
            flow = self.motion(img, key.image, [(meta, key.meta)]) if decision.flow is None else decision.flow
            feats = tuple(self.warp(key.feats, flow))
            key.last_frame_id = frame_id
        self._head_predict(img, feats, samples, rescale)
        self.frame_records.append(FrameRecord(video_id, frame_id, decision.is_key, decision.motion_px))
        return batch_data_samples

    @staticmethod
    def _frame_ids(inputs: Tensor, sample: DetDataSample) -> tuple[object, int]:
        """(video_id, frame_id) of a test frame's metainfo (``video_name`` if it has no ``video_id``)."""
        if inputs.shape[:2] != (1, 1):
            raise ValueError(f'predict takes one frame per call (N=1, T=1, frames of a video in order), got '
                             f'N={inputs.shape[0]}, T={inputs.shape[1]}; use a test batch_size of 1')
        meta = sample.metainfo
        if 'frame_id' not in meta:
            raise ValueError(f'predict: the frame metainfo has no frame_id (keys: {sorted(meta)})')
        return meta.get('video_id', meta.get('video_name')), int(meta['frame_id'])

    def _current_key(self, video_id: object, frame_id: int, img: Tensor) -> Optional[_KeyState]:
        """The cached key frame of this frame's video, or None when the frame starts a new video (another
        ``video_id``; without a video_id, a ``frame_id`` that does not move forward)."""
        key = self._key
        if key is None or video_id != key.video_id or (video_id is None and frame_id <= key.last_frame_id):
            return None
        if img.shape != key.image.shape:
            raise ValueError(f'frame size changed inside video {video_id!r}: frame {frame_id} is '
                             f'{tuple(img.shape[-2:])}, its key frame {key.frame_id} was {tuple(key.image.shape[-2:])}')
        return key

    def _key_frame_features(self, img: Tensor, meta: dict, video_id: object, frame_id: int,
                            previous: Optional[_KeyState], flow: Optional[Tensor]) -> Feats:
        """Backbone features of a new key frame (aggregated with the ``previous`` key's state, moved by ``flow`` to
        it, computed here unless the policy did), cached as the current key."""
        feats, state = self._backbone(img), None
        if self.aggregator is not None:
            def warp(prev_state: Feats) -> Feats:
                to_prev = self.motion(img, previous.image, [(meta, previous.meta)]) if flow is None else flow
                return tuple(self.warp(prev_state, to_prev))

            state = self.aggregator.step(previous.state if previous else None, feats, warp)
            feats = tuple(self.aggregator.features(state))
        self._key = _KeyState(video_id, frame_id, frame_id, img, meta, state, feats)
        return feats
