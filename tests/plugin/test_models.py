"""Behaviour of the plugin's models: warping, GRU, motion normalisation, key-frame scheduling and its cache."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, TrackDataSample
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from lightflow import LightFlow
from mmdet_plugin.models import FlowGuidedGRU, FlowVideoDetector, FlowWarp, LightFlowMotion

init_default_scope('mmdet')

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def retinanet_cfg(num_classes: int = 3) -> dict:
    """A tiny but real RetinaNet on MobileNetV2 (strides 8, 16)."""
    return dict(
        type='RetinaNet',
        backbone=dict(type='MobileNetV2', out_indices=(2, 4), widen_factor=0.5),
        neck=dict(type='FPN', in_channels=[16, 48], out_channels=16, num_outs=2),
        bbox_head=dict(
            type='RetinaHead', num_classes=num_classes, in_channels=16, feat_channels=16, stacked_convs=1,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=4, scales_per_octave=1, ratios=[1.0],
                                  strides=[8, 16]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0] * 4),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                                     ignore_iof_thr=-1),
                       sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=50, min_bbox_size=0, score_thr=0.0, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=10))


def video_detector(interval: int = 2, aggregator: bool | dict = False, **overrides) -> FlowVideoDetector:
    cfg = dict(type='FlowVideoDetector', detector=retinanet_cfg(),
               motion=dict(type='LightFlowMotion', width_mult=0.25, img_mean=MEAN, img_std=STD),
               aggregator=aggregator if isinstance(aggregator, dict) else
               dict(type='FlowGuidedGRU', in_channels=16, hidden_channels=16) if aggregator else None,
               test_cfg=dict(key_frame_interval=interval),
               data_preprocessor=dict(type='TrackDataPreprocessor', mean=MEAN, std=STD, bgr_to_rgb=True,
                                      pad_size_divisor=32))
    cfg.update(overrides)
    return MODELS.build(ConfigDict(cfg))


def frame_batch(model: FlowVideoDetector, frame_id: int, video_id: int, height: int = 64, width: int = 96) -> dict:
    """One preprocessed test frame, packed as PackTrackInputs + pseudo_collate would pack it."""
    sample = DetDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width), scale_factor=(1.0, 1.0),
                                         frame_id=frame_id, video_id=video_id, img_id=frame_id))
    track = TrackDataSample()
    track.video_data_samples = [sample]
    gen = torch.Generator().manual_seed(1000 * video_id + frame_id)
    img = torch.randint(0, 256, (1, 3, height, width), generator=gen, dtype=torch.uint8)
    return model.data_preprocessor(dict(inputs=[img], data_samples=[track]), training=False)


def count_backbone_calls(model: FlowVideoDetector) -> list[int]:
    """Wrap the real backbone's forward with a counter."""
    calls = [0]
    backbone = model.detector.backbone
    forward = backbone.forward

    def counting_forward(*args, **kwargs):
        calls[0] += 1
        return forward(*args, **kwargs)

    backbone.forward = counting_forward
    return calls


# ---------------------------------------------------------------- FlowWarp
@pytest.mark.parametrize('fast', [False, True])
def test_flow_warp_zero_flow_is_identity(fast):
    same = torch.equal if not fast else (lambda a, b: bool((a - b).abs().max() <= 1e-5))
    feats = (torch.randn(2, 4, 8, 12), torch.randn(2, 4, 4, 6))
    out = FlowWarp(fast=fast)(feats, torch.zeros(2, 2, 64, 96))
    assert all(same(a, b) for a, b in zip(out, feats))
    single = torch.randn(1, 3, 5, 7)
    assert same(FlowWarp(padding_mode='border', fast=fast)(single, torch.zeros(1, 2, 40, 56)), single)


