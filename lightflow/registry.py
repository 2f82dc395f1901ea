"""mmengine imports ``<scope>.registry`` when it builds in the ``lightflow`` scope; the registries live in
:mod:`lightflow.engine.registry` (importing this module imports mmengine and registers the training glue)."""
from .engine.registry import *  # noqa: F401,F403
from .engine.registry import __all__  # noqa: F401
