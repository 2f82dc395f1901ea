"""ONNX export: :func:`module_onnx_bytes`, the one exporter (the flow graph here, the detector's non-key step in
``mmdet_plugin.export``), and the flow graph's file (:func:`export_onnx`).

:func:`module_onnx_bytes` runs ``torch.onnx.export`` (opset 17, TorchScript-based exporter: ~0.3 s for alpha = 1.0)
and stores a sha256 of the weights (initializers) in the file's metadata, so :func:`check_onnx_matches` can refuse a
file whose weights were edited after the export. :func:`export_onnx` writes :class:`FlowGraph` (two RGB 0..255 frames
-> flow in pixels, everything ``estimate_flow`` does inside the graph, so the file needs no Python around it) with the
model's width and the export size (:func:`read_onnx_metadata`), so a runtime can refuse a file made for another model,
and checks it with ``onnx.checker``. Exports refuse NaN/inf weights, the flow export also a size whose tracing would
not fit in the free memory.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ..models.lightflow import LightFlow
from .graph import FlowGraph, check_finite_weights

__all__ = ['export_onnx', 'onnx_bytes', 'module_onnx_bytes', 'read_onnx_metadata', 'check_onnx_matches',
           'export_memory_bytes', 'initializers_sha256', 'OPSET']

OPSET = 17
INPUT_NAMES = ('img1', 'img2')
OUTPUT_NAMES = ('flow',)


def _check_size(height: int, width: int) -> tuple[int, int]:
    for name, v in (('height', height), ('width', width)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f'{name} must be a positive int, got {v!r}')
    return height, width


def _available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), ``None`` where unknown."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def export_memory_bytes(model: LightFlow | FlowGraph, height: int, width: int, batch: int = 1) -> int:
    """About how many bytes exporting (tracing) the flow graph at this size needs: every activation of one forward
    pass at the padded size, measured on a 64x64 input and scaled by the pixel count."""
    graph = model if isinstance(model, FlowGraph) else FlowGraph(model)
    div = graph.size_divisor
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.numel()))
             for m in graph.net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            graph.features(torch.zeros(1, 6, div, div, dtype=next(graph.parameters()).dtype))
    finally:
        for h in hooks:
            h.remove()
    padded = (height + (-height) % div) * (width + (-width) % div)
    per_pixel = sum(sizes) / (div * div) + 6 + 2 + 2 * 3 + 2  # + the pair, its normalised stack and the flow
    return int(4 * batch * padded * per_pixel)


def _check_memory(graph: FlowGraph, height: int, width: int, batch: int) -> None:
    need, free = export_memory_bytes(graph, height, width, batch), _available_memory()
    if free is not None and need > free:
        raise ValueError(f'height/width {height}x{width} (batch {batch}): exporting needs about {need / 1e9:.1f} GB '
                         f'of memory, only {free / 1e9:.1f} GB is available; export at a smaller size')


def initializers_sha256(proto) -> str:
    """sha256 of an ONNX model's weights (every initializer's name, dtype, shape and values, in name order)."""
    from onnx import numpy_helper
    digest = hashlib.sha256()
    for init in sorted(proto.graph.initializer, key=lambda i: i.name):
        arr = numpy_helper.to_array(init)
        digest.update(f'{init.name}|{arr.dtype.str}|{arr.shape}|'.encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def module_onnx_bytes(module: nn.Module, example: tuple[Tensor, ...], input_names: Sequence[str],
                      output_names: Sequence[str], *, dynamic_axes: dict | None = None, opset: int = OPSET,
                      metadata: dict[str, str] | None = None, check: bool = False,
                      what: str = 'the model') -> bytes:
    """The one ONNX exporter: trace ``module`` on ``example`` and return the ONNX model bytes.

    Refuses NaN/inf weights and ``opset < 17``; stores ``metadata`` and ``lightflow.weights_sha256`` (the sha256 of
    the initializers, see :func:`check_onnx_matches`) in the file's ``metadata_props``.

    Args:
        module: the module to export (traced as is: put it in eval mode first).
        example: its example inputs.
        input_names: one name per input.
        output_names: one name per output (flattened, as the module returns them).
        dynamic_axes: ``torch.onnx.export``'s symbolic axes (e.g. ``{'img1': {0: 'batch'}}``).
        opset: ONNX opset (>= 17).
        metadata: extra ``key -> value`` entries.
        check: validate with ``onnx.checker`` (full check, shape inference included).
        what: how error messages name ``module``.
    """
    if opset < 17:
        raise ValueError(f'opset must be >= 17, got {opset}')
    check_finite_weights(module, what)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation notice, once per export
        torch.onnx.export(module, example, buf, opset_version=opset, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes, do_constant_folding=True,
                          dynamo=False)
    import onnx  # only needed for the metadata and the check; the export itself is torch's
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in {**(metadata or {}), 'lightflow.weights_sha256': initializers_sha256(proto)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    if check:
        onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def onnx_bytes(model: LightFlow | FlowGraph, height: int, width: int, *, batch: int = 1,
               dynamic_batch: bool = True, opset: int = OPSET, check: bool = False) -> bytes:
    """Export the :class:`FlowGraph` of ``model`` for (height, width) frames and return the ONNX model bytes.

    Args:
        model: a :class:`LightFlow` (folded here) or a ready :class:`FlowGraph`.
        height: frame height the graph is made for (any positive size; padding to /64 is inside the graph).
        width: frame width.
        batch: batch size of the example input.
        dynamic_batch: make the batch axis symbolic (one graph for any batch size).
        opset: ONNX opset (>= 17).
        check: validate with ``onnx.checker``.
    """
    height, width = _check_size(height, width)
    check_finite_weights(model)  # here too: the message then names the model's own parameter
    graph = model if isinstance(model, FlowGraph) else FlowGraph(model)
    graph = graph.eval().cpu().float()
    _check_memory(graph, height, width, batch)
    example = (torch.zeros(batch, 3, height, width), torch.zeros(batch, 3, height, width))
    axes = {n: {0: 'batch'} for n in (*INPUT_NAMES, *OUTPUT_NAMES)} if dynamic_batch else None
    meta = {'lightflow.width_mult': repr(graph.width_mult), 'lightflow.div_flow': repr(graph.div_flow),
            'lightflow.height': str(height), 'lightflow.width': str(width),
            'lightflow.inputs': 'two RGB frames, float32 (N, 3, H, W), values 0..255',
            'lightflow.output': 'flow (u, v) in pixels, float32 (N, 2, H, W), out[y, x] = img2 at (x + u, y + v)'}
    return module_onnx_bytes(graph, example, INPUT_NAMES, OUTPUT_NAMES, dynamic_axes=axes, opset=opset,
                             metadata=meta, check=check, what='the Light Flow model')


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
    from ..io import atomic_write
    data = onnx_bytes(model, height, width, batch=batch, dynamic_batch=dynamic, opset=opset, check=True)
    path = Path(path)
    with atomic_write(path, 'wb') as f:
        f.write(data)
    return path


def _load_onnx(path: str | os.PathLike | bytes):
    """The ONNX proto of a file (or bytes); one-line errors naming the file."""
    import onnx
    if isinstance(path, bytes):
        return onnx.load_from_string(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f'{path}: no such ONNX file')
    if Path(path).stat().st_size == 0:
        raise ValueError(f'{path}: empty file (0 bytes), not an ONNX model')
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf raises its own DecodeError for non-ONNX bytes
        raise ValueError(f'{path}: not an ONNX model ({type(e).__name__}: {e})') from None


def read_onnx_metadata(path: str | os.PathLike | bytes) -> dict[str, str]:
    """The ``lightflow.*`` metadata of an exported file (empty for ONNX files not written by :func:`export_onnx`)."""
    proto = _load_onnx(path)
    return {p.key: p.value for p in proto.metadata_props if p.key.startswith('lightflow.')}


def check_onnx_matches(path: str | os.PathLike, model: LightFlow) -> dict[str, str]:
    """Refuse an exported file made for another width than ``model``'s, or whose weights changed after the export
    (their sha256 differs from the one stored at export; files exported before it was stored skip that check).

    Returns:
        the file's ``lightflow.*`` metadata.
    """
    proto = _load_onnx(path)
    meta = {p.key: p.value for p in proto.metadata_props if p.key.startswith('lightflow.')}
    where = 'the ONNX bytes' if isinstance(path, bytes) else str(path)
    if 'lightflow.width_mult' not in meta:
        raise ValueError(f'{where}: not a Light Flow export (no lightflow.width_mult metadata; use export_onnx)')
    try:
        width = float(meta['lightflow.width_mult'])
    except ValueError:
        raise ValueError(f'{where}: bad lightflow.width_mult metadata {meta["lightflow.width_mult"]!r} (not a '
                         'number)') from None
    if width != model.width_mult:
        raise ValueError(f'{where}: exported for width_mult={meta["lightflow.width_mult"]}, but the model has '
                         f'width_mult={model.width_mult}')
    stored = meta.get('lightflow.weights_sha256')
    if stored is not None and stored != initializers_sha256(proto):
        raise ValueError(f'{where}: its weights differ from the ones exported (sha256 of the initializers does not '
                         'match lightflow.weights_sha256); the file was modified after export_onnx')
    return meta
