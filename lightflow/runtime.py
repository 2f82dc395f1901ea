"""The earlier name of :mod:`lightflow.inference.backends` (the backend registry and :class:`FlowEstimator`).

The same module object, not a copy of its names: ``from lightflow.runtime import ...``, private names and
``monkeypatch.setattr(lightflow.runtime, ...)`` keep working.
"""
import sys

from .inference import backends

sys.modules[__name__] = backends
