"""Inference entry point: ``estimate_flow`` for any image size.

In eval mode with gradients disabled it runs a :class:`lightflow.inference.FlowEstimator`, cached per model and
backend: the BN-folded :class:`lightflow.inference.FlowGraph` compiled once per input shape by the fastest runtime
available (ONNX Runtime / OpenVINO on CPU when installed, eager PyTorch otherwise); otherwise the plain differentiable
network through the same code (:meth:`lightflow.inference.FlowGraph.pixel_flow`). The earlier hand-written oneDNN
path (private ``torch.ops.mkldnn`` calls) is gone: ONNX Runtime ran the same network ~2x faster on the same machine
(README, "Speed").
"""
from __future__ import annotations

import weakref

import numpy as np
import torch
from torch import Tensor

from ..io import to_uint8
from ..models.lightflow import LightFlow
from .backends import Backend, FlowEstimator, check_frames, resolve_backend
from .graph import FlowGraph

__all__ = ['estimate_flow', 'flow_estimator', 'to_image_batch']

# model -> {backend: FlowEstimator}; weak keys, so the cache neither keeps models alive nor travels with
# copy.deepcopy / pickling / state_dict of the model.
_ESTIMATORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def flow_estimator(model: LightFlow, backend: str | Backend = 'auto', upsample: bool = True) -> FlowEstimator:
    """The cached :class:`FlowEstimator` of ``model`` for ``backend`` (the one ``estimate_flow`` uses). Give the
    :class:`Backend` that :func:`lightflow.inference.resolve_backend` returned to skip the name check per call."""
    backend = resolve_backend(backend)
    per_model = _ESTIMATORS.setdefault(model, {})
    est = per_model.get((backend.name, upsample))
    if est is None or est.backend != backend:
        est = per_model[(backend.name, upsample)] = FlowEstimator(model, backend, upsample=upsample)
    return est


def _checked_values(img: Tensor | np.ndarray, name: str) -> Tensor | np.ndarray:
    """uint8 as is; uint16 scaled to 0..255 (as :func:`lightflow.io.read_image` does); floats in 0..255; the rest
    (other integer types, bool, floats that look like 0..1) refused with a one-line ``ValueError``."""
    if isinstance(img, Tensor):
        if img.dtype == torch.uint16:
            img = torch.from_numpy(to_uint8(img.cpu().numpy(), name))
        elif not img.is_floating_point() and img.dtype != torch.uint8:
            raise ValueError(f'{name}: unsupported image dtype {img.dtype}; give uint8, uint16 or float RGB in 0..255')
        is_float, empty = img.is_floating_point(), img.numel() == 0
    else:
        is_float, empty = bool(np.issubdtype(img.dtype, np.floating)), img.size == 0
        if not is_float:
            img = to_uint8(img, name)
    if is_float and not empty:
        top = float(img.max() if isinstance(img, np.ndarray) else img.detach().max())
        if 0 < top <= 1:
            raise ValueError(f'{name}: {img.dtype} image with values in 0..{top:.3g} looks like 0..1; multiply by '
                             '255 (images are RGB in 0..255)')
    return img


def to_image_batch(img: Tensor | np.ndarray, name: str = 'img') -> Tensor:
    """Accept (3, H, W) / (N, 3, H, W) tensors or (H, W, 3) arrays and return a float (N, 3, H, W) tensor in 0..255.

    uint8 is taken as is, uint16 is scaled to 0..255 like :func:`lightflow.io.read_image`, floats must already be in
    0..255; other dtypes and float images whose maximum is at most 1 (they look like 0..1) raise ``ValueError``.
    """
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'{name}: numpy images must be RGB (H, W, 3), got {img.shape}')
        img = torch.from_numpy(np.ascontiguousarray(_checked_values(img, name))).permute(2, 0, 1)
    if not isinstance(img, Tensor):
        raise ValueError(f'{name}: expected a tensor or numpy array, got {type(img).__name__}')
    img = _checked_values(img, name)
    if img.dim() == 3:
        img = img.unsqueeze(0)
    if img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f'{name}: expected RGB (N, 3, H, W) or (3, H, W), got {tuple(img.shape)} '
                         '(convert grey/RGBA to RGB first, e.g. lightflow.io.read_image)')
    if img.shape[-2] == 0 or img.shape[-1] == 0:
        raise ValueError(f'{name}: empty image, got shape {tuple(img.shape)}')
    return img.float()


def estimate_flow(model: LightFlow, img1: Tensor | np.ndarray, img2: Tensor | np.ndarray,
                  backend: str | Backend = 'auto') -> Tensor:
    """Estimate the optical flow from ``img1`` to ``img2`` in pixels at the input size.

    In eval mode with gradients disabled (e.g. under ``torch.inference_mode()``) it runs the BN-folded graph through
    ``backend`` (see :class:`lightflow.inference.FlowEstimator`); otherwise the plain differentiable network.

    Args:
        model: a :class:`LightFlow`.
        img1: (N, 3, H, W) or (3, H, W) RGB tensor with values in 0..255, or an (H, W, 3) array; uint8, uint16
            (scaled to 0..255 like :func:`lightflow.io.read_image`) or float in 0..255; any H, W.
        img2: second frame, same shape as ``img1``.
        backend: ``'auto'`` (fastest available), a registered backend (:func:`lightflow.inference.backend_names`) or
            its resolved :class:`lightflow.inference.Backend` (the name is checked once, here).

    Returns:
        (N, 2, H, W) float flow (u, v) in pixels, on the model's device.
    """
    backend = resolve_backend(backend)  # asked for explicitly: say so even when this call takes the differentiable path
    a, b = to_image_batch(img1, 'img1'), to_image_batch(img2, 'img2')
    check_frames(a, b)
    device = next(model.parameters()).device
    if not model.training and not torch.is_grad_enabled():
        return flow_estimator(model, backend)(a, b)
    return FlowGraph.pixel_flow(model, a.to(device), b.to(device))  # the plain differentiable network
