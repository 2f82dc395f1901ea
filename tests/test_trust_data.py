"""Issue 16, generators and converters: what a careful, slightly hostile user tries on ``tools/make_synthetic_vid.py``
and ``tools/convert_imagenet_vid.py``. Each case gets a one-line error naming the option or file, or the right result;
no input changes (md5 before and after)."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from lightflow.cli import run_main
from lightflow.data.synthetic.vid import generate_synthetic_vid

REPO = Path(__file__).resolve().parents[1]
TINY = ['--num-videos', '1', '--num-val-videos', '1', '--frames', '2', '--size', '48', '48', '--no-stats']


@pytest.fixture(scope='module')
def make_vid(load_tool):
    return load_tool('make_synthetic_vid')


@pytest.fixture(scope='module')
def convert(load_tool):
    return load_tool('convert_imagenet_vid')


def _run(capsys, main, argv: list[str]) -> tuple[int, list[str], str]:
    """``python tools/x.py ARGV`` in-process: (exit status, stderr lines, stdout)."""
    capsys.readouterr()
    try:
        code = run_main(main, argv)
    except SystemExit as e:  # ArgumentParser errors
        code = e.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
            code = 1
    out = capsys.readouterr()
    return code, [line for line in out.err.splitlines() if line.strip()], out.out


def _md5s(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


# ------------------------------------------------------------------------------------------------ make_synthetic_vid
def test_overwrite_refuses_a_folder_it_did_not_write(make_vid, tmp_path, capsys):
    out = tmp_path / 'photos'
    out.mkdir()
    (out / 'holiday.jpg').write_bytes(b'precious')
    (out / 'Data').mkdir()
    before = _md5s(out)
    code, err, _ = _run(capsys, make_vid.main, [str(out), '--overwrite', *TINY])
    assert (code, err) == (1, [f'error: {out}: not a generated set (no .lightflow_synthetic_vid file); overwrite '
                               'replaces only a folder this generator wrote, refusing to delete it'])
    assert _md5s(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ['photos']


def test_overwrite_refuses_a_user_set_that_looks_generated(make_vid, tmp_path, capsys):
    """Issue 22 (medium): a user's own CocoVID folder holding exactly ``Data/`` + ``annotations/{train,val}.json``
    was deleted by ``--overwrite`` (the unmarked "legacy layout" rule); only the marker counts now."""
    out = tmp_path / 'my_vid'
    (out / 'Data' / 'VID' / 'train' / 'clip').mkdir(parents=True)
    (out / 'Data' / 'VID' / 'train' / 'clip' / '000000.JPEG').write_bytes(b'my frame')
    (out / 'annotations').mkdir()
    for split in ('train', 'val'):
        (out / 'annotations' / f'{split}.json').write_text('{"videos": []}')
    before = _md5s(out)
    code, err, _ = _run(capsys, make_vid.main, [str(out), '--overwrite', *TINY])
    assert (code, err) == (1, [f'error: {out}: not a generated set (no .lightflow_synthetic_vid file); overwrite '
                               'replaces only a folder this generator wrote, refusing to delete it'])
    assert _md5s(out) == before


def test_overwrite_refuses_a_file(make_vid, tmp_path, capsys):
    out = tmp_path / 'notes.txt'
    out.write_text('keep me')
    code, err, _ = _run(capsys, make_vid.main, [str(out), '--overwrite', *TINY])
    assert (code, err) == (1, [f'error: {out}: exists and is not a folder; overwrite replaces only a generated set, '
                               'refusing to delete it'])
    assert out.read_text() == 'keep me' and sorted(p.name for p in tmp_path.iterdir()) == ['notes.txt']


def test_overwrite_replaces_a_generated_set_and_leaves_nothing_behind(make_vid, tmp_path, capsys):
    out = tmp_path / 'set'
    assert _run(capsys, make_vid.main, [str(out), *TINY])[0] == 0
    assert (out / '.lightflow_synthetic_vid').is_file()
    (out / 'annotations' / 'train.json').write_text('{}')  # a stale set is replaced whole
    code, err, _ = _run(capsys, make_vid.main, [str(out), '--overwrite', *TINY, '--seed', '1'])
    assert (code, err) == (0, [])
    assert (out / 'annotations' / 'train.json').read_text() != '{}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['set']  # no hidden .tmp / .old folders
    # Without its marker the same folder is refused (issue 22: only the marker counts); an empty folder is replaced.
    (out / '.lightflow_synthetic_vid').unlink()
    assert _run(capsys, make_vid.main, [str(out), '--overwrite', *TINY])[0] == 1
    (tmp_path / 'empty').mkdir()
    assert _run(capsys, make_vid.main, [str(tmp_path / 'empty'), '--overwrite', *TINY])[:2] == (0, [])
    assert (tmp_path / 'empty' / '.lightflow_synthetic_vid').is_file()


def test_a_failed_overwrite_keeps_the_old_set(make_vid, tmp_path, capsys, monkeypatch):
    out = tmp_path / 'set'
    assert _run(capsys, make_vid.main, [str(out), *TINY])[0] == 0
    before = _md5s(out)

    def broken(*args, **kwargs):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr('lightflow.data.synthetic.vid.render_frame', broken)
    assert _run(capsys, make_vid.main, [str(out), '--overwrite', *TINY])[:2] == (1, [
        'error: [Errno 28] No space left on device'])
    assert _md5s(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ['set']


def test_out_dot_is_refused_and_leaves_no_hidden_folder(make_vid, tmp_path, capsys, monkeypatch):
    out = tmp_path / 'set'
    assert _run(capsys, make_vid.main, [str(out), *TINY])[0] == 0
    before = _md5s(out)
    monkeypatch.chdir(out)
    code, err, _ = _run(capsys, make_vid.main, ['.', '--overwrite', *TINY])
    assert (code, err) == (1, ['error: .: is the current folder or holds it; cannot replace it, name another folder'])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['set'] and _md5s(out) == before


@pytest.mark.parametrize('argv, line', [
    (['--num-videos', '0'], 'error: --num-videos: must be >= 1, got 0'),
    (['--num-val-videos', '0'], 'error: --num-val-videos: must be >= 1, got 0'),
    (['--seed', '-1'], 'error: --seed: must be >= 0, got -1'),
])
def test_bad_counts_and_seed_name_the_option(make_vid, tmp_path, capsys, argv, line):
    assert _run(capsys, make_vid.main, [str(tmp_path / 'd'), *TINY, *argv])[:2] == (1, [line])
    assert not (tmp_path / 'd').exists()


def test_generator_refuses_zero_videos_and_negative_seeds(tmp_path):
    for kwargs, message in ((dict(num_train_videos=0), 'num_train_videos must be an integer >= 1, got 0'),
                            (dict(num_val_videos=0), 'num_val_videos must be an integer >= 1, got 0'),
                            (dict(seed=-1), 'seed must be an integer >= 0, got -1'),
                            (dict(num_frames=2.5), 'num_frames must be an integer >= 1, got 2.5')):
        with pytest.raises(ValueError, match=f'^{message}$'):
            generate_synthetic_vid(tmp_path / 'd', **kwargs)
    assert not (tmp_path / 'd').exists()


def test_huge_frames_are_refused_up_front(make_vid, tmp_path, capsys):
    code, err, _ = _run(capsys, make_vid.main, [str(tmp_path / 'd'), '--size', '100000', '100000'])
    assert code == 1 and len(err) == 1
    assert err[0].startswith('error: --size 100000 100000: needs about ') and 'GiB of memory' in err[0], err
    with pytest.raises(ValueError, match=r'^height=100000, width=100000: needs about [\d,.]+ GiB of memory'):
        generate_synthetic_vid(tmp_path / 'd', height=100000, width=100000)
    assert not (tmp_path / 'd').exists()


def test_one_frame_prints_no_measured_speed_mix(make_vid, tmp_path, capsys):
    argv = [str(tmp_path / 'd'), '--num-videos', '1', '--num-val-videos', '1', '--frames', '1', '--size', '64', '64']
    code, err, out = _run(capsys, make_vid.main, argv)
    assert (code, err) == (0, [])
    assert out.count('measured n/a (no box has a neighbour frame)') == 2 and '0/0/0' not in out, out


# ------------------------------------------------------------------------------------------------ convert_imagenet_vid
VIDEO = 'ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000'


def _xml(boxes: list[tuple], trackids: list[int] | None = None) -> str:
    objects = ''
    for i, (xmin, ymin, xmax, ymax) in enumerate(boxes):
        track = i if trackids is None else trackids[i]
        objects += (f'<object><trackid>{track}</trackid><name>n02691156</name><bndbox><xmax>{xmax}</xmax>'
                    f'<xmin>{xmin}</xmin><ymax>{ymax}</ymax><ymin>{ymin}</ymin></bndbox><occluded>0</occluded>'
                    '<generated>0</generated></object>')
    return f'<annotation><size><width>320</width><height>240</height></size>{objects}</annotation>'


@pytest.fixture()
def ilsvrc(tmp_path) -> Path:
    """One training video of two frames listed by ImageSets/VID/train_1.txt."""
    root = tmp_path / 'ILSVRC'
    video = root / 'Annotations' / 'VID' / 'train' / VIDEO
    video.mkdir(parents=True)
    for t in range(2):
        (video / f'{t:06d}.xml').write_text(_xml([(10 + t, 20, 110, 70)]))
    (root / 'ImageSets' / 'VID').mkdir(parents=True)
    (root / 'ImageSets' / 'VID' / 'train_1.txt').write_text(f'{VIDEO} 1\n')
    return root


def _convert(convert, capsys, root: Path, out: Path) -> tuple[int, list[str]]:
    before = _md5s(root)
    code, err, _ = _run(capsys, convert.main, [str(root), str(out), '--splits', 'train'])
    assert _md5s(root) == before
    return code, err


def test_convert_works_on_the_fixture(convert, ilsvrc, tmp_path, capsys):
    assert _convert(convert, capsys, ilsvrc, tmp_path / 'o') == (0, [])
    assert (tmp_path / 'o' / 'imagenet_vid_train.json').is_file()


def test_empty_train_split_is_an_error(convert, ilsvrc, tmp_path, capsys):
    listing = ilsvrc / 'ImageSets' / 'VID' / 'train_1.txt'
    listing.write_text('\n')
    assert _convert(convert, capsys, ilsvrc, tmp_path / 'o') == (
        1, [f"error: {listing}: VID split 'train' lists no videos"])
    assert not (tmp_path / 'o').exists()


def test_image_sets_line_leaving_the_root_is_refused(convert, ilsvrc, tmp_path, capsys):
    outside = tmp_path / 'elsewhere' / 'video'
    outside.mkdir(parents=True)
    (outside / '000000.xml').write_text(_xml([(1, 2, 3, 4)]))
    listing = ilsvrc / 'ImageSets' / 'VID' / 'train_1.txt'
    listing.write_text(f'{VIDEO} 1\n../../../../elsewhere/video 2\n')
    assert _convert(convert, capsys, ilsvrc, tmp_path / 'o') == (1, [
        f"error: {listing}:2: '../../../../elsewhere/video' leaves the dataset root (absolute or with ..)"])
    assert not (tmp_path / 'o').exists()


def test_same_trackid_twice_in_one_frame_is_refused(convert, ilsvrc, tmp_path, capsys):
    xml = ilsvrc / 'Annotations' / 'VID' / 'train' / VIDEO / '000001.xml'
    xml.write_text(_xml([(10, 20, 110, 70), (150, 20, 200, 70)], trackids=[4, 4]))
    assert _convert(convert, capsys, ilsvrc, tmp_path / 'o') == (1, [
        f'error: {xml}: <trackid>4</trackid> is on 2 objects; a track has one box per frame'])


@pytest.mark.parametrize('box', [(-1e308, 0, 1e308, 10), (0, -1e308, 10, 1e308), (0, 0, 1e200, 1e200)])
def test_huge_coordinates_name_the_file(convert, ilsvrc, tmp_path, capsys, box):
    xml = ilsvrc / 'Annotations' / 'VID' / 'train' / VIDEO / '000001.xml'
    xml.write_text(_xml([box]))
    code, err = _convert(convert, capsys, ilsvrc, tmp_path / 'o')
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f'error: {xml}: object 0 has a box too large for its width, height or area'), err
    assert not (tmp_path / 'o').exists()
