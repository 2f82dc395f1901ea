"""Models of the video plugin: Light Flow motion, feature warping, the flow-guided GRU, the video detector and its
key-frame policies."""
from .aggregator import AggregatorState, ConvGRUCell, FlowGuidedGRU, KeyFrameAggregator
from .baseline_motion import DISMotion, FrameMotion, ZeroMotion
from .flow_video_detector import FlowVideoDetector, FrameRecord
from .flow_warp import FlowWarp
from .key_frame_policy import KEY_FRAME_POLICIES, FixedInterval, KeyFramePolicy, MotionThreshold
from .motion import LightFlowMotion
from .oracle_motion import OracleMotion
from .weighted_average import FlowGuidedWeightedAverage

__all__ = ['LightFlowMotion', 'ZeroMotion', 'DISMotion', 'OracleMotion', 'FrameMotion', 'FlowWarp', 'ConvGRUCell',
           'FlowGuidedGRU', 'FlowGuidedWeightedAverage', 'KeyFrameAggregator', 'AggregatorState', 'FlowVideoDetector',
           'FrameRecord', 'KEY_FRAME_POLICIES', 'KeyFramePolicy', 'FixedInterval', 'MotionThreshold']
