"""FlowNetS baseline: the paper's size, output contract, gradients."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from lightflow.models import FlowNetS, flownets


def _legacy_conv_flop(x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, *args, out_shape=None,
                      **kwargs) -> int:
    # torch.utils.flop_counter before PyTorch 2.3 (PR #119874) counted transposed convs at the output resolution.
    return conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


def _gflops(model: torch.nn.Module, legacy: bool = False) -> float:
    mapping = {torch.ops.aten.convolution: _legacy_conv_flop} if legacy else None
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        model.forward_features(torch.empty(1, 6, 384, 512, device='meta'))
    return counter.get_total_flops() / 1e9


def test_size_matches_paper() -> None:
    with torch.device('meta'):  # shapes only: no weights to initialise, no arithmetic to count
        model = flownets().eval()
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(38.7, abs=0.05)
    assert sum(p.numel() for p in model.parameters()) == 38_675_536
    # Reference 53.48 GFLOPs at 384x512 was counted with the pre-2.3 convention (see lightflow/models/flownets.py).
    assert _gflops(model, legacy=True) == pytest.approx(53.48, rel=0.005)
    # Current convention: encoder convs at output resolution, deconvs at input resolution (true multiply-adds).
    assert _gflops(model) == pytest.approx(31.576, abs=0.001)


def test_forward_contract() -> None:
    torch.manual_seed(0)
    model = flownets().eval()
    img1, img2 = torch.rand(2, 3, 64, 128) * 255, torch.rand(2, 3, 64, 128) * 255
    with torch.no_grad():
        out = model(img1, img2)
        single = model(img1[:1], img2[:1])
    assert out.shape == (2, 2, 16, 32)
    assert torch.isfinite(out).all() and out.abs().sum() > 0
    torch.testing.assert_close(single, out[:1], atol=1e-4, rtol=1e-4)
    model.train()
    preds = model(img1, img2)
    assert [tuple(p.shape) for p in preds] == [(2, 2, 64 // s, 128 // s) for s in (4, 8, 16, 32, 64)]


def test_every_parameter_gets_gradient() -> None:
    torch.manual_seed(0)
    model = flownets().train()
    img1, img2 = torch.rand(1, 3, 64, 64) * 255, torch.rand(1, 3, 64, 64) * 255
    # Only the finest prediction: every other layer must still reach it through the refinement chain.
    model(img1, img2)[0].abs().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f'no gradient reached {missing}'


@pytest.mark.parametrize(('shape1', 'shape2', 'match'), [
    ((1, 3, 64, 64), (1, 3, 64, 128), r'\(1, 3, 64, 64\) and \(1, 3, 64, 128\)'),
    ((1, 3, 96, 64), (1, 3, 96, 64), r'96x64'),
])
def test_bad_inputs_raise(shape1: tuple, shape2: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FlowNetS(encoder_channels=(4,) * 10, decoder_channels=(4,) * 4)(torch.zeros(shape1), torch.zeros(shape2))


def test_bad_config_raises() -> None:
    with pytest.raises(ValueError, match='decoder_channels needs 4 entries, got 3'):
        FlowNetS(decoder_channels=(512, 256, 128))
