"""Torch-free runtime of an exported ``FlowVideoDetector`` (``tools/export_video_detector.py``).

Needs numpy, OpenCV (resize, video files) and ONNX Runtime or OpenVINO; never imports torch, torchvision, mmcv,
mmdet or mmengine, so it can be embedded in an app as it is::

    from lightflow_deploy import VideoDetectorRuntime
    rt = VideoDetectorRuntime('graphs/', backend='onnxruntime')
    dets = rt.process(frame_rgb_uint8)   # Detections(boxes, scores, labels)
"""
from .manifest import FORMAT, FORMAT_VERSION, load_manifest
from .postprocess import Detections, decode_detections, motion_statistic
from .runtime import BACKENDS, FrameInfo, VideoDetectorRuntime

__all__ = ['VideoDetectorRuntime', 'Detections', 'FrameInfo', 'BACKENDS', 'load_manifest', 'decode_detections',
           'motion_statistic', 'FORMAT', 'FORMAT_VERSION']
