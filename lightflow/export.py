"""Deployable Light Flow: one graph from two RGB frames to flow in pixels, exported to ONNX.

:class:`FlowGraph` is what a deployer runs: ``(img1, img2)`` RGB 0..255 float (N, 3, H, W) -> (N, 2, H, W) flow in
pixels at the input size, the convention of :func:`lightflow.estimate_flow`. Everything ``estimate_flow`` does around
the network is inside the graph: normalisation, replicate padding to /64, the five-scale average, the ``div_flow``
scale and the bilinear upsampling, so the ONNX file needs no Python around it. BatchNorm is folded into the convs and
the 1/5 averaging weight into each predictor's last conv (both linear, so the output is unchanged up to rounding).

:func:`export_onnx` writes it with ``torch.onnx.export`` (opset 17, TorchScript-based exporter: ~0.3 s for alpha = 1.0)
and checks it with ``onnx.checker``; the model's width and the export size travel in the file's metadata
(:func:`read_onnx_metadata`), so a runtime can refuse a file made for another model.
"""
from __future__ import annotations

import copy
import io
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .models.lightflow import LightFlow

__all__ = ['FlowGraph', 'fold_lightflow', 'export_onnx', 'onnx_bytes', 'read_onnx_metadata', 'check_onnx_matches']

OPSET = 17
INPUT_NAMES = ('img1', 'img2')
OUTPUT_NAMES = ('flow',)


def _fold_stage(stage: nn.Sequential, scale_last: float = 1.0) -> nn.Sequential:
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
    if scale_last != 1.0:
        last = out[-1]
        assert isinstance(last, nn.Conv2d), 'only a linear last conv may absorb the averaging weight'
        with torch.no_grad():
            last.weight.mul_(scale_last)
            if last.bias is not None:
                last.bias.mul_(scale_last)
    return nn.Sequential(*out)


def fold_lightflow(model: LightFlow) -> LightFlow:
    """A frozen eval-mode copy of ``model`` with BN folded into the convs and each predictor's output pre-scaled by
    ``1 / num_predictions``, so that :meth:`FlowGraph.features` only sums the upsampled predictions."""
    net = copy.deepcopy(model).eval()
    n = len(net.predictors)
    with torch.no_grad():
        net.encoder = nn.ModuleList(_fold_stage(s) for s in net.encoder)
        net.decoder = nn.ModuleList(_fold_stage(s) for s in net.decoder)
        net.predictors = nn.ModuleList(_fold_stage(s, 1.0 / n) for s in net.predictors)
    return net.requires_grad_(False)


