"""Light Flow inference, one path from frames to flow.

* :mod:`.graph`: :meth:`FlowGraph.pixel_flow`, the only frames -> pixel-flow code, and :class:`FlowGraph`, that
  path on a BN-folded copy of the network (what the backends compile and the ONNX file holds).
* :mod:`.estimate`: :func:`estimate_flow`, the entry point for any image size and dtype, and its per-model cache of
  estimators (:func:`flow_estimator`).
* :mod:`.backends`: the backend registry (name -> :class:`Backend`, resolved once by :func:`resolve_backend` into
  the object the callers pass down: kind ``'onnx'`` / ``'module'``, devices, dtypes),
  the runtime sessions and :class:`FlowEstimator`. Adding a backend is one session class and one
  :func:`register_backend` call.
* :mod:`.onnx`: :func:`module_onnx_bytes`, the one ONNX exporter (flow graph and the detector's non-key step), and
  :func:`export_onnx`.
"""
from .backends import (AUTO, Backend, FlowEstimator, available_backends, backend_names, check_backend, onnx_session,
                       register_backend, resolve_backend)
from .estimate import estimate_flow, flow_estimator, to_image_batch
from .graph import FlowGraph, fold_lightflow, pad_to_multiple
from .onnx import OPSET, check_onnx_matches, export_onnx, module_onnx_bytes, onnx_bytes, read_onnx_metadata

__all__ = ['estimate_flow', 'flow_estimator', 'pad_to_multiple', 'to_image_batch', 'FlowGraph', 'fold_lightflow',
           'FlowEstimator', 'Backend', 'AUTO', 'register_backend', 'resolve_backend', 'backend_names',
           'available_backends', 'check_backend',
           'onnx_session', 'export_onnx', 'onnx_bytes', 'module_onnx_bytes', 'read_onnx_metadata',
           'check_onnx_matches', 'OPSET']
