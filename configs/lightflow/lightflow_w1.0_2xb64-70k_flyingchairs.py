# Light Flow alpha = 1.0 on Flying Chairs with the paper's own schedule: 70k iterations, lr 1e-3 / 1e-2 / halving.
_base_ = [
    '_base_/models/lightflow.py',
    '_base_/datasets/flyingchairs.py',
    '_base_/schedules/adam_70k.py',
    '_base_/default_runtime.py',
]
train_dataloader = dict(sampler=dict(type='SeededInfiniteSampler', shuffle=True))
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=5000), logger=dict(log_metric_by_epoch=False))
log_processor = dict(by_epoch=False)
