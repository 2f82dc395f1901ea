"""FlowNetS: the "simple" FlowNet of Dosovitskiy et al., "FlowNet: Learning Optical Flow with Convolutional Networks"
(ICCV 2015), Section 3 and Figure 2/3; the baseline Light Flow is compared with (arXiv 1804.05830, Table 2).

Variant: the layout of the common PyTorch port (ClementPinard/FlowNetPytorch, no batch norm), which is the one that
matches the reference numbers of 38.7 M parameters and 53.48 GFLOPs at 384x512:

* conv6_1 (1024 -> 1024) is included: without it the network has 29.2 M parameters, with it 38.68 M.
* Encoder convs carry biases; the 4x4/2 deconvs, the 3x3 flow predictors and the 4x4/2 flow upsamplers do not
  (biases change the count by < 0.01 M either way, BN would add 0.005 M).
* FLOPs (``torch.utils.flop_counter``): torch >= 2.3 counts a transposed conv at its *input* resolution (its true
  multiply-adds, PyTorch PR #119874) and gives 31.58 G; earlier versions counted it at the output resolution, 4x more
  for the stride-2 deconvs, which gives 53.39 G, within 0.2 % of the reference 53.48 G. The two differ only in how the
  decoder's deconvs are counted; the network is the same.

Layout: blocks, the network, one factory.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .lightflow import PIXEL_MEAN

__all__ = ['FlowNetS', 'flownets']


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, negative_slope: float) -> nn.Sequential:
    """k x k conv with bias (same padding) -> LeakyReLU, FlowNet's encoder block."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, bias=True),
        nn.LeakyReLU(negative_slope, inplace=True),
    )


def _deconv(in_channels: int, out_channels: int, negative_slope: float) -> nn.Sequential:
    """4x4 stride-2 transposed conv (exact 2x upsampling) -> LeakyReLU, FlowNet's refinement ("upconv") block."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=False),
        nn.LeakyReLU(negative_slope, inplace=True),
    )


class FlowNetS(nn.Module):
    """FlowNetS: a 10-conv encoder on the stacked frame pair and a 4-step deconv refinement (Figure 3 of the paper).

    Same input/output convention as :class:`~lightflow.models.LightFlow`: two RGB frames in 0..255 (normalised as
    ``RGB / 255 - PIXEL_MEAN``), H and W multiples of 64; the output is flow / ``div_flow`` at 1/4 resolution.

    Args:
        encoder_channels: out channels of conv1, conv2, conv3, conv3_1, conv4, conv4_1, conv5, conv5_1, conv6, conv6_1.
        encoder_kernels: kernel size of each encoder conv.
        encoder_strides: stride of each encoder conv.
        decoder_channels: out channels of deconv5, deconv4, deconv3, deconv2.
        div_flow: the network predicts flow / div_flow.
        negative_slope: LeakyReLU slope.
    """

    size_divisor = 64
    # Encoder outputs that feed the refinement, deepest first: conv5_1, conv4_1, conv3_1, conv2.
    skip_stages = (7, 5, 3, 1)

    def __init__(
        self,
        *,
        encoder_channels: Sequence[int] = (64, 128, 256, 256, 512, 512, 512, 512, 1024, 1024),
        encoder_kernels: Sequence[int] = (7, 5, 5, 3, 3, 3, 3, 3, 3, 3),
        encoder_strides: Sequence[int] = (2, 2, 2, 1, 2, 1, 2, 1, 2, 1),
        decoder_channels: Sequence[int] = (512, 256, 128, 64),
        div_flow: float = 20.0,
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        if not len(encoder_channels) == len(encoder_kernels) == len(encoder_strides):
            raise ValueError(f'encoder_channels, encoder_kernels and encoder_strides need one entry per conv, got '
                             f'{len(encoder_channels)}, {len(encoder_kernels)} and {len(encoder_strides)}')
        if len(decoder_channels) != len(self.skip_stages):
            raise ValueError(f'decoder_channels needs {len(self.skip_stages)} entries, got {len(decoder_channels)}')
        self.div_flow = float(div_flow)
        self.register_buffer('pixel_mean', torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1) * 255.0, persistent=False)

        # Encoder (conv1 .. conv6_1).
        in_ch, encoder = 6, []
        for out_ch, k, s in zip(encoder_channels, encoder_kernels, encoder_strides):
            encoder.append(_conv(in_ch, out_ch, k, s, negative_slope))
            in_ch = out_ch
        self.encoder = nn.ModuleList(encoder)

        # Refinement (Figure 3): at each scale predict flow, then concatenate [encoder skip, deconv(features),
        # upsampled flow] as the next scale's features.
        predictors, deconvs, upsamplers = [nn.Conv2d(in_ch, 2, 3, 1, 1, bias=False)], [], []
        for out_ch, skip in zip(decoder_channels, self.skip_stages):
            deconvs.append(_deconv(in_ch, out_ch, negative_slope))
            upsamplers.append(nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=False))
            in_ch = encoder_channels[skip] + out_ch + 2
            predictors.append(nn.Conv2d(in_ch, 2, 3, 1, 1, bias=False))
        self.deconvs = nn.ModuleList(deconvs)
        self.flow_upsamplers = nn.ModuleList(upsamplers)
        self.predictors = nn.ModuleList(predictors)

        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, a=negative_slope)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def normalize(self, img1: Tensor, img2: Tensor) -> Tensor:
        """Stack two (N, 3, H, W) RGB frames in 0..255 into the (N, 6, H, W) network input (RGB/255 - mean)."""
        return torch.cat([img1 - self.pixel_mean, img2 - self.pixel_mean], dim=1) / 255.0

    def forward(self, img1: Tensor, img2: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Predict flow from ``img1`` to ``img2``.

        Args:
            img1: (N, 3, H, W) first frame, RGB 0..255, H and W multiples of 64.
            img2: (N, 3, H, W) second frame.

        Returns:
            Eval mode: (N, 2, H/4, W/4) finest prediction, flow / div_flow. Training mode: the five predictions
            finest first, (N, 2, H/4, W/4) .. (N, 2, H/64, W/64), for FlowNet's multi-scale loss.
        """
        if img1.shape != img2.shape or img1.dim() != 4 or img1.shape[1] != 3:
            raise ValueError(f'expected two (N, 3, H, W) frames of one shape, got {tuple(img1.shape)} and '
                             f'{tuple(img2.shape)}')
        h, w = img1.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise ValueError(f'FlowNetS.forward needs H and W divisible by {self.size_divisor}, got {h}x{w}')
        preds = self.forward_features(self.normalize(img1, img2))
        return preds if self.training else preds[0]

    def forward_features(self, x: Tensor) -> tuple[Tensor, ...]:
        """(N, 6, H, W) normalised pair -> five predictions, finest (N, 2, H/4, W/4) first."""
        feats = []
        for stage in self.encoder:
            x = stage(x)
            feats.append(x)

        flow = self.predictors[0](x)  # (N, 2, H/64, W/64)
        preds = [flow]
        for i, skip in enumerate(self.skip_stages):
            x = torch.cat([feats[skip], self.deconvs[i](x), self.flow_upsamplers[i](flow)], dim=1)
            flow = self.predictors[i + 1](x)
            preds.append(flow)
        return tuple(reversed(preds))


def flownets(**kwargs) -> FlowNetS:
    """FlowNetS as in the paper (38.68 M params; 31.58 / 53.39 GFLOPs at 384x512, see the module docstring)."""
    return FlowNetS(**kwargs)
