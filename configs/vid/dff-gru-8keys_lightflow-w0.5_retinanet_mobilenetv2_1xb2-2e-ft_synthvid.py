# Propagation + GRU trained as the paper (Section 4, Table 3): each training sample is 8 key frames spaced exactly l
# apart plus one current frame 0..l-1 after the last key; the loss is on the current frame only; the first key's state
# is its own features (7 GRU steps). Inference runs the GRU over the whole video with no restart (max_chain=None).
# On CPU, backpropagation is truncated to the last 2 keys' backbones (grad_key_frames; every GRU step keeps its
# gradients), and each epoch visits a random half of the training frames as current frames (an 8-key clip costs
# ~5x a 2-key one; propagation and the 2-key GRU see all of them). Fine-tuned 2 epochs from the single-frame detector
# (--cfg-options load_from=...).
_base_ = ['./dff-gru_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid.py']
num_key_frames = 8
train_pipeline = [
    dict(type='KeyFrameClipSample', num_key_frames=num_key_frames,
         key_frame_interval={{_base_.key_frame_interval}}, random_interval=False),
    *_base_.train_pipeline[1:],
]
train_dataloader = dict(sampler=dict(type='TrackImgSubsetSampler', fraction=0.5), dataset=dict(pipeline=train_pipeline))
model = dict(aggregator=dict(max_chain=None), train_cfg=dict(grad_key_frames=2))
