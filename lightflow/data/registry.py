"""The flow datasets and single transforms a config may name (``dataset=dict(type='FlyingChairs', ...)``,
``transforms=[dict(type='RandomCrop', ...), ...]``), by class name.

Pure python, so :mod:`lightflow.data` stays free of mmengine; ``lightflow.engine.PackedFlowDataset`` looks names up
here. Your own dataset (``dataset[i] -> (img1, img2, flow, valid)`` after its ``transforms``) or transform becomes
nameable in a config by decorating its class with :func:`register_flow_dataset` / :func:`register_flow_transform` in a
module the config imports (``custom_imports``).
"""
from __future__ import annotations

from typing import Callable, TypeVar

__all__ = ['FLOW_DATASETS', 'FLOW_TRANSFORMS', 'register_flow_dataset', 'register_flow_transform']

FLOW_DATASETS: dict[str, Callable] = {}
FLOW_TRANSFORMS: dict[str, Callable] = {}

T = TypeVar('T')


def _register(table: dict[str, Callable], what: str, cls: T) -> T:
    name = cls.__name__
    if table.get(name, cls) is not cls:
        raise ValueError(f'a {what} named {name!r} is already registered ({table[name].__module__}.{name})')
    table[name] = cls
    return cls


def register_flow_dataset(cls: T) -> T:
    """Class decorator: the dataset is built by ``dict(type='<class name>', **kwargs)`` in a flow config."""
    return _register(FLOW_DATASETS, 'flow dataset', cls)


def register_flow_transform(cls: T) -> T:
    """Class decorator: the transform is built by ``dict(type='<class name>', **kwargs)`` in a transforms list."""
    return _register(FLOW_TRANSFORMS, 'flow transform', cls)
