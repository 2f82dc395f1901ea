# The paper's aggregation baseline (Table 4: "feature aggregation of THP, weighted average, recursive") trained exactly as
# the 8-key GRU (dff-gru-8keys_...): 8 key frames l apart + the current frame, loss on the current frame, whole-video
# inference; only the aggregator differs.
_base_ = ['./dff-gru-8keys_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid.py']
model = dict(aggregator=dict(_delete_=True, type='FlowGuidedWeightedAverage', in_channels=64, embed_channels=32,
                             max_chain=None))
