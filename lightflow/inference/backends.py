"""Inference backends for Light Flow behind one object: :class:`FlowEstimator`.

Each backend runs the same :class:`lightflow.inference.FlowGraph` (frames in, flow in pixels out, BN folded). Backends
live in one registry, name -> :class:`Backend` (:func:`register_backend`); adding one is one session class and one
registration. A name is resolved once, by :func:`resolve_backend`, into its :class:`Backend` (kind ``'onnx'`` or
``'module'``, the devices and dtypes it runs), which is what the callers pass down:

* ``'torch'``: eager PyTorch, channels-last, on the model's device (the only choice on CUDA or for fp16/bf16 models).
* ``'onnxruntime'``: the graph exported to ONNX and run by ONNX Runtime's CPU execution provider.
* ``'openvino'``: the same ONNX graph compiled by OpenVINO for its CPU plugin (fp32 inference precision forced, since
  its CPU plugin would otherwise pick bf16 on CPUs that have it).
* ``'auto'``: on CPU with an fp32 model, every available backend is built for the first input of a new shape, checked
  against the eager graph (max abs difference <= ``tolerance`` px) and timed on that input; the fastest is kept for that
  shape and the others are closed at once (their sessions and thread pools freed). Elsewhere ``'torch'``.

A backend is compiled once per input shape (N, 3, H, W) and thread count (export ~0.1-0.4 s, session ~0.1 s) and
rebuilt when the model changes by any route: every call asks a :class:`lightflow.inference.watch.WeightWatch`
(version counters, tensor identities and data pointers, a by-value snapshot of ``config``, and a float sum of the
weights), so ``load_state_dict``, optimizer steps, ``p.data`` edits, EMA copies, writes through
``p.detach().numpy()`` and in-place ``model.config`` edits all reach the next call. No hooks are installed.
The runtimes are optional: ``pip install 'lightflow[deploy]'``.
"""
from __future__ import annotations

import importlib.util
import math
import sys
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch
from torch import Tensor

from ..models.lightflow import LightFlow
from .graph import FlowGraph, check_finite_weights
from .onnx import onnx_bytes
from .watch import WeightWatch

__all__ = ['AUTO', 'Backend', 'FlowEstimator', 'OnnxSession', 'available_backends', 'backend_names',
           'check_backend', 'check_frames', 'onnx_session', 'register_backend', 'require_backend', 'resolve_backend',
           'weights_fingerprint']

# A first compile at a new shape that takes longer than this prints a one-line notice on stderr.
COMPILE_NOTICE_S = 2.0


class OnnxSession(Protocol):
    """A runtime session of an ONNX graph: named numpy inputs -> list of numpy outputs."""

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


_DTYPE_NAMES = {torch.float32: 'fp32', torch.float16: 'fp16', torch.bfloat16: 'bf16', torch.float64: 'fp64'}


@dataclass(frozen=True)
class Backend:
    """An inference backend: what a backend name resolves to (:func:`resolve_backend`).

    Attributes:
        name: the name users pass (``backend='...'``).
        package: the Python package it needs (``None``: only torch).
        session: ``(onnx_bytes, threads) -> OnnxSession`` for ONNX runtimes; ``None`` for the eager torch graph.
        devices: the device types it runs on (``('cpu',)``, ``('cuda',)``...); empty: any (the model's). An ONNX
            backend that gives none runs on ``('cpu',)``.
        dtypes: the model dtypes it runs; empty: any. An ONNX backend that gives none runs ``(torch.float32,)``.
    """

    name: str
    package: str | None = None
    session: Callable[[bytes, int], OnnxSession] | None = None
    devices: tuple[str, ...] = ()
    dtypes: tuple[torch.dtype, ...] = ()

    def __post_init__(self) -> None:
        if self.session is not None and not self.devices:
            object.__setattr__(self, 'devices', ('cpu',))
        if self.session is not None and not self.dtypes:
            object.__setattr__(self, 'dtypes', (torch.float32,))

    @property
    def kind(self) -> str:
        """``'auto'`` (pick per input shape), ``'onnx'`` (a session of the exported graph) or ``'module'`` (the
        BN-folded torch graph)."""
        return 'auto' if self.name == 'auto' else 'onnx' if self.session is not None else 'module'

    def runs(self, device: torch.device, dtype: torch.dtype) -> bool:
        """Whether it runs a model of ``dtype`` on ``device``."""
        return (not self.devices or device.type in self.devices) and (not self.dtypes or dtype in self.dtypes)

    def refuse(self, device: torch.device, dtype: torch.dtype) -> None:
        """One-line ``ValueError`` unless it :meth:`runs` a ``dtype`` model on ``device``."""
        if not self.runs(device, dtype):
            dtypes = '/'.join(_DTYPE_NAMES.get(d, str(d)) for d in self.dtypes) or 'any'
            devices = '/'.join(d.upper() for d in self.devices) or 'any device'
            raise ValueError(f'backend {self.name!r} runs {dtypes} models on the {devices}; this model is {dtype} on '
                             f"{device} (use backend='torch' or 'auto')")

    def __str__(self) -> str:
        return self.name


