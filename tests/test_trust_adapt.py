"""Trust cases of issue 22 on the adaptation and training tools: a stale or damaged teacher cache, --resume in a copy
of a work dir, and a run that would overwrite its own input checkpoint. Each test failed on the code before the fix."""
from __future__ import annotations

import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from lightflow.data.video_pairs import VideoPairs

SYNTH_CFG = Path(__file__).resolve().parents[1] / 'configs' / 'lightflow' / 'lightflow_w0.5_1xb8-2k_synthetic.py'


def _photo(height: int, width: int) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[60:60 + height, 100:100 + width])


def _pan(folder: Path, step: int, frames: int = 3, size=(64, 80)) -> Path:
    """Frame t shows the photo moved ``step * t`` px right: the teacher's u is ``-step * (t - s)`` frame px."""
    folder.mkdir(parents=True, exist_ok=True)
    base = _photo(size[0], size[1] + abs(step) * frames)
    for t in range(frames):
        left = step * (frames - t) if step > 0 else -step * t
        iio.imwrite(folder / f'{t:04d}.png', base[:, left:left + size[1]])
    return folder


def _median_u(pairs: VideoPairs, index: int = 0) -> float:
    return float(np.median(pairs.read_raw(index)[2][8:-8, 8:-8, 0]))


def test_regenerated_frames_with_the_same_names_never_read_the_old_teacher(tmp_path):
    cache = tmp_path / 'cache'
    video = _pan(tmp_path / 'set' / 'clip', step=4)
    first = VideoPairs([video], size=(64, 80), max_gap=1, pairs_per_video=1, reverse_prob=0.0, cache_dir=cache)
    _, t, s = first.pairs[0]
    assert _median_u(first) == pytest.approx(-4.0 * (t - s), abs=0.3)
    _pan(video, step=-4)  # the set regenerated: same names, the camera now pans the other way
    again = VideoPairs([video], size=(64, 80), max_gap=1, pairs_per_video=1, reverse_prob=0.0, cache_dir=cache)
    assert again.pairs == first.pairs
    assert _median_u(again) == pytest.approx(4.0 * (t - s), abs=0.3)  # before the fix: the old -4 px from the cache


def test_another_source_with_the_same_names_gets_its_own_cache_entries(tmp_path):
    cache = tmp_path / 'cache'
    cam1, cam2 = _pan(tmp_path / 'cam1' / 'clip', step=4), _pan(tmp_path / 'cam2' / 'clip', step=4)
    for cam in (cam1, cam2):
        pairs = VideoPairs([cam], size=(64, 80), max_gap=1, pairs_per_video=1, reverse_prob=0.0, cache_dir=cache)
        pairs.read_raw(0)
    # Same video name, pair and pixels, but another source: two entries (before the fix: one, shared).
    assert len(list(cache.rglob('*.npz'))) == 2


def test_a_damaged_cache_entry_is_named_and_computed_again(tmp_path):
    video = _pan(tmp_path / 'clip', step=4)
    pairs = VideoPairs([video], size=(64, 80), max_gap=1, pairs_per_video=1, reverse_prob=0.0,
                       cache_dir=tmp_path / 'cache')
    want = pairs.read_raw(0)[2]
    [entry] = list((tmp_path / 'cache').rglob('*.npz'))
    entry.write_bytes(entry.read_bytes()[:40])  # a truncated write from some other program, a bad disk
    with pytest.warns(UserWarning, match=f'{entry}: damaged teacher cache entry'):
        got = pairs.read_raw(0)[2]
    np.testing.assert_allclose(got, want, atol=0.02)
    with np.load(entry) as z:  # rewritten whole
        assert z['flow'].shape == (64, 80, 2)


def test_two_sources_with_the_same_video_name_are_both_used(tmp_path):
    cam1, cam2 = _pan(tmp_path / 'cam1' / 'frames', step=4), _pan(tmp_path / 'cam2' / 'frames', step=-4)
    pairs = VideoPairs([cam1, cam2], size=(64, 80), max_gap=1, pairs_per_video=1, reverse_prob=0.0)
    # Before the fix: one video named 'frames' (cam2's), cam1 silently dropped.
    assert sorted(pairs.videos) == ['frames', f'frames ({cam2})']
    assert pairs.videos['frames'][0] == cam1 / '0000.png'
    assert {pairs.sources[name] for name in pairs.videos} == {cam1.resolve(), cam2.resolve()}
    u = {name: _median_u(pairs, i) * (s - t) for i, (name, t, s) in enumerate(pairs.pairs)}
    assert u['frames'] == pytest.approx(4.0, abs=0.3) and u[f'frames ({cam2})'] == pytest.approx(-4.0, abs=0.3)
    with pytest.raises(ValueError, match='given twice'):
        VideoPairs([cam1, cam2, cam1], size=(64, 80), max_gap=1, pairs_per_video=1)


