"""Inference backends for Light Flow behind one object: :class:`FlowEstimator`.

Each backend runs the same :class:`lightflow.export.FlowGraph` (frames in, flow in pixels out, BN folded):

* ``'torch'``: eager PyTorch, channels-last, on the model's device (the only choice on CUDA or for fp16/bf16 models).
* ``'onnxruntime'``: the graph exported to ONNX and run by ONNX Runtime's CPU execution provider.
* ``'openvino'``: the same ONNX graph compiled by OpenVINO for its CPU plugin (fp32 inference precision forced, since
  its CPU plugin would otherwise pick bf16 on CPUs that have it).
* ``'auto'``: on CPU with an fp32 model, every available backend is built for the first input of a new shape, checked
  against the eager graph (max abs difference <= ``tolerance`` px) and timed on that input; the fastest is kept for that
  shape. Elsewhere ``'torch'``.

A backend is compiled once per input shape (N, 3, H, W) and thread count (export ~0.1-0.4 s, session ~0.1 s) and
rebuilt when the model's weights change in place (optimizer steps, ``load_state_dict``). The runtimes are optional:
``pip install 'lightflow[deploy]'``.
"""
from __future__ import annotations

import importlib.util
import time
import warnings
import weakref
from collections import OrderedDict
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .export import FlowGraph, onnx_bytes
from .models.lightflow import LightFlow

__all__ = ['BACKENDS', 'FlowEstimator', 'available_backends', 'require_backend', 'weights_version']

BACKENDS = ('auto', 'torch', 'onnxruntime', 'openvino')
_PACKAGES = {'onnxruntime': 'onnxruntime', 'openvino': 'openvino'}
# auto's order when timings tie: the runtimes were faster than eager torch on every CPU measured (README).
_AUTO_ORDER = ('onnxruntime', 'openvino', 'torch')


def available_backends() -> list[str]:
    """The backends usable in this environment (``'torch'`` always; the runtimes when their package imports)."""
    return ['torch'] + [b for b, pkg in _PACKAGES.items() if importlib.util.find_spec(pkg) is not None]


def require_backend(backend: str) -> None:
    """``ImportError`` naming the package and the extra when ``backend``'s runtime is not installed."""
    pkg = _PACKAGES.get(backend)
    if pkg is not None and importlib.util.find_spec(pkg) is None:
        raise ImportError(f"backend {backend!r} needs the {pkg} package: pip install 'lightflow[deploy]' "
                          f'(or pip install {pkg})')


# Bumped whenever any module anywhere registers a parameter, buffer or submodule (including assignments such as
# ``conv.weight = nn.Parameter(...)``): a model's tensor list cached under an older count may be stale.
_registrations = 0


def _count_registration(*args) -> None:
    global _registrations
    _registrations += 1


for _register in (torch.nn.modules.module.register_module_parameter_registration_hook,
                  torch.nn.modules.module.register_module_buffer_registration_hook,
                  torch.nn.modules.module.register_module_module_registration_hook):
    _register(_count_registration)
_tensor_lists: 'weakref.WeakKeyDictionary[torch.nn.Module, tuple[int, list[Tensor]]]' = weakref.WeakKeyDictionary()


def _model_tensors(model: torch.nn.Module) -> list[Tensor]:
    """All parameters and buffers of ``model``; walking the module tree is cached until something registers anew."""
    cached = _tensor_lists.get(model)
    if cached is not None and cached[0] == _registrations:
        return cached[1]
    tensors = [t for m in model.modules() for t in (*m._parameters.values(), *m._buffers.values()) if t is not None]
    _tensor_lists[model] = (_registrations, tensors)
    return tensors


def weights_version(model: torch.nn.Module) -> tuple:
    """A key that changes when any parameter or buffer of ``model`` is replaced or updated in place."""
    # In-place updates bump a tensor's _version. Inference tensors (a model built or loaded under
    # torch.inference_mode()) have no version counter; they cannot be updated in place outside inference mode either,
    # so their data pointer identifies them. (Called on every flow estimate: the tensor list is cached, ~0.1 ms.)
    return tuple((t.data_ptr(), -1 if t.is_inference() else t._version) for t in _model_tensors(model))


