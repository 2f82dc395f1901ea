"""LightFlow network: Table 2 sizes, any-size inference, gradients, input contracts."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lightflow import LightFlow, estimate_flow, lightflow_w0_5, lightflow_w0_75, lightflow_w1_0

# Table 2 of arXiv 1804.05830: width -> (factory, params in M, GFLOPs at 384x512).
TABLE2 = {1.0: (lightflow_w1_0, 2.6, 0.82), 0.75: (lightflow_w0_75, 1.4, 0.48), 0.5: (lightflow_w0_5, 0.7, 0.23)}


@pytest.mark.parametrize('width', sorted(TABLE2))
def test_params_match_table2(width: float) -> None:
    factory, paper_params, _ = TABLE2[width]
    model = factory()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6
    bn_stats = sum(b.numel() for name, b in model.named_buffers() if 'running_' in name) / 1e6
    # The paper rounds to 0.1 M and no single counting convention reproduces all three rows (2.540/1.443/0.653 M
    # trainable, 2.560/1.458/0.663 M with BN statistics), so the paper value must lie between the two conventions.
    assert round(trainable, 1) <= paper_params <= round(trainable + bn_stats, 1), (trainable, trainable + bn_stats)
    expected_trainable = {1.0: 2.540, 0.75: 1.443, 0.5: 0.653}[width]
    assert trainable == pytest.approx(expected_trainable, abs=0.001)


@pytest.mark.parametrize('width', sorted(TABLE2))
def test_flops_match_table2(width: float) -> None:
    factory, _, paper_gflops = TABLE2[width]
    with torch.device('meta'):  # shapes only: counting needs no arithmetic
        model = factory().eval()
    x = torch.empty(1, 6, 384, 512, device='meta')
    with FlopCounterMode(display=False) as counter:
        model.forward_features(x)
    assert counter.get_total_flops() / 1e9 == pytest.approx(paper_gflops, rel=0.03)


@pytest.mark.parametrize('size', [(67, 101), (1, 1), (130, 70)])
def test_estimate_flow_any_size(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = lightflow_w0_5().eval()
    img1 = torch.rand(2, 3, *size) * 255
    img2 = torch.rand(2, 3, *size) * 255
    with torch.inference_mode():
        flow = estimate_flow(model, img1, img2)
    assert flow.shape == (2, 2, *size)
    assert flow.dtype == torch.float32
    assert torch.isfinite(flow).all()
    assert flow.abs().sum() > 0  # an untrained net still responds to its input
    # Samples are independent: the batch result equals the per-sample results.
    with torch.inference_mode():
        single = estimate_flow(model, img1[1], img2[1])
    torch.testing.assert_close(single[0], flow[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('width', sorted(TABLE2))
def test_every_parameter_gets_gradient(width: float) -> None:
    torch.manual_seed(0)
    model = TABLE2[width][0]().train()
    img1, img2 = torch.rand(2, 3, 64, 64) * 255, torch.rand(2, 3, 64, 64) * 255
    target = torch.randn(2, 2, 16, 16)
    loss = (model(img1, img2) - target).abs().mean()
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f'no gradient reached {missing}'


def test_forward_output_contract() -> None:
    model = lightflow_w0_5().eval()
    img = torch.rand(1, 3, 128, 192) * 255
    with torch.no_grad():
        out = model(img, img.flip(-1))
    assert out.shape == (1, 2, 32, 48)
    # estimate_flow = bilinear upsampling of the same prediction times div_flow.
    with torch.no_grad():
        flow = estimate_flow(model, img, img.flip(-1))
    up = torch.nn.functional.interpolate(out, size=(128, 192), mode='bilinear', align_corners=False) * model.div_flow
    torch.testing.assert_close(flow, up, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize(('shape1', 'shape2', 'match'), [
    ((1, 3, 64, 64), (1, 3, 64, 128), r'\(1, 3, 64, 64\) and \(1, 3, 64, 128\)'),
    ((1, 4, 64, 64), (1, 4, 64, 64), r'\(1, 4, 64, 64\)'),
    ((3, 64, 64), (3, 64, 64), r'\(3, 64, 64\)'),
    ((1, 3, 65, 64), (1, 3, 65, 64), r'65x64'),
])
def test_forward_rejects_bad_shapes(shape1: tuple, shape2: tuple, match: str) -> None:
    model = lightflow_w0_5()
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape1), torch.zeros(shape2))


@pytest.mark.parametrize(('shape1', 'shape2', 'match'), [
    ((1, 3, 64, 64), (1, 3, 64, 65), r'\(1, 3, 64, 64\) and \(1, 3, 64, 65\)'),
    ((1, 1, 64, 64), (1, 1, 64, 64), r'img1.*\(1, 1, 64, 64\)'),
    ((2, 1, 3, 8, 8), (2, 1, 3, 8, 8), r'img1.*\(2, 1, 3, 8, 8\)'),
    ((1, 3, 0, 8), (1, 3, 0, 8), r'img1.*\(1, 3, 0, 8\)'),
])
def test_estimate_flow_rejects_bad_shapes(shape1: tuple, shape2: tuple, match: str) -> None:
    model = lightflow_w0_5().eval()
    with pytest.raises(ValueError, match=match):
        estimate_flow(model, torch.zeros(shape1), torch.zeros(shape2))


@pytest.mark.parametrize('width', [0, -0.5])
def test_bad_width_raises(width: float) -> None:
    with pytest.raises(ValueError, match=f'width_mult must be > 0, got {width}'):
        LightFlow(width_mult=width)
