"""``FlowGuidedWeightedAverage``: the paper's aggregation baseline (Light Flow paper, Table 4: "feature aggregation of
THP (weighted average, recursive)"), the recursive form of FGFA's adaptive weighting (Zhu et al. 2017, 2018)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from .aggregator import Features, KeyFrameAggregator

__all__ = ['FlowGuidedWeightedAverage']


@MODELS.register_module()
class FlowGuidedWeightedAverage(KeyFrameAggregator):
    """Recursive flow-guided weighted average of key-frame features::

        e = E(F_k'), e~ = E(warp(F̂_k))                 (a small embedding net, shared by both)
        w~ = exp(cos(e, e~)) / (exp(1) + exp(cos(e, e~)))   per position (FGFA's softmax over {new, warped}; the
                                                          new frame's similarity to itself is 1)
        F̂_k' = (1 - w~) . F_k' + w~ . warp(F̂_k)

    The state is the aggregated feature map itself (head features = state). The weight of the history is at most
    1/2 and falls where the warped history stops looking like the new frame (occlusion, a wrong flow).

    Args:
        in_channels: channels of the detector's features (every level).
        embed_channels: channels of the embedding (FGFA: 1x1 -> 3x3 -> 1x1 convs; here 1x1 -> ReLU -> 3x3).
        max_chain: restart after this many steps (None: never within a video).
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: int, embed_channels: int = 32, max_chain: Optional[int] = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(max_chain=max_chain, init_cfg=init_cfg)
        if in_channels <= 0 or embed_channels <= 0:
            raise ValueError(f'in_channels and embed_channels must be > 0, got {in_channels} and {embed_channels}')
        self.in_channels = in_channels
        self.embed = nn.Sequential(nn.Conv2d(in_channels, embed_channels, 1), nn.ReLU(inplace=True),
                                   nn.Conv2d(embed_channels, embed_channels, 3, padding=1))

    @staticmethod
    def _levels(feats: Features) -> tuple[Tensor, ...]:
        return (feats,) if isinstance(feats, Tensor) else tuple(feats)

    def init_state(self, feats: Features) -> Features:
        """A chain's first key frame: its own features."""
        return feats

    def history_weight(self, feats: Tensor, warped: Tensor) -> Tensor:
        """(N, C, h, w) new and warped features -> (N, 1, h, w) weight of the warped history, in (0.12, 0.5]."""
        cos = (F.normalize(self.embed(feats), dim=1) * F.normalize(self.embed(warped), dim=1)).sum(1, keepdim=True)
        return torch.sigmoid(cos - 1.0)  # exp(c) / (exp(1) + exp(c))

    def forward(self, feats: Features, warped_state: Features) -> Features:
        """One step per level: (N, C, h, w) new key features and warped state -> the new state, same structure."""
        xs, hs = self._levels(feats), self._levels(warped_state)
        if len(xs) != len(hs):
            raise ValueError(f'feats has {len(xs)} levels but warped_state has {len(hs)}')
        out = []
        for x, h in zip(xs, hs):
            if x.shape != h.shape:
                raise ValueError(f'feats and warped_state must have one shape, got {tuple(x.shape)} and '
                                 f'{tuple(h.shape)}')
            w = self.history_weight(x, h)
            out.append((1 - w) * x + w * h)
        return out[0] if isinstance(feats, Tensor) else tuple(out)

    def output(self, state: Features) -> Features:
        """The state is the feature map: returned unchanged."""
        return state
