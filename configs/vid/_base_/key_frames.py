# The key-frame interval l (paper, Section 3: a key frame every l = 10 frames), written once: the training clip
# sampler (KeyFrameClipSample in the dataset configs) spaces key frames up to l apart, and the leaf configs pass it to
# the detector's test schedule (model.test_cfg.key_frame_interval) as {{_base_.key_frame_interval}}.
key_frame_interval = 10