Runner = Callable[[Tensor, Tensor], Tensor]


def _torch_runner(graph: FlowGraph, device: torch.device, dtype: torch.dtype) -> Runner:
    graph = graph.to(device=device, dtype=dtype, memory_format=torch.channels_last)

    def run(a: Tensor, b: Tensor) -> Tensor:
        with torch.inference_mode():
            return graph(a.to(device, dtype), b.to(device, dtype))
    return run


def _numpy(x: Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().float().numpy())


def _ort_runner(data: bytes, threads: int) -> Runner:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Pool threads busy-wait between ops by default and keep spinning after a run, competing for the cores with
    # whatever runs next in the process (the detector's PyTorch backbone and head). Off: ~15 % slower stand-alone.
    opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    session = ort.InferenceSession(data, opts, providers=['CPUExecutionProvider'])

    def run(a: Tensor, b: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {'img1': _numpy(a), 'img2': _numpy(b)})[0])
    return run


_OV_CORE = None


def _ov_runner(data: bytes, threads: int) -> Runner:
    global _OV_CORE
    import openvino as ov
    if _OV_CORE is None:
        _OV_CORE = ov.Core()
    compiled = _OV_CORE.compile_model(
        _OV_CORE.read_model(data), 'CPU',
        {'INFERENCE_NUM_THREADS': threads, 'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY',
         'NUM_STREAMS': 1})
    request = compiled.create_infer_request()

    def run(a: Tensor, b: Tensor) -> Tensor:
        out = request.infer({0: _numpy(a), 1: _numpy(b)})
        return torch.from_numpy(np.array(out[compiled.output(0)], copy=True))
    return run