@pytest.mark.parametrize('damage', ['missing', 'odd_size', 'not_an_image'])
def test_a_bad_frame_in_a_source_is_named_before_any_teacher_runs(tmp_path, damage):
    video = _pan(tmp_path / 'clip', step=4, frames=3)
    frame = video / '0001.png'
    if damage == 'missing':
        frame.unlink()
        (video / '0001.jpg').write_bytes(b'')  # still three names: the folder lists it, the reader cannot open it
        frame = video / '0001.jpg'
    elif damage == 'odd_size':
        iio.imwrite(frame, _photo(48, 80))
    else:
        frame.write_bytes(b'not a png')
    error = ValueError
    match = {'missing': 'frame 1 .*0001.jpg is not a readable image',
             'odd_size': 'frame 1 .*0001.png is 80x48, frame 0 is 80x64: a video\'s frames must have one size',
             'not_an_image': 'frame 1 .*0001.png is not a readable image'}[damage]
    # Before the fix: a 1,573-character line with a DataLoader worker's traceback, mid-run.
    with pytest.raises(error, match=f'^video clip: {match}'):
        VideoPairs([video], size=(64, 80), max_gap=2, pairs_per_video=6, reverse_prob=0.5)


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()}


def _set_best_score(checkpoint: Path, score: float) -> None:
    """As if the run so far had scored ``score``: the resumed run's next validation is a new best."""
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)  # the test's own file
    ckpt['message_hub']['runtime_info']['best_score'] = score
    torch.save(ckpt, checkpoint)


@pytest.fixture(scope='module')
def adapted(tmp_path_factory, load_tool):
    """A 2-iteration adapt_flow.py run with --val: ``(tool, common arguments, work dir)``."""
    root = tmp_path_factory.mktemp('adapted')
    train, val = _pan(root / 'train', step=4, frames=4, size=(64, 64)), _pan(root / 'val', step=4, size=(64, 64))
    tool = load_tool('adapt_flow')
    common = [str(train), '--val', str(val), '--size', '64x64', '--max-gap', '2']
    work = root / 'W'
    tool.main([*common, '--work-dir', str(work), '--iters', '2'])
    assert (work / 'iter_2.pth').is_file() and (work / 'best_EPE_iter_2.pth').is_file()
    return tool, common, work


def test_resume_in_a_copy_of_a_work_dir_leaves_the_original_alone(adapted, tmp_path):
    tool, common, original = adapted
    _set_best_score(original / 'iter_2.pth', 1e9)  # the resumed validation at iteration 4 is then a new best
    copy = tmp_path / 'W2'
    shutil.copytree(original, copy)
    before = _files(original)
    tool.main([*common, '--work-dir', str(copy), '--iters', '4', '--resume'])
    # Before the fix the copy's run deleted W/best_EPE_iter_2.pth (mmengine's absolute best path, resumed).
    assert _files(original) == before
    assert (copy / 'best_EPE_iter_4.pth').is_file() and not (copy / 'best_EPE_iter_2.pth').exists()
    assert (copy / 'last_checkpoint').read_text() == str(copy / 'iter_4.pth')


_TINY = ['train_dataloader.batch_size=2', 'train_dataloader.dataset.dataset.size=(64,64)',
         'train_dataloader.dataset.dataset.num_samples=8', 'val_dataloader.dataset.dataset.size=(64,64)',
         'val_dataloader.dataset.dataset.num_samples=2', 'train_cfg.val_interval=2',
         'default_hooks.checkpoint.interval=2']


@pytest.mark.slow  # ~13 s: two short trainings
def test_train_flow_resume_in_a_copy_of_a_work_dir_leaves_the_original_alone(tmp_path, load_tool):
    tiny = _TINY
    original, copy = tmp_path / 'W', tmp_path / 'W2'
    tool = load_tool('train_flow')
    tool.main([str(SYNTH_CFG), '--work-dir', str(original), '--cfg-options', 'train_cfg.max_iters=2', *tiny])
    assert (original / 'best_EPE_iter_2.pth').is_file()
    _set_best_score(original / 'iter_2.pth', 1e9)
    shutil.copytree(original, copy)
    before = _files(original)
    tool.main([str(SYNTH_CFG), '--work-dir', str(copy), '--resume', '--cfg-options', 'train_cfg.max_iters=4', *tiny])
    assert _files(original) == before  # before the fix: W/best_EPE_iter_2.pth deleted
    assert sorted(p.name for p in copy.glob('*.pth')) == ['best_EPE_iter_4.pth', 'iter_4.pth']


def _logged_lr(work_dir: Path) -> dict[int, float]:
    """{iteration: lr} of the newest run in ``work_dir`` (mmengine's vis_data/scalars.json)."""
    import json

    [scalars] = sorted(work_dir.glob('*/vis_data/scalars.json'))[-1:]
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    return {row['iter']: row['lr'] for row in rows if 'lr' in row}