class FlowGraph(nn.Module):
    """Two RGB frames -> flow in pixels at their size: the whole of :func:`lightflow.estimate_flow` as one module.

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
        """(N, 6, H, W) normalised pair -> (N, 2, H/4, W/4) averaged prediction (``LightFlow.forward_features``).

        With folded weights the average is accumulated coarse to fine, ``acc = up2(acc) + pred_k``: composing
        nearest x2 upsamplings equals one nearest x2^k upsampling, so this is exact, and each add is a cheap one.
        """
        if not self.folded:
            return self.net.forward_features(x)
        net = self.net
        feats = []
        for stage in net.encoder:
            x = stage(x)
            feats.append(x)
        x = net.decoder[0](x)
        acc = net.predictors[0](x)
        for i, skip in enumerate(net.skip_stages):
            x = F.interpolate(x, scale_factor=2.0, mode='nearest')
            x = net.decoder[i + 1](torch.cat([x, feats[skip]], dim=1))
            acc = F.interpolate(acc, scale_factor=2.0, mode='nearest') + net.predictors[i + 1](x)
        return acc

    def forward(self, img1: Tensor, img2: Tensor) -> Tensor:
        """(N, 3, H, W) RGB 0..255 frames, any H, W -> (N, 2, H, W) flow (u, v) in pixels from ``img1`` to ``img2``
        (``upsample=False``: (N, 2, H/4, W/4) in pixels of that grid)."""
        h, w = img1.shape[-2:]
        x = self.net.normalize(img1, img2)
        ph, pw = (-h) % self.size_divisor, (-w) % self.size_divisor
        if not self.upsample:
            if ph or pw:
                raise ValueError(f'FlowGraph(upsample=False) needs H and W divisible by {self.size_divisor}, '
                                 f'got {h}x{w}')
            return self.features(x) * (self.div_flow / 4.0)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode='replicate')
        # Scale before upsampling (bilinear is linear): 16x fewer multiplies than scaling the full-size map.
        pred = self.features(x) * self.div_flow
        flow = F.interpolate(pred, size=(h + ph, w + pw), mode='bilinear', align_corners=False)
        return flow[:, :, :h, :w]


def _check_size(height: int, width: int) -> tuple[int, int]:
    for name, v in (('height', height), ('width', width)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f'{name} must be a positive int, got {v!r}')
    return height, width


def onnx_bytes(model: LightFlow | FlowGraph, height: int, width: int, *, batch: int = 1,
               dynamic_batch: bool = True, opset: int = OPSET) -> bytes:
    """Export the :class:`FlowGraph` of ``model`` for (height, width) frames and return the ONNX model bytes.

    Args:
        model: a :class:`LightFlow` (folded here) or a ready :class:`FlowGraph`.
        height: frame height the graph is made for (any positive size; padding to /64 is inside the graph).
        width: frame width.
        batch: batch size of the example input.
        dynamic_batch: make the batch axis symbolic (one graph for any batch size).
        opset: ONNX opset (>= 17).
    """
    height, width = _check_size(height, width)
    if opset < 17:
        raise ValueError(f'opset must be >= 17, got {opset}')
    graph = model if isinstance(model, FlowGraph) else FlowGraph(model)
    graph = graph.eval().cpu().float()
    example = (torch.zeros(batch, 3, height, width), torch.zeros(batch, 3, height, width))
    axes = {n: {0: 'batch'} for n in (*INPUT_NAMES, *OUTPUT_NAMES)} if dynamic_batch else None
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation notice, once per export
        torch.onnx.export(graph, example, buf, opset_version=opset, input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=axes, do_constant_folding=True, dynamo=False)
    import onnx  # only needed for the metadata; the export itself is torch's
    proto = onnx.load_from_string(buf.getvalue())
    meta = {'lightflow.width_mult': repr(graph.width_mult), 'lightflow.div_flow': repr(graph.div_flow),
            'lightflow.height': str(height), 'lightflow.width': str(width),
            'lightflow.inputs': 'two RGB frames, float32 (N, 3, H, W), values 0..255',
            'lightflow.output': 'flow (u, v) in pixels, float32 (N, 2, H, W), out[y, x] = img2 at (x + u, y + v)'}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def export_onnx(model: LightFlow, path: str | os.PathLike, height: int, width: int, *, dynamic: bool = False,
                batch: int = 1, opset: int = OPSET) -> Path:
    """Write ``model`` as a self-contained ONNX flow graph (see the module docstring) and validate it.

    Args:
        model: a :class:`LightFlow`.
        path: output ``.onnx`` file, written atomically (temp file, then rename).
        height: frame height the graph is made for.
        width: frame width.
        dynamic: symbolic batch axis (height and width stay fixed: the /64 padding is part of the graph).
        batch: batch size when ``dynamic`` is False.
        opset: ONNX opset (>= 17).

    Returns:
        The written path.
    """
    from .io import atomic_write
    data = onnx_bytes(model, height, width, batch=batch, dynamic_batch=dynamic, opset=opset)
    import onnx
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    path = Path(path)
    with atomic_write(path, 'wb') as f:
        f.write(data)
    return path


def read_onnx_metadata(path: str | os.PathLike | bytes) -> dict[str, str]:
    """The ``lightflow.*`` metadata of an exported file (empty for ONNX files not written by :func:`export_onnx`)."""
    import onnx
    if isinstance(path, bytes):
        proto = onnx.load_from_string(path)
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(f'{path}: no such ONNX file')
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # protobuf raises its own DecodeError for non-ONNX bytes
            raise ValueError(f'{path}: not an ONNX model ({type(e).__name__}: {e})') from None
    return {p.key: p.value for p in proto.metadata_props if p.key.startswith('lightflow.')}


def check_onnx_matches(path: str | os.PathLike, model: LightFlow) -> dict[str, str]:
    """Refuse an exported file made for another width than ``model``'s; returns its metadata."""
    meta = read_onnx_metadata(path)
    if 'lightflow.width_mult' not in meta:
        raise ValueError(f'{path}: not a Light Flow export (no lightflow.width_mult metadata; use export_onnx)')
    if float(meta['lightflow.width_mult']) != model.width_mult:
        raise ValueError(f'{path}: exported for width_mult={meta["lightflow.width_mult"]}, but the model has '
                         f'width_mult={model.width_mult}')
    return meta