# 'auto' is no registered backend: FlowEstimator picks one of those per input shape.
AUTO = Backend('auto')
_REGISTRY: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add ``backend`` to the registry (``'auto'`` tries the registered ones in registration order)."""
    if backend.name == 'auto' or backend.name in _REGISTRY:
        raise ValueError(f'backend {backend.name!r} is already registered')
    _REGISTRY[backend.name] = backend
    return backend


def backend_names() -> tuple[str, ...]:
    """Every accepted backend name: ``'auto'`` and the registered ones."""
    return ('auto', *_REGISTRY)


def available_backends() -> list[str]:
    """The backends usable in this environment (``'torch'`` always; the runtimes when their package imports)."""
    return [n for n, b in _REGISTRY.items() if b.package is None or importlib.util.find_spec(b.package) is not None]


def require_backend(backend: str) -> None:
    """``ImportError`` naming the package and the extra when ``backend``'s runtime is not installed."""
    entry = _REGISTRY.get(backend)
    pkg = entry.package if entry is not None else None
    if pkg is not None and importlib.util.find_spec(pkg) is None:
        raise ImportError(f"backend {backend!r} needs the {pkg} package: pip install 'lightflow[deploy]' "
                          f'(or pip install {pkg})')


def resolve_backend(backend: str | Backend, option: str = 'backend') -> Backend:
    """The :class:`Backend` of a name (``'auto'``: :data:`AUTO`), its runtime checked to be installed; a
    :class:`Backend` is returned as it is (resolve once, pass the object down). ``ValueError`` naming ``option`` for
    an unknown name, ``ImportError`` naming the package for a missing runtime."""
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str) or backend not in backend_names():
        raise ValueError(f'{option} must be one of {backend_names()}, got {backend!r}')
    require_backend(backend)
    return AUTO if backend == 'auto' else _REGISTRY[backend]


def check_backend(backend: str | Backend, option: str = 'backend') -> str:
    """The name of ``backend`` if it is known and its runtime installed (:func:`resolve_backend`)."""
    return resolve_backend(backend, option).name


class _OrtSession:
    """ONNX Runtime CPU session with the project's options."""

    def __init__(self, data: bytes, threads: int) -> None:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Pool threads busy-wait between ops by default and keep spinning after a run, competing for the cores with
        # whatever runs next in the process (the detector's PyTorch backbone and head). Off: ~15 % slower stand-alone.
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self.session = ort.InferenceSession(data, opts, providers=['CPUExecutionProvider'])

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)


class _OpenVinoSession:
    """OpenVINO CPU compiled model (fp32, latency hint, one stream); its own ``Core``, freed with the session."""

    def __init__(self, data: bytes, threads: int) -> None:
        import openvino as ov
        self.core = ov.Core()
        self.compiled = self.core.compile_model(
            self.core.read_model(data), 'CPU',
            {'INFERENCE_NUM_THREADS': threads, 'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY',
             'NUM_STREAMS': 1})
        self.request = self.compiled.create_infer_request()

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        out = self.request.infer(feeds)
        return [np.array(out[o], copy=True) for o in self.compiled.outputs]


register_backend(Backend('torch'))  # any device and dtype: the model's
register_backend(Backend('onnxruntime', 'onnxruntime', _OrtSession, devices=('cpu',), dtypes=(torch.float32,)))
register_backend(Backend('openvino', 'openvino', _OpenVinoSession, devices=('cpu',), dtypes=(torch.float32,)))


def onnx_session(backend: str, data: bytes, threads: int) -> OnnxSession:
    """A session of ``backend`` (an ONNX runtime) for the ONNX model ``data``: what the tools use to run a file."""
    entry = resolve_backend(backend)
    if entry.session is None:
        raise ValueError(f'backend {backend!r} does not run ONNX files')
    return entry.session(data, threads)


def weights_fingerprint(model: torch.nn.Module) -> tuple:
    """A key that changes when any parameter, buffer, scalar attribute or config field of ``model`` changes.

    One-off use (walks the model); :class:`lightflow.inference.watch.WeightWatch` is the per-call check.
    """
    watch = WeightWatch(model)
    watch.mark()
    (versions, pointers), attrs = watch._state
    return tuple(versions), tuple(pointers), attrs, tuple(watch._content)


