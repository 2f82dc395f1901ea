"""Config-built wrapper that turns a :mod:`lightflow.data` dataset into mmengine's ``dict(inputs, data_samples)``."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

from .. import data as lf_data
from ..data.registry import FLOW_DATASETS, FLOW_TRANSFORMS
from .registry import DATASETS

__all__ = ['PackedFlowDataset', 'build_flow_transforms', 'TRANSFORM_PRESETS']

# Named transform recipes; ``dict(type='chairs_train', crop_size=(H, W))`` passes the kwargs on.
TRANSFORM_PRESETS: dict[str, Callable[..., Callable]] = {
    'chairs_train': lf_data.chairs_train_transforms,
    'eval': lf_data.eval_transforms,
}


def _pop_type(cfg: dict, what: str, known: Mapping[str, Callable]) -> tuple[str, dict]:
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'{what} config must be a dict with a "type" key, got {cfg!r}')
    kwargs = dict(cfg)
    name = kwargs.pop('type')
    if name not in known:
        raise ValueError(f'unknown {what} type {name!r}; choose from {sorted(known)}')
    return name, kwargs


def build_flow_transforms(cfg: str | dict | list | None) -> Callable:
    """Build a ``transforms(img1, img2, flow, valid)`` callable from a config.

    Args:
        cfg: a preset name (``'eval'``, ``'chairs_train'``), a preset dict (``dict(type='chairs_train',
            crop_size=(320, 448))``), a list of single-transform dicts (composed in order; end with ``ToTensor``),
            or None (= ``'eval'``).
    """
    if cfg is None:
        cfg = 'eval'
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    if isinstance(cfg, dict):
        name, kwargs = _pop_type(cfg, 'transforms preset', TRANSFORM_PRESETS)
        return TRANSFORM_PRESETS[name](**kwargs)
    if isinstance(cfg, (list, tuple)):
        steps = []
        for step in cfg:
            name, kwargs = _pop_type(step, 'transform', FLOW_TRANSFORMS)
            steps.append(FLOW_TRANSFORMS[name](**kwargs))
        if not steps or not isinstance(steps[-1], lf_data.ToTensor):
            names = [s.get('type') for s in cfg]
            raise ValueError(f'a transforms list must end with dict(type="ToTensor"), got {names}')
        return lf_data.Compose(steps)
    raise ValueError(f'transforms must be a preset name, a dict or a list of dicts, got {type(cfg).__name__}')


@DATASETS.register_module()
class PackedFlowDataset(Dataset):
    """A :mod:`lightflow.data` dataset built from config, its samples packed for mmengine (``inputs`` +
    ``data_samples``, as mmdet's ``PackDetInputs`` does). Not :class:`lightflow.data.FlowDataset`, the base class of
    the file-index datasets it wraps.

    Args:
        dataset: ``dict(type=<a registered flow dataset>, **kwargs)`` (:mod:`lightflow.data.registry`), e.g.
            ``dict(type='FlyingChairs', root='data/FlyingChairs_release/', split='val')``.
        transforms: see :func:`build_flow_transforms`.

    An index from a seeded sampler (:class:`~lightflow.engine.sampler.SeededIndex`) runs the transforms on torch's
    RNG seeded with its ``seed``, so the augmentation depends only on the sample's position in the run.

    Each item is ``dict(inputs=(2, 3, H, W) float32 RGB 0..255 pair, data_samples=BaseDataElement(flow=(2, H, W)
    float32 px, valid=(H, W) bool; metainfo ori_shape=(H, W), sample_idx))``; ``pseudo_collate`` batches them
    into lists (a data element keeps its tuples intact, where a plain dict would be transposed by the collate).
    """

    def __init__(self, dataset: dict, transforms: str | dict | list | None = None) -> None:
        name, kwargs = _pop_type(dataset, 'dataset', FLOW_DATASETS)
        self.dataset = FLOW_DATASETS[name](transforms=build_flow_transforms(transforms), **kwargs)
        self._metainfo = dict(dataset_type=name, **{k: v for k, v in kwargs.items() if k in ('root', 'split', 'size')})

    @property
    def metainfo(self) -> dict[str, Any]:
        return dict(self._metainfo)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        seed = getattr(index, 'seed', None)  # a SeededIndex from SeededInfiniteSampler / SeededDefaultSampler
        index = int(index)
        if seed is None:
            img1, img2, flow, valid = self.dataset[index]
        else:
            # The transforms draw from torch's global CPU RNG: seed it for this sample only.
            with torch.random.fork_rng(devices=[]):
                torch.random.default_generator.manual_seed(seed)
                img1, img2, flow, valid = self.dataset[index]
        pair = torch.stack([torch.as_tensor(img1), torch.as_tensor(img2)]).float()
        sample = BaseDataElement(metainfo=dict(ori_shape=tuple(pair.shape[-2:]), sample_idx=int(index)),
                                 flow=torch.as_tensor(flow).float(), valid=torch.as_tensor(valid).bool())
        return dict(inputs=pair, data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.dataset!r})'

