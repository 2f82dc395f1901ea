# Propagation with a ResidualGate after the warp (not in the paper): the warped key features of a non-key frame are
# scaled cell by cell from |frame - warped key image|, so the ghost a moving object leaves at its place in the key, and
# features that lag behind a fast object, can be switched off. The gate starts as the identity; otherwise as
# dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid.py (fine-tuned 2 epochs, --cfg-options load_from=...).
_base_ = ['./dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid.py']
model = dict(gate=dict(type='ResidualGate', hidden=16))
# The gate is new: it learns at 10x the detector's rate (at 1x it had barely left the identity after the fine-tune).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'gate': dict(lr_mult=10.0)}))
