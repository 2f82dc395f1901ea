"""Light Flow (arXiv 1804.05830): a light-weight FlowNet in pure PyTorch + torchvision."""
from .checkpoint import load_lightflow_checkpoint
from .inference import FlowEstimator, FlowGraph, available_backends, estimate_flow, export_onnx, flow_estimator
from .io import read_flo, read_image, read_kitti_flow, write_flo, write_kitti_flow
from .models import (FlowNetS, LightFlow, LightFlowConfig, build_lightflow, flownets, lightflow_w0_5, lightflow_w0_75,
                     lightflow_w1_0)
from .pretrained import list_pretrained, load_pretrained
from .viz import flow_to_color
from .warp import flow_warp, resize_flow

__version__ = '0.1.0'

__all__ = ['LightFlow', 'LightFlowConfig', 'build_lightflow', 'lightflow_w1_0', 'lightflow_w0_75', 'lightflow_w0_5',
           'FlowNetS', 'flownets', 'load_pretrained', 'list_pretrained', 'load_lightflow_checkpoint',
           'estimate_flow', 'flow_estimator', 'FlowEstimator', 'available_backends', 'FlowGraph',
           'export_onnx', 'read_flo', 'write_flo', 'read_kitti_flow', 'write_kitti_flow',
           'read_image', 'flow_warp', 'resize_flow', 'flow_to_color']
