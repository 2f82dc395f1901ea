"""Loading Light Flow checkpoints safely, in pure PyTorch: raw state dicts, ``tools/train_flow.py`` (mmengine)
checkpoints, checkpoints of wrappers (DDP, the video detector) and the shipped pretrained files.

Every load is ``torch.load(weights_only=True)``: a checkpoint cannot run code. mmengine is imported only when a file
needs its allow-list (its training checkpoints hold numpy arrays and the message hub's ``HistoryBuffer``).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .models.lightflow import LightFlow, LightFlowConfig, build_lightflow, scale_channels

__all__ = ['load_lightflow_checkpoint', 'load_lightflow_weights', 'lightflow_state_dict', 'lightflow_config',
           'checkpoint_config', 'checkpoint_width']

# First pointwise conv of conv1 (encoder stage 0: dw conv, BN, act, pw conv -> index 3); its out channels reveal the
# width multiplier: int(32 * width_mult).
_CONV1_KEY = 'encoder.0.3.weight'
_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(LightFlowConfig))


def _one_line(e: BaseException) -> str:
    """``Type: the informative line`` of a (often multi-line, sometimes empty) torch error."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    # weights_only refusals open with boilerplate; the line naming the refused global is the useful one.
    detail = next((line for line in lines if 'GLOBAL' in line or 'Unsupported' in line), lines[0] if lines else '')
    detail = detail.split('. ')[0][:200]
    return f'{type(e).__name__}: {detail}' if detail else type(e).__name__


@functools.cache
def _mmengine_safe_globals() -> tuple:
    """mmengine's weights_only allow-list, or nothing when mmengine is not installed."""
    try:
        from mmengine.runner.checkpoint import get_torch_safe_globals
    except ImportError:
        return ()
    return tuple(get_torch_safe_globals())


def _torch_load(path: str | os.PathLike, map_location: str | torch.device = 'cpu') -> Any:
    """``torch.load(weights_only=True)``; a missing file is ``FileNotFoundError``, any unreadable one a one-line
    ``ValueError`` naming the file (empty, truncated, not a checkpoint, or holding pickled code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no such checkpoint')
    if path.stat().st_size == 0:
        raise ValueError(f'{path}: cannot load checkpoint (empty file, 0 bytes)')
    try:
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as e:
            # A global outside torch's allow-list? Retry with mmengine's (numpy, HistoryBuffer), imported only now
            # because it costs a second and slim checkpoints never need it; still weights_only.
            extra = _mmengine_safe_globals() if 'GLOBAL' in str(e) else ()
            if not extra:
                raise
            with torch.serialization.safe_globals(list(extra)):
                return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (bad zip) or EOFError (empty message) for bad files
        raise ValueError(f'{path}: cannot load checkpoint ({_one_line(e)})') from None


def lightflow_state_dict(checkpoint: dict[str, Any], source: str = 'checkpoint') -> dict[str, Tensor]:
    """The bare :class:`LightFlow` state dict inside a raw state dict or a checkpoint of any wrapper.

    Whatever precedes the network's own keys (``flownet.`` for ``tools/train_flow.py``, ``module.`` for DDP,
    ``motion.flownet.`` for a video detector) is stripped; the prefix is found from conv1's key.
    """
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f'{source}: not a state dict or an mmengine checkpoint (got {type(checkpoint).__name__})')
    prefixes = {k[:-len(_CONV1_KEY)] for k in state if isinstance(k, str) and k.endswith(_CONV1_KEY)}
    if not prefixes:
        raise ValueError(f'{source}: no Light Flow weights found (no key ends in {_CONV1_KEY!r}; keys start with '
                         f'{sorted(map(str, state))[:3]})')
    if len(prefixes) > 1:
        raise ValueError(f'{source}: several Light Flow networks found (prefixes {sorted(prefixes)})')
    prefix = prefixes.pop()
    state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    not_tensors = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise ValueError(f'{source}: Light Flow entries that are not tensors: {not_tensors[:3]}')
    return state


def _stage_channels(state: dict[str, Tensor], group: str) -> list[int]:
    """Out channels of every ``encoder`` / ``decoder`` stage of a state dict (their pointwise convs)."""
    out, i = [], 0
    while f'{group}.{i}.3.weight' in state:
        out.append(state[f'{group}.{i}.3.weight'].shape[0])
        i += 1
    return out


def checkpoint_width(state: dict[str, Tensor]) -> float:
    """Width multiplier of a Light Flow state dict with the default channel layout.

    Candidates come from conv1's channels (``int(32 * alpha)``) and, finer, from the widest layer rounded to 2-4
    decimals; the first whose channel counts match every stage wins (0.6 has conv1 19 = int(19.2), which conv1 alone
    reads as 0.59375). Without a match (another layout), conv1's ratio.
    """
    cfg = LightFlowConfig()
    enc, dec = _stage_channels(state, 'encoder'), _stage_channels(state, 'decoder')
    conv1 = state[_CONV1_KEY].shape[0] / cfg.encoder_channels[0]
    widest = enc[-1] / cfg.encoder_channels[-1] if len(enc) == len(cfg.encoder_channels) else conv1
    for width in (conv1, round(widest, 2), round(widest, 3), round(widest, 4), widest):
        if (width > 0 and enc == scale_channels(cfg.encoder_channels, width)
                and dec == scale_channels(cfg.decoder_channels, width)):
            return float(width)
    return float(conv1)


def checkpoint_config(checkpoint: Any, state: dict[str, Tensor], source: str = 'checkpoint') -> LightFlowConfig:
    """The :class:`LightFlowConfig` of a checkpoint: every field found in ``meta['lightflow']`` (all of them in
    shipped and recent training checkpoints), the defaults for the others, and the width inferred from the weights
    when the meta lacks it (old files, raw state dicts)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    meta = meta.get('lightflow') if isinstance(meta, dict) else None
    fields = {k: v for k, v in meta.items() if k in _CONFIG_FIELDS} if isinstance(meta, dict) else {}
    for k in ('encoder_channels', 'encoder_strides', 'decoder_channels'):
        if k in fields:
            fields[k] = tuple(fields[k])
    fields.setdefault('width_mult', checkpoint_width(state))
    for k in ('width_mult', 'div_flow', 'negative_slope'):
        if k in fields and (isinstance(fields[k], bool) or not isinstance(fields[k], (int, float))):
            raise ValueError(f'{source}: meta["lightflow"]["{k}"] must be a number, got {fields[k]!r}')
    try:
        return LightFlowConfig(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f'{source}: bad meta["lightflow"] {fields}: {e}') from None