@pytest.mark.parametrize('fast', [False, True])
def test_flow_warp_integer_shift_moves_features_by_matching_cells(fast):
    torch.manual_seed(0)
    stride8, stride16 = torch.randn(1, 4, 8, 12), torch.randn(1, 4, 4, 6)
    flow = torch.zeros(1, 2, 64, 96)
    flow[:, 0] = 16.0   # u = 16 px of the frame: 2 cells at stride 8, 1 cell at stride 16
    flow[:, 1] = -8.0   # v = -8 px: 1 cell up at stride 8, half a cell at stride 16
    out8, out16 = FlowWarp(fast=fast)((stride8, stride16), flow)
    # out[y, x] = feat[y + v, x + u]: reads 2 cells right and 1 cell up.
    assert torch.allclose(out8[..., 1:, :-2], stride8[..., :-1, 2:], atol=1e-5)
    assert out8[..., 0, :].abs().max() < 1e-5 and out8[..., -2:].abs().max() < 1e-5
    expected16 = 0.5 * (stride16[..., :-1, 1:] + stride16[..., 1:, 1:])  # half a cell up blends two rows
    assert torch.allclose(out16[..., 1:, :-1], expected16, atol=1e-5)


def test_flow_warp_rejects_bad_padding_mode():
    with pytest.raises(ValueError, match='padding_mode'):
        FlowWarp(padding_mode='wrap')


# ---------------------------------------------------------------- FlowGuidedGRU
def test_gru_matches_equation_6_by_hand():
    torch.manual_seed(0)
    gru = FlowGuidedGRU(in_channels=3, hidden_channels=3)
    x, h = torch.randn(1, 3, 5, 6), torch.randn(1, 3, 5, 6)
    cell = gru.cells[0]
    w_x, b_x = cell.conv_x.weight, cell.conv_x.bias
    u_zr, u_h = cell.conv_h_zr.weight, cell.conv_h_h.weight
    c = 3

    def conv(inp, weight, bias=None):
        return F.conv2d(inp, weight, bias, padding=1)

    z = torch.sigmoid(conv(x, w_x[:c], b_x[:c]) + conv(h, u_zr[:c]))
    r = torch.sigmoid(conv(x, w_x[c:2 * c], b_x[c:2 * c]) + conv(h, u_zr[c:]))
    candidate = torch.relu(conv(x, w_x[2 * c:], b_x[2 * c:]) + conv(r * h, u_h))
    expected = (1 - z) * h + z * candidate
    assert torch.allclose(gru(x, h), expected, atol=1e-6)
    assert torch.equal(gru.init_state(x), x) and torch.equal(gru.output(h), h)  # identities when hidden == in


@pytest.mark.parametrize('hidden,num_levels', [(4, 1), (6, 2)])
def test_gru_gradients_reach_every_parameter(hidden, num_levels):
    torch.manual_seed(0)
    gru = FlowGuidedGRU(in_channels=4, hidden_channels=hidden, num_levels=num_levels)
    feats = (torch.randn(2, 4, 6, 6), torch.randn(2, 4, 3, 3))
    state = gru.init_state(tuple(f.flip(-1) for f in feats))
    out = gru.output(gru(feats, state))
    assert [o.shape for o in out] == [f.shape for f in feats]
    sum(o.square().sum() for o in out).backward()
    for name, param in gru.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert len(gru.cells) == num_levels


