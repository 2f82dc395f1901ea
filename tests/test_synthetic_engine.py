"""On-device synthetic training: SyntheticIndices + SyntheticFlowPreprocessor render batches on the model's device,
train through mmengine's Runner (the GPU recipe's code path, run here on the CPU), and pass real batches through."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner

import lightflow.engine  # noqa: F401  (registers the `lightflow` scope)
from lightflow.checkpoint import _torch_load
from lightflow.data import SyntheticFlowGenerator
from lightflow.engine import LightFlowModel, load_config
from lightflow.engine.registry import DATASETS, MODELS

REPO = Path(__file__).resolve().parents[1]
GPU_CFG = REPO / 'configs' / 'lightflow' / 'lightflow_w1.0_1xb32-6k_synthetic-gpu.py'


def _model(size=(64, 96), width=0.5) -> LightFlowModel:
    return MODELS.build(dict(type='LightFlowModel', width_mult=width, data_preprocessor=dict(
        type='SyntheticFlowPreprocessor', generator=dict(size=size, seed=7, num_objects=(2, 4)))))


def test_preprocessor_renders_the_indexed_samples_and_every_parameter_learns():
    torch.manual_seed(0)
    model = _model()
    dataset = DATASETS.build(dict(type='SyntheticIndices', num_samples=100))
    batch = pseudo_collate([dataset[i] for i in (3, 5)])
    data = model.data_preprocessor(batch, True)
    assert data['inputs'].shape == (2, 2, 3, 64, 96)
    # the same pairs as the generator renders directly (before the photometric augmentation, flow is unchanged)
    direct = SyntheticFlowGenerator(size=(64, 96), seed=7, num_objects=(2, 4)).render([3, 5], augment=True)
    assert torch.equal(data['inputs'][:, 0], direct.img1) and torch.equal(data['inputs'][:, 1], direct.img2)
    assert torch.equal(data['data_samples'][1]['flow'], direct.flow[1])
    loss = model(**data, mode='loss')['loss_flow']
    assert torch.isfinite(loss) and float(loss.detach()) > 0
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_real_batches_pass_through_and_device_is_not_configurable():
    model = _model()
    pair = torch.rand(2, 3, 64, 96) * 255
    out = model.data_preprocessor(dict(inputs=[pair], data_samples=[dict(flow=torch.zeros(2, 64, 96))]), False)
    assert torch.equal(out['inputs'][0], pair)
    with pytest.raises(ValueError, match='generator.device'):
        MODELS.build(dict(type='LightFlowModel', data_preprocessor=dict(
            type='SyntheticFlowPreprocessor', generator=dict(device='cuda'))))


def test_channels_last_model_gives_the_same_loss():
    torch.manual_seed(0)
    a = LightFlowModel(width_mult=0.5)
    b = LightFlowModel(width_mult=0.5, channels_last=True)
    b.load_state_dict(a.state_dict())
    assert b.flownet.encoder[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    gen = SyntheticFlowGenerator(size=(64, 64), seed=0).render([0, 1])
    inputs = torch.stack([gen.img1, gen.img2], 1)
    samples = [dict(flow=gen.flow[i], valid=gen.valid[i]) for i in range(2)]
    la, lb = a(inputs, samples, mode='loss')['loss_flow'], b(inputs, samples, mode='loss')['loss_flow']
    torch.testing.assert_close(la, lb, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # ~26 s
def test_gpu_recipe_trains_on_cpu_and_lowers_the_loss(tmp_path):
    cfg = load_config(str(GPU_CFG), work_dir=str(tmp_path))
    cfg.model.update(width_mult=0.5, channels_last=False)
    cfg.model.data_preprocessor.generator.update(size=(64, 64), num_objects=(2, 4))
    cfg.train_dataloader.batch_size = 4
    cfg.val_dataloader.update(num_workers=0)
    cfg.val_dataloader.dataset.dataset.update(num_samples=8, size=(64, 64))
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    cfg.train_cfg.update(max_iters=60, val_interval=60)
    cfg.optim_wrapper.optimizer.lr = 5e-3
    cfg.param_scheduler = [dict(type='LinearLR', by_epoch=False, start_factor=0.2, begin=0, end=5)]
    cfg.custom_hooks = [dict(type='ValidateBeforeTrainHook'), dict(type='LightFlowMetaHook')]
    cfg.default_hooks.checkpoint.interval = 60
    runner = Runner.from_cfg(cfg)
    runner.train()
    history = runner.message_hub.get_scalar('val/EPE').data[0]
    before, after = float(history[0]), float(history[-1])
    assert after < 0.7 * before, (before, after)
    meta = _torch_load(tmp_path / 'iter_60.pth')['meta']['lightflow']
    assert meta['width_mult'] == 0.5 and 'encoder_channels' in meta


def test_motion_curriculum_ramps_the_generator_motion(tmp_path):
    from lightflow.engine import MotionCurriculumHook

    hook = MotionCurriculumHook(start=0.25, end=1.5, iters=4)
    assert [hook.motion_scale(i) for i in (0, 2, 4, 10)] == [0.25, 0.875, 1.5, 1.5]
    model = _model(size=(32, 32))

    class _Runner:  # the two attributes the hook reads
        iter = 0

    runner = _Runner()
    runner.model = model
    hook.before_train(runner)
    runner.iter = 2
    hook.before_train_iter(runner, 0)
    assert model.data_preprocessor.generator.motion_scale == 0.875
    small = model.data_preprocessor(dict(synthetic_index=[0, 1]), True)['data_samples'][0]['flow']
    runner.iter = 4
    hook.before_train_iter(runner, 0)
    large = model.data_preprocessor(dict(synthetic_index=[0, 1]), True)['data_samples'][0]['flow']
    assert float(large.norm(dim=0).mean()) > 1.3 * float(small.norm(dim=0).mean())
    runner.model = LightFlowModel(width_mult=0.5)
    with pytest.raises(ValueError, match='SyntheticFlowPreprocessor'):
        hook.before_train(runner)
    with pytest.raises(ValueError, match='iters'):
        MotionCurriculumHook(iters=0)
