# The 8-key GRU recipe with the last key frame of half the training clips blurred (BlurLastKeyFrame: the generator's
# own 3-9 px streak / defocus). Propagation can only warp that blurred key; the GRU gains only if it learned to use
# its memory of the earlier keys, which the plain recipe rarely asks for (15 % of frames are blurred). Everything else
# as dff-gru-8keys_...; fine-tuned 2 epochs from the single-frame detector (--cfg-options load_from=...).
_base_ = ['./dff-gru-8keys_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid.py']
train_pipeline = [
    *_base_.train_pipeline[:-1],
    dict(type='BlurLastKeyFrame', prob=0.5),
    _base_.train_pipeline[-1],
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
