"""Inference entry point: ``estimate_flow`` for any image size, with a fast path for eval-mode inference.

The fast path (:func:`fuse_lightflow`) is a frozen copy of the network, rebuilt whenever the weights change:

* BatchNorm is folded into the preceding conv, and the 1 / num_predictions averaging weight into each predictor's last
  1x1 conv (both are linear, so the result is unchanged up to float rounding).
* On CPU (fp32, oneDNN available) every conv runs as one oneDNN primitive on channels-last tensors with weights
  reordered once into oneDNN's blocked layout and LeakyReLU fused as a post-op; eager PyTorch re-packs the weights on
  every call, which dominates the small-spatial 1x1 convs (1024 x 1024 at 6x8 pixels: ~2.2 ms -> ~0.55 ms).
* The five-scale averaging is accumulated coarse to fine ``acc = up2(acc) + pred_k``, each add fused into the
  predictor's conv; composing nearest x2 upsamplings equals one nearest x2^k upsampling, so this is exact.
* The pair is normalised straight into a channels-last buffer (one pass instead of cat, sub, div and a layout copy).

Elsewhere (CUDA, other dtypes, no oneDNN) it is the BN-folded network in channels-last layout. ``torch.compile``
(inductor with freezing, on the BN-folded network) was measured too: on 2 cores it reached the speed of the oneDNN path
(which does the same weight packing and activation fusion) after ~30 s of compilation per input shape (~10 s with a
warm on-disk cache), so it is not used.
"""
from __future__ import annotations

import copy
import warnings
import weakref
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .models.lightflow import LightFlow

__all__ = ['estimate_flow', 'fuse_lightflow', 'pad_to_multiple', 'to_image_batch']

_BACKENDS = ('auto', 'mkldnn', 'eager')
# model -> {backend: (weights version, fast copy)}; weak keys, so the cache neither keeps models alive nor travels with
# copy.deepcopy / pickling / state_dict of the model.
_FAST_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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
    if img.shape[-2] == 0 or img.shape[-1] == 0:
        raise ValueError(f'{name}: empty image, got shape {tuple(img.shape)}')
    return img.float()


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Replicate-pad (N, C, H, W) bottom/right to multiples of ``multiple``; returns the padded map and old (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode='replicate')
    return x, (h, w)


def _fold_stage(stage: nn.Sequential, scale_last: float = 1.0) -> list[tuple[nn.Conv2d, float | None]]:
    """Fold a conv [-> BN] [-> LeakyReLU] sequence into [(conv with BN folded, LeakyReLU slope or None)]."""
    layers, out, i = list(stage), [], 0
    while i < len(layers):
        conv = layers[i]
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f'fast path expects conv/BN/LeakyReLU stages, found {type(conv).__name__}')
        conv, i = copy.deepcopy(conv), i + 1
        if i < len(layers) and isinstance(layers[i], nn.BatchNorm2d):
            conv, i = fuse_conv_bn_eval(conv, layers[i]), i + 1
        slope = None
        if i < len(layers) and isinstance(layers[i], nn.LeakyReLU):
            slope, i = float(layers[i].negative_slope), i + 1
        out.append((conv, slope))
    if scale_last != 1.0:
        conv, slope = out[-1]
        assert slope is None, 'only a linear last conv may absorb the averaging weight'
        with torch.no_grad():
            conv.weight.mul_(scale_last)
            if conv.bias is not None:
                conv.bias.mul_(scale_last)
    return out


