"""``FlowGuidedGRU``: the flow-guided convolutional GRU of Light Flow's paper (arXiv 1804.05830, Section 3.2, Eq. 6)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

__all__ = ['AggregatorState', 'KeyFrameAggregator', 'ConvGRUCell', 'FlowGuidedGRU']

Features = Union[Tensor, Sequence[Tensor]]


CANDIDATE_ACTS = ('relu', 'identity')


@dataclass
class AggregatorState:
    """What an aggregator carries from key frame to key frame: its state per level and the steps since it last
    started from a key frame's own features."""

    state: Features
    steps: int = 0


class KeyFrameAggregator(BaseModule):
    """Base of the key-frame aggregators: recursive over key frames, ``F̂_k' = A(F_k', warp(F̂_k))``.

    It owns its state and its restart: :meth:`step` starts from the new key's own features at a video's first key,
    and again after ``max_chain`` steps when that is set (None: one chain over the whole video, as the paper's
    inference). Subclasses implement :meth:`init_state`, :meth:`forward` (one step) and :meth:`output`.

    Args:
        max_chain: restart the state after this many steps (None: never within a video).
        init_cfg: mmengine init config.
    """

    def __init__(self, max_chain: Optional[int] = None, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if max_chain is not None and (isinstance(max_chain, bool) or not isinstance(max_chain, int) or max_chain < 1):
            raise ValueError(f'{type(self).__name__}: max_chain must be a positive integer or None, got {max_chain!r}')
        self.max_chain = max_chain

    def init_state(self, feats: Features) -> Features:
        raise NotImplementedError

    def output(self, state: Features) -> Features:
        raise NotImplementedError

    def start(self, feats: Features) -> AggregatorState:
        """The state of a chain's first key frame (its own features)."""
        return AggregatorState(self.init_state(feats), 0)

    def step(self, previous: Optional[AggregatorState], feats: Features,
             warp: Callable[[Features], Features]) -> AggregatorState:
        """The state of a new key frame with features ``feats``.

        Args:
            previous: the previous key frame's state (None at a video's first key frame).
            feats: the new key frame's features (a tensor or a tuple of levels).
            warp: maps the previous state onto the new key frame (flow + warp); called only when it is used, so a
                restart costs no flow.
        """
        if previous is None or (self.max_chain is not None and previous.steps >= self.max_chain):
            return self.start(feats)
        return AggregatorState(self(feats, warp(previous.state)), previous.steps + 1)

    def features(self, state: AggregatorState) -> Features:
        """Head features of a state."""
        return self.output(state.state)


class ConvGRUCell(nn.Module):
    """One convolutional GRU step with a ReLU candidate (Eq. 6)::

        z  = sigmoid(W_z * x + U_z * h + b_z)
        r  = sigmoid(W_r * x + U_r * h + b_r)
        h~ = relu(W_h * x + U_h * (r . h) + b_h)       (or without the relu: ``candidate_act='identity'``)
        h' = (1 - z) . h + z . h~

    ``*`` is a ``kernel_size`` conv, ``.`` the element-wise product. The input convs W_{z,r,h} share one conv with
    3 * C outputs (and hold the biases b); U_{z,r} share one bias-free conv and U_h is its own bias-free conv, since
    it sees ``r . h`` rather than ``h``.

    The paper aggregates post-ReLU backbone features, which a ReLU candidate can reproduce. FPN outputs are signed
    (linear convs): a ReLU candidate can never produce their negative half, so every aggregation step pulls the
    features towards a different distribution than the head was trained on. ``candidate_act='identity'`` keeps the
    candidate linear for such features.

    ``init_as_propagation`` starts training from plain propagation: W_h = identity (a Dirac kernel), U_h = 0, b_h = 0,
    W_z = U_z = 0 and b_z = ``+z_bias`` (z = 0.98), so that h' ~ 0.98 x + 0.02 h — the new key frame's own features — and the GRU
    learns from there how much of the warped history to mix in, instead of starting from random features.

    Args:
        channels: channels of ``x`` and ``h``.
        kernel_size: odd conv kernel size (the paper: 3).
        candidate_act: ``'relu'`` (Eq. 6) or ``'identity'`` (for signed features such as FPN outputs).
        init_as_propagation: initialise as described above.
        z_bias: the update gate's initial bias with ``init_as_propagation``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, candidate_act: str = 'relu',
                 init_as_propagation: bool = False, z_bias: float = 4.0) -> None:
        super().__init__()
        if channels <= 0 or kernel_size <= 0 or kernel_size % 2 == 0:
            raise ValueError(f'channels must be > 0 and kernel_size odd, got {channels} and {kernel_size}')
        if candidate_act not in CANDIDATE_ACTS:
            raise ValueError(f'candidate_act must be one of {CANDIDATE_ACTS}, got {candidate_act!r}')
        self.candidate_act = candidate_act
        pad = kernel_size // 2
        self.channels = channels
        self.conv_x = nn.Conv2d(channels, 3 * channels, kernel_size, padding=pad)          # W_z, W_r, W_h (+ b)
        self.conv_h_zr = nn.Conv2d(channels, 2 * channels, kernel_size, padding=pad, bias=False)  # U_z, U_r
        self.conv_h_h = nn.Conv2d(channels, channels, kernel_size, padding=pad, bias=False)       # U_h
        if init_as_propagation:
            self.init_as_propagation(z_bias)

    @torch.no_grad()
    def init_as_propagation(self, z_bias: float = 4.0) -> None:
        """W_h = identity, U_h = 0, b_h = 0, b_z = z_bias: the step returns ~ sigmoid(z_bias) x + (1 - ...) h."""
        c = self.channels
        nn.init.dirac_(self.conv_x.weight[2 * c:])
        self.conv_x.bias[2 * c:].zero_()
        self.conv_x.bias[:c].fill_(z_bias)
        self.conv_x.weight[:c].zero_()       # W_z = 0 and U_z = 0: z = sigmoid(z_bias) everywhere at the start;
        self.conv_h_zr.weight[:c].zero_()    # their gradients are not zero, so the gate learns from the first step
        nn.init.zeros_(self.conv_h_h.weight)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """(N, C, H, W) input ``x`` and state ``h`` -> (N, C, H, W) new state."""
        if x.shape != h.shape:
            raise ValueError(f'x and h must have one shape, got {tuple(x.shape)} and {tuple(h.shape)}')
        xz, xr, xh = self.conv_x(x).chunk(3, dim=1)
        hz, hr = self.conv_h_zr(h).chunk(2, dim=1)
        z = torch.sigmoid(xz + hz)
        r = torch.sigmoid(xr + hr)
        candidate = xh + self.conv_h_h(r * h)
        if self.candidate_act == 'relu':
            candidate = torch.relu(candidate)
        return (1 - z) * h + z * candidate


@MODELS.register_module()
class FlowGuidedGRU(KeyFrameAggregator):
    """Flow-guided feature aggregation on key frames (Eq. 6) for single or multi-level features.

    The detector warps the previous aggregated key state to the new key frame k' with flow (``F̂_{k->k'}``) and calls
    ``self(F_k', F̂_{k->k'})``. Design choices:

    * Multi-level (FPN) features: ``num_levels=1`` (default) applies ONE shared cell on every level (FPN levels
      share channels and the heads share weights across levels too); ``num_levels=L`` gives each level its own cell.
    * ``hidden_channels`` (the paper: 128) is the state width. When it differs from ``in_channels`` the input goes
      through a 1x1 conv ``in -> hidden`` and the state through a 1x1 conv ``hidden -> in`` before the head
      (``output``); when equal (recommended: set the FPN's out_channels) both are identities and the aggregated
      state feeds the head directly.

    Args:
        in_channels: channels of the detector's features.
        hidden_channels: GRU state channels.
        num_levels: 1 for a cell shared over levels, else the number of feature levels (one cell each).
        kernel_size: conv kernel of the gates (3 in the paper).
        candidate_act: ``'relu'`` (Eq. 6, post-ReLU backbone features) or ``'identity'`` (signed FPN features).
        init_as_propagation: start as plain propagation (see :class:`ConvGRUCell`); also makes the 1x1 projections
            (when hidden != in) start as a pseudo-inverse pair.
        max_chain: restart from a key frame's own features after this many steps (None: never within a video,
            the paper's whole-video inference; see :class:`KeyFrameAggregator`).
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: int, hidden_channels: int = 128, num_levels: int = 1, kernel_size: int = 3,
                 candidate_act: str = 'relu', init_as_propagation: bool = False, max_chain: Optional[int] = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(max_chain=max_chain, init_cfg=init_cfg)
        if in_channels <= 0 or hidden_channels <= 0 or num_levels <= 0:
            raise ValueError(f'in_channels, hidden_channels and num_levels must be > 0, got {in_channels}, '
                             f'{hidden_channels}, {num_levels}')
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.num_levels = num_levels
        self.init_as_propagation = bool(init_as_propagation)
        self.cells = nn.ModuleList(ConvGRUCell(hidden_channels, kernel_size, candidate_act, init_as_propagation)
                                   for _ in range(num_levels))
        project = hidden_channels != in_channels
        self.input_proj = nn.Conv2d(in_channels, hidden_channels, 1) if project else nn.Identity()
        self.output_proj = nn.Conv2d(hidden_channels, in_channels, 1) if project else nn.Identity()
        if project and init_as_propagation:
            with torch.no_grad():  # output_proj(input_proj(x)) ~ x on the projected subspace
                w = self.input_proj.weight.flatten(1)                       # (hidden, in)
                self.output_proj.weight.copy_(torch.linalg.pinv(w).view(in_channels, hidden_channels, 1, 1))
                self.input_proj.bias.zero_()
                self.output_proj.bias.zero_()

    def init_weights(self) -> None:
        # mmengine's default init would overwrite the propagation start; keep it.
        if not self.init_as_propagation:
            super().init_weights()

    def _cell(self, level: int) -> ConvGRUCell:
        return self.cells[0 if self.num_levels == 1 else level]

    def _levels(self, feats: Features, name: str) -> tuple[Tensor, ...]:
        levels = (feats,) if isinstance(feats, Tensor) else tuple(feats)
        if self.num_levels > 1 and len(levels) != self.num_levels:
            raise ValueError(f'{name}: expected {self.num_levels} feature levels, got {len(levels)}')
        return levels

    def init_state(self, feats: Features) -> Features:
        """State of the first key frame of a video: F̂ = F (projected to ``hidden_channels``)."""
        out = tuple(self.input_proj(f) for f in self._levels(feats, 'feats'))
        return out[0] if isinstance(feats, Tensor) else out

    def forward(self, feats: Features, warped_state: Features) -> Features:
        """One aggregation step per level: ``F̂_k' = GRU(F_k', F̂_{k->k'})``.

        Args:
            feats: (N, in_channels, h, w) features of the new key frame, or a tuple of levels.
            warped_state: (N, hidden_channels, h, w) previous state warped to the new key frame, same structure.

        Returns:
            The new state, same structure, (N, hidden_channels, h, w) per level.
        """
        xs, hs = self._levels(feats, 'feats'), self._levels(warped_state, 'warped_state')
        if len(xs) != len(hs):
            raise ValueError(f'feats has {len(xs)} levels but warped_state has {len(hs)}')
        out = tuple(self._cell(i)(self.input_proj(x), h) for i, (x, h) in enumerate(zip(xs, hs)))
        return out[0] if isinstance(feats, Tensor) else out

    def output(self, state: Features) -> Features:
        """Map a state to head features: (N, hidden, h, w) -> (N, in_channels, h, w) per level."""
        if isinstance(state, Tensor):
            return self.output_proj(state)
        return tuple(self.output_proj(s) for s in state)
