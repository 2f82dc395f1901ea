"""The ``lightflow`` registry scope: one child of each mmengine root registry, as mmdet and mmflow have.

Flow configs set ``default_scope = 'lightflow'``; the Runner then looks names up here first and falls back to the
parents (mmengine's own hooks, optimizers, loops, visualizers ...). The project's classes stay out of mmengine's root
registries, so they cannot collide with another package's ``FlowDataset``. Other scopes reach them with the scope
prefix, e.g. ``dict(type='lightflow.AtomicCheckpointHook')`` in an mmdet config.

``X.build(cfg)`` on these registries always resolves names in the ``lightflow`` scope, whichever Runner (e.g. an mmdet
one) last set mmengine's process-wide default scope.
"""
from __future__ import annotations

from mmengine import registry as mm
from mmengine.registry import DefaultScope, Registry

__all__ = ['SCOPE', 'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS',
           'MODELS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
           'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR', 'TASK_UTILS', 'VISUALIZERS',
           'VISBACKENDS', 'LOG_PROCESSORS', 'FUNCTIONS', 'INFERENCERS']

SCOPE = 'lightflow'


def _child(name: str, parent: Registry) -> Registry:
    parent_build = parent.build_func

    def build_in_scope(cfg, *args, **kwargs):
        with DefaultScope.overwrite_default_scope(SCOPE):
            return parent_build(cfg, *args, **kwargs)

    return Registry(name, parent=parent, scope=SCOPE, build_func=build_in_scope, locations=['lightflow.engine'])


RUNNERS = _child('runner', mm.RUNNERS)
RUNNER_CONSTRUCTORS = _child('runner constructor', mm.RUNNER_CONSTRUCTORS)
LOOPS = _child('loop', mm.LOOPS)
HOOKS = _child('hook', mm.HOOKS)
DATASETS = _child('dataset', mm.DATASETS)
DATA_SAMPLERS = _child('data sampler', mm.DATA_SAMPLERS)
TRANSFORMS = _child('transform', mm.TRANSFORMS)
MODELS = _child('model', mm.MODELS)
MODEL_WRAPPERS = _child('model_wrapper', mm.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child('weight initializer', mm.WEIGHT_INITIALIZERS)
OPTIMIZERS = _child('optimizer', mm.OPTIMIZERS)
OPTIM_WRAPPERS = _child('optim_wrapper', mm.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor', mm.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child('parameter scheduler', mm.PARAM_SCHEDULERS)
METRICS = _child('metric', mm.METRICS)
EVALUATOR = _child('evaluator', mm.EVALUATOR)
TASK_UTILS = _child('task util', mm.TASK_UTILS)
VISUALIZERS = _child('visualizer', mm.VISUALIZERS)
VISBACKENDS = _child('vis_backend', mm.VISBACKENDS)
LOG_PROCESSORS = _child('log_processor', mm.LOG_PROCESSORS)
FUNCTIONS = _child('function', mm.FUNCTIONS)
INFERENCERS = _child('inferencer', mm.INFERENCERS)
