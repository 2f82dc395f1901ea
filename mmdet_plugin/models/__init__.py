"""Models of the video plugin: Light Flow motion, feature warping, the flow-guided GRU and the video detector."""
from .aggregator import ConvGRUCell, FlowGuidedGRU
from .flow_video_detector import FlowVideoDetector, FrameRecord, summarize_frame_records
from .flow_warp import FlowWarp
from .motion import LightFlowMotion

__all__ = ['LightFlowMotion', 'FlowWarp', 'ConvGRUCell', 'FlowGuidedGRU',
           'FlowVideoDetector', 'FrameRecord', 'summarize_frame_records']
from .runner_utils import (load_vid_config, profiled_parts, run_video_test, summarize_parts,  # noqa: E402
                           timed_predict, unwrap_video_detector)

__all__ += ['load_vid_config', 'run_video_test', 'unwrap_video_detector', 'timed_predict', 'profiled_parts',
            'summarize_parts']
