"""lightflow/cli.py and the one-line-error contract of tools/*.py: a user error is exit status 1 and exactly one
stderr line, ``error: <message>``, naming the argument or file."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightflow.cli import (ArgumentParser, CfgOptionsAction, check_device, check_output_dir, finite_float,
                           load_fitting_checkpoint, positive_float, positive_int, run_main)

REPO = Path(__file__).resolve().parents[1]


def _cli(capsys, main, argv: list[str]) -> tuple[int, list[str]]:
    """What ``python tools/x.py ARGV`` does (``sys.exit(run_main(main))``), in-process: (exit status, stderr lines)."""
    capsys.readouterr()
    try:
        code = run_main(main, argv)
    except SystemExit as e:  # ArgumentParser errors; Python prints a str code to stderr and exits with 1
        code = e.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
            code = 1
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_run_main_turns_user_errors_into_one_line(capsys, tmp_path, monkeypatch):
    def fails(error):
        def main(argv):
            raise error
        return main

    assert _cli(capsys, fails(ValueError('a.flo: bad\n  magic')), []) == (1, ['error: a.flo: bad magic'])

    def opens(argv):
        open(tmp_path / 'missing.txt')
    assert _cli(capsys, opens, []) == (1, [f'error: {tmp_path / "missing.txt"}: No such file or directory'])
    assert _cli(capsys, fails(KeyError('model')), []) == (1, ["error: KeyError: 'model'"])
    assert _cli(capsys, fails(KeyError('Foo is not in the model registry')), []) == (
        1, ['error: Foo is not in the model registry'])
    assert _cli(capsys, fails(ModuleNotFoundError("No module named 'cv2'")), []) == (
        1, ["error: No module named 'cv2'"])
    assert _cli(capsys, fails(IsADirectoryError(21, 'Is a directory', 'out')), []) == (
        1, ['error: out: Is a directory'])
    assert _cli(capsys, fails(KeyboardInterrupt()), []) == (130, ['error: interrupted'])
    # Bugs keep their traceback.
    with pytest.raises(TypeError):
        run_main(fails(TypeError('bug')), [])
    # The exit status: main's int, else 0 (tools return dicts, lists, tables).
    assert run_main(lambda argv: 3, []) == 3 and run_main(lambda argv: {'EPE': 1.0}, []) == 0
    assert run_main(lambda argv: 'a table', []) == 0
    assert run_main(lambda argv: argv, ['x']) == 0
    monkeypatch.setenv('LIGHTFLOW_TRACEBACK', '1')
    with pytest.raises(ValueError, match='shown'):
        run_main(fails(ValueError('shown')), [])


def test_argument_types_and_parser_errors_are_one_line(capsys):
    assert positive_int('3') == 3 and finite_float('-1.5') == -1.5 and positive_float('0.25') == 0.25
    for func, text, message in ((positive_int, '0', 'must be >= 1, got 0'),
                                (positive_int, '2.5', "must be an integer >= 1, got '2.5'"),
                                (finite_float, 'nan', "must be a finite number, got 'nan'"),
                                (finite_float, '-inf', "must be a finite number, got '-inf'"),
                                (finite_float, 'x', "must be a number, got 'x'"),
                                (positive_float, '0', "must be > 0, got '0'"),
                                (positive_float, 'inf', "must be a finite number, got 'inf'")):
        with pytest.raises(argparse.ArgumentTypeError) as info:
            func(text)
        assert str(info.value) == message

    def main(argv):
        parser = ArgumentParser()
        parser.add_argument('config')
        parser.add_argument('--max-frames', type=positive_int)
        parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={})
        return parser.parse_args(argv)

    assert _cli(capsys, main, ['c.py', '--max-frames', '0']) == (1, ['error: --max-frames: must be >= 1, got 0'])
    assert _cli(capsys, main, []) == (1, ['error: the following arguments are required: config'])
    assert _cli(capsys, main, ['c.py', '--cfg-options', 'a=1', 'key']) == (
        1, ["error: --cfg-options: 'key' is not KEY=VALUE"])
    assert _cli(capsys, main, ['c.py', '--cfg-options', '=1']) == (1, ["error: --cfg-options: '=1' is not KEY=VALUE"])
    # Values parse exactly as mmengine's DictAction parses them.
    args = main(['c.py', '--cfg-options', 'a=1', 'b.c=[1,2]', 'd=(3,4)', 'e=x,y', 'f=None', 'g=a=b'])
    assert args.cfg_options == {'a': 1, 'b.c': [1, 2], 'd': (3, 4), 'e': ['x', 'y'], 'f': None, 'g': 'a=b'}
    assert main(['c.py']).cfg_options == {}


def test_check_device_and_output_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ValueError, match=r'^--device cuda: CUDA is not available on this machine$'):
        check_device('cuda')
    with pytest.raises(ValueError, match=r'^--gpu cuda:1: CUDA is not available'):
        check_device('cuda:1', '--gpu')
    with pytest.raises(ValueError, match=r'^--device gpu: not a torch device \(e\.g\. cpu, cuda, cuda:1\)$'):
        check_device('gpu')
    assert check_device('cpu') == 'cpu' and check_device(None) is None
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    with pytest.raises(ValueError, match=r'^--device cuda:1: this machine has 1 CUDA device\(s\)$'):
        check_device('cuda:1')
    assert check_device('cuda:0') == 'cuda:0'

    (tmp_path / 'file').write_text('x')
    with pytest.raises(ValueError, match=r'^--out-dir .*file: exists and is a file, not a folder$'):
        check_output_dir(tmp_path / 'file', '--out-dir')
    with pytest.raises(ValueError, match=r'^--work-dir .*file/sub: .*file is a file, not a folder$'):
        check_output_dir(tmp_path / 'file' / 'sub', '--work-dir')
    assert check_output_dir(tmp_path / 'new' / 'sub', '--out') == tmp_path / 'new' / 'sub'
    assert not (tmp_path / 'new').exists()


def test_load_fitting_checkpoint(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    path = tmp_path / 'ok.pth'
    torch.save(dict(state_dict={f'module.{k}': v for k, v in model.state_dict().items()} | {'extra': torch.ones(1)},
                    meta=dict(dataset_meta=dict(classes=('a',)))), path)
    assert load_fitting_checkpoint(model, path, 'cfg.py')['meta'] == dict(dataset_meta=dict(classes=('a',)))
    fresh = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    load_fitting_checkpoint(fresh, path, 'cfg.py')  # checked only
    assert not torch.equal(fresh[0].weight, model[0].weight)
    load_fitting_checkpoint(fresh, path, 'cfg.py', load=True)  # checked, then loaded (module. prefix stripped)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    torch.save(torch.nn.Linear(2, 3).state_dict(), tmp_path / 'other.pth')
    with pytest.raises(ValueError) as info:
        load_fitting_checkpoint(model, tmp_path / 'other.pth', 'cfg.py')
    assert str(info.value) == (f'{tmp_path / "other.pth"}: 7 of 7 model weights missing (e.g. 0.weight); is it a '
                               'checkpoint of cfg.py?')
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4)).state_dict(), tmp_path / 'w.pth')
    with pytest.raises(ValueError) as info:
        load_fitting_checkpoint(model, tmp_path / 'w.pth', 'cfg.py')
    assert str(info.value) == (f'{tmp_path / "w.pth"}: 6 of 7 model weights have another shape (e.g. 0.weight: '
                               '(4, 2) in the checkpoint, (3, 2) in the model); is it a checkpoint of cfg.py?')
    torch.save([1, 2], tmp_path / 'list.pth')
    with pytest.raises(ValueError, match=r'list\.pth: not a state dict or an mmengine checkpoint \(got list\); is it'):
        load_fitting_checkpoint(model, tmp_path / 'list.pth', 'cfg.py')
    with pytest.raises(FileNotFoundError, match='nope.pth: no such checkpoint'):
        load_fitting_checkpoint(model, tmp_path / 'nope.pth', 'cfg.py')


def test_tools_refuse_bad_arguments_in_one_line(load_tool, capsys, tmp_path, monkeypatch):
    """The broken cases of the issue, each through the tool's own main: exit 1, one line naming the argument."""
    a_file = tmp_path / 'a_file'
    a_file.write_text('x')
    cases = [
        ('train_flow', ['cfg.py', '--cfg-options', 'key'], "error: --cfg-options: 'key' is not KEY=VALUE"),
        ('train_vid', ['cfg.py', '--cfg-options', 'a=1', 'key'], "error: --cfg-options: 'key' is not KEY=VALUE"),
        ('test_flow', ['cfg.py', 'c.pth', '--cfg-options', 'key'], "error: --cfg-options: 'key' is not KEY=VALUE"),
        ('test_vid', ['cfg.py', 'c.pth', '--cfg-options', 'key'], "error: --cfg-options: 'key' is not KEY=VALUE"),
        ('benchmark_vid', ['cfg.py', 'c.pth', '--cfg-options', 'key'], "error: --cfg-options: 'key' is not KEY=VALUE"),
        ('train_flow', ['cfg.py', '--work-dir', str(a_file)],
         f'error: --work-dir {a_file}: exists and is a file, not a folder'),
        ('benchmark_vid', ['cfg.py', str(a_file), '--out-dir', str(a_file)],
         f'error: --out-dir {a_file}: exists and is a file, not a folder'),
        ('eval_real_flow', ['--data', str(tmp_path), '--out-dir', str(a_file)],
         f'error: --out-dir {a_file}: exists and is a file, not a folder'),
        ('demo_flow', ['m.pth', 'a.png', 'b.png', '--out', str(tmp_path), '--max-flow', 'nan'],
         "error: --max-flow: must be a finite number, got 'nan'"),
        ('demo_flow', ['m.pth', 'a.png', 'b.png', '--out', str(a_file)],
         f'error: --out {a_file}: exists and is a file, not a folder'),
        ('demo_flow', ['m.pth', 'a.png', 'b.png', '--out', str(tmp_path), '--device', 'cuda'],
         'error: --device cuda: CUDA is not available on this machine'),
        ('demo_video', ['cfg.py', 'c.pth', 'v.mp4', '--out', str(tmp_path / 'o.mp4'), '--max-frames', '0'],
         'error: --max-frames must be >= 1, got 0'),
        ('demo_video', ['cfg.py', 'c.pth', 'v.mp4', '--out', str(tmp_path / 'o.mp4'), '--device', 'cuda'],
         'error: --device cuda: CUDA is not available on this machine'),
        ('demo_video', ['cfg.py', 'c.pth', 'v.mp4', '--out', str(a_file / 'o.mp4')],
         f'error: --out {a_file / "o.mp4"}: {a_file} is a file, not a folder'),
        ('demo_video', [str(a_file), str(tmp_path / 'c.pth'), 'v.mp4', '--out', str(tmp_path / 'o.mp4')],
         f'error: {tmp_path / "c.pth"}: no such checkpoint'),
        ('make_synthetic_vid', [str(tmp_path / 'd'), '--frames', '0'], 'error: --frames: must be >= 1, got 0'),
        ('export_pretrained', [str(tmp_path / 'in.pth'), str(tmp_path / 'out.pth')],
         f'error: {tmp_path / "in.pth"}: no such checkpoint'),
        ('benchmark_data', ['--repeats', '0'], 'error: --repeats must be >= 1, got 0'),
    ]
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for tool, argv, line in cases:
        assert _cli(capsys, load_tool(tool).main, argv) == (1, [line]), (tool, argv)


