"""FlowGuidedGRU options for FPN features: a linear candidate for signed features, and a start as plain propagation."""
from __future__ import annotations

import pytest
import torch

from mmdet_plugin.models import ConvGRUCell, FlowGuidedGRU


def test_relu_candidate_cannot_reproduce_signed_features_identity_can():
    torch.manual_seed(0)
    x, h = torch.randn(1, 8, 6, 7), torch.randn(1, 8, 6, 7)
    relu = ConvGRUCell(8, candidate_act='relu', init_as_propagation=True)
    linear = ConvGRUCell(8, candidate_act='identity', init_as_propagation=True)
    z = torch.sigmoid(torch.tensor(4.0))
    with torch.no_grad():
        expected = z * x + (1 - z) * h  # W_h = identity, U_h = 0: the candidate is x itself
        torch.testing.assert_close(linear(x, h), expected, atol=1e-5, rtol=1e-5)
        out = relu(x, h)
    torch.testing.assert_close(out, z * x.clamp(min=0) + (1 - z) * h, atol=1e-5, rtol=1e-5)
    assert (out - x).abs().max() > 0.5  # the negative half of x is lost


@pytest.mark.parametrize('hidden', [16, 32])
def test_gru_starts_as_propagation(hidden):
    torch.manual_seed(0)
    gru = FlowGuidedGRU(in_channels=16, hidden_channels=hidden, candidate_act='identity', init_as_propagation=True)
    gru.init_weights()  # mmengine's init must keep the propagation start
    feats = (torch.randn(1, 16, 8, 8), torch.randn(1, 16, 4, 4))
    history = tuple(torch.randn(1, hidden, *f.shape[-2:]) for f in feats)
    with torch.no_grad():
        out = gru.output(gru(feats, history))
    for o, f in zip(out, feats):  # ~98 % the new key frame's own features
        assert (o - f).abs().mean() < 0.05 * f.abs().mean() + 0.05 * 1.0
    default = FlowGuidedGRU(in_channels=16, hidden_channels=hidden)
    with torch.no_grad():
        far = default.output(default(feats, history))
    assert (far[0] - feats[0]).abs().mean() > 0.3 * feats[0].abs().mean()  # the random start does not


def test_candidate_act_validated():
    with pytest.raises(ValueError, match="candidate_act must be one of .* got 'tanh'"):
        FlowGuidedGRU(in_channels=8, hidden_channels=8, candidate_act='tanh')


@pytest.mark.parametrize('norm_eval', [True, False])
def test_motion_norm_eval_keeps_pretrained_bn_statistics(norm_eval):
    from mmdet_plugin.models import LightFlowMotion
    motion = LightFlowMotion(width_mult=0.25, zero_init_flow=False, norm_eval=norm_eval).train()
    bn = motion.flownet.encoder[0][1]
    before = bn.running_mean.clone()
    flow = motion(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64))
    flow.abs().mean().backward()
    assert bn.weight.grad is not None and bn.weight.grad.abs().sum() > 0  # BN affine terms still train
    assert torch.equal(bn.running_mean, before) == norm_eval  # statistics frozen only with norm_eval
    assert motion.flownet.training and bn.training != norm_eval
