"""mmdetection 3.x plugin for flow-guided video object detection with Light Flow (arXiv 1804.05830).

Importing it registers the datasets, metrics and models in mmdet's registries; configs load it with
``custom_imports = dict(imports=['mmdet_plugin'], allow_failed_imports=False)``.
"""
import lightflow.engine  # noqa: F401  (weights-only checkpoint loading for mmengine, before any checkpoint loads)

from . import datasets, evaluation, models  # noqa: F401  (imports register the modules)
from . import apis  # noqa: F401  (the tools' test / benchmark plumbing; it imports models, never the reverse)
from .models import FlowGuidedGRU, FlowVideoDetector, FlowWarp, LightFlowMotion

__all__ = ['apis', 'datasets', 'evaluation', 'models', 'LightFlowMotion', 'FlowWarp', 'FlowGuidedGRU',
           'FlowVideoDetector']