def test_every_tool_ends_in_run_main():
    tools = sorted(p for p in (REPO / 'tools').glob('*.py') if re.search(r'^def main\(', p.read_text(), re.M))
    assert len(tools) >= 12
    for path in tools:
        tail = path.read_text().rstrip().rsplit('\n', 1)[-1].strip()
        assert re.fullmatch(r'sys\.exit\((cli\.)?run_main\(.*main\(?.*\)\)', tail), f'{path.name} ends with {tail!r}'


def test_tools_print_one_line_for_real(tmp_path):
    """The real processes, no traceback: a tool that imports torch, one that loads lightflow/cli.py by path."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    for tool, argv, line in (
            ('train_flow', ['cfg.py', '--cfg-options', 'key'], "error: --cfg-options: 'key' is not KEY=VALUE"),
            ('make_synthetic_vid', [str(tmp_path / 'd'), '--size', '0', '4'], 'error: --size: must be >= 1, got 0')):
        proc = subprocess.run([sys.executable, str(REPO / 'tools' / f'{tool}.py'), *argv],
                              capture_output=True, text=True, env=env, timeout=120)
        assert (proc.returncode, proc.stderr.strip().splitlines()) == (1, [line]), proc.stderr[-2000:]


def test_a_checkpoint_with_modules_the_model_lacks_gets_a_notice(tmp_path):
    """A + GRU checkpoint given for a propagation config: every model weight is there, so it loads, but the
    aggregator's weights would be dropped silently; a one-line warning names them."""
    import warnings

    import torch
    from torch import nn

    from lightflow.cli import load_fitting_checkpoint

    model = nn.Module()
    model.detector = nn.Linear(2, 2)
    path = tmp_path / 'gru.pth'
    torch.save({'state_dict': {**{f'detector.{k}': v for k, v in model.detector.state_dict().items()},
                               'aggregator.cells.0.w': torch.zeros(1)}}, path)
    with pytest.warns(UserWarning, match=r"holds aggregator weights that dff\.py's model has no place for"):
        load_fitting_checkpoint(model, path, 'dff.py')
    torch.save({'state_dict': {f'detector.{k}': v for k, v in model.detector.state_dict().items()}}, path)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_fitting_checkpoint(model, path, 'dff.py')  # a fitting checkpoint: no notice
