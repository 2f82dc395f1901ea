"""Light Flow: the light-weight FlowNet of Zhu et al., "Towards High Performance Video Object Detection for Mobiles"
(arXiv 1804.05830), Section 3.1, Table 1 and Table 2.

Layout: blocks first, then the network, then the builder that holds every hyperparameter, then one factory per width.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    'DepthwiseSeparableConv',
    'LightFlow',
    'LightFlowConfig',
    'build_lightflow',
    'lightflow_w1_0',
    'lightflow_w0_75',
    'lightflow_w0_5',
    'PIXEL_MEAN',
    'scale_channels',
]

# Encoder stages whose outputs feed the decoder as skips, deepest first (conv5b, conv4b, conv3, conv2).
SKIP_STAGES = (6, 4, 2, 1)
# RGB mean of the reference implementation, applied to images scaled to [0, 1]; no std division (issue #2).
PIXEL_MEAN = (0.411, 0.432, 0.450)
PRED_UPSAMPLE = ('nearest', 'bilinear')


class DepthwiseSeparableConv(nn.Sequential):
    """3x3 depthwise -> BN -> LeakyReLU(0.1) -> 1x1 pointwise -> BN -> LeakyReLU(0.1); no conv biases (§3.1).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the depthwise conv.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, negative_slope: float = 0.1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(negative_slope, inplace=True),
        )


class FlowPredictor(nn.Sequential):
    """Depthwise-separable 3x3 prediction of a 2-channel flow; the output 1x1 conv is linear with a bias, since a
    BN + LeakyReLU on the flow itself would squash negative displacements."""

    def __init__(self, in_channels: int, negative_slope: float = 0.1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, 1, 1, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.LeakyReLU(negative_slope, inplace=True),
            nn.Conv2d(in_channels, 2, 1, bias=True),
        )


