"""Key-frame policies of :class:`FlowVideoDetector`: which test frames run the backbone (key frames) and which warp the
key frame's features by the flow (non-key frames).

A policy is a small dataclass registered in :data:`KEY_FRAME_POLICIES`; its constructor validates every field (the
one place a policy is checked) and :meth:`KeyFramePolicy.decide` makes the choice for one frame. Adding a policy is one
class::

    @KEY_FRAME_POLICIES.register_module()
    @dataclass(frozen=True, kw_only=True)
    class EveryOther(KeyFramePolicy):
        def decide(self, frame_id, key_frame_id, flow_to_key, frame_size):
            return KeyFrameDecision(frame_id % 2 == 0)

and a config picks it: ``test_cfg=dict(key_frame_policy=dict(type='EveryOther'))``.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional, Union

import torch
from mmengine.registry import Registry
from torch import Tensor

from ..utils import KEY_FRAME_INTERVAL, positive_integer

__all__ = ['KEY_FRAME_POLICIES', 'KeyFramePolicy', 'KeyFrameDecision', 'FixedInterval', 'MotionThreshold',
           'build_key_frame_policy', 'motion_statistic', 'policy_name']

KEY_FRAME_POLICIES = Registry('key-frame policy')

_FIELD = 'test_cfg.key_frame_policy'


@dataclass
class KeyFrameDecision:
    """What a policy decided for one frame: ``is_key``; ``motion_px``, the motion statistic it measured (None if it
    measured none); ``flow``, the flow to the key it computed for that (a non-key frame reuses it to warp)."""

    is_key: bool
    motion_px: Optional[float] = None
    flow: Optional[Tensor] = None


@dataclass(frozen=True, kw_only=True)
class KeyFramePolicy:
    """Base class: a key-frame policy with the detector's key-frame interval (``test_cfg.key_frame_interval``).

    A video's first frame is always a key frame (the detector decides that before asking the policy).
    """

    key_frame_interval: int = KEY_FRAME_INTERVAL
    # Whether the policy can leave frames non-key (then the detector needs a motion module to warp).
    needs_motion: ClassVar[bool] = True

    def __post_init__(self) -> None:
        positive_integer('test_cfg.key_frame_interval', self.key_frame_interval)

    def decide(self, frame_id: int, key_frame_id: int, flow_to_key: Callable[[], Tensor],
               frame_size: tuple[int, int]) -> KeyFrameDecision:
        """Decide whether frame ``frame_id`` of the current video becomes a key frame.

        Args:
            frame_id: the frame's id.
            key_frame_id: the id of the current key frame of the same video (< ``frame_id``).
            flow_to_key: computes the (1, 2, h, w) flow from the frame to the key frame, in pixels of its own grid
                (call it only if the decision needs it: it costs a flow network run).
            frame_size: (H, W) of the input frame, for converting the flow to input pixels.
        """
        raise NotImplementedError

    def replace(self, **changes: Any) -> 'KeyFramePolicy':
        """A copy with ``changes`` applied, validated again (e.g. ``policy.replace(key_frame_interval=5)``)."""
        return dataclasses.replace(self, **changes)


@KEY_FRAME_POLICIES.register_module(name='fixed')
@dataclass(frozen=True, kw_only=True)
class FixedInterval(KeyFramePolicy):
    """The paper's schedule: a key frame every ``key_frame_interval`` frames (``frame_id % l == 0``)."""

    @property
    def needs_motion(self) -> bool:  # type: ignore[override]
        return self.key_frame_interval != 1

    def decide(self, frame_id: int, key_frame_id: int, flow_to_key: Callable[[], Tensor],
               frame_size: tuple[int, int]) -> KeyFrameDecision:
        return KeyFrameDecision(frame_id % self.key_frame_interval == 0)


