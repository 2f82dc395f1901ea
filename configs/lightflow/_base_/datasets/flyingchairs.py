# Flying Chairs: the official split (22,232 train / 640 val pairs). Override the root with
# `--cfg-options data_root=/path/to/FlyingChairs_release/` (tools rewrite every dataset root that uses it).
data_root = 'data/FlyingChairs_release/'

train_dataloader = dict(
    batch_size=64,  # per GPU: 2 x 64 = 128, the recipe
    num_workers=8,
    persistent_workers=True,
    # DefaultSampler's order; each index carries its augmentation seed, so --resume augments exactly as before.
    sampler=dict(type='SeededDefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='PackedFlowDataset',
        dataset=dict(type='FlyingChairs', root=data_root, split='train'),
        # Random translate / rotate / zoom, flips (negating the matching flow component), 320x448 crop, photometric.
        transforms=dict(type='chairs_train', crop_size=(320, 448))))

val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='PackedFlowDataset',
        dataset=dict(type='FlyingChairs', root=data_root, split='val'),
        transforms='eval'))
test_dataloader = val_dataloader

# EPE at full resolution: bilinear upsampling of the 1/4 prediction x div_flow.
val_evaluator = dict(type='FlowMetric')
test_evaluator = val_evaluator