# ---------------------------------------------------------------- LightFlowMotion
def test_motion_undoes_normalisation_exactly():
    motion = LightFlowMotion(width_mult=0.25, img_mean=MEAN, img_std=STD, bgr_to_rgb=True)
    rgb = torch.randint(0, 256, (1, 3, 8, 8)).float()
    normalised = (rgb - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(motion.to_rgb255(normalised), rgb, atol=1e-4)
    # Without bgr_to_rgb the detector sees BGR (mmcv's loading order), normalised with BGR-ordered statistics.
    bgr_motion = LightFlowMotion(width_mult=0.25, img_mean=MEAN[::-1], img_std=STD[::-1], bgr_to_rgb=False)
    bgr_norm = (rgb.flip(1) - torch.tensor(MEAN[::-1]).view(1, 3, 1, 1)) / torch.tensor(STD[::-1]).view(1, 3, 1, 1)
    assert torch.allclose(bgr_motion.to_rgb255(bgr_norm), rgb, atol=1e-4)


def test_motion_flow_is_in_pixels_of_its_own_grid():
    from lightflow import estimate_flow
    motion = LightFlowMotion(width_mult=0.25, flow_scale=0.5, zero_init_flow=False).eval()
    a, b = torch.randn(2, 3, 64, 96), torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        flow = motion(a, b)
        # The same network on the half-size RGB frames (32x48, padded inside to /64): flow at that size, its pixels.
        half = [F.interpolate(motion.to_rgb255(x), size=(32, 48), mode='bilinear', align_corners=False) for x in (a, b)]
        expected = estimate_flow(motion.flownet, *half, backend='torch')
    assert flow.shape == (2, 2, 32, 48) and flow.abs().mean() > 0.1
    assert (flow - expected).abs().max() < 1e-3


@pytest.mark.parametrize('backend', ['auto', 'torch', 'onnxruntime', 'openvino'])
def test_motion_native_grid_without_upsampling(backend):
    torch.manual_seed(0)  # random weights and frames: seeded, so the flow-size check does not depend on test order
    motion = LightFlowMotion(width_mult=0.25, flow_scale=0.5, zero_init_flow=False, resize_to_divisor=True,
                             backend=backend).eval()
    a, b = torch.randn(1, 3, 128, 192), torch.randn(1, 3, 128, 192)
    # 64x96 at flow_scale 0.5 -> the nearest /64 size 64x128 -> the network's 1/4 grid 16x32, in pixels of that grid.
    rgb = [F.interpolate(motion.to_rgb255(x), size=(64, 128), mode='bilinear', align_corners=False) for x in (a, b)]
    net = motion.flownet
    with torch.no_grad():
        expected = net.forward_features(net.normalize(*rgb)) * net.div_flow / 4
        flow = motion(a, b)
    assert flow.shape == (1, 2, 16, 32) and expected.abs().mean() > 0.01  # 100x the tolerance below
    assert (flow - expected).abs().max() < 1e-4
    with torch.enable_grad():  # the differentiable path (eval-mode BN) gives the same numbers
        train_flow = motion(a, b)
    assert train_flow.requires_grad and (train_flow.detach() - expected).abs().max() < 1e-4


def test_motion_backend_validated():
    with pytest.raises(ValueError, match="backend must be one of .* got 'tensorrt'"):
        LightFlowMotion(width_mult=0.25, backend='tensorrt')


def test_motion_accepts_a_backend_registered_later(monkeypatch):
    """The name is checked by the registry (lightflow.inference.check_backend), not a tuple frozen at import."""
    import lightflow.inference.backends as runtime
    monkeypatch.setitem(runtime._REGISTRY, 'eager_copy', runtime.Backend('eager_copy'))  # the eager graph again
    motion = LightFlowMotion(width_mult=0.25, zero_init_flow=False, backend='eager_copy').eval()
    a, b = torch.randn(1, 3, 64, 96), torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        flow = motion(a, b)
    with torch.enable_grad():
        expected = motion(a, b).detach()  # the differentiable path
    assert motion.backend.name == 'eager_copy' and (flow - expected).abs().max() < 1e-4


def test_motion_is_a_frame_motion_with_lightflows_divisor():
    """The frame side (un-normalise, resize, the /64 test) is FrameMotion's, shared with DISMotion, not a copy."""
    from mmdet_plugin.models import DISMotion, FrameMotion
    motion = LightFlowMotion(width_mult=0.25, flow_scale=0.5, resize_to_divisor=True)
    assert isinstance(motion, FrameMotion) and motion.size_divisor == motion.flownet.size_divisor == 64
    assert not {'to_rgb255', 'flow_size', 'flow_inputs'} & set(vars(LightFlowMotion))
    dis = DISMotion(flow_scale=0.5, resize_to_divisor=True)
    a, b = torch.randn(1, 3, 100, 150), torch.randn(1, 3, 100, 150)
    for x, y in zip(motion.flow_inputs(a, b), dis.flow_inputs(a, b)):
        assert torch.equal(torch.as_tensor(x), torch.as_tensor(y))


@pytest.mark.parametrize('resize_to_divisor', [False, True])
def test_motion_runs_the_one_pixel_flow_path(monkeypatch, resize_to_divisor):
    """Training and inference flows of LightFlowMotion both come from FlowGraph.pixel_flow (+1000 px there shows)."""
    from lightflow.inference import FlowGraph
    motion = LightFlowMotion(width_mult=0.25, zero_init_flow=False, resize_to_divisor=resize_to_divisor,
                             backend='torch').eval()
    a, b = torch.randn(1, 3, 128, 192), torch.randn(1, 3, 128, 192)

    def flows():
        with torch.no_grad():
            inference = motion(a, b)
        with torch.enable_grad():
            training = motion(a, b).detach()
        return inference, training
    before = flows()
    calls, real = [], FlowGraph.pixel_flow
    monkeypatch.setattr(FlowGraph, 'pixel_flow', staticmethod(
        lambda net, x, y, upsample=True: calls.append(upsample) or real(net, x, y, upsample) + 1000.0))
    after = flows()
    assert calls == [not resize_to_divisor] * 2  # 64x96 is padded and upsampled; 64x128 stays on the 1/4 grid
    for x, y in zip(before, after):
        torch.testing.assert_close(y, x + 1000.0, atol=1e-3, rtol=0)


def test_untrained_motion_predicts_zero_flow_unless_asked():
    a, b = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.count_nonzero(LightFlowMotion(width_mult=0.25).eval()(a, b)) == 0
        assert torch.count_nonzero(LightFlowMotion(width_mult=0.25, zero_init_flow=False).eval()(a, b)) > 0


def test_motion_loads_checkpoint_and_rejects_wrong_width(tmp_path):
    net = LightFlow(0.5)
    ckpt = tmp_path / 'flow.pth'
    # An mmengine-style checkpoint with a wrapper prefix, as a training runner writes it.
    torch.save({'meta': {}, 'state_dict': {f'flownet.{k}': v for k, v in net.state_dict().items()}}, ckpt)
    motion = LightFlowMotion(width_mult=0.5, init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    motion.init_weights()
    for key, value in net.state_dict().items():
        assert torch.equal(motion.flownet.state_dict()[key], value), key
    raw = tmp_path / 'raw.pth'
    torch.save(LightFlow(0.75).state_dict(), raw)
    with pytest.raises(ValueError, match='width_mult=0.75'):
        LightFlowMotion(width_mult=0.5, pretrained=str(raw)).init_weights()
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        LightFlowMotion(width_mult=0.5, pretrained=str(tmp_path / 'missing.pth')).init_weights()


# ---------------------------------------------------------------- FlowVideoDetector
def test_a_trained_detector_loads_with_the_flow_fields_it_was_trained_with(tmp_path):
    """Issue 22: a detector trained with a bilinear Light Flow (its ``pretrained`` adopted at training) was tested by
    test_vid / benchmark_vid / demo_video with the constructor's nearest upsampling and div_flow 20."""
    import dataclasses

    from mmengine.runner import load_checkpoint

    trained = video_detector()
    trained.motion.flownet.config = dataclasses.replace(trained.motion.flownet.config, pred_upsample='bilinear',
                                                        div_flow=10.0)
    ckpt = tmp_path / 'epoch_2.pth'
    torch.save({'meta': {}, 'state_dict': trained.state_dict()}, ckpt)
    tested = video_detector()  # as the test tools build it: from the config, init_weights never runs
    assert tested.motion.flownet.config.pred_upsample == 'nearest'
    load_checkpoint(tested, str(ckpt), map_location='cpu')
    assert (tested.motion.flownet.config.pred_upsample, tested.motion.flownet.div_flow) == ('bilinear', 10.0)
    torch.manual_seed(0)
    a, b = torch.randn(1, 3, 64, 128), torch.randn(1, 3, 64, 128)
    for p_trained, p_tested in zip(trained.motion.parameters(), tested.motion.parameters()):
        p_tested.data.copy_(p_trained.data.normal_(0, 0.05))  # non-zero flow, same weights in both
    with torch.no_grad():
        # Same weights, two module instances: equal up to the CPU kernels' rounding (oneDNN may pick another kernel
        # for differently aligned weights; bit equality failed once under load). Nearest instead of bilinear
        # upsampling or div_flow 20 instead of 10 is off by far more.
        flow_trained, flow_tested = trained.motion.eval()(a, b), tested.motion.eval()(a, b)
        torch.testing.assert_close(flow_tested, flow_trained, rtol=1e-5, atol=1e-6)
        assert flow_trained.abs().max() > 0.01  # a flow that the fields change

    # A detector saved before the fields travelled loads strictly and keeps the model's own; bad fields are refused.
    old = {k: v for k, v in trained.state_dict().items() if k != 'motion.flow_fields'}
    fresh = video_detector()
    fresh.load_state_dict(old, strict=True)
    assert (fresh.motion.flownet.config.pred_upsample, fresh.motion.flownet.div_flow) == ('nearest', 20.0)
    with pytest.raises(RuntimeError, match=r'motion.flow_fields: expected \(div_flow > 0'):
        fresh.load_state_dict({**old, 'motion.flow_fields': torch.tensor([20.0, 7.0])})


def test_predict_runs_backbone_once_per_key_frame_and_resets_per_video():
    model = video_detector(interval=2).eval()
    calls = count_backbone_calls(model)
    flow_calls = []
    model.motion.register_forward_hook(lambda *args: flow_calls.append(1))
    expected_keys = {0: True, 1: False, 2: True}
    with torch.no_grad():
        for frame_id, is_key in expected_keys.items():
            before = calls[0]
            out = model.test_step(frame_batch(model, frame_id, video_id=0))
            assert calls[0] - before == (1 if is_key else 0), frame_id
            assert model.frame_records[-1].is_key is is_key
            assert 'pred_instances' in out[0].video_data_samples[0]
        assert len(flow_calls) == 1  # only the non-key frame estimates flow
        # A new video at frame_id 3 (not a multiple of the interval) is a key frame: the cache was reset.
        model.test_step(frame_batch(model, 3, video_id=1))
        assert calls[0] == 3 and model.frame_records[-1].is_key
        model.test_step(frame_batch(model, 4, video_id=1))
        model.test_step(frame_batch(model, 5, video_id=1))
    assert calls[0] == 4 and [r.is_key for r in model.frame_records] == [True, False, True, True, True, False]


def test_nonkey_frame_identical_to_key_frame_gives_key_predictions():
    """With an identical non-key frame, warped features differ from the key's only by the (untrained) flow;
    with the flow forced to zero the non-key path must reproduce the key frame's detections exactly."""
    model = video_detector(interval=10).eval()
    model.motion.forward = lambda img, ref, metas=None: torch.zeros(img.shape[0], 2, *img.shape[-2:])
    with torch.no_grad():
        key = model.test_step(frame_batch(model, 0, video_id=0))[0].video_data_samples[0].pred_instances
        same = frame_batch(model, 0, video_id=0)
        same['data_samples'][0].video_data_samples[0].set_metainfo(dict(frame_id=1))
        nonkey = model.test_step(same)[0].video_data_samples[0].pred_instances
    assert not model.frame_records[-1].is_key
    assert torch.equal(key.bboxes, nonkey.bboxes) and torch.equal(key.scores, nonkey.scores)


def test_predict_with_aggregator_updates_state_on_key_frames():
    model = video_detector(interval=2, aggregator=True).eval()
    with torch.no_grad():
        model.test_step(frame_batch(model, 0, video_id=0))
        first = model._key.feats
        assert all(torch.equal(a, b) for a, b in zip(first, model._key.state.state))  # F̂ = F on a video's first key
        model.test_step(frame_batch(model, 1, video_id=0))
        model.test_step(frame_batch(model, 2, video_id=0))
        feats2 = model._backbone(frame_batch(model, 2, video_id=0)['inputs'][:, 0])
    # The second key's features are aggregated, not its raw backbone features.
    assert model._key.frame_id == 2 and not torch.allclose(model._key.feats[0], feats2[0])


def test_predict_rejects_size_change_and_batches():
    model = video_detector(interval=5).eval()
    with torch.no_grad():
        model.test_step(frame_batch(model, 0, video_id=0))
        with pytest.raises(ValueError, match='frame size changed'):
            model.test_step(frame_batch(model, 1, video_id=0, height=96, width=96))
        data = frame_batch(model, 0, video_id=0)
        data['inputs'] = data['inputs'].repeat(2, 1, 1, 1, 1)
        data['data_samples'] = data['data_samples'] * 2
        with pytest.raises(ValueError, match='one frame per call'):
            model.predict(data['inputs'], data['data_samples'])


def test_detector_without_extract_feat_is_rejected():
    from mmengine.model import BaseModel

    @MODELS.register_module(force=True)
    class HeadlessModel(BaseModel):  # a registered model that is not a feature-extracting detector
        def forward(self, *args, **kwargs):
            return {}

    with pytest.raises(ValueError, match='HeadlessModel'):
        video_detector(detector=dict(type='HeadlessModel'))
    with pytest.raises(ValueError, match='needs a motion module'):
        video_detector(interval=10, motion=None)


def clip_batch(model: FlowVideoDetector, num_clips: int = 2, num_frames: int = 3) -> dict:
    clips, samples = [], []
    gen = torch.Generator().manual_seed(7)
    for c in range(num_clips):
        frames = []
        for t in range(num_frames):
            s = DetDataSample(metainfo=dict(img_shape=(64, 96), ori_shape=(64, 96), scale_factor=(1.0, 1.0),
                                            frame_id=3 * t, video_id=c))
            s.gt_instances = InstanceData(bboxes=torch.tensor([[10.0 + t, 12.0, 40.0 + t, 44.0]]),
                                          labels=torch.tensor([c % 3]))
            frames.append(s)
        track = TrackDataSample()
        track.video_data_samples = frames
        samples.append(track)
        clips.append(torch.randint(0, 256, (num_frames, 3, 64, 96), generator=gen, dtype=torch.uint8))
    return model.data_preprocessor(dict(inputs=clips, data_samples=samples), training=True)


@pytest.mark.parametrize('aggregator', [False, True])
def test_loss_on_clips_backpropagates_into_flow_and_detector(aggregator):
    torch.manual_seed(0)
    model = video_detector(aggregator=aggregator).train()
    calls = count_backbone_calls(model)
    losses = model(**clip_batch(model), mode='loss')
    total = sum(sum(v) if isinstance(v, list) else v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert calls[0] == 1  # one batched backbone call: the last key (DFF) or all keys (GRU)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.motion.parameters())
    assert model.detector.backbone.conv1.conv.weight.grad.abs().sum() > 0
    if aggregator:
        assert all(p.grad is not None for p in model.aggregator.parameters())
    # T == 1: single-frame clips train on their own features, no flow.
    single = clip_batch(model, num_frames=1)
    flow_calls = []
    model.motion.register_forward_hook(lambda *args: flow_calls.append(1))
    assert torch.isfinite(sum(sum(v) for v in model(**single, mode='loss').values()))
    assert not flow_calls


def test_aggregator_max_chain_restarts_the_gru_state():
    """aggregator.max_chain=1: every second key frame starts its state from its own features again; None (the paper's
    whole-video inference) carries one chain over all keys of a video."""
    steps = {}
    for max_chain in (None, 1):
        model = video_detector(interval=1, aggregator=True).eval()
        model.aggregator.max_chain = max_chain
        with torch.no_grad():
            for frame_id in range(3):
                model.test_step(frame_batch(model, frame_id, video_id=0))
            steps[max_chain] = model._key.state.steps
            if max_chain == 1:
                own = model.aggregator.init_state(tuple(model.detector.extract_feat(model._key.image)))
                for a, b in zip(model._key.state.state, own):
                    assert torch.equal(a, b)
    assert steps == {None: 2, 1: 0}
    with pytest.raises(ValueError, match='max_chain must be a positive integer or None, got 0'):
        MODELS.build(dict(type='FlowGuidedGRU', in_channels=16, hidden_channels=16, max_chain=0))
    with pytest.raises(ValueError, match='test_cfg.aggregator_max_chain moved to the aggregator'):
        video_detector(aggregator=True, test_cfg=dict(key_frame_interval=2, aggregator_max_chain=2))


def test_eight_key_clip_runs_seven_aggregation_steps_and_the_loss_is_on_the_last_frame():
    """A clip of 8 keys + 1 current frame: 7 GRU steps (a spy on the aggregator), in time order, the first key's
    state its own features; the head sees only the last frame's ground truth."""
    torch.manual_seed(0)
    model = video_detector(aggregator=True).train()
    model.detector.eval()  # BN on running statistics: a key's features do not depend on its batch
    steps = []
    forward = model.aggregator.forward
    model.aggregator.forward = lambda feats, warped: steps.append(feats[0].detach().clone()) or forward(feats, warped)
    batch = clip_batch(model, num_clips=1, num_frames=9)
    seen = []
    loss = model.detector.loss
    model.detector.loss = lambda inputs, samples: seen.append((inputs.clone(), samples)) or loss(inputs, samples)
    losses = model(**batch, mode='loss')
    assert torch.isfinite(sum(sum(v) if isinstance(v, list) else v for v in losses.values()))
    assert len(steps) == 7
    keys = batch['inputs'][0, :8]
    own = [model._backbone(keys[j:j + 1])[0] for j in (1, 7)]
    assert torch.allclose(steps[0], own[0], atol=1e-5) and torch.allclose(steps[6], own[1], atol=1e-5)
    (inputs, samples), = seen
    assert torch.equal(inputs, batch['inputs'][:, -1])
    last = batch['data_samples'][0].video_data_samples[-1]
    assert len(samples) == 1 and samples[0] is last


def test_grad_key_frames_truncates_backprop_to_the_last_keys():
    """train_cfg.grad_key_frames=2 on 8 keys: 6 keys' backbones (and the flow between them) run without gradients,
    the last 2 with; every aggregation step keeps its gradients, so the GRU still learns."""
    torch.manual_seed(0)
    model = video_detector(aggregator=True, train_cfg=dict(grad_key_frames=2)).train()
    graded = []
    backbone = model.detector.backbone
    forward = backbone.forward
    backbone.forward = lambda x: graded.append((x.shape[0], torch.is_grad_enabled())) or forward(x)
    flows = []
    motion_forward = model.motion.forward
    model.motion.forward = lambda a, b, metas=None: flows.append((a.shape[0], torch.is_grad_enabled())) or \
        motion_forward(a, b, metas)
    losses = model(**clip_batch(model, num_clips=2, num_frames=9), mode='loss')
    sum(sum(v) if isinstance(v, list) else v for v in losses.values()).backward()
    assert graded == [(12, False), (4, True)]
    assert flows == [(10, False), (4, True), (2, True)]  # pairs 1..5 -> no grad; 6, 7 and the current frame: grad
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.aggregator.parameters())
    with pytest.raises(ValueError, match='train_cfg.grad_key_frames'):
        video_detector(aggregator=True, train_cfg=dict(grad_key_frames=0))


def test_whole_video_inference_carries_one_state_and_restarts_at_the_next_video():
    """max_chain=None (the paper): one aggregation chain over every key of a video; a new video starts afresh."""
    model = video_detector(interval=2, aggregator=True).eval()
    assert model.aggregator.max_chain is None
    with torch.no_grad():
        for frame_id in range(9):  # keys 0, 2, 4, 6, 8
            model.test_step(frame_batch(model, frame_id, video_id=0))
        assert model._key.state.steps == 4
        model.test_step(frame_batch(model, 0, video_id=1))
        own = model.aggregator.init_state(tuple(model.detector.extract_feat(model._key.image)))
    assert model._key.state.steps == 0 and all(torch.equal(a, b) for a, b in zip(model._key.state.state, own))


def test_the_weighted_average_aggregator_is_picked_from_a_config():
    """The paper's Table 4 baseline, registered: a config swaps it in with no edit to the detector; it trains (every
    parameter gets a gradient) and aggregates at test time."""
    torch.manual_seed(0)
    model = video_detector(interval=2, aggregator=dict(type='FlowGuidedWeightedAverage', in_channels=16, embed_channels=8))
    assert type(model.aggregator).__name__ == 'FlowGuidedWeightedAverage'
    model.train()
    losses = model(**clip_batch(model, num_clips=2, num_frames=4), mode='loss')
    sum(sum(v) if isinstance(v, list) else v for v in losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.aggregator.parameters())
    x, h = torch.rand(1, 16, 4, 6), torch.rand(1, 16, 4, 6)
    w = model.aggregator.history_weight(x, h)
    assert torch.allclose(model.aggregator(x, h), (1 - w) * x + w * h)
    assert torch.allclose(model.aggregator.history_weight(x, x), torch.full_like(w, 0.5), atol=1e-5)
    model.eval()
    with torch.no_grad():
        for frame_id in range(3):
            model.test_step(frame_batch(model, frame_id, video_id=0))
    assert model._key.state.steps == 1
