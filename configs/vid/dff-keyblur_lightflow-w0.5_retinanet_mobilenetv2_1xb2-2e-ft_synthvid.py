# The control of the keyblur GRU recipe: propagation fine-tuned with the same blurred last keys (BlurLastKeyFrame,
# half the clips). Propagation has no memory, so what it gains is robustness to a blurred key's features alone; what
# the keyblur GRU gains beyond it is its memory of the earlier keys.
_base_ = ['./dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid.py']
train_pipeline = [
    *_base_.train_pipeline[:-1],
    dict(type='BlurLastKeyFrame', prob=0.5),
    _base_.train_pipeline[-1],
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
