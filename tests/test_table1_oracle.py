"""Light Flow's dataflow re-derived from the paper's Table 1 and Figure 2 with plain functional ops on the module's own
weights: catches a changed upsampling mode (nearest, §3.1), skips taken from the wrong encoder layer (same shapes),
a different averaging, or a changed normalisation, none of which change shapes, parameter counts or FLOPs."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightflow import LightFlow

# Table 1 encoder rows in order; the decoder concatenates conv5b, conv4b, conv3, conv2 (Figure 2).
ENCODER = ('conv1', 'conv2', 'conv3', 'conv4a', 'conv4b', 'conv5a', 'conv5b', 'conv6a', 'conv6b')
STRIDES = (2, 2, 2, 2, 1, 2, 1, 2, 1)
SKIPS = ('conv5b', 'conv4b', 'conv3', 'conv2')


def _bn(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _dw_sep(x, block, stride):
    dw, bn1, _, pw, bn2, _ = block
    x = F.leaky_relu(_bn(F.conv2d(x, dw.weight, None, stride, 1, groups=x.shape[1]), bn1), 0.1)
    return F.leaky_relu(_bn(F.conv2d(x, pw.weight), bn2), 0.1)


def _predict(x, block):
    dw, bn, _, pw = block
    x = F.leaky_relu(_bn(F.conv2d(x, dw.weight, None, 1, 1, groups=x.shape[1]), bn), 0.1)
    return F.conv2d(x, pw.weight, pw.bias)


def _bilinear_up(p, s: int):
    """Half-pixel bilinear upsampling by an integer factor, written out (sources clamped at the border)."""
    def weights(n):
        src = ((torch.arange(n * s) + 0.5) / s - 0.5).clamp(min=0)
        lo = src.floor().long().clamp(max=n - 1)
        return lo, (lo + 1).clamp(max=n - 1), src - lo
    y0, y1, wy = weights(p.shape[-2])
    x0, x1, wx = weights(p.shape[-1])
    rows = p[..., y0, :] * (1 - wy)[:, None] + p[..., y1, :] * wy[:, None]
    return rows[..., x0] * (1 - wx) + rows[..., x1] * wx


def _oracle(net: LightFlow, img1, img2, pred_upsample: str = 'nearest'):
    mean = torch.tensor([0.411, 0.432, 0.450]).view(1, 3, 1, 1)
    x = torch.cat([img1 / 255.0 - mean, img2 / 255.0 - mean], 1)
    feats = {}
    for name, stride, block in zip(ENCODER, STRIDES, net.encoder):
        x = _dw_sep(x, block, stride)
        feats[name] = x
    x = _dw_sep(x, net.decoder[0], 1)  # conv7
    preds = [_predict(x, net.predictors[0])]
    for skip, block, head in zip(SKIPS, net.decoder[1:], net.predictors[1:]):
        x = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # nearest x2
        x = _dw_sep(torch.cat([x, feats[skip]], 1), block, 1)
        preds.append(_predict(x, head))
    h, w = preds[-1].shape[-2:]
    if pred_upsample == 'nearest':
        up = [p.repeat_interleave(h // p.shape[-2], 2).repeat_interleave(w // p.shape[-1], 3) for p in preds]
    else:
        up = [_bilinear_up(p, h // p.shape[-2]) for p in preds]
    return torch.stack(up).mean(0)


@pytest.mark.parametrize('width, pred_upsample', [(0.25, 'nearest'), (0.5, 'nearest'), (0.25, 'bilinear')])
def test_forward_matches_the_table1_oracle(width, pred_upsample):
    torch.manual_seed(0)
    net = LightFlow(width_mult=width, pred_upsample=pred_upsample).eval()
    # non-trivial BN statistics, so a skipped or misplaced BN shows
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    g = torch.Generator().manual_seed(1)
    img1, img2 = torch.rand(2, 3, 128, 192, generator=g) * 255, torch.rand(2, 3, 128, 192, generator=g) * 255
    with torch.no_grad():
        got = net(img1, img2)
        want = _oracle(net, img1, img2, pred_upsample)
        other = _oracle(net, img1, img2, 'bilinear' if pred_upsample == 'nearest' else 'nearest')
    assert got.shape == (2, 2, 32, 48)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert (got - other).abs().max() > 1e-3  # the flag changes the averaging, and the oracle tells them apart
    # the check is sensitive to the choices it guards: bilinear decoder upsampling or a conv5a skip differ clearly
    with torch.no_grad():
        wrong = _oracle_variant(net, img1, img2)
    assert (got - wrong).abs().max() > 1e-3


def _oracle_variant(net, img1, img2):
    global SKIPS
    saved = SKIPS
    SKIPS = ('conv5a',) + saved[1:]
    try:
        return _oracle(net, img1, img2)
    finally:
        SKIPS = saved


def test_strides_follow_table1():
    net = LightFlow(width_mult=0.5)
    assert tuple(block[0].stride[0] for block in net.encoder) == STRIDES


def test_hyperparameters_have_one_source():
    """LightFlowConfig holds every hyperparameter and computes the channel counts; the network, a width change of
    div_flow and the checkpoint meta all read that one config (issue 15, item 5)."""
    import dataclasses
    import inspect

    from lightflow import LightFlowConfig, build_lightflow
    from lightflow.checkpoint import checkpoint_width, lightflow_config
    from lightflow.models import scale_channels

    cfg = LightFlowConfig(width_mult=0.6, decoder_channels=(200, 128, 64, 32, 16), div_flow=10.0)
    net = build_lightflow(cfg)
    assert net.config == cfg and net.config is not cfg  # a copy: the caller's config never changes with the net
    assert cfg.encoder_widths() == [19, 38, 76, 153, 153, 307, 307, 614, 614] == scale_channels(cfg.encoder_channels,
                                                                                                  0.6)
    assert cfg.decoder_widths() == [120, 76, 38, 19, 9]
    assert [stage[3].out_channels for stage in net.encoder] == cfg.encoder_widths()
    assert [stage[3].out_channels for stage in net.decoder] == cfg.decoder_widths()
    assert checkpoint_width(LightFlow(0.6).state_dict()) == 0.6  # the checkpoint code reads widths with the same rule
    net.div_flow = 5.0
    assert (net.div_flow, net.config.div_flow, cfg.div_flow) == (5.0, 5.0, 10.0)
    assert lightflow_config(net) == dataclasses.asdict(net.config) == dict(
        width_mult=0.6, encoder_channels=cfg.encoder_channels, encoder_strides=cfg.encoder_strides,
        decoder_channels=(200, 128, 64, 32, 16), div_flow=5.0, negative_slope=0.1, pred_upsample='nearest')
    # The network's constructor has no hyperparameter defaults of its own.
    assert all(p.default in (None, inspect.Parameter.empty)
               for p in inspect.signature(LightFlow.__init__).parameters.values())
    with pytest.raises(ValueError, match='^width_mult must be > 0, got nan$'):
        LightFlow(float('nan'))
    with pytest.raises(ValueError, match="^pred_upsample must be one of \\('nearest', 'bilinear'\\), got 'cubic'$"):
        LightFlowConfig(pred_upsample='cubic')
    with pytest.raises(ValueError, match='^decoder_channels needs 5 entries, got 4$'):
        LightFlowConfig(decoder_channels=(1, 2, 3, 4))