class _PackedConv:
    """One conv (+ LeakyReLU) as a oneDNN primitive call with its weight reordered once per input shape."""

    def __init__(self, conv: nn.Conv2d, slope: float | None) -> None:
        self.weight = conv.weight.detach().float().contiguous()
        self.bias = None if conv.bias is None else conv.bias.detach().float().contiguous()
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.attr, self.scalars = ('none', []) if slope is None else ('leaky_relu', [slope])
        self._packed: dict[tuple[int, ...], Tensor] = {}

    def _pack(self, x: Tensor) -> Tensor:
        key = tuple(x.shape)
        packed = self._packed.get(key)
        if packed is None:
            if len(self._packed) >= 8:  # bound the memory when input sizes keep changing
                self._packed.clear()
            packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                self.weight.to_mkldnn(), self.padding, self.stride, self.dilation, self.groups, list(key))
            self._packed[key] = packed
        return packed

    def __call__(self, x: Tensor, add: Tensor | None = None) -> Tensor:
        """(N, C, H, W) channels-last -> conv(x) [+ add] [-> LeakyReLU], channels-last."""
        if add is None:
            return torch.ops.mkldnn._convolution_pointwise(
                x, self._pack(x), self.bias, self.padding, self.stride, self.dilation, self.groups,
                self.attr, self.scalars, None)
        assert self.attr == 'none', 'oneDNN fuses only relu after a binary post-op'
        return torch.ops.mkldnn._convolution_pointwise(
            x, add, self._pack(x), self.bias, self.padding, self.stride, self.dilation, self.groups,
            'add', None, None, [], None)


