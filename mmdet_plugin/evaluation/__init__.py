"""Video detection metrics; importing registers ``VIDMotionMetric`` in ``mmdet.registry.METRICS``."""
from .vid_metric import VIDMotionMetric, box_iou, motion_ious, speed_of

__all__ = ['VIDMotionMetric', 'box_iou', 'motion_ious', 'speed_of']