class FlowEstimator:
    """Light Flow inference through a selectable backend, compiled once per input shape.

    Example:
        >>> est = FlowEstimator(lightflow.load_pretrained('lightflow_w0.5_synthetic'), backend='auto')
        >>> flow = est(img1, img2)          # (N, 2, H, W) pixels, like lightflow.estimate_flow
        >>> est.selected                    # {(1, 3, 384, 512): 'onnxruntime'}

    Args:
        model: a :class:`LightFlow`; its weights are read at every call (a change triggers a rebuild).
        backend: one of :data:`BACKENDS`.
        threads: CPU threads for the runtimes; ``None`` follows ``torch.get_num_threads()`` at each call.
        tolerance: ``'auto'`` drops a runtime whose flow differs from the eager graph's by more than this (px).
        max_shapes: compiled shapes kept (least recently used dropped first).
        upsample: flow at the input size (default), or at the network's 1/4 grid in pixels of that grid (inputs a
            multiple of 64; see :class:`lightflow.export.FlowGraph`).
    """

    def __init__(self, model: LightFlow, backend: str = 'auto', threads: int | None = None,
                 tolerance: float = 1e-2, max_shapes: int = 8, upsample: bool = True) -> None:
        if not isinstance(model, LightFlow):
            raise ValueError(f'model must be a LightFlow, got {type(model).__name__}')
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        if threads is not None and threads < 1:
            raise ValueError(f'threads must be >= 1, got {threads}')
        require_backend(backend)
        self.model = model
        self.backend = backend
        self.threads = threads
        self.tolerance = float(tolerance)
        self.max_shapes = int(max_shapes)
        self.upsample = bool(upsample)
        self.selected: dict[tuple[int, ...], str] = {}
        self.timings_ms: dict[tuple[int, ...], dict[str, float]] = {}
        self._runners: OrderedDict[tuple, Runner] = OrderedDict()
        self._version: tuple | None = None
        self._graph: FlowGraph | None = None

    def _param(self) -> Tensor:
        return next(self.model.parameters())

    def _can_use_runtimes(self) -> bool:
        p = self._param()
        return p.device.type == 'cpu' and p.dtype == torch.float32

    def _build(self, name: str, shape: tuple[int, ...], threads: int) -> Runner:
        p = self._param()
        if name == 'torch':
            return _torch_runner(self._graph, p.device, p.dtype)
        data = onnx_bytes(self._graph, shape[2], shape[3], batch=shape[0], dynamic_batch=False)
        return (_ort_runner if name == 'onnxruntime' else _ov_runner)(data, threads)

    def _select(self, shape: tuple[int, ...], threads: int, a: Tensor, b: Tensor) -> Runner:
        if self.backend != 'auto':
            if self.backend != 'torch' and not self._can_use_runtimes():
                p = self._param()
                raise ValueError(f'backend {self.backend!r} runs fp32 models on the CPU; this model is {p.dtype} on '
                                 f"{p.device} (use backend='torch' or 'auto')")
            self.selected[shape] = self.backend
            return self._build(self.backend, shape, threads)
        reference = self._build('torch', shape, threads)
        names = [n for n in _AUTO_ORDER if n in available_backends()] if self._can_use_runtimes() else ['torch']
        if names == ['torch']:
            self.selected[shape] = 'torch'
            return reference
        expected = reference(a, b).float().cpu()
        runs = {}
        for name in names:
            try:
                run = reference if name == 'torch' else self._build(name, shape, threads)
                diff = float((run(a, b).float() - expected).abs().max())
            except Exception as e:  # a runtime that cannot build or run this graph is skipped, not fatal
                warnings.warn(f'lightflow: backend {name!r} unavailable for {shape} ({type(e).__name__}: {e})',
                              RuntimeWarning, stacklevel=4)
                continue
            if not diff <= self.tolerance:
                warnings.warn(f'lightflow: backend {name!r} differs from eager by {diff:.3g} px; not used',
                              RuntimeWarning, stacklevel=4)
                continue
            runs[name] = run
        # The race: the candidates take turns (3 rounds of 2 calls), so a burst of load hits them alike; best time.
        times = {name: float('inf') for name in runs}
        for _ in range(3):
            for name, run in runs.items():
                for _ in range(2):
                    t0 = time.perf_counter()
                    run(a, b)
                    times[name] = min(times[name], 1e3 * (time.perf_counter() - t0))
        best = min(runs.items(), key=lambda item: times[item[0]]) if runs else None
        assert best is not None, 'the eager torch graph is always a candidate'
        self.selected[shape], self.timings_ms[shape] = best[0], times
        return best[1]

    def runner(self, a: Tensor, b: Tensor) -> Runner:
        """The compiled runner for inputs shaped like ``a`` (building and selecting it on first use)."""
        version = (weights_version(self.model), self._param().device, self._param().dtype)
        if version != self._version:
            self._runners.clear()
            self.selected.clear()
            self.timings_ms.clear()
            with torch.no_grad():
                self._graph = FlowGraph(self.model, upsample=self.upsample)
            self._version = version
        threads = self.threads or torch.get_num_threads()
        shape = tuple(a.shape)
        div = self.model.size_divisor
        if not self.upsample and (shape[-2] % div or shape[-1] % div):
            raise ValueError(f'FlowEstimator(upsample=False) needs H and W divisible by {div}, got '
                             f'{shape[-2]}x{shape[-1]}')
        key = (shape, threads)
        run = self._runners.get(key)
        if run is None:
            run = self._select(shape, threads, a, b)
            self._runners[key] = run
            while len(self._runners) > self.max_shapes:
                self._runners.popitem(last=False)
        else:
            self._runners.move_to_end(key)
        return run

    def __call__(self, img1: Tensor, img2: Tensor) -> Tensor:
        """(N, 3, H, W) RGB 0..255 float frames -> (N, 2, H, W) flow in pixels, on the model's device."""
        out = self.runner(img1, img2)(img1, img2)
        return out.to(self._param().device)
