"""ZeroMotion / DISMotion as drop-in motion modules, and tools/benchmark_motion.py on a set whose answer is known."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from mmdet_plugin.models import DISMotion, FlowWarp, ZeroMotion

init_default_scope('mmdet')
REPO = Path(__file__).resolve().parents[2]
MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def _photo(height: int = 160, width: int = 224) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:100 + height, 150:150 + width])


def _normalised(rgb: np.ndarray, bgr: bool = False) -> torch.Tensor:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return x.flip(1) if bgr else x


def _shifted(rgb: np.ndarray, dx: int) -> np.ndarray:
    """The frame after the camera panned: content moves ``dx`` px to the right (``out[y, x] = rgb[y, x - dx]``)."""
    return np.ascontiguousarray(np.roll(rgb, dx, axis=1))


@pytest.mark.parametrize('bgr', [False, True])
def test_dis_motion_points_from_frame_to_key_in_grid_pixels(bgr):
    key = _photo()
    frame = _shifted(key, 6)  # frame[y, x] = key[y, x - 6]: each pixel of the frame came from 6 px to its left
    motion = DISMotion('medium', flow_scale=0.5, img_mean=MEAN[::-1] if bgr else MEAN,
                       img_std=STD[::-1] if bgr else STD, bgr_to_rgb=not bgr)
    flow = motion(_normalised(frame, bgr), _normalised(key, bgr))
    assert flow.shape == (1, 2, 80, 112)  # half the frame, in pixels of that grid
    inner = flow[0, :, 8:-8, 8:-8]
    assert float(inner[0].median()) == pytest.approx(-3.0, abs=0.25)  # -6 px of the frame = -3 px of the grid
    assert float(inner[1].median()) == pytest.approx(0.0, abs=0.25)
    back = motion(_normalised(key, bgr), _normalised(frame, bgr))  # swapped arguments: the opposite motion
    assert float(back[0, 0, 8:-8, 8:-8].median()) == pytest.approx(3.0, abs=0.25)


def test_dis_motion_warps_key_features_onto_the_frame():
    key, frame = _photo(), _shifted(_photo(), 8)
    motion = DISMotion('fast', flow_scale=0.5, img_mean=MEAN, img_std=STD)
    feats = torch.from_numpy(key).permute(2, 0, 1)[None].float()  # the key frame as a 3-channel "feature" map
    warped = FlowWarp()((feats,), motion(_normalised(frame), _normalised(key)))[0]
    target = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    err, zero = (warped - target).abs()[..., 8:-8, 16:-16].mean(), (feats - target).abs()[..., 8:-8, 16:-16].mean()
    assert float(err) < 0.3 * float(zero)


def test_dis_motion_bad_preset_and_sizes():
    with pytest.raises(ValueError, match=r"preset must be one of \('ultrafast', 'fast', 'medium'\), got 'slow'"):
        DISMotion('slow')
    with pytest.raises(ValueError, match='two \\(N, 3, H, W\\) frames of one shape'):
        DISMotion()(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 48))
    motion = MODELS.build(dict(type='DISMotion', preset='fast'))
    assert motion.preset == 'fast' and not list(motion.parameters())
    import copy
    import pickle
    black = torch.full((1, 3, 32, 32), -2.11)  # un-normalises to values in 0..0.46: near black, not a "0..1" image
    assert float(motion(black, black).abs().max()) == 0.0
    assert copy.deepcopy(motion).preset == 'fast' and pickle.loads(pickle.dumps(motion)).preset == 'fast'


def test_dis_on_frames_too_small_for_it_is_a_value_error():
    """Issue 22 (low): DISMotion on a 1x1 frame raised cv2.error; a short, wide frame (8x50 at the flow size) crashed
    the process in OpenCV (segfault). Both are one-line ValueErrors before OpenCV runs."""
    from lightflow.baseline_flow import dis_flow
    with pytest.raises(ValueError, match=r"^dis_flow: 1x1 frames are too small for OpenCV DIS \('medium', 8 px "
                                         r"patches\): both sides must be >= 12 px"):
        DISMotion('medium', flow_scale=1.0)(torch.zeros(1, 3, 1, 1), torch.zeros(1, 3, 1, 1))
    with pytest.raises(ValueError, match=r'^dis_flow: 8x50 frames are too small .*>= 16 px'):
        dis_flow(np.zeros((8, 50, 3), np.uint8), np.zeros((8, 50, 3), np.uint8), 'fast')
    assert dis_flow(np.zeros((12, 12, 3), np.uint8), np.zeros((12, 12, 3), np.uint8)).shape == (2, 12, 12)


def test_zero_motion_makes_propagation_copy_the_key_features_exactly():
    from .test_models import frame_batch, video_detector

    model = video_detector(interval=10, motion=dict(type='ZeroMotion')).eval()
    assert isinstance(model.motion, ZeroMotion)
    key_feats = {}
    head = model.detector.bbox_head
    forward = head.forward

    def recording(feats):
        key_feats.setdefault(len(key_feats), [f.clone() for f in feats])
        return forward(feats)

    head.forward = recording
    with torch.no_grad():
        model.test_step(frame_batch(model, 0, video_id=0))
        model.test_step(frame_batch(model, 1, video_id=0))  # another image: its own features would differ
    assert [r.is_key for r in model.frame_records] == [True, False]
    for a, b in zip(key_feats[0], key_feats[1]):
        assert torch.equal(a, b)


@pytest.fixture(scope='module')
def panning_set(tmp_path_factory) -> Path:
    """One 7-frame video of a photo panning 4 px per frame to the right, one GT box per frame, CocoVID layout."""
    import imageio.v3 as iio

    root = tmp_path_factory.mktemp('pan')
    (root / 'annotations').mkdir()
    (root / 'Data/val/v0').mkdir(parents=True)
    base = _photo(160, 224)
    images, anns = [], []
    for t in range(7):
        name = f'Data/val/v0/{t:06d}.png'
        iio.imwrite(root / name, _shifted(base, 4 * t))
        images.append(dict(id=t + 1, video_id=1, frame_id=t, file_name=name, height=160, width=224))
        anns.append(dict(id=t + 1, image_id=t + 1, video_id=1, instance_id=1, category_id=1, bbox=[60, 40, 80, 60],
                         area=4800, iscrowd=0))
    coco = dict(videos=[dict(id=1, name='v0')], images=images, annotations=anns,
                categories=[dict(id=i + 1, name=n) for i, n in enumerate(('disc', 'box', 'triangle', 'star', 'cross',
                                                                          'ring'))])
    (root / 'annotations/val.json').write_text(json.dumps(coco))
    return root


def test_benchmark_motion_scores_a_known_pan(panning_set, tmp_path, load_tool):
    tool = load_tool('benchmark_motion')
    config = REPO / 'configs/vid/dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid.py'
    rows = tool.main([str(config), '--motions', 'zero', 'dis_medium', '--interval', '4', '--out-dir', str(tmp_path),
                      '--work-dir', str(tmp_path / 'work'), '--cfg-options', f'data_root={panning_set}/'])
    zero, dis = rows
    # Zero flow's error is known: keys at frames 0 and 4, each later frame compared with its key unmoved.
    from lightflow.io import read_image
    frames = [read_image(panning_set / f'Data/val/v0/{t:06d}.png').astype(np.float64) for t in range(7)]
    box = (slice(40, 100), slice(60, 140))
    errors = {t: np.abs(frames[t] - frames[4 * (t // 4)]).mean(2)[box] for t in (1, 2, 3, 5, 6)}
    expected = np.concatenate([e.ravel() for e in errors.values()]).mean()
    assert zero['boxes'] == pytest.approx(expected, rel=1e-4)
    gap_1 = np.concatenate([errors[1].ravel(), errors[5].ravel()]).mean()
    assert zero['by_gap'][(1, 1)] == pytest.approx(gap_1, rel=1e-4)
    assert dis['boxes'] < 0.4 * zero['boxes']  # DIS recovers the pan
    table = (tmp_path / 'motion_benchmark.md').read_text()
    assert '| zero flow |' in table and 'DIS MEDIUM 80x112' in table
    assert (tmp_path / 'motion_benchmark.png').stat().st_size > 1000


def test_benchmark_motion_refuses_unknown_motion(panning_set, tmp_path, load_tool):
    tool = load_tool('benchmark_motion')
    config = REPO / 'configs/vid/dff_lightflow-w0.5_retinanet_mobilenetv2_1xb2-2e-ft_synthvid.py'
    with pytest.raises(FileNotFoundError, match='--motions nonsense: not zero'):
        tool.main([str(config), '--motions', 'nonsense', '--cfg-options', f'data_root={panning_set}/'])
    with pytest.raises(ValueError, match='--motions own: needs a detector CHECKPOINT'):
        tool.main([str(config), '--motions', 'own', '--cfg-options', f'data_root={panning_set}/'])
