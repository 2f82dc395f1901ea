"""Inference entry point: ``estimate_flow`` for any image size.

In eval mode with gradients disabled it runs a :class:`lightflow.runtime.FlowEstimator`, cached per model and backend:
the BN-folded whole graph (normalise, pad to /64, network, ``div_flow``, upsample) compiled once per input shape by the
fastest runtime available (ONNX Runtime / OpenVINO on CPU when installed, eager PyTorch otherwise); otherwise the plain
differentiable network. The earlier hand-written oneDNN path (private ``torch.ops.mkldnn`` calls) is gone: ONNX Runtime
ran the same network ~2x faster on the same machine (README, "Speed").
"""
from __future__ import annotations

import weakref

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .models.lightflow import LightFlow
from .runtime import BACKENDS, FlowEstimator, require_backend

__all__ = ['estimate_flow', 'flow_estimator', 'pad_to_multiple', 'to_image_batch']

# model -> {backend: FlowEstimator}; weak keys, so the cache neither keeps models alive nor travels with
# copy.deepcopy / pickling / state_dict of the model.
_ESTIMATORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def flow_estimator(model: LightFlow, backend: str = 'auto', upsample: bool = True) -> FlowEstimator:
    """The cached :class:`FlowEstimator` of ``model`` for ``backend`` (the one ``estimate_flow`` uses)."""
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    per_model = _ESTIMATORS.setdefault(model, {})
    est = per_model.get((backend, upsample))
    if est is None:
        est = per_model[(backend, upsample)] = FlowEstimator(model, backend, upsample=upsample)
    return est


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


def estimate_flow(model: LightFlow, img1: Tensor | np.ndarray, img2: Tensor | np.ndarray,
                  backend: str = 'auto') -> Tensor:
    """Estimate the optical flow from ``img1`` to ``img2`` in pixels at the input size.

    In eval mode with gradients disabled (e.g. under ``torch.inference_mode()``) it runs the BN-folded graph through
    ``backend`` (see :class:`lightflow.runtime.FlowEstimator`); otherwise the plain differentiable network.

    Args:
        model: a :class:`LightFlow`.
        img1: (N, 3, H, W) or (3, H, W) RGB tensor with values in 0..255 (or an (H, W, 3) uint8 array); any H, W.
        img2: second frame, same shape as ``img1``.
        backend: ``'auto'`` (fastest available), ``'torch'``, ``'onnxruntime'`` or ``'openvino'``.

    Returns:
        (N, 2, H, W) float flow (u, v) in pixels, on the model's device.
    """
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    require_backend(backend)  # asked for explicitly: say so even when this call takes the differentiable path
    a, b = to_image_batch(img1, 'img1'), to_image_batch(img2, 'img2')
    if a.shape != b.shape:
        raise ValueError(f'img1 and img2 must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}')
    for name, img in (('img1', a), ('img2', b)):
        # One NaN would spread through every conv and return an all-NaN flow. A sum carries any NaN/inf and costs a
        # tenth of an element-wise isfinite pass (only a huge finite image can overflow it: then count exactly).
        bad = 0 if torch.isfinite(img.sum()) else int((~torch.isfinite(img)).sum())
        if bad:
            raise ValueError(f'{name}: {bad} NaN/inf values; images must be finite RGB in 0..255')
    device = next(model.parameters()).device
    if not model.training and not torch.is_grad_enabled():
        return flow_estimator(model, backend)(a, b)
    a, b = a.to(device), b.to(device)
    pair, (h, w) = pad_to_multiple(model.normalize(a, b), model.size_divisor)
    pred = model.forward_features(pair)
    # Scale before upsampling (bilinear is linear): 16x fewer multiplies than scaling the full-size map.
    flow = F.interpolate(pred * model.div_flow, size=pair.shape[-2:], mode='bilinear', align_corners=False)
    return flow[..., :h, :w]
