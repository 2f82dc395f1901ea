# Built-in synthetic Chairs-like data (lightflow.data.SyntheticChairs): rendered on the fly with exact flow, no
# download. The validation set uses another seed, so it is held out from training.
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    # InfiniteSampler's order; each index carries its augmentation seed, so --resume augments exactly as before.
    sampler=dict(type='SeededInfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='PackedFlowDataset',
        dataset=dict(type='SyntheticChairs', num_samples=4000, size=(128, 192), seed=0),
        transforms=[
            dict(type='RandomHorizontalFlip', p=0.5),
            dict(type='RandomVerticalFlip', p=0.1),
            dict(type='PhotometricJitter'),
            dict(type='ToTensor'),
        ]))

val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='PackedFlowDataset',
        dataset=dict(type='SyntheticChairs', num_samples=32, size=(128, 192), seed=1000),
        transforms='eval'))
test_dataloader = val_dataloader

val_evaluator = dict(type='FlowMetric')
test_evaluator = val_evaluator