def check_frames(img1: Tensor, img2: Tensor) -> None:
    """``ValueError`` unless both are finite RGB (N, 3, H, W) tensors of one shape."""
    for name, img in (('img1', img1), ('img2', img2)):
        if not isinstance(img, Tensor) or img.dim() != 4 or img.shape[1] != 3:
            shape = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
            raise ValueError(f'{name}: expected RGB (N, 3, H, W), got {shape} (convert grey/RGBA to RGB first, e.g. '
                             'lightflow.io.read_image)')
    if img1.shape != img2.shape:
        raise ValueError(f'img1 and img2 must have the same shape, got {tuple(img1.shape)} and {tuple(img2.shape)}')
    for name, img in (('img1', img1), ('img2', img2)):
        # One NaN would spread through every conv and return an all-NaN flow. A sum carries any NaN/inf and costs a
        # tenth of an element-wise isfinite pass (only a huge finite image can overflow it: then count exactly).
        bad = 0 if torch.isfinite(img.sum()) else int((~torch.isfinite(img)).sum())
        if bad:
            raise ValueError(f'{name}: {bad} NaN/inf values; images must be finite RGB in 0..255')


def _numpy(x: Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().float().numpy())


class _TorchRunner:
    """The eager BN-folded graph, channels-last, on the model's device."""

    def __init__(self, graph: FlowGraph, device: torch.device, dtype: torch.dtype) -> None:
        self.graph = graph.to(device=device, dtype=dtype, memory_format=torch.channels_last)
        self.device, self.dtype = device, dtype

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        with torch.inference_mode():
            return self.graph(a.to(self.device, self.dtype), b.to(self.device, self.dtype))

    def close(self) -> None:
        """Nothing to free: the graph is shared with the estimator."""


class _SessionRunner:
    """An ONNX runtime session of the flow graph, called with torch tensors."""

    def __init__(self, session: OnnxSession) -> None:
        self.session: OnnxSession | None = session

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.from_numpy(self.session.run({'img1': _numpy(a), 'img2': _numpy(b)})[0])

    def close(self) -> None:
        """Drop the session (and with it the runtime's thread pool)."""
        self.session = None


Runner = Callable[[Tensor, Tensor], Tensor]


