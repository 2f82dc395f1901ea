"""The earlier name of :mod:`lightflow.inference.onnx` (ONNX export; ``FlowGraph`` is importable from it too).

The same module object, not a copy of its names: ``from lightflow.export import ...``, private names and
``monkeypatch.setattr(lightflow.export, ...)`` keep working.
"""
import sys

from .inference import onnx

sys.modules[__name__] = onnx
