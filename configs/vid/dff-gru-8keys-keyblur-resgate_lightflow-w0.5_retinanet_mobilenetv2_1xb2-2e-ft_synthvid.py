# The keyblur 8-key GRU recipe with a ResidualGate after the warp of the current frame (not in the paper; see
# dff-resgate_...): the GRU aggregates the keys, the gate switches off what the warp to the current frame got wrong.
_base_ = ['./dff-gru-8keys-keyblur_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid.py']
model = dict(gate=dict(type='ResidualGate', hidden=16))
# The gate is new: it learns at 10x the detector's rate (at 1x it had barely left the identity after the fine-tune).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'gate': dict(lr_mult=10.0)}))