class FlowEstimator:
    """Light Flow inference through a selectable backend, compiled once per input shape.

    Example:
        >>> est = FlowEstimator(lightflow.load_pretrained('lightflow_w0.5_synthetic'), backend='auto')
        >>> flow = est(img1, img2)          # (N, 2, H, W) pixels, like lightflow.estimate_flow
        >>> est.selected                    # {(1, 3, 384, 512): 'onnxruntime'}

    Args:
        model: a :class:`LightFlow`; checked for changes at every call (a change triggers a rebuild).
        backend: ``'auto'``, a registered backend name (:func:`backend_names`) or its resolved :class:`Backend`
            (kept as :attr:`backend`).
        threads: CPU threads for the runtimes; ``None`` follows ``torch.get_num_threads()`` at each call.
        tolerance: ``'auto'`` drops a runtime whose flow differs from the eager graph's by more than this (px, >= 0).
        max_shapes: compiled shapes kept (>= 1; least recently used dropped first).
        upsample: flow at the input size (default), or at the network's 1/4 grid in pixels of that grid (inputs a
            multiple of 64; see :class:`lightflow.inference.FlowGraph`).
        watch_content: also sum the weights at every call, so writes that bypass autograd's version counters
            (``p.data.mul_``, numpy writes) are seen; ``False`` for frozen models (see
            :class:`lightflow.inference.watch.WeightWatch`; ~0.04 ms instead of ~0.15 ms for alpha = 0.5).
    """

    def __init__(self, model: LightFlow, backend: str | Backend = 'auto', threads: int | None = None,
                 tolerance: float = 1e-2, max_shapes: int = 8, upsample: bool = True,
                 watch_content: bool = True) -> None:
        if not isinstance(model, LightFlow):
            raise ValueError(f'model must be a LightFlow, got {type(model).__name__}')
        backend = resolve_backend(backend)
        if threads is not None and threads < 1:
            raise ValueError(f'threads must be >= 1, got {threads}')
        if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
            raise ValueError(f'tolerance must be a finite number >= 0 (px), got {tolerance!r}')
        if isinstance(max_shapes, bool) or not isinstance(max_shapes, int) or max_shapes < 1:
            raise ValueError(f'max_shapes must be an int >= 1, got {max_shapes!r}')
        self.model = model
        self.backend = backend
        self.threads = threads
        self.tolerance = float(tolerance)
        self.max_shapes = max_shapes
        self.upsample = bool(upsample)
        self.selected: dict[tuple[int, ...], str] = {}
        self.timings_ms: dict[tuple[int, ...], dict[str, float]] = {}
        self._runners: OrderedDict[tuple, Runner] = OrderedDict()
        self._watch = WeightWatch(model, content=watch_content)
        self._graph: FlowGraph | None = None

    def _param(self) -> Tensor:
        return next(self.model.parameters())

    def _build(self, entry: Backend, shape: tuple[int, ...], threads: int) -> Runner:
        p = self._param()
        if entry.session is None:
            return _TorchRunner(self._graph, p.device, p.dtype)
        data = onnx_bytes(self._graph, shape[2], shape[3], batch=shape[0], dynamic_batch=False)
        return _SessionRunner(entry.session(data, threads))

    def _select(self, shape: tuple[int, ...], threads: int, a: Tensor, b: Tensor) -> Runner:
        if self.backend.kind != 'auto':
            p = self._param()
            self.backend.refuse(p.device, p.dtype)
            self.selected[shape] = self.backend.name
            return self._build(self.backend, shape, threads)
        reference = self._build(_REGISTRY['torch'], shape, threads)
        p = self._param()
        names = [n for n in available_backends() if n != 'torch' and _REGISTRY[n].runs(p.device, p.dtype)]
        if not names:
            self.selected[shape] = 'torch'
            return reference
        expected = reference(a, b).float().cpu()
        runs: dict[str, Runner] = {'torch': reference}
        for name in names:
            run = None
            try:
                run = self._build(_REGISTRY[name], shape, threads)
                diff = float((run(a, b).float() - expected).abs().max())
            except Exception as e:  # a runtime that cannot build or run this graph is skipped, not fatal
                warnings.warn(f'lightflow: backend {name!r} unavailable for {shape} ({type(e).__name__}: {e})',
                              RuntimeWarning, stacklevel=4)
                diff = None
            if diff is not None and not diff <= self.tolerance:
                warnings.warn(f'lightflow: backend {name!r} differs from eager by {diff:.3g} px; not used',
                              RuntimeWarning, stacklevel=4)
            if diff is not None and diff <= self.tolerance:
                runs[name] = run
            elif run is not None:
                run.close()
        # The race: the candidates take turns (3 rounds of 2 calls), so a burst of load hits them alike; best time.
        # The runtimes come first, so on a tie the eager graph (usually the slowest on CPU) loses.
        order = [*(n for n in runs if n != 'torch'), 'torch']
        times = {name: float('inf') for name in order}
        for _ in range(3):
            for name in order:
                for _ in range(2):
                    t0 = time.perf_counter()
                    runs[name](a, b)
                    times[name] = min(times[name], 1e3 * (time.perf_counter() - t0))
        best = min(order, key=lambda n: times[n])
        for name, run in runs.items():  # the losers' sessions and thread pools go now, not at exit
            if name != best:
                run.close()
        self.selected[shape], self.timings_ms[shape] = best, times
        return runs[best]

    def _refresh(self) -> None:
        """Rebuild the folded graph (and drop every compiled runner) when the model changed since the last call."""
        if not self._watch.changed():
            return
        for run in self._runners.values():
            run.close()
        self._runners.clear()
        self.selected.clear()
        self.timings_ms.clear()
        check_finite_weights(self.model)
        with torch.no_grad():
            self._graph = FlowGraph(self.model, upsample=self.upsample)
        self._watch.mark()

    def runner(self, a: Tensor, b: Tensor) -> Runner:
        """The compiled runner for inputs shaped like ``a`` (building and selecting it on first use)."""
        self._refresh()
        threads = self.threads or torch.get_num_threads()
        shape = tuple(a.shape)
        div = self.model.size_divisor
        if not self.upsample and (shape[-2] % div or shape[-1] % div):
            raise ValueError(f'FlowEstimator(upsample=False) needs H and W divisible by {div}, got '
                             f'{shape[-2]}x{shape[-1]}')
        key = (shape, threads)
        run = self._runners.get(key)
        if run is None:
            notice = threading.Timer(COMPILE_NOTICE_S, lambda: print(
                f'lightflow: compiling the flow graph for input {shape} ({self.backend} backend); this happens once '
                'per input shape', file=sys.stderr, flush=True))
            notice.daemon = True
            notice.start()
            try:
                run = self._select(shape, threads, a, b)
            finally:
                notice.cancel()
            self._runners[key] = run
            while len(self._runners) > self.max_shapes:
                self._runners.popitem(last=False)[1].close()
        else:
            self._runners.move_to_end(key)
        return run

    def __call__(self, img1: Tensor, img2: Tensor) -> Tensor:
        """(N, 3, H, W) RGB 0..255 float frames -> (N, 2, H, W) flow in pixels, on the model's device."""
        check_frames(img1, img2)
        out = self.runner(img1, img2)(img1, img2)
        return out.to(self._param().device)
