"""Pretrained Light Flow weights shipped in the package (``lightflow/weights/<name>.pth``), loaded by name.

    import lightflow
    lightflow.list_pretrained()                          # ['lightflow_w0.5_synthetic', ...]
    model = lightflow.load_pretrained('lightflow_w0.5_synthetic')   # eval mode, sha256 checked

A shipped file is a slim checkpoint, ``{'state_dict': LightFlow state dict (fp32), 'meta': {'lightflow': every
LightFlowConfig field}}``: no optimizer, no mmengine objects; it loads with ``torch.load(weights_only=True)``.
``tools/export_pretrained.py`` writes one from a ``tools/train_flow.py`` checkpoint and prints the registry line.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from .checkpoint import lightflow_config, load_lightflow_checkpoint
from .io import atomic_write
from .models.lightflow import LightFlow, LightFlowConfig, build_lightflow

__all__ = ['PRETRAINED', 'WEIGHTS_DIR', 'list_pretrained', 'load_flow_model', 'load_flow_source', 'load_pretrained',
           'resolve_weights', 'save_pretrained', 'file_sha256']

WEIGHTS_DIR = Path(__file__).resolve().parent / 'weights'

# name -> dict(file=<name under WEIGHTS_DIR>, sha256=<hex digest of the file>, config=<every LightFlowConfig field>,
# summary=<data, schedule, EPE in one line>). Adding weights: put the file from tools/export_pretrained.py in
# lightflow/weights/ and paste the one-line entry it prints.
PRETRAINED: dict[str, dict[str, Any]] = {
    # CPU-pretrained: see the model card in README.md
    'lightflow_w0.5_synthetic': dict(file='lightflow_w0.5_synthetic.pth', sha256='24d4bbb825475b805af8bc48dfca1b93b248ff0b86f110ba12de035bebb9bc75', config=dict(width_mult=0.5, encoder_channels=(32, 64, 128, 256, 256, 512, 512, 1024, 1024), encoder_strides=(2, 2, 2, 2, 1, 2, 1, 2, 1), decoder_channels=(256, 128, 64, 32, 16), div_flow=20.0, negative_slope=0.1, pred_upsample='nearest'), summary='CPU-pretrained (2 cores) on the built-in synthetic data: 2k + 19000 iterations x batch 8 at 256x320'),
    'lightflow_w0.5_synthvid': dict(file='lightflow_w0.5_synthvid.pth', sha256='e9b0266498acc08d59e94a7b2c4820c378a4005e786a2b2ee38a2ec0d72a0e4e', config=dict(width_mult=0.5, encoder_channels=(32, 64, 128, 256, 256, 512, 512, 1024, 1024), encoder_strides=(2, 2, 2, 2, 1, 2, 1, 2, 1), decoder_channels=(256, 128, 64, 32, 16), div_flow=20.0, negative_slope=0.1, pred_upsample='nearest'), summary='lightflow_w0.5_synthetic adapted without labels to the synthetic VID videos at 128x128 (DIS MEDIUM teacher, fwd-bwd checked, + census; 4000 iterations x batch 16, CPU): for the synthvid detectors, not a generic flow'),
}


def list_pretrained() -> list[str]:
    """Names of the shipped pretrained Light Flow weights, sorted."""
    return sorted(PRETRAINED)


def _known() -> str:
    return f'known: {", ".join(list_pretrained())}' if PRETRAINED else 'none are shipped in this version'


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _verified_file(name: str) -> Path:
    """The weights file of a registered name, after checking that it exists and its sha256 matches the registry."""
    entry = PRETRAINED[name]
    path = WEIGHTS_DIR / entry['file']
    if not path.is_file():
        raise FileNotFoundError(f'{path}: weights of pretrained {name!r} are missing (installed without the '
                                'package data? reinstall lightflow)')
    actual = file_sha256(path)
    if actual != entry['sha256']:
        raise ValueError(f'{path}: sha256 {actual} does not match {entry["sha256"]} registered for pretrained '
                         f'{name!r} (corrupt or modified file; reinstall lightflow)')
    return path


def resolve_weights(name_or_path: str | os.PathLike) -> Path:
    """The checkpoint file for a shipped pretrained name (its sha256 checked), or for an existing path.

    A shipped name always means the verified shipped file, even when a file of that name sits in the working
    directory: give such a file as a path (``./lightflow_w0.5_synthetic``).

    Raises:
        FileNotFoundError: neither a registered name nor an existing file (the message lists the known names), or a
            registered name whose file is missing.
        ValueError: a registered name whose file fails the sha256 check.
    """
    if isinstance(name_or_path, str) and name_or_path in PRETRAINED:
        return _verified_file(name_or_path)
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise FileNotFoundError(f'{name_or_path}: no such checkpoint file, nor a pretrained Light Flow name ({_known()})')


def load_pretrained(name: str, map_location: str | torch.device = 'cpu') -> LightFlow:
    """The shipped Light Flow ``name`` (see :func:`list_pretrained`) in eval mode on ``map_location``.

    Raises:
        ValueError: an unknown name (the message lists the known ones), a sha256 mismatch, or a file whose
            architecture differs from the registry's config.
        FileNotFoundError: the package was installed without the weights file.
    """
    if not isinstance(name, str) or name not in PRETRAINED:
        raise ValueError(f'unknown pretrained Light Flow {name!r} ({_known()})')
    path = _verified_file(name)
    model = load_lightflow_checkpoint(path, map_location=map_location)
    expected = PRETRAINED[name].get('config')
    if expected is not None and _as_config(expected) != _as_config(lightflow_config(model)):
        raise ValueError(f'{path}: holds a Light Flow {lightflow_config(model)}, but pretrained {name!r} is '
                         f'registered as {expected}')
    return model


def load_flow_model(source: str | os.PathLike, width: float | None = None,
                    map_location: str | torch.device = 'cpu') -> LightFlow:
    """The one loader of the flow tools: a shipped pretrained name (sha256 checked) or a checkpoint path of any
    layout (raw, ``tools/train_flow.py``, shipped; see :func:`lightflow.checkpoint.load_lightflow_checkpoint`), in eval
    mode on ``map_location``.

    Args:
        width: the ``width_mult`` the caller expects (None: any); another one is a ``ValueError`` naming both.
    """
    path = resolve_weights(source)
    model = load_lightflow_checkpoint(path, map_location=map_location)
    if width is not None and abs(model.width_mult - width) > 1e-6:
        raise ValueError(f'{path}: checkpoint holds a Light Flow of width_mult={model.width_mult:g}, '
                         f'but width {width:g} was asked for')
    return model


def load_flow_source(source: str | os.PathLike, width: float | None = None,
                     map_location: str | torch.device = 'cpu') -> LightFlow:
    """:func:`load_flow_model`, also given a config: what ``tools/demo_flow.py`` runs.

    Args:
        source: a checkpoint path, a shipped pretrained name, or a config ``.py`` whose ``model.pretrained`` /
            ``load_from`` names either (read by :func:`lightflow.engine.config.config_checkpoint`: mmengine is
            imported only for a config).
        width: the ``width_mult`` the caller expects (None: any); checked against the config and the checkpoint.

    Returns:
        the LightFlow in eval mode on ``map_location``.

    Raises:
        ValueError: a config that names no checkpoint, or a width that differs (the message names both).
        FileNotFoundError: neither a file nor a shipped name.
    """
    if str(source).endswith('.py') and Path(source).is_file():
        from .engine.config import config_checkpoint

        source, width = config_checkpoint(source, width)
    return load_flow_model(source, width, map_location)


def _as_config(fields: dict[str, Any]) -> LightFlowConfig:
    fields = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in fields.items()}
    return LightFlowConfig(**fields)


def save_pretrained(model: LightFlow, path: str | os.PathLike) -> str:
    """Write ``model`` as a shipped pretrained file (fp32 on CPU, the full config in meta), atomically.

    Returns:
        the file's sha256, for the registry entry.
    """
    if not isinstance(model, LightFlow):
        raise ValueError(f'expected a LightFlow, got {type(model).__name__}')
    config = lightflow_config(model)
    state = {k: (v.detach().to('cpu', torch.float32) if v.is_floating_point() else v.detach().cpu()).clone()
             for k, v in model.state_dict().items()}
    try:  # the meta must rebuild exactly this network, or the file would not load
        build_lightflow(LightFlowConfig(**config)).load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f'the network does not match its own config {config}: {" ".join(str(e).split())[:300]}') \
            from None
    with atomic_write(path) as f:
        # Saved through a file object, the archive's inner folder is always 'archive', so equal weights give equal
        # bytes (and sha256) whatever the file is called.
        torch.save({'state_dict': state, 'meta': {'lightflow': config}}, f)
    return file_sha256(path)
