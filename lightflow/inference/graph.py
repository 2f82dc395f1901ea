"""The one frames -> pixel-flow path of Light Flow: :meth:`FlowGraph.pixel_flow`, and :class:`FlowGraph`, that path on
a BN-folded copy of the network as one module (what every backend compiles and the ONNX file holds).

:meth:`FlowGraph.pixel_flow` is the only code that turns two RGB 0..255 frames into flow in pixels: normalisation,
replicate padding to /64, the network (its own ``forward_features``: encoder, decoder, five-scale average), the
``div_flow`` scale and the bilinear upsampling (or none: the network's 1/4 grid). :func:`lightflow.estimate_flow`,
:class:`lightflow.FlowEstimator` (every backend), ``LightFlowMotion``, ``LightFlowModel.predict`` and ``NonKeyStep``
all call it, on the model itself when gradients are needed and on the BN-folded copy to deploy. BatchNorm is folded
into the convs (linear, so the output is unchanged up to rounding).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..models.lightflow import LightFlow

__all__ = ['FlowGraph', 'fold_lightflow', 'pad_to_multiple', 'check_finite_weights']


def _fold_stage(stage: nn.Sequential) -> nn.Sequential:
    """conv [-> BN] [-> LeakyReLU] ... -> the same stage with every BN folded into its conv (a fresh copy)."""
    layers, out, i = list(stage), [], 0
    while i < len(layers):
        conv = layers[i]
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f'expected conv/BN/LeakyReLU stages, found {type(conv).__name__}')
        conv, i = copy.deepcopy(conv), i + 1
        if i < len(layers) and isinstance(layers[i], nn.BatchNorm2d):
            conv, i = fuse_conv_bn_eval(conv, layers[i]), i + 1
        out.append(conv)
        if i < len(layers) and isinstance(layers[i], nn.LeakyReLU):
            out.append(nn.LeakyReLU(layers[i].negative_slope, inplace=True))
            i += 1
    return nn.Sequential(*out)


def fold_lightflow(model: LightFlow) -> LightFlow:
    """A frozen eval-mode copy of ``model`` with BN folded into the convs (same ``forward_features``, no BN)."""
    net = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name in ('encoder', 'decoder', 'predictors'):
            setattr(net, name, nn.ModuleList(_fold_stage(s) for s in getattr(net, name)))
    return net.requires_grad_(False)


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Replicate-pad (N, C, H, W) bottom/right to multiples of ``multiple``; returns the padded map and old (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode='replicate')
    return x, (h, w)


class FlowGraph(nn.Module):
    """Two RGB frames -> flow in pixels at their size: :meth:`pixel_flow` on a frozen (by default BN-folded) copy of
    ``model``, as one module that backends compile and ONNX exports.

    Args:
        model: a :class:`LightFlow` (copied and BN-folded; the original is untouched).
        fold: fold BatchNorm (default). ``False`` keeps the network as it is, for checking the fold itself.
        upsample: return the flow at the input size (default). ``False``: at the network's own 1/4 grid, in pixels of
            that grid (for a caller that resizes it once anyway, e.g. to each feature level); the input size must then
            be a multiple of 64, so that the grid covers exactly the frame.
    """

    def __init__(self, model: LightFlow, fold: bool = True, upsample: bool = True) -> None:
        super().__init__()
        if not isinstance(model, LightFlow):
            raise ValueError(f'model must be a LightFlow, got {type(model).__name__}')
        self.net = fold_lightflow(model) if fold else copy.deepcopy(model).eval()
        self.folded = fold
        self.upsample = upsample
        self.width_mult = model.width_mult
        self.div_flow = model.div_flow
        self.size_divisor = model.size_divisor

    def features(self, x: Tensor) -> Tensor:
        """(N, 6, H, W) normalised pair -> (N, 2, H/4, W/4) averaged prediction (the network's ``forward_features``)."""
        return self.net.forward_features(x)

    def forward(self, img1: Tensor, img2: Tensor) -> Tensor:
        """(N, 3, H, W) RGB 0..255 frames, any H, W -> (N, 2, H, W) flow (u, v) in pixels from ``img1`` to ``img2``
        (``upsample=False``: (N, 2, H/4, W/4) in pixels of that grid)."""
        return self.pixel_flow(self.net, img1, img2, self.upsample)

    @staticmethod
    def pixel_flow(net: LightFlow, img1: Tensor, img2: Tensor, upsample: bool = True) -> Tensor:
        """The frames -> pixel-flow path of every caller, on ``net`` as it is (plain and differentiable, or folded).

        Args:
            net: a :class:`LightFlow` (or its BN-folded copy).
            img1: (N, 3, H, W) RGB 0..255 float frame the flow is defined on; any H, W.
            img2: (N, 3, H, W) frame it points to.
            upsample: flow at the input size (default); ``False``: at the network's 1/4 grid in pixels of that grid
                (H and W must then be multiples of ``net.size_divisor``, so that the grid covers the frame).

        Returns:
            (N, 2, H, W) flow (u, v) in pixels, or (N, 2, H/4, W/4) without ``upsample``.
        """
        x, (h, w) = pad_to_multiple(net.normalize(img1, img2), net.size_divisor)
        if not upsample:
            if tuple(x.shape[-2:]) != (h, w):
                raise ValueError(f'flow without upsampling needs H and W divisible by {net.size_divisor}, '
                                 f'got {h}x{w}')
            return net.forward_features(x) * (net.div_flow / 4.0)
        # Scale before upsampling (bilinear is linear): 16x fewer multiplies than scaling the full-size map.
        pred = net.forward_features(x) * net.div_flow
        flow = F.interpolate(pred, size=x.shape[-2:], mode='bilinear', align_corners=False)
        return flow[:, :, :h, :w]


def check_finite_weights(model: nn.Module, what: str = 'the Light Flow model') -> None:
    """``ValueError`` naming the first parameter or buffer of ``model`` (``what``, in the message) that holds NaN/inf
    (a diverged or corrupt checkpoint: its output would be all NaN)."""
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(f'{what} has {bad} NaN/inf values in {name} (a diverged or corrupt checkpoint?); '
                             'refusing to run or export it')
