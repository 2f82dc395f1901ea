"""Knowing, cheaply, that a model changed since its graph was compiled: :class:`WeightWatch`.

Two layers, checked at every call of :class:`lightflow.inference.FlowEstimator`:

* **tracked** (~0.04 ms for Light Flow 0.5): the identity of every submodule, parameter and buffer, each tensor's
  autograd ``_version`` counter and ``data_ptr``, and a snapshot of the model's scalar attributes and config
  dataclass fields (``div_flow``, ``pred_upsample``; an in-place ``model.config.div_flow = ...`` is seen). This
  catches optimizer steps, ``load_state_dict`` (copy or ``assign=True``), in-place ops under ``torch.no_grad()``,
  ``p.data = ...``, ``.to()``, new submodules and config edits.
* **content** (~0.1-0.2 ms for Light Flow 0.5 on one core, the memory read of the weights): a float sum per tensor
  (small tensors summed as one block). Writes that bypass the version counters -- ``p.data.mul_``, EMA copies through
  ``p.data.copy_``, writes through ``p.detach().numpy()``, ``buffer.data`` edits -- only show here. ``content=False``
  drops this layer for models whose weights change only through the tracked routes (frozen or deployed models).
* **inference tensors** (a model made or loaded under ``torch.inference_mode()``) have no version counter: they are
  tracked by identity and ``data_ptr`` and always content-summed, even with ``content=False``.

No hooks are installed, global or per module; the model is not modified.
"""
from __future__ import annotations

import dataclasses
import operator

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ['WeightWatch', 'attribute_snapshot']

# Tensors with fewer elements are summed as one concatenated block (one call instead of one per tensor).
_SMALL = 4096
_VERSION = operator.attrgetter('_version')


def attribute_snapshot(model: nn.Module) -> tuple:
    """The model's public scalar attributes and the fields of its dataclass attributes (``config``), by value."""
    out = []
    for k, v in vars(model).items():
        if k.startswith('_') or k == 'training':
            continue
        if isinstance(v, (bool, int, float, str, tuple)):
            out.append((k, v))
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            # By value: the same config object edited in place must compare unequal (issue 21).
            out.append((k, type(v), tuple((f, repr(x)) if isinstance(x, (list, dict, set)) else (f, x)
                                          for f, x in vars(v).items())))
    return tuple(out)


class WeightWatch:
    """Says whether ``model`` changed since the last :meth:`mark`.

    Args:
        model: any module (walked once at :meth:`mark`; walked again only when its structure changes).
        content: also sum the weights' values (catches writes that bypass autograd's version counters).
    """

    def __init__(self, model: nn.Module, content: bool = True) -> None:
        self.model = model
        self.content = bool(content)
        self._marked = False

    def _walk(self) -> None:
        """Cache the module dicts (and shallow copies of them) and the floating-point tensors."""
        self._dicts = [d for m in self.model.modules() for d in (m._parameters, m._buffers, m._modules)]
        self._copies = [dict(d) for d in self._dicts]
        self._tensors: list[Tensor] = [t for d in self._dicts[0::3] + self._dicts[1::3] for t in d.values()
                                       if t is not None and t.is_floating_point()]
        # Inference tensors raise on ``_version``: identity + data_ptr + content for those.
        self._versioned = [t for t in self._tensors if not t.is_inference()]
        summed = self._tensors if self.content else [t for t in self._tensors if t.is_inference()]
        self._summed = bool(summed)
        cpu = [t for t in summed if t.device.type == 'cpu' and t.dtype == torch.float32 and t.is_contiguous()]
        cpu_ids = {id(t) for t in cpu}
        self._big = [t.detach().numpy().reshape(-1) for t in cpu if t.numel() >= _SMALL]
        self._small = [t.detach().numpy().reshape(-1) for t in cpu if t.numel() < _SMALL]
        self._small_buf = np.empty(sum(a.size for a in self._small), np.float32)
        self._other = [t for t in summed if id(t) not in cpu_ids]  # CUDA, fp16/bf16, strided: torch sums

    def _structure_same(self) -> bool:
        # One C-level comparison of the dicts with their copies: values compare by identity first, so an unchanged
        # model never calls Tensor.__eq__; a replaced tensor does, and its elementwise result has no truth value.
        try:
            return self._copies == self._dicts
        except RuntimeError:
            return False

    def _tracked(self) -> tuple[list, list]:
        return list(map(_VERSION, self._versioned)), list(map(Tensor.data_ptr, self._tensors))

    def _sums(self) -> list:
        out = [float(np.add.reduce(a)) for a in self._big]
        if self._small:
            out.append(float(np.add.reduce(np.concatenate(self._small, out=self._small_buf))))
        if self._other:
            with torch.no_grad():
                out.extend(torch.stack([t.detach().float().sum() for t in self._other]).tolist())
        return out

    def mark(self) -> None:
        """Record the model as it is now (after its graph was rebuilt)."""
        self._walk()
        self._state = (self._tracked(), attribute_snapshot(self.model))
        self._content = self._sums() if self._summed else None
        self._marked = True

    def changed(self) -> bool:
        """True when anything that :meth:`mark` recorded differs now (always True before the first mark)."""
        if not self._marked or not self._structure_same():
            return True
        if (self._tracked(), attribute_snapshot(self.model)) != self._state:
            return True
        return self._summed and self._sums() != self._content
