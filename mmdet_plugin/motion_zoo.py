"""Motion modules by name, for tools that swap the motion of a trained detector: ``zero``, ``dis_ultrafast`` /
``dis_fast`` / ``dis_medium`` (OpenCV DIS), ``exact`` (the synthetic VID set's exact motion), ``own`` (the Light Flow
inside a detector checkpoint), a shipped Light Flow name or a Light Flow checkpoint path."""
from __future__ import annotations

from pathlib import Path

__all__ = ['BASELINE_MOTIONS', 'check_motion_tokens', 'build_motion', 'motion_label']

BASELINE_MOTIONS = ('zero', 'exact', 'dis_ultrafast', 'dis_fast', 'dis_medium')
_FRAME_KEYS = ('flow_scale', 'img_mean', 'img_std', 'bgr_to_rgb')  # what every motion takes from the config's


def check_motion_tokens(tokens: list[str], has_own: bool, option: str = '--motions') -> None:
    """Refuse (one line naming ``option``) a token that is none of the above; ``own`` needs ``has_own``."""
    from lightflow.pretrained import list_pretrained

    for token in tokens:
        if token in BASELINE_MOTIONS or token in list_pretrained():
            continue
        if token == 'own':
            if not has_own:
                raise ValueError(f'{option} own: needs a detector CHECKPOINT with a Light Flow')
            continue
        if not Path(token).is_file():
            raise FileNotFoundError(f'{option} {token}: not zero / exact / dis_* / own, a shipped Light Flow name '
                                    f'({", ".join(list_pretrained())}) or an existing checkpoint file')


def build_motion(token: str, motion_cfg: dict, own=None):
    """The motion module ``token`` names, with the flow-input settings (scale, normalisation) of ``motion_cfg`` (a
    ``LightFlowMotion`` config); ``own``: the module ``own`` returns. DIS and exact motion run at the flow scale
    without ``resize_to_divisor``."""
    from mmdet.registry import MODELS

    import mmdet_plugin  # noqa: F401  (registers the motion modules)

    frame = {k: motion_cfg[k] for k in _FRAME_KEYS if k in motion_cfg}
    if token == 'zero':
        return MODELS.build(dict(type='ZeroMotion'))
    if token == 'exact':
        return MODELS.build(dict(type='OracleMotion', **frame))
    if token.startswith('dis_'):
        return MODELS.build(dict(type='DISMotion', preset=token[4:], **frame))
    if token == 'own':
        return own
    module = MODELS.build(dict(motion_cfg, pretrained=token, init_cfg=None))
    module.init_weights()
    return module


def motion_label(token: str, motion_cfg: dict, frame_size: tuple[int, int]) -> str:
    """Table label: the motion and the size it computes the flow at."""
    from .models.baseline_motion import FrameMotion

    scale = motion_cfg.get('flow_scale', 0.5)
    if token == 'zero':
        return 'zero flow'
    if token == 'exact' or token.startswith('dis_'):
        h, w = FrameMotion(flow_scale=scale).flow_size(*frame_size)
        return f'exact motion {h}x{w}' if token == 'exact' else f'DIS {token[4:].upper()} {h}x{w}'
    h, w = FrameMotion(flow_scale=scale, resize_to_divisor=motion_cfg.get('resize_to_divisor', False)
                       ).flow_size(*frame_size)
    name = 'Light Flow (checkpoint\'s own)' if token == 'own' else f'Light Flow {Path(token).name}'
    return f'{name} {h}x{w}'
