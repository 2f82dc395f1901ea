# Seed recipe: Light Flow alpha = 1.0 on Flying Chairs, batch 128 (2 GPUs x 64), 403 epochs (see the issue text).
_base_ = [
    '_base_/models/lightflow.py',
    '_base_/datasets/flyingchairs.py',
    '_base_/schedules/adam_403e.py',
    '_base_/default_runtime.py',
]
