# Light Flow (arXiv 1804.05830, Table 1); width_mult = alpha of Table 2. The network predicts flow / div_flow at 1/4
# resolution; the loss compares it with the area-downsampled GT / div_flow (lightflow.losses.flow_l1_loss).
model = dict(
    type='LightFlowModel',
    width_mult=1.0,
    div_flow=20.0,
    data_preprocessor=dict(type='FlowDataPreprocessor'),
)
