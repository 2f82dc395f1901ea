from .flownets import FlowNetS, flownets
from .lightflow import (PIXEL_MEAN, DepthwiseSeparableConv, LightFlow, LightFlowConfig, build_lightflow,
                        lightflow_w0_5, lightflow_w0_75, lightflow_w1_0, scale_channels)

__all__ = ['PIXEL_MEAN', 'DepthwiseSeparableConv', 'LightFlow', 'LightFlowConfig', 'build_lightflow',
           'lightflow_w0_5', 'lightflow_w0_75', 'lightflow_w1_0', 'scale_channels', 'FlowNetS', 'flownets']
