"""Issue 21, item 0: the per-call staleness check (``WeightWatch``) sees every route, in-place ``model.config`` edits
included, and stays cheap."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from lightflow import FlowEstimator, estimate_flow, lightflow_w0_5
from lightflow.inference.watch import WeightWatch


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return lightflow_w0_5().eval()


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, 64, 64, generator=g) * 255, torch.rand(1, 3, 64, 64, generator=g) * 255


def _eager(model: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():  # the plain differentiable network: no cache involved
        return estimate_flow(model, a, b).detach()


def _bump_predictor_bias(model: nn.Module) -> None:
    with torch.no_grad():  # large enough to move the flow by pixels (the network predicts flow / div_flow)
        model.predictors[-1][-1].bias.add_(torch.tensor([3.0, -2.0]))


@pytest.mark.parametrize(('field', 'value'), [('div_flow', 5.0), ('pred_upsample', 'bilinear')])
def test_in_place_config_edit_reaches_the_next_call(field: str, value) -> None:
    model = _model()
    _bump_predictor_bias(model)  # a non-zero flow, so that div_flow / the upsampling matter
    a, b = _pair()
    with torch.inference_mode():
        before = estimate_flow(model, a, b, backend='torch')
    setattr(model.config, field, value)  # the same config object, edited in place
    with torch.inference_mode():
        after = estimate_flow(model, a, b, backend='torch')
    expected = _eager(model, a, b)
    assert (expected - before).abs().max() > 0.05, 'the edit did not change the flow; the test proves nothing'
    torch.testing.assert_close(after, expected, atol=1e-3, rtol=0)


def test_watch_layers() -> None:
    model = _model()
    watch = WeightWatch(model)
    assert watch.changed()  # nothing recorded yet
    watch.mark()
    assert not watch.changed()
    model.predictors[-1][-1].bias.data.add_(0.5)  # bypasses the version counter: only the content layer sees it
    assert watch.changed()
    watch.mark()
    tracked_only = WeightWatch(model, content=False)
    tracked_only.mark()
    model.predictors[-1][-1].bias.data.add_(1)
    assert not tracked_only.changed() and watch.changed()
    tracked_only.mark()
    with torch.no_grad():
        model.predictors[-1][-1].bias.add_(1)  # an optimizer-style update bumps the version counter
    assert tracked_only.changed()
    tracked_only.mark()
    model.predictors[-1][-1] = nn.Conv2d(model.predictors[-1][-1].in_channels, 2, 3, padding=1)  # new submodule
    assert tracked_only.changed()
    tracked_only.mark()
    model.config.div_flow = 1.0
    assert tracked_only.changed()


def test_watch_sees_in_place_edits_of_inference_tensors_even_without_content() -> None:
    with torch.inference_mode():  # weights without version counters
        model = _model()
    bias = model.predictors[-1][-1].bias
    assert bias.is_inference()
    watch = WeightWatch(model, content=False)
    watch.mark()
    assert not watch.changed()
    with torch.inference_mode():
        bias.add_(0.5)  # no version counter to bump: the content sum must see it
    assert watch.changed()
    watch.mark()
    assert not watch.changed()
    model.predictors[-1][-1].bias = nn.Parameter(torch.zeros(2))  # a replaced (normal) tensor
    assert watch.changed()

def test_watch_is_cheap_next_to_a_flow_call() -> None:
    model = _model()
    est = FlowEstimator(model, 'torch')
    a, b = _pair()
    with torch.inference_mode():
        est(a, b)

        def best_ms(fn, n: int = 20) -> float:
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            return 1e3 * min(times)
        check, call = best_ms(est._watch.changed), best_ms(lambda: est(a, b))
    # Loose bound (a loaded CI machine): the check is a small part of a 64x64 eager call; it was ~50 % before.
    assert check < 0.25 * call, (check, call)