def lightflow_config(model: LightFlow) -> dict[str, Any]:
    """Every :class:`LightFlowConfig` field of a built network (for checkpoint meta): its :attr:`LightFlow.config`,
    the one source of its hyperparameters; ``build_lightflow(LightFlowConfig(**result))`` rebuilds it."""
    return dataclasses.asdict(model.config)


def load_lightflow_weights(model: LightFlow, path: str | os.PathLike, map_location: str | torch.device = 'cpu',
                           adopt_config: bool = False) -> None:
    """Load a checkpoint into ``model``; ``ValueError`` naming both widths if it holds another ``width_mult``.

    Args:
        adopt_config: also take the checkpoint's ``div_flow`` and ``pred_upsample`` (the fields the forward pass reads
            but the weights' shapes do not show), where its meta has them: for a model that only runs the weights
            (``LightFlowMotion``). ``False`` keeps the model's own (a training config that fine-tunes into a variant).
    """
    ckpt = _torch_load(path, map_location)
    state = lightflow_state_dict(ckpt, str(path))
    config = checkpoint_config(ckpt, state, str(path))
    width = config.width_mult
    conv1 = state[_CONV1_KEY].shape[0]
    if abs(width - model.width_mult) > 1e-6 or conv1 != model.encoder[0][3].out_channels:
        raise ValueError(f'{path}: checkpoint holds a Light Flow of width_mult={width:g} (conv1 has {conv1} '
                         f'channels), but the model has width_mult={model.width_mult:g}')
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f'{path}: weights do not fit a width_mult={model.width_mult:g} Light Flow: '
                         f'{" ".join(str(e).split())[:300]}') from None
    if adopt_config:
        meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
        meta = meta.get('lightflow') if isinstance(meta, dict) else None
        taken = {k: getattr(config, k) for k in ('div_flow', 'pred_upsample') if isinstance(meta, dict) and k in meta}
        model.config = dataclasses.replace(model.config, **taken)


def load_lightflow_checkpoint(path: str | os.PathLike, map_location: str | torch.device = 'cpu') -> LightFlow:
    """Load a :class:`LightFlow` from a raw state dict, a ``tools/train_flow.py`` (mmengine) checkpoint or a shipped
    pretrained file.

    The architecture comes from the checkpoint's ``meta['lightflow']`` (the full :class:`LightFlowConfig` in shipped
    files; ``width_mult`` and ``div_flow`` in older training checkpoints, the defaults for the rest); without meta the
    width is inferred from the weights' shapes and ``div_flow`` is the default 20.

    Returns:
        the network in eval mode on ``map_location``.
    """
    ckpt = _torch_load(path, map_location)
    state = lightflow_state_dict(ckpt, str(path))
    config = checkpoint_config(ckpt, state, str(path))
    try:
        model = build_lightflow(config)
    except (TypeError, ValueError) as e:
        raise ValueError(f'{path}: cannot build the Light Flow its meta describes: {e}') from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f'{path}: weights are not a standard Light Flow: {" ".join(str(e).split())[:300]}') from None
    return model.to(map_location).eval()