def test_resume_with_a_longer_schedule_follows_the_new_schedule(tmp_path, load_tool):
    tool = load_tool('train_flow')
    every_iter = [*_TINY, 'default_hooks.logger.interval=1', 'log_processor.window_size=1', 'param_scheduler.0.end=2']
    run = lambda n: [f'train_cfg.max_iters={n}', f'param_scheduler.1.T_max={n}', f'param_scheduler.1.end={n}']
    tool.main([str(SYNTH_CFG), '--work-dir', str(tmp_path / 'fresh'), '--cfg-options', *run(6), *every_iter])
    tool.main([str(SYNTH_CFG), '--work-dir', str(tmp_path / 'split'), '--cfg-options', *run(2), *every_iter])
    tool.main([str(SYNTH_CFG), '--work-dir', str(tmp_path / 'split'), '--resume', '--cfg-options', *run(6),
               *every_iter])
    fresh, resumed = _logged_lr(tmp_path / 'fresh'), _logged_lr(tmp_path / 'split')
    assert sorted(resumed) == [3, 4, 5, 6]
    # Before the fix the resumed run kept the 2-iteration cosine: eta_min (1e-4) from iteration 3 on.
    assert fresh[3] > 1e-3
    assert [resumed[i] for i in range(3, 7)] == pytest.approx([fresh[i] for i in range(3, 7)], rel=1e-6)


def test_resume_with_nothing_to_resume_still_starts_from_load_from(tmp_path, load_tool, capsys):
    tool = load_tool('train_flow')
    init = tmp_path / 'init'
    tool.main([str(SYNTH_CFG), '--work-dir', str(init), '--cfg-options', 'train_cfg.max_iters=2', *_TINY])
    work = tmp_path / 'W'
    tool.main([str(SYNTH_CFG), '--work-dir', str(work), '--resume', '--cfg-options', 'train_cfg.max_iters=2',
               f'load_from={init}/iter_2.pth', *_TINY])
    # Before the fix --resume without a checkpoint dropped load_from: the run started from random weights.
    assert f'training starts at iteration 0 from load_from {init}/iter_2.pth' in capsys.readouterr().out
    log = next(work.glob('*/*.log')).read_text()
    assert f'Load checkpoint from {init}/iter_2.pth' in log


def test_resume_reads_the_copy_s_own_checkpoint(tmp_path):
    from lightflow.engine.config import find_resume_checkpoint

    original, copy = tmp_path / 'W', tmp_path / 'W2'
    original.mkdir()
    (original / 'iter_2.pth').write_bytes(b'x')
    (original / 'last_checkpoint').write_text(str(original / 'iter_2.pth'))
    shutil.copytree(original, copy)
    assert find_resume_checkpoint(copy) == str(copy / 'iter_2.pth')
    assert find_resume_checkpoint(original) == str(original / 'iter_2.pth')


def test_a_run_refuses_to_overwrite_its_own_input_checkpoint(adapted, tmp_path, load_tool):
    tool, common, original = adapted
    work = tmp_path / 'W3'
    work.mkdir()
    shutil.copy(original / 'iter_2.pth', work / 'iter_2.pth')
    before = _files(work)
    with pytest.raises(ValueError, match=rf"^--work-dir {work}: the run's checkpoint .*iter_2.pth: would overwrite "
                                         rf'the input --pretrained {work}/iter_2.pth; choose another path$'):
        tool.main([*common, '--work-dir', str(work), '--iters', '2', '--pretrained', str(work / 'iter_2.pth')])
    assert _files(work) == before  # before the fix: exit 0, iter_2.pth replaced by the run's own

    with pytest.raises(ValueError, match=rf'the input load_from {work}/iter_2.pth; choose another path$'):
        load_tool('train_flow').main([str(SYNTH_CFG), '--work-dir', str(work), '--cfg-options',
                                      f'load_from={work}/iter_2.pth', 'train_cfg.max_iters=10'])
    assert _files(work) == before


def test_inputs_the_run_does_not_write_are_accepted(tmp_path):
    from lightflow.engine.config import check_inputs_not_overwritten, load_config

    cfg = load_config(str(SYNTH_CFG), {'train_cfg.max_iters': 10}, str(tmp_path / 'W'))
    for path in ('W/iter_20.pth', 'W/init.pth', 'other/iter_2.pth', 'lightflow_w0.5_synthetic'):
        cfg.model.pretrained = str(tmp_path / path) if '/' in path else path
        check_inputs_not_overwritten(cfg)  # beyond the run's length, not a checkpoint name, another folder
    cfg.model.pretrained = str(tmp_path / 'W' / 'best_EPE_iter_10.pth')
    with pytest.raises(ValueError, match='the input model.pretrained .*best_EPE_iter_10.pth'):
        check_inputs_not_overwritten(cfg)
    cfg.model.pretrained, cfg.load_from = None, str(tmp_path / 'W' / 'iter_10.pth')
    check_inputs_not_overwritten(cfg, resume='auto')  # resuming reads load_from before any write
    with pytest.raises(ValueError, match='the input load_from'):
        check_inputs_not_overwritten(cfg)