class LightFlow(nn.Module):
    """Light Flow (Table 1): a FlowNetS-shaped encoder-decoder of depthwise-separable convs.

    ``forward`` takes two RGB frames in 0..255 and returns the averaged flow prediction at 1/4 of the input resolution,
    in full-resolution pixels divided by ``div_flow`` (the FlowNet convention: ``flow_px = upsample(out) * div_flow``).
    :func:`lightflow.estimate_flow` does that conversion for any input size.

    Every hyperparameter lives in :class:`LightFlowConfig` (kept as :attr:`config`); the channel counts come from its
    :meth:`LightFlowConfig.encoder_widths` / :meth:`LightFlowConfig.decoder_widths`, nowhere else.

    Args:
        width_mult: width multiplier alpha (Table 2); scales every channel count but the 6 input and 2 output ones.
            None keeps the config's.
        config: the hyperparameters (default: :class:`LightFlowConfig`'s defaults, Table 1).
        **overrides: any :class:`LightFlowConfig` field (``encoder_channels``, ``encoder_strides``,
            ``decoder_channels``, ``div_flow``, ``negative_slope``, ``pred_upsample``), replacing the config's.
    """

    skip_stages = SKIP_STAGES
    size_divisor = 64

    def __init__(self, width_mult: float | None = None, *, config: LightFlowConfig | None = None, **overrides) -> None:
        super().__init__()
        if width_mult is not None:
            overrides['width_mult'] = width_mult
        # A copy: a config shared by several networks must not change with one of them (``div_flow`` below).
        self.config = dataclasses.replace(config or LightFlowConfig(), **overrides)
        cfg = self.config
        enc, dec = cfg.encoder_widths(), cfg.decoder_widths()
        slope = cfg.negative_slope
        self.register_buffer('pixel_mean', torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)

        # Encoder, Table 1 conv1 .. conv6b: 3x3 DW-separable convs, total stride 64.
        in_ch = 6
        encoder = []
        for out_ch, stride in zip(enc, cfg.encoder_strides):
            encoder.append(DepthwiseSeparableConv(in_ch, out_ch, stride, slope))
            in_ch = out_ch
        self.encoder = nn.ModuleList(encoder)

        # Decoder, Table 1 conv7 .. conv11: conv7 reduces conv6b; each later stage sees the nearest-upsampled previous
        # stage concatenated with an encoder skip (nearest upsampling instead of deconv avoids checkerboards, §3.1).
        decoder = [DepthwiseSeparableConv(in_ch, dec[0], 1, slope)]
        for i, skip in enumerate(self.skip_stages):
            decoder.append(DepthwiseSeparableConv(dec[i] + enc[skip], dec[i + 1], 1, slope))
        self.decoder = nn.ModuleList(decoder)

        # One flow predictor per decoder stage (1/64 .. 1/4); their predictions are averaged (§3.1).
        self.predictors = nn.ModuleList(FlowPredictor(c, slope) for c in dec)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=slope, mode='fan_in', nonlinearity='leaky_relu')
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def width_mult(self) -> float:
        """The width multiplier alpha (``config.width_mult``)."""
        return self.config.width_mult

    @property
    def div_flow(self) -> float:
        """The target scale (``config.div_flow``): the network predicts flow / div_flow."""
        return self.config.div_flow

    @div_flow.setter
    def div_flow(self, value: float) -> None:
        self.config = dataclasses.replace(self.config, div_flow=float(value))

    def normalize(self, img1: Tensor, img2: Tensor) -> Tensor:
        """Stack two (N, 3, H, W) RGB frames in 0..255 into the (N, 6, H, W) network input (RGB/255 - mean)."""
        return torch.cat([img1 - self.pixel_mean, img2 - self.pixel_mean], dim=1) / 255.0

    def forward(self, img1: Tensor, img2: Tensor) -> Tensor:
        """Predict flow from ``img1`` to ``img2``.

        Args:
            img1: (N, 3, H, W) first frame, RGB 0..255; H and W multiples of 64 (see ``estimate_flow`` for any size).
            img2: (N, 3, H, W) second frame.

        Returns:
            (N, 2, H/4, W/4) averaged prediction, flow / div_flow.
        """
        if img1.shape != img2.shape or img1.dim() != 4 or img1.shape[1] != 3:
            raise ValueError(f'expected two (N, 3, H, W) frames of one shape, got {tuple(img1.shape)} and '
                             f'{tuple(img2.shape)}')
        h, w = img1.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise ValueError(f'LightFlow.forward needs H and W divisible by {self.size_divisor}, got {h}x{w}; '
                             'use lightflow.estimate_flow for any size')
        return self.forward_features(self.normalize(img1, img2))

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, 6, H, W) normalised frame pair -> (N, 2, H/4, W/4) averaged prediction."""
        # Encoder (Table 1, conv1 .. conv6b).
        feats = []
        for stage in self.encoder:
            x = stage(x)
            feats.append(x)

        # Decoder (Table 1, conv7 .. conv11) with a prediction at each of the five scales.
        x = self.decoder[0](x)
        preds = [self.predictors[0](x)]
        for i, skip in enumerate(self.skip_stages):
            x = F.interpolate(x, scale_factor=2.0, mode='nearest')
            x = self.decoder[i + 1](torch.cat([x, feats[skip]], dim=1))
            preds.append(self.predictors[i + 1](x))

        # Multi-resolution averaging (§3.1): upsample every prediction to 1/4 and average; the same output is trained
        # and used at test time, ~10 % lower EPE than FlowNet's multi-loss scheme.
        size, mode = preds[-1].shape[-2:], self.config.pred_upsample
        align = None if mode == 'nearest' else False  # nearest takes no align_corners
        out = preds[-1]
        for p in preds[:-1]:
            out = out + F.interpolate(p, size=size, mode=mode, align_corners=align)
        return out / len(preds)


def scale_channels(channels: Sequence[int], width_mult: float) -> list[int]:
    """Channel counts of a network of width ``width_mult``: ``max(1, int(c * width_mult))`` (the one rounding rule;
    the checkpoint code reads widths back with it)."""
    return [max(1, int(c * width_mult)) for c in channels]


@dataclass
class LightFlowConfig:
    """Every Light Flow hyperparameter in one place; the factories below only pick a width."""

    width_mult: float = 1.0
    # Encoder: conv1, conv2, conv3, conv4a, conv4b, conv5a, conv5b, conv6a, conv6b (Table 1).
    encoder_channels: tuple[int, ...] = (32, 64, 128, 256, 256, 512, 512, 1024, 1024)
    encoder_strides: tuple[int, ...] = (2, 2, 2, 2, 1, 2, 1, 2, 1)
    # Decoder: conv7 .. conv11 (Table 1).
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    # Training target scale (FlowNet) and activation.
    div_flow: float = 20.0
    negative_slope: float = 0.1
    # How the five predictions reach 1/4 before they are averaged (§3.1): 'nearest' as the paper and the shipped
    # weights; 'bilinear' avoids the 16-px blocks of the 1/64 prediction (issue 14, lead c).
    pred_upsample: str = 'nearest'

    def __post_init__(self) -> None:
        for name in ('encoder_channels', 'encoder_strides', 'decoder_channels'):
            setattr(self, name, tuple(int(c) for c in getattr(self, name)))
        self.width_mult, self.div_flow = float(self.width_mult), float(self.div_flow)
        self.negative_slope = float(self.negative_slope)
        if self.pred_upsample not in PRED_UPSAMPLE:
            raise ValueError(f'pred_upsample must be one of {PRED_UPSAMPLE}, got {self.pred_upsample!r}')
        if not self.width_mult > 0:
            raise ValueError(f'width_mult must be > 0, got {self.width_mult}')
        if len(self.encoder_channels) != len(self.encoder_strides):
            raise ValueError(f'encoder_channels ({len(self.encoder_channels)}) and encoder_strides '
                             f'({len(self.encoder_strides)}) must have the same length')
        if len(self.decoder_channels) != len(SKIP_STAGES) + 1:
            raise ValueError(f'decoder_channels needs {len(SKIP_STAGES) + 1} entries, got '
                             f'{len(self.decoder_channels)}')

    def encoder_widths(self) -> list[int]:
        """Out channels of conv1 .. conv6b at this width."""
        return scale_channels(self.encoder_channels, self.width_mult)

    def decoder_widths(self) -> list[int]:
        """Out channels of conv7 .. conv11 at this width."""
        return scale_channels(self.decoder_channels, self.width_mult)


def build_lightflow(config: LightFlowConfig | None = None, **overrides) -> LightFlow:
    """Build a :class:`LightFlow` from a :class:`LightFlowConfig` (keyword overrides win)."""
    return LightFlow(config=config, **overrides)


def lightflow_w1_0(**kwargs) -> LightFlow:
    """Light Flow alpha = 1.0 (Table 2: 2.6 M params, 0.82 GFLOPs at 384x512, Chairs EPE 3.14)."""
    return build_lightflow(LightFlowConfig(width_mult=1.0), **kwargs)


def lightflow_w0_75(**kwargs) -> LightFlow:
    """Light Flow alpha = 0.75 (Table 2: 1.4 M params, 0.48 GFLOPs, Chairs EPE 3.63)."""
    return build_lightflow(LightFlowConfig(width_mult=0.75), **kwargs)


def lightflow_w0_5(**kwargs) -> LightFlow:
    """Light Flow alpha = 0.5 (Table 2: 0.7 M params, 0.23 GFLOPs, Chairs EPE 4.44)."""
    return build_lightflow(LightFlowConfig(width_mult=0.5), **kwargs)
