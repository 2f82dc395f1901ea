"""mmengine glue for Light Flow. Importing it registers everything into the ``lightflow`` registry scope
(:mod:`lightflow.engine.registry`, children of mmengine's root registries), so configs use
``default_scope = 'lightflow'`` and ``custom_imports = dict(imports=['lightflow.engine'], allow_failed_imports=False)``;
configs of other scopes name these classes with the prefix, e.g. ``type='lightflow.AtomicCheckpointHook'``."""
from . import registry, safe_checkpoint  # noqa: F401  (safe_checkpoint: weights-only loading for every checkpoint)
from .adapt import ConcatFlowDataset, LightFlowAdaptModel, VideoPairsDataset
from .checkpoint_hook import AtomicCheckpointHook, AtomicLocalBackend
from .config import load_config, prepare_cpu_distributed, set_data_root, train_from_cfg
from .dataset import PackedFlowDataset, build_flow_transforms
from .hooks import (FlowVisualizationHook, LightFlowMetaHook, RNGStateHook, ValidateBeforeTrainHook, flow_panel,
                    get_rng_states, set_rng_states)
from .metric import FlowMetric
from .sampler import SeededDefaultSampler, SeededIndex, SeededInfiniteSampler
from .synthetic import MotionCurriculumHook, SyntheticFlowPreprocessor
from .model import (FlowDataPreprocessor, LightFlowModel, checkpoint_width, downsample_flow_target, flow_l1_loss,
                    lightflow_state_dict, load_lightflow_checkpoint, load_lightflow_weights)

__all__ = ['LightFlowModel', 'LightFlowAdaptModel', 'VideoPairsDataset', 'ConcatFlowDataset', 'FlowDataPreprocessor', 'SyntheticFlowPreprocessor', 'MotionCurriculumHook',
           'AtomicCheckpointHook', 'AtomicLocalBackend', 'PackedFlowDataset', 'FlowMetric', 'FlowVisualizationHook',
           'LightFlowMetaHook', 'RNGStateHook', 'ValidateBeforeTrainHook', 'SeededIndex', 'SeededInfiniteSampler',
           'SeededDefaultSampler', 'get_rng_states', 'set_rng_states', 'load_lightflow_checkpoint',
           'load_lightflow_weights', 'lightflow_state_dict', 'checkpoint_width', 'flow_l1_loss',
           'downsample_flow_target', 'build_flow_transforms', 'flow_panel', 'load_config', 'set_data_root',
           'prepare_cpu_distributed', 'train_from_cfg']
