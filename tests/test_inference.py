"""estimate_flow's fast path: equal to the plain network, cached per weights, differentiable outside it."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lightflow import estimate_flow, fuse_lightflow, lightflow_w0_5, lightflow_w1_0
from lightflow.inference import _MkldnnLightFlow, pad_to_multiple, to_image_batch

HAS_ONEDNN = torch.backends.mkldnn.is_available()


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine terms, so folding them into the convs is really exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)
    return model


def _plain_flow(model: nn.Module, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():  # grad mode on -> estimate_flow takes the plain network
        return estimate_flow(model, img1, img2).detach()


def _pair(n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g) * 255, torch.rand(n, 3, h, w, generator=g) * 255


@pytest.mark.parametrize(('factory', 'size', 'batch', 'backend'), [
    (lightflow_w1_0, (128, 128), 1, 'auto'), (lightflow_w0_5, (67, 101), 2, 'auto'),
    (lightflow_w0_5, (256, 64), 1, 'auto'), (lightflow_w0_5, (67, 101), 2, 'eager')])
def test_fast_path_matches_plain_network(factory, size: tuple[int, int], batch: int, backend: str) -> None:
    torch.manual_seed(0)
    model = _randomize_bn(factory()).eval()
    img1, img2 = _pair(batch, *size)
    plain = _plain_flow(model, img1, img2)
    with torch.inference_mode():
        fast = fuse_lightflow(model, backend)
        pair, _ = pad_to_multiple(model.normalize(img1, img2), model.size_divisor)
        torch.testing.assert_close(fast(pair), model.forward_features(pair), atol=5e-5, rtol=1e-4)
        flow = estimate_flow(model, img1, img2)
    assert plain.abs().max() > 1.0  # a meaningful comparison, not two zero maps
    assert (flow - plain).abs().max() < 1e-3  # pixels


@pytest.mark.skipif(not HAS_ONEDNN, reason='PyTorch built without oneDNN')
def test_cpu_fast_path_is_onednn() -> None:
    model = lightflow_w0_5().eval()
    assert isinstance(fuse_lightflow(model), _MkldnnLightFlow)
    assert fuse_lightflow(model) is fuse_lightflow(model)  # cached while the weights are unchanged


def test_cache_rebuilt_when_weights_change() -> None:
    torch.manual_seed(0)
    model, other = _randomize_bn(lightflow_w0_5(), 1).eval(), _randomize_bn(lightflow_w0_5(), 2).eval()
    img1, img2 = _pair(1, 64, 128)
    with torch.inference_mode():
        before = estimate_flow(model, img1, img2)
    model.load_state_dict(other.state_dict())
    with torch.inference_mode():
        after = estimate_flow(model, img1, img2)
    assert (after - before).abs().max() > 0.1
    torch.testing.assert_close(after, _plain_flow(other, img1, img2), atol=1e-3, rtol=0)

    # An in-place update as an optimizer step does it.
    with torch.no_grad():
        model.predictors[-1][-1].bias.add_(1.0)
    with torch.inference_mode():
        stepped = estimate_flow(model, img1, img2)
    torch.testing.assert_close(stepped, _plain_flow(model, img1, img2), atol=1e-3, rtol=0)
    assert (stepped - after).abs().max() > 1.0


def test_model_stays_copyable_and_state_dict_clean() -> None:
    model = lightflow_w0_5().eval()
    keys = set(model.state_dict())
    img1, img2 = _pair(1, 64, 64)
    with torch.inference_mode():
        flow = estimate_flow(model, img1, img2)
    assert set(model.state_dict()) == keys
    clone = copy.deepcopy(model)
    with torch.inference_mode():
        torch.testing.assert_close(estimate_flow(clone, img1, img2), flow)


def test_gradient_flows_in_train_mode() -> None:
    torch.manual_seed(0)
    model = lightflow_w0_5().train()
    img1, img2 = _pair(2, 64, 96)
    flow = estimate_flow(model, img1, img2)
    assert flow.requires_grad
    flow.abs().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_gradient_flows_to_images_in_eval_mode() -> None:
    model = lightflow_w0_5().eval()
    img1, img2 = _pair(1, 64, 64)
    img1.requires_grad_(True)
    estimate_flow(model, img1, img2).square().sum().backward()
    assert img1.grad is not None and img1.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


def test_numpy_and_unbatched_inputs() -> None:
    model = _randomize_bn(lightflow_w0_5()).eval()
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    ta, tb = torch.from_numpy(a).permute(2, 0, 1).float(), torch.from_numpy(b).permute(2, 0, 1).float()
    with torch.inference_mode():
        from_numpy = estimate_flow(model, a, b)
        from_chw = estimate_flow(model, ta, tb)
        from_batch = estimate_flow(model, ta[None], tb[None])
    assert from_numpy.shape == (1, 2, 70, 90)
    torch.testing.assert_close(from_numpy, from_batch)
    torch.testing.assert_close(from_chw, from_batch)
    assert to_image_batch(a).dtype == torch.float32 and to_image_batch(a).shape == (1, 3, 70, 90)


@pytest.mark.parametrize(('img1', 'img2', 'match'), [
    (torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 80), r'same shape.*\(1, 3, 64, 64\) and \(1, 3, 64, 80\)'),
    (torch.zeros(2, 3, 64, 64), torch.zeros(1, 3, 64, 64), r'\(2, 3, 64, 64\) and \(1, 3, 64, 64\)'),
    (np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8), r'img1: numpy images must be RGB.*\(64, 64\)'),
    (torch.zeros(1, 3, 64, 64), np.zeros((64, 64, 4), np.uint8), r'img2: numpy.*\(64, 64, 4\)'),
    ([0.0], [0.0], r'img1: expected a tensor or numpy array, got list'),
])
def test_bad_inputs_raise(img1, img2, match: str) -> None:
    model = lightflow_w0_5().eval()
    with pytest.raises(ValueError, match=match), torch.inference_mode():
        estimate_flow(model, img1, img2)


def test_fuse_rejects_unknown_backend() -> None:
    with pytest.raises(ValueError, match="backend must be one of .* got 'onnx'"):
        fuse_lightflow(lightflow_w0_5(), 'onnx')
