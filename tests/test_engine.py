"""lightflow.engine on mmengine: every config builds and trains, the loss matches a hand computation, the optimizer and
LR schedules follow the recipe, a short Runner run lowers the held-out EPE, and checkpoints refuse another width."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement

import lightflow.engine  # noqa: F401  (registers the `lightflow` scope)
from lightflow.engine import (LightFlowModel, PackedFlowDataset, checkpoint_width, flow_l1_loss, load_config,
                              load_lightflow_checkpoint)
from lightflow.engine.registry import MODELS, PARAM_SCHEDULERS

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / 'configs' / 'lightflow'
CONFIGS = sorted(p for p in CONFIG_DIR.glob('*.py'))
SEED_CFG = CONFIG_DIR / 'lightflow_w1.0_2xb64-403e_flyingchairs.py'
PAPER_CFG = CONFIG_DIR / 'lightflow_w1.0_2xb64-70k_flyingchairs.py'
SYNTH_CFG = CONFIG_DIR / 'lightflow_w0.5_1xb8-2k_synthetic.py'


def _batch(n: int = 2, h: int = 64, w: int = 96, seed: int = 0, holes: bool = True) -> tuple[torch.Tensor, list]:
    g = torch.Generator().manual_seed(seed)
    inputs = torch.rand(n, 2, 3, h, w, generator=g) * 255
    samples = []
    for _ in range(n):
        flow = torch.randn(2, h, w, generator=g) * 5
        valid = torch.rand(h, w, generator=g) > 0.2
        if holes:
            valid[:4, :4] = False  # one 1/4-res cell without any valid pixel
            flow[:, ~valid] = float('nan')  # must not leak into the loss
        samples.append(BaseDataElement(flow=flow, valid=valid, metainfo=dict(ori_shape=(h, w))))
    return inputs, samples


def _hand_loss(pred: np.ndarray, flow: np.ndarray, valid: np.ndarray, div_flow: float) -> float:
    """Loop version of the documented loss: per 4x4 cell, masked GT mean; L1 |du| + |dv|; mean over valid cells."""
    total, cells = 0.0, 0
    n, _, h, w = pred.shape
    for b in range(n):
        for i in range(h):
            for j in range(w):
                m = valid[b, 4 * i:4 * i + 4, 4 * j:4 * j + 4]
                if not m.any():
                    continue
                f = flow[b, :, 4 * i:4 * i + 4, 4 * j:4 * j + 4][:, m]
                target = f.mean(axis=1) / div_flow
                total += float(np.abs(pred[b, :, i, j] - target).sum())
                cells += 1
    return total / cells


def test_configs_found():
    names = {p.name for p in CONFIGS}
    for want in ('lightflow_w1.0_2xb64-403e_flyingchairs.py', 'lightflow_w0.75_2xb64-403e_flyingchairs.py',
                 'lightflow_w0.5_2xb64-403e_flyingchairs.py', 'lightflow_w1.0_2xb64-70k_flyingchairs.py',
                 SYNTH_CFG.name):
        assert want in names


def test_lead_c_config_differs_from_lead_b_in_the_averaging_flag_alone():
    """The nearest/bilinear comparison of issue 14 means something only if the two runs differ in the flag alone; both
    build their matched 128x128 generator (muted backgrounds, blur) as configured."""
    from lightflow.engine.registry import DATASETS

    near = Config.fromfile(str(CONFIG_DIR / 'lightflow_w0.5_1xb16-4k-ft_synthetic-128x128.py')).to_dict()
    bil = Config.fromfile(str(CONFIG_DIR / 'lightflow_w0.5-bilinear_1xb16-4k-ft_synthetic-128x128.py')).to_dict()
    assert bil['model'].pop('pred_upsample') == 'bilinear' and 'pred_upsample' not in near['model']
    for cfg in (near, bil):
        cfg.pop('_base_', None)
    assert near == bil
    dataset = DATASETS.build(near['train_dataloader']['dataset'])
    gen = dataset.dataset.generator
    assert (gen.size, gen.blur_prob, gen.background_contrast) == ((128, 128), 0.15, (0.25, 1.0))


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_config_builds_and_runs_every_mode(path):
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'lightflow' and cfg.custom_imports.imports == ['lightflow.engine']
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert isinstance(model, LightFlowModel) and model.flownet.width_mult == cfg.model.width_mult
    inputs, samples = _batch()
    data = model.data_preprocessor(dict(inputs=list(inputs), data_samples=samples), True)

    loss = model(**data, mode='loss')['loss_flow']
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name

    model.eval()
    with torch.no_grad():
        raw = model(data['inputs'], mode='tensor')
        results = model(**data, mode='predict')
    assert raw.shape == (2, 2, 16, 32)  # 64x96 padded to 64x128, 1/4 resolution
    assert len(results) == 2
    # predict = bilinear upsampling of the 1/4 output x div_flow, cropped back to the input size.
    expected = F.interpolate(raw, size=(64, 128), mode='bilinear', align_corners=False)[..., :64, :96] * 20.0
    for r, e, s in zip(results, expected, samples):
        assert r['pred_flow'].shape == (2, 64, 96)
        torch.testing.assert_close(r['pred_flow'], e, atol=2e-3, rtol=1e-3)
        assert r['gt_flow'] is s.flow


def test_loss_equals_hand_computation_with_padding_and_holes():
    torch.manual_seed(0)
    model = LightFlowModel(width_mult=0.5).eval()  # eval: BN uses running stats, so both passes see one network
    inputs, samples = _batch(n=2, h=64, w=96, seed=3)
    with torch.no_grad():
        loss = model(inputs, samples, mode='loss')['loss_flow']
        pred = model(inputs, mode='tensor')[..., :16, :24]  # cells of the unpadded 64x96 area
    flow = torch.stack([s.flow for s in samples]).numpy()
    valid = torch.stack([s.valid for s in samples]).numpy()
    assert loss.item() == pytest.approx(_hand_loss(pred.numpy(), flow, valid, 20.0), rel=1e-5)


def test_loss_ignores_empty_cells_and_is_zero_without_valid_pixels():
    pred = torch.zeros(1, 2, 2, 2, requires_grad=True)
    flow = torch.full((1, 2, 8, 8), 40.0)
    valid = torch.zeros(1, 8, 8, dtype=torch.bool)
    valid[0, :4, :4] = True  # only the top-left cell: target 40 / 20 = 2 per component -> L1 4
    assert flow_l1_loss(pred, flow, valid, 20.0).item() == pytest.approx(4.0)
    empty = flow_l1_loss(pred, flow, torch.zeros_like(valid), 20.0)
    empty.backward()
    assert empty.item() == 0.0 and pred.grad is not None


def test_paramwise_decay_zero_on_bn_and_bias():
    cfg = Config.fromfile(str(SEED_CFG))
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    decay = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
    assert isinstance(wrapper.optimizer, torch.optim.Adam) and wrapper.optimizer.defaults['betas'] == (0.9, 0.999)
    seen = {'bn': 0, 'bias': 0, 'conv': 0}
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            if isinstance(module, torch.nn.BatchNorm2d):
                assert decay[id(p)] == 0.0, pname
                seen['bn'] += 1
            elif pname == 'bias':
                assert decay[id(p)] == 0.0
                seen['bias'] += 1
            else:
                assert isinstance(module, torch.nn.Conv2d) and decay[id(p)] == pytest.approx(4e-5)
                seen['conv'] += 1
    assert seen['bn'] > 0 and seen['bias'] == 5 and seen['conv'] > 0


def _lrs(path: Path, steps: int, sample: list[int]) -> dict[int, float]:
    cfg = Config.fromfile(str(path))
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=cfg.optim_wrapper.optimizer.lr)
    wrapper = OptimWrapper(opt)
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper)) for s in copy.deepcopy(cfg.param_scheduler)]
    lrs, wanted = {}, set(sample)
    for step in range(steps):
        if step in wanted:
            lrs[step] = opt.param_groups[0]['lr']
        for s in schedulers:
            s.step()
    return lrs


def test_seed_schedule_by_epoch():
    # The seed's table: its last two steps start at epochs 289 and 347 (not 290 / 348 on an even 58-epoch grid).
    want = {0: 1e-3, 57: 1e-3, 58: 5e-4, 173: 5e-4, 174: 2.5e-4, 231: 2.5e-4, 232: 1.25e-4, 288: 1.25e-4,
            289: 6.25e-5, 346: 6.25e-5, 347: 3.125e-5, 402: 3.125e-5}
    lrs = _lrs(SEED_CFG, 403, list(want))
    assert Config.fromfile(str(SEED_CFG)).train_cfg.max_epochs == 403
    for epoch, lr in want.items():
        assert lrs[epoch] == pytest.approx(lr), epoch


def test_paper_schedule_by_iteration():
    want = {0: 1e-3, 9999: 1e-3, 10000: 1e-2, 29999: 1e-2, 30000: 5e-3, 39999: 5e-3, 40000: 2.5e-3, 50000: 1.25e-3,
            60000: 6.25e-4, 69999: 6.25e-4}
    lrs = _lrs(PAPER_CFG, 70000, list(want))
    assert Config.fromfile(str(PAPER_CFG)).train_cfg.max_iters == 70000
    for it, lr in want.items():
        assert lrs[it] == pytest.approx(lr), it


def test_data_root_override_reaches_every_dataset(tmp_path):
    cfg = load_config(str(SEED_CFG), {'data_root': '/somewhere/chairs/'}, str(tmp_path))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[name].dataset.dataset.root == '/somewhere/chairs/'
    assert cfg.work_dir == str(tmp_path)


def test_flow_dataset_on_real_chairs(shared_data):
    ds = PackedFlowDataset(dict(type='FlyingChairs', root=str(shared_data / 'FlyingChairs_mini'), split='val'), 'eval')
    assert len(ds) == 2
    item = ds[0]
    assert item['inputs'].shape == (2, 3, 384, 512) and item['inputs'].dtype == torch.float32
    assert item['data_samples'].flow.shape == (2, 384, 512) and bool(item['data_samples'].valid.all())
    with pytest.raises(ValueError, match='unknown dataset type'):
        PackedFlowDataset(dict(type='Nope'))


def _tiny_synthetic_cfg(work_dir: Path) -> Config:
    cfg = load_config(str(SYNTH_CFG), work_dir=str(work_dir))
    cfg.model.pop('pretrained', None)  # from random weights: the test checks that training lowers the EPE
    cfg.train_dataloader.dataset.dataset.update(num_samples=64, size=(64, 64))
    cfg.train_dataloader.batch_size = 4
    cfg.val_dataloader.dataset.dataset.update(num_samples=8, size=(64, 64))
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    cfg.train_cfg.update(max_iters=60, val_interval=60)
    cfg.optim_wrapper.optimizer.lr = 5e-3
    cfg.param_scheduler = [dict(type='LinearLR', by_epoch=False, start_factor=0.2, begin=0, end=5)]
    cfg.custom_hooks = [dict(type='ValidateBeforeTrainHook'), dict(type='FlowVisualizationHook', num_samples=2),
                        dict(type='LightFlowMetaHook')]
    cfg.default_hooks.checkpoint.interval = 60
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    return cfg


def test_runner_training_lowers_val_epe_and_checkpoint_roundtrip(tmp_path):
    runner = Runner.from_cfg(_tiny_synthetic_cfg(tmp_path))
    # runner.val() cannot run before train() here (CheckpointHook(save_best) sets up in before_train), so the
    # config's ValidateBeforeTrainHook measures the untrained EPE; the logger keeps every val EPE in the message hub.
    runner.train()
    history = runner.message_hub.get_scalar('val/EPE').data[0]
    assert len(history) == 2, history  # before training, and at the end
    before, after = float(history[0]), float(history[-1])
    assert after == pytest.approx(runner.val()['EPE'], rel=1e-4)
    assert np.isfinite(before) and after < 0.7 * before, (before, after)
    assert list((tmp_path / 'vis').glob('iter_60/*.png'))

    ckpt = tmp_path / 'iter_60.pth'
    net = load_lightflow_checkpoint(ckpt)  # a real mmengine checkpoint (message hub etc.), weights_only loading
    assert net.width_mult == 0.5 and not net.training
    trained = runner.model.flownet
    for (k, v), (k2, v2) in zip(trained.state_dict().items(), net.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)

    with pytest.raises(ValueError, match=r'width_mult=0\.5 .*model has width_mult=1'):
        LightFlowModel(width_mult=1.0, pretrained=str(ckpt))
    assert LightFlowModel(width_mult=0.5, pretrained=str(ckpt)).flownet.width_mult == 0.5


def test_raw_state_dict_width_inference_and_errors(tmp_path):
    net = LightFlowModel(width_mult=0.75).flownet
    torch.save(net.state_dict(), tmp_path / 'raw.pth')
    assert checkpoint_width(net.state_dict()) == 0.75
    assert load_lightflow_checkpoint(tmp_path / 'raw.pth').width_mult == 0.75
    with pytest.raises(ValueError, match=r'holds a Light Flow of width_mult=0\.75'):
        LightFlowModel(width_mult=0.5, pretrained=str(tmp_path / 'raw.pth'))
    with pytest.raises(FileNotFoundError, match='no such checkpoint'):
        load_lightflow_checkpoint(tmp_path / 'missing.pth')
    torch.save({'state_dict': {'foo': torch.zeros(1)}}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='no Light Flow weights'):
        load_lightflow_checkpoint(tmp_path / 'other.pth')
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='cannot load checkpoint'):
        load_lightflow_checkpoint(tmp_path / 'junk.pth')


def test_lightflow_scope_keeps_mmengine_root_registries_clean():
    import mmengine.hooks
    import mmengine.registry as root
    from mmengine.registry import DefaultScope

    from lightflow.engine import AtomicCheckpointHook, registry

    for name in ('MODELS', 'DATASETS', 'DATA_SAMPLERS', 'HOOKS', 'METRICS'):
        leaked = [k for k, cls in getattr(root, name).module_dict.items() if cls.__module__.startswith('lightflow')]
        assert not leaked, (name, leaked)
    assert 'FlowDataset' not in root.DATASETS.module_dict
    assert registry.DATASETS.get('PackedFlowDataset') is PackedFlowDataset
    assert registry.DATASETS.get('FlowDataset') is None  # issue 22: the earlier config name is gone (README)
    assert registry.MODELS.get('LightFlowModel') is LightFlowModel
    assert registry.HOOKS.get('CheckpointHook') is mmengine.hooks.CheckpointHook  # mmengine's built-ins via the parent
    # Another scope (the video configs' mmdet) names the project's classes with the prefix ...
    hook = root.HOOKS.build(dict(type='lightflow.AtomicCheckpointHook', interval=1))
    assert type(hook) is AtomicCheckpointHook
    # ... and building from the lightflow registries works whichever scope a Runner made current last.
    with DefaultScope.overwrite_default_scope('mmengine'):
        assert isinstance(registry.MODELS.build(dict(type='LightFlowModel', width_mult=0.25)), LightFlowModel)


def test_predict_uses_the_configured_backend():
    from lightflow.inference import flow_estimator
    pair = torch.rand(1, 2, 3, 64, 64) * 255
    for backend in ('torch', 'onnxruntime'):
        model = LightFlowModel(width_mult=0.25, backend=backend).eval()
        with torch.no_grad():
            out = model(pair, mode='predict')
        assert out[0]['pred_flow'].shape == (2, 64, 64)
        assert flow_estimator(model.flownet, backend).selected == {(1, 3, 64, 64): backend}
    with pytest.raises(ValueError, match="backend must be one of .* got 'trt'"):
        LightFlowModel(width_mult=0.25, backend='trt')