@KEY_FRAME_POLICIES.register_module(name='motion')
@dataclass(frozen=True, kw_only=True)
class MotionThreshold(KeyFramePolicy):
    """Adaptive key frames (not in the paper): a frame becomes a key frame when ``statistic`` of its flow magnitude to
    the key, in pixels of the input frame, exceeds ``threshold`` and at least ``min_interval`` frames passed since the
    key; and always after ``max_interval`` frames (None: ``key_frame_interval``). The flow that decides is the one a
    non-key frame needs anyway to warp; a promoted frame wastes it (the policy's cost).

    ``statistic``: ``'mean'``; ``'p90'``, the 90th percentile; ``'p90_relative'``, the 90th percentile of the flow
    minus its median, i.e. motion relative to the camera's.
    """

    STATISTICS: ClassVar[tuple[str, ...]] = ('mean', 'p90', 'p90_relative')

    threshold: Optional[float] = None
    statistic: str = 'mean'
    max_interval: Optional[int] = None
    min_interval: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.statistic not in self.STATISTICS:
            raise ValueError(f'{_FIELD}.statistic must be one of {self.STATISTICS}, got {self.statistic!r}')
        threshold = self.threshold
        if threshold is None:
            raise ValueError(f"{_FIELD}.threshold (pixels of the input frame) is required for type='motion'")
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold) \
                or threshold <= 0:
            raise ValueError(f'{_FIELD}.threshold must be > 0, got {threshold!r}')
        object.__setattr__(self, 'threshold', float(threshold))
        if self.max_interval is not None:
            positive_integer(f'{_FIELD}.max_interval', self.max_interval)
        positive_integer(f'{_FIELD}.min_interval', self.min_interval)
        if self.max_interval is not None and self.min_interval > self.max_interval:
            raise ValueError(f'{_FIELD}.min_interval must be <= max_interval ({self.max_interval}), got '
                             f'{self.min_interval}')
        if self.max_interval is None and self.min_interval > self.key_frame_interval:
            raise ValueError(f'{_FIELD}.min_interval must be <= max_interval (default: key_frame_interval='
                             f'{self.key_frame_interval}), got {self.min_interval}')

    def decide(self, frame_id: int, key_frame_id: int, flow_to_key: Callable[[], Tensor],
               frame_size: tuple[int, int]) -> KeyFrameDecision:
        since_key = frame_id - key_frame_id
        if since_key >= (self.max_interval or self.key_frame_interval):
            return KeyFrameDecision(True)
        flow = flow_to_key()
        motion_px = motion_statistic(flow, frame_size, self.statistic)
        return KeyFrameDecision(motion_px > self.threshold and since_key >= self.min_interval, motion_px, flow)


def build_key_frame_policy(cfg: Union[dict, KeyFramePolicy, None], key_frame_interval: Any = None) -> KeyFramePolicy:
    """The policy of a ``test_cfg.key_frame_policy`` dict (None: ``dict(type='fixed')``), from the registry.

    ``key_frame_interval`` (``test_cfg.key_frame_interval``) is passed to the policy unless the dict sets it; a
    policy object is returned as it is. ``ValueError`` naming the field for a bad type or unknown keys; the policy's
    constructor checks the values.
    """
    if isinstance(cfg, KeyFramePolicy):
        return cfg
    if cfg is None:
        cfg = dict(type='fixed')
    if not isinstance(cfg, dict):
        raise ValueError(f"{_FIELD} must be a dict such as dict(type='fixed'), got {cfg!r}")
    cfg = dict(cfg)
    names = tuple(KEY_FRAME_POLICIES.module_dict)
    if 'type' not in cfg:
        raise ValueError(f'{_FIELD}.type is required, one of {names}; got {cfg!r}')
    kind = cfg.pop('type')
    cls = KEY_FRAME_POLICIES.get(kind) if isinstance(kind, str) else kind if inspect.isclass(kind) else None
    if cls is None:
        raise ValueError(f'{_FIELD}.type must be one of {names}, got {kind!r}')
    allowed = [name for name in inspect.signature(cls).parameters if name != 'key_frame_interval']
    unknown = sorted(set(cfg) - set(allowed) - {'key_frame_interval'})
    if unknown:
        raise ValueError(f'{_FIELD} has unknown key(s) {unknown} for type={kind!r}; allowed: {sorted(allowed)}')
    if key_frame_interval is not None:
        cfg.setdefault('key_frame_interval', key_frame_interval)
    return cls(**cfg)


def policy_name(policy: KeyFramePolicy) -> str:
    """The registered name of ``policy``'s class (``'fixed'`` for :class:`FixedInterval`): the ``type`` a config
    gives; ``ValueError`` for an unregistered class."""
    for name, cls in KEY_FRAME_POLICIES.module_dict.items():
        if cls is type(policy):
            return name
    raise ValueError(f'key-frame policy {type(policy).__name__} is not registered in KEY_FRAME_POLICIES')


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
