"""mmengine glue for Light Flow; importing it registers everything into mmengine's root registries, so configs use
``default_scope = None`` and ``custom_imports = dict(imports=['lightflow.engine'], allow_failed_imports=False)``."""
from . import safe_checkpoint  # noqa: F401  (weights-only loading for every mmengine checkpoint)
from .checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend
from .config import load_config, prepare_cpu_distributed, set_data_root, train_from_cfg
from .dataset import FlowDataset, build_flow_transforms
from .hooks import FlowVisualizationHook, LightFlowMetaHook, ValidateBeforeTrainHook, flow_panel
from .metric import FlowMetric
from .synthetic import MotionCurriculumHook, SyntheticFlowPreprocessor
from .model import (FlowDataPreprocessor, LightFlowModel, checkpoint_width, downsample_flow_target, flow_l1_loss,
                    lightflow_state_dict, load_lightflow_checkpoint, load_lightflow_weights)

__all__ = ['LightFlowModel', 'FlowDataPreprocessor', 'SyntheticFlowPreprocessor', 'MotionCurriculumHook', 'AtomicCheckpointHook', 'AtomicLocalBackend', 'FlowDataset', 'FlowMetric', 'FlowVisualizationHook',
           'LightFlowMetaHook', 'ValidateBeforeTrainHook', 'load_lightflow_checkpoint', 'load_lightflow_weights', 'lightflow_state_dict',
           'checkpoint_width', 'flow_l1_loss', 'downsample_flow_target', 'build_flow_transforms', 'flow_panel',
           'load_config', 'set_data_root', 'prepare_cpu_distributed', 'train_from_cfg']
