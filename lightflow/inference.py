"""Inference entry point: ``estimate_flow`` for any image size, with a BN-folded channels-last fast path in eval mode."""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .models.lightflow import LightFlow

__all__ = ['estimate_flow', 'fuse_lightflow', 'pad_to_multiple', 'to_image_batch']


def to_image_batch(img: Tensor | np.ndarray, name: str = 'img') -> Tensor:
    """Accept (3, H, W) / (N, 3, H, W) tensors or (H, W, 3) uint8 arrays and return a float (N, 3, H, W) tensor."""
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'{name}: numpy images must be RGB (H, W, 3), got {img.shape}')
        img = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    if not isinstance(img, Tensor):
        raise ValueError(f'{name}: expected a tensor or numpy array, got {type(img).__name__}')
    if img.dim() == 3:
        img = img.unsqueeze(0)
    if img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f'{name}: expected RGB (N, 3, H, W) or (3, H, W), got {tuple(img.shape)} '
                         '(convert grey/RGBA to RGB first, e.g. lightflow.io.read_image)')
    return img.float()


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Replicate-pad (N, C, H, W) at the bottom/right to multiples of ``multiple``; returns the padded map and (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode='replicate')
    return x, (h, w)


class _FusedLightFlow(nn.Module):
    """Inference copy of a LightFlow: BN folded into the convs, channels-last memory layout."""

    def __init__(self, model: LightFlow) -> None:
        super().__init__()
        model = copy.deepcopy(model).eval()
        self.net = model
        for seq in [*model.encoder, *model.decoder, *model.predictors]:
            layers = list(seq)
            fused = []
            i = 0
            while i < len(layers):
                layer = layers[i]
                if isinstance(layer, nn.Conv2d) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.BatchNorm2d):
                    fused.append(fuse_conv_bn_eval(layer, layers[i + 1]))
                    i += 2
                else:
                    fused.append(layer)
                    i += 1
            for j in range(len(seq) - 1, -1, -1):
                del seq[j]
            for j, layer in enumerate(fused):
                seq.add_module(str(j), layer)
        self.net = model.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        return self.net.forward_features(x.contiguous(memory_format=torch.channels_last)).contiguous()


def _weights_version(model: nn.Module) -> tuple:
    # In-place updates (optimizer steps, load_state_dict) bump a tensor's _version; a changed tuple means stale cache.
    return tuple((t.data_ptr(), t._version) for t in [*model.parameters(), *model.buffers()])


def fuse_lightflow(model: LightFlow) -> nn.Module:
    """Return (and cache on ``model``) the fast inference copy of ``model``; rebuilt when its weights change."""
    version = (_weights_version(model), next(model.parameters()).device)
    cached = getattr(model, '_lightflow_fused', None)
    if cached is None or cached[0] != version:
        fused = _FusedLightFlow(model)
        object.__setattr__(model, '_lightflow_fused', (version, fused))  # not a submodule: stays out of state_dict
        return fused
    return cached[1]


def estimate_flow(model: LightFlow, img1: Tensor | np.ndarray, img2: Tensor | np.ndarray) -> Tensor:
    """Estimate the optical flow from ``img1`` to ``img2`` in pixels at the input size.

    In eval mode with gradients disabled (e.g. under ``torch.inference_mode()``), it runs the fused fast path;
    otherwise the plain differentiable network.

    Args:
        model: a :class:`LightFlow`.
        img1: (N, 3, H, W) or (3, H, W) RGB tensor with values in 0..255 (or an (H, W, 3) uint8 array); any H, W.
        img2: second frame, same shape as ``img1``.

    Returns:
        (N, 2, H, W) float flow (u, v) in pixels, on the model's device.
    """
    a, b = to_image_batch(img1, 'img1'), to_image_batch(img2, 'img2')
    if a.shape != b.shape:
        raise ValueError(f'img1 and img2 must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}')
    device = next(model.parameters()).device
    pair = model.normalize(a.to(device), b.to(device))
    pair, (h, w) = pad_to_multiple(pair, model.size_divisor)
    fast = not model.training and not torch.is_grad_enabled()
    pred = fuse_lightflow(model)(pair) if fast else model.forward_features(pair)
    flow = F.interpolate(pred, size=pair.shape[-2:], mode='bilinear', align_corners=False) * model.div_flow
    return flow[..., :h, :w]