class _MkldnnLightFlow(nn.Module):
    """CPU fast path: BN-folded LightFlow as fused oneDNN convs on channels-last tensors (see the module docstring)."""

    def __init__(self, model: LightFlow) -> None:
        super().__init__()
        n = len(model.predictors)
        self.skip_stages = tuple(model.skip_stages)
        self.encoder = [[_PackedConv(c, s) for c, s in _fold_stage(stage)] for stage in model.encoder]
        self.decoder = [[_PackedConv(c, s) for c, s in _fold_stage(stage)] for stage in model.decoder]
        self.predictors = [[_PackedConv(c, s) for c, s in _fold_stage(stage, 1.0 / n)] for stage in model.predictors]
        self.register_buffer('pixel_mean', model.pixel_mean.detach().float().view(3).clone(), persistent=False)

    def normalize(self, img1: Tensor, img2: Tensor) -> Tensor:
        """Two (N, 3, H, W) frames in 0..255 -> (N, 6, H, W) channels-last pair, like ``LightFlow.normalize``."""
        n, _, h, w = img1.shape
        pair = torch.empty(n, h, w, 6, dtype=torch.float32)
        torch.sub(img1.permute(0, 2, 3, 1), self.pixel_mean, out=pair[..., :3])
        torch.sub(img2.permute(0, 2, 3, 1), self.pixel_mean, out=pair[..., 3:])
        return pair.div_(255.0).permute(0, 3, 1, 2)  # (N, 6, H, W) view with channels-last strides

    @staticmethod
    def _run(ops: Sequence[_PackedConv], x: Tensor) -> Tensor:
        for op in ops:
            x = op(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """(N, 6, H, W) normalised pair -> (N, 2, H/4, W/4) averaged prediction, as ``LightFlow.forward_features``."""
        x = x.contiguous(memory_format=torch.channels_last)
        feats = []
        for ops in self.encoder:
            x = self._run(ops, x)
            feats.append(x)
        x = self._run(self.decoder[0], x)
        acc = self._run(self.predictors[0], x)
        for i, skip in enumerate(self.skip_stages):
            x = F.interpolate(x, scale_factor=2.0, mode='nearest')
            x = self._run(self.decoder[i + 1], torch.cat([x, feats[skip]], dim=1))
            hidden = self._run(self.predictors[i + 1][:-1], x)
            acc = F.interpolate(acc, scale_factor=2.0, mode='nearest').contiguous(memory_format=torch.channels_last)
            acc = self.predictors[i + 1][-1](hidden, add=acc)
        return acc.contiguous()


class _FusedLightFlow(nn.Module):
    """Portable fast path (any device/dtype): BN folded into the convs, channels-last memory layout."""

    def __init__(self, model: LightFlow) -> None:
        super().__init__()
        net = copy.deepcopy(model).eval()
        for stage in [*net.encoder, *net.decoder, *net.predictors]:
            folded = _fold_stage(stage)
            for j in range(len(stage) - 1, -1, -1):
                del stage[j]
            for conv, slope in folded:
                stage.append(conv)
                if slope is not None:
                    stage.append(nn.LeakyReLU(slope, inplace=True))
        self.net = net.to(memory_format=torch.channels_last)

    def normalize(self, img1: Tensor, img2: Tensor) -> Tensor:
        return self.net.normalize(img1, img2)

    def forward(self, x: Tensor) -> Tensor:
        return self.net.forward_features(x.contiguous(memory_format=torch.channels_last)).contiguous()


def _weights_version(model: nn.Module) -> tuple:
    # In-place updates (optimizer steps, load_state_dict) bump a tensor's _version; a changed tuple means stale cache.
    # One module walk over the raw dicts: ~3x cheaper than parameters() + buffers(), it runs on every call.
    # Inference tensors (a model built or loaded under torch.inference_mode()) have no version counter; they cannot
    # be updated in place outside inference mode either, so their data pointer identifies them.
    return tuple((t.data_ptr(), -1 if t.is_inference() else t._version) for m in model.modules()
                 for t in (*m._parameters.values(), *m._buffers.values()) if t is not None)


def _mkldnn_usable(model: LightFlow) -> bool:
    p = next(model.parameters())
    return (p.device.type == 'cpu' and p.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and torch.backends.mkldnn.enabled and hasattr(torch.ops.mkldnn, '_convolution_pointwise'))


def _build_fast(model: LightFlow, backend: str) -> nn.Module:
    if backend == 'mkldnn' or (backend == 'auto' and _mkldnn_usable(model)):
        try:
            fast = _MkldnnLightFlow(model)
            s = model.size_divisor
            fast(torch.zeros(1, 6, s, s))  # smoke-test the private oneDNN ops once; fall back if this build lacks them
            return fast
        except (RuntimeError, NotImplementedError, AttributeError, TypeError) as e:
            if backend == 'mkldnn':
                raise
            warnings.warn(f'lightflow: oneDNN fast path unavailable ({type(e).__name__}: {e}); '
                          'using the BN-folded eager path', RuntimeWarning, stacklevel=3)
    return _FusedLightFlow(model)


def fuse_lightflow(model: LightFlow, backend: str = 'auto') -> nn.Module:
    """Return the fast inference copy of ``model``, cached per model and backend and rebuilt when its weights change.

    Args:
        model: a :class:`LightFlow` (its own mode and weights are left untouched).
        backend: ``'auto'`` (oneDNN on CPU fp32 when available, else BN-folded eager), ``'mkldnn'`` or ``'eager'``.

    Returns:
        A module mapping the (N, 6, H, W) normalised pair to the (N, 2, H/4, W/4) prediction, like
        ``model.forward_features`` in eval mode; use it under ``torch.inference_mode()`` or ``torch.no_grad()``.
    """
    if backend not in _BACKENDS:
        raise ValueError(f'backend must be one of {_BACKENDS}, got {backend!r}')
    version = (_weights_version(model), next(model.parameters()).device)
    per_backend = _FAST_CACHE.setdefault(model, {})
    cached = per_backend.get(backend)
    if cached is None or cached[0] != version:
        with torch.no_grad():
            fused = _build_fast(model, backend)
        per_backend[backend] = (version, fused)
        return fused
    return cached[1]


def estimate_flow(model: LightFlow, img1: Tensor | np.ndarray, img2: Tensor | np.ndarray) -> Tensor:
    """Estimate the optical flow from ``img1`` to ``img2`` in pixels at the input size.

    In eval mode with gradients disabled (e.g. under ``torch.inference_mode()``), it runs the fast path of
    :func:`fuse_lightflow`; otherwise the plain differentiable network.

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
    for name, img in (('img1', a), ('img2', b)):
        bad = int((~torch.isfinite(img)).sum())
        if bad:  # one NaN would spread through every conv and return an all-NaN flow
            raise ValueError(f'{name}: {bad} NaN/inf values; images must be finite RGB in 0..255')
    device = next(model.parameters()).device
    a, b = a.to(device), b.to(device)
    if not model.training and not torch.is_grad_enabled():
        fast = fuse_lightflow(model)
        pair, (h, w) = pad_to_multiple(fast.normalize(a, b), model.size_divisor)
        pred = fast(pair)
    else:
        pair, (h, w) = pad_to_multiple(model.normalize(a, b), model.size_divisor)
        pred = model.forward_features(pair)
    # Scale before upsampling (bilinear is linear): 16x fewer multiplies than scaling the full-size map.
    flow = F.interpolate(pred * model.div_flow, size=pair.shape[-2:], mode='bilinear', align_corners=False)
    return flow[..., :h, :w]
