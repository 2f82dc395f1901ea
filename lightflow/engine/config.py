"""Config helpers shared by the flow tools (train/test_flow.py) and the video tools (train/test/benchmark_vid.py),
and the one body of tools/train_flow.py and tools/train_vid.py (:func:`train_main`)."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

from mmengine.config import Config

__all__ = ['load_config', 'set_data_root', 'prepare_cpu_distributed', 'train_from_cfg', 'tune_cpu_allocator',
           'find_resume_checkpoint', 'check_inputs_not_overwritten', 'config_checkpoint', 'train_main']

# Sections whose dataset roots follow the config's `data_root` variable (evaluators may read annotation files too).
_SECTIONS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator')
_ROOT_KEYS = ('root', 'data_root')


def _replace_root(node: Any, old: str, new: str) -> int:
    count = 0
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ROOT_KEYS and isinstance(value, str) and value == old:
                node[key] = new
                count += 1
            else:
                count += _replace_root(value, old, new)
    elif isinstance(node, (list, tuple)):
        count += sum(_replace_root(v, old, new) for v in node)
    return count


def set_data_root(cfg: Config, data_root: str) -> int:
    """Point every dataset ``root`` / ``data_root`` that equals the config's ``data_root`` variable at ``data_root``.

    mmengine substitutes base-config variables when the file is read, so ``--cfg-options data_root=X`` alone would
    not reach the dataloaders and evaluators; this rewrites them too. Returns how many entries changed.
    """
    old = cfg.get('data_root')
    if old is None:
        raise ValueError('data_root: this config defines no data_root variable; set the dataset root with '
                         '--cfg-options train_dataloader.dataset.dataset.root=...')
    count = sum(_replace_root(cfg.get(name), old, data_root) for name in _SECTIONS if cfg.get(name) is not None)
    cfg.data_root = data_root
    return count


def load_config(path: str, cfg_options: dict | None = None, work_dir: str | None = None) -> Config:
    """``Config.fromfile`` + ``--cfg-options`` (``data_root`` handled by :func:`set_data_root`) + work_dir default
    ``work_dirs/<config name>``; an old flow config without ``default_scope`` gets ``'lightflow'``."""
    if not Path(path).is_file():
        raise FileNotFoundError(f'{path}: no such config file')
    cfg = Config.fromfile(path)
    imports = (cfg.get('custom_imports') or {}).get('imports') or []
    if cfg.get('default_scope') is None and 'lightflow.engine' in imports:
        cfg.default_scope = 'lightflow'  # configs dumped before the flow classes moved to their own scope
    options = dict(cfg_options or {})
    if 'data_root' in options:
        set_data_root(cfg, str(options.pop('data_root')))
    if options:
        cfg.merge_from_dict(options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = str(Path('work_dirs') / Path(path).stem)
    return cfg


def prepare_cpu_distributed(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work without CUDA: gloo process group and a device-less DDP wrapper.

    mmengine's own ``init_dist`` calls ``torch.cuda.set_device`` and its default DDP wrapper passes
    ``device_ids=[LOCAL_RANK]``; both fail on CPU. Initialising the gloo group first makes the Runner skip its
    ``init_dist``, and ``model_wrapper_cfg`` with ``device_ids=None`` is what DDP needs for CPU modules.
    """
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')  # env:// rendezvous from torchrun's RANK / WORLD_SIZE / MASTER_*
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('device_ids', None)
    wrapper.setdefault('broadcast_buffers', False)
    cfg.model_wrapper_cfg = wrapper


def find_resume_checkpoint(work_dir: str | Path) -> str | None:
    """The checkpoint that ``--resume`` (no path) continues from: the one ``work_dir/last_checkpoint`` names.

    Returns None when the work dir has no ``last_checkpoint`` file (nothing to resume). A ``last_checkpoint`` that is
    empty or names a missing file is an error, not a silent restart from iteration 0. In a copy of a work dir it names
    the original's file (an absolute path): the copy's own file of that name is used when it has one.
    """
    marker = Path(work_dir) / 'last_checkpoint'
    if not marker.is_file():
        return None
    target = marker.read_text().strip()
    if not target:
        raise ValueError(f'{marker}: empty; it should name the checkpoint to resume from (pass --resume CKPT)')
    own = Path(work_dir) / Path(target).name
    if Path(target).resolve().parent != Path(work_dir).resolve() and own.is_file():
        return str(own)
    if not Path(target).is_file():
        raise FileNotFoundError(f'{marker} names {target}, which does not exist (pass --resume CKPT)')
    return target


def config_checkpoint(path: str | os.PathLike, width: float | None = None) -> tuple[str, float]:
    """The Light Flow weights a flow config names, for the tools that run a trained model.

    Args:
        path: a config ``.py`` whose ``model.pretrained`` or ``load_from`` names a checkpoint or a shipped name.
        width: the ``width_mult`` the caller expects (None: any).

    Returns:
        ``(checkpoint or pretrained name, the config's model.width_mult)``.

    Raises:
        ValueError: the config names no checkpoint (random weights give meaningless flow), or its width differs from
            ``width``.
    """
    cfg = Config.fromfile(str(path))
    ckpt = cfg.model.get('pretrained') or cfg.get('load_from')
    if not ckpt:
        raise ValueError(f'{path}: the config names no checkpoint (model.pretrained or load_from); pass a '
                         'checkpoint instead (random weights give meaningless flow)')
    cfg_width = float(cfg.model.get('width_mult', 1.0))
    if width is not None and abs(width - cfg_width) > 1e-6:
        raise ValueError(f'--width {width:g} disagrees with {path} (model.width_mult={cfg_width:g})')
    return ckpt, cfg_width


def _input_checkpoints(node: Any, prefix: str) -> Iterator[tuple[str, str]]:
    """``(dotted key, path)`` of every ``pretrained`` string and ``init_cfg`` ``checkpoint`` under ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            name = f'{prefix}.{key}'
            if isinstance(value, str) and (key == 'pretrained' or (key == 'checkpoint' and 'type' in node)):
                yield name, value
            else:
                yield from _input_checkpoints(value, name)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _input_checkpoints(value, f'{prefix}[{i}]')


def check_inputs_not_overwritten(cfg: Config, resume: str | None = None,
                                 names: Mapping[str, str] | None = None) -> None:
    """Refuse a run whose checkpoints would overwrite one of its input checkpoints (issue 22).

    The inputs are ``load_from`` (unless resuming, which reads it before any write) and every ``pretrained`` /
    ``init_cfg.checkpoint`` path under ``model``; the outputs are the ``iter_N.pth`` / ``epoch_N.pth`` and
    ``best_*_iter_N.pth`` files the checkpoint hook writes into the work dir for ``N`` up to the run's length.

    Args:
        cfg: the run's config (work_dir set).
        resume: the run's ``--resume`` (None: ``load_from`` is an input too).
        names: how to name a config key in the error (e.g. ``{'model.pretrained': '--pretrained'}``).

    Raises:
        ValueError: one line naming the input (:func:`lightflow.cli.check_not_an_input`).
    """
    from lightflow.cli import check_not_an_input

    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    work_dir = Path(cfg.work_dir)
    folder = Path(hook['out_dir']) / work_dir.name if hook.get('out_dir') else work_dir
    by_epoch = hook.get('by_epoch', True)
    template = hook.get('filename_tmpl') or ('epoch_{}.pth' if by_epoch else 'iter_{}.pth')
    written = re.compile(r'(?:best_.+_)?' + re.escape(template).replace(r'\{\}', r'(\d+)'))
    loop = cfg.get('train_cfg') or {}
    last = loop.get('max_epochs') if by_epoch else loop.get('max_iters')
    inputs = list(_input_checkpoints(cfg.get('model') or {}, 'model'))
    if resume is None and isinstance(cfg.get('load_from'), str):
        inputs.append(('load_from', cfg.load_from))
    for key, path in inputs:
        if '://' in path or Path(path).resolve().parent != folder.resolve():
            continue
        match = written.fullmatch(Path(path).name)
        if match and (last is None or int(match.group(1)) <= int(last)):
            what = (names or {}).get(key, key)
            check_not_an_input([folder / Path(path).name], {what: path}, f"--work-dir {work_dir}: the run's checkpoint")


def _schedule(cfg: Mapping) -> tuple[Any, Any, Any]:
    loop = cfg.get('train_cfg') or {}
    return loop.get('max_iters'), loop.get('max_epochs'), cfg.get('param_scheduler')


def schedule_changed(cfg: Config, checkpoint: str) -> bool:
    """Whether ``cfg``'s training length or ``param_scheduler`` differs from those of the run that wrote
    ``checkpoint`` (its ``meta['cfg']``, where mmengine writes the run's config; False without one)."""
    from lightflow.checkpoint import _torch_load

    meta = _torch_load(checkpoint).get('meta') or {}
    text = meta.get('cfg') if isinstance(meta, dict) else None
    if not isinstance(text, str):
        return False
    try:
        old = Config.fromstring(text, '.py')
    except Exception:  # an unparsable config text: nothing to compare
        return False
    return _schedule(old) != _schedule(cfg)


def tune_cpu_allocator() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the OS after every large tensor.

    CPU training allocates and frees the same multi-megabyte activations every iteration; with glibc's defaults each of
    them is a fresh ``mmap`` whose pages fault in again, which costs 10-20 % of a Light Flow step on 2 cores (measured
    with ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``). Forked DataLoader workers inherit the setting.
    Returns False (and changes nothing) where glibc's ``mallopt`` is not available.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library('c')
    try:
        libc = ctypes.CDLL(name or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    ok = mallopt(m_mmap_threshold, 256 << 20) == 1
    ok &= mallopt(m_trim_threshold, 512 << 20) == 1
    ok &= mallopt(m_top_pad, 64 << 20) == 1
    return bool(ok)


def train_from_cfg(cfg: Config, launcher: str = 'none', amp: bool | str = False, resume: str | None = None,
                   input_names: Mapping[str, str] | None = None) -> None:
    """The body of tools/train_flow.py and tools/train_vid.py: apply ``--launcher``/``--amp``/``--resume``, train.

    Args:
        cfg: a loaded config (see :func:`load_config`).
        launcher: ``'none'`` or a distributed launcher; ``'pytorch'`` works on CPU too (gloo, device-less DDP).
        amp: mixed precision through mmengine's ``AmpOptimWrapper`` (needs CUDA): ``True`` / ``'fp16'`` (float16 with
            dynamic loss scaling) or ``'bf16'`` (bfloat16, no scaling needed).
        resume: ``'auto'`` (latest checkpoint of the work dir), a checkpoint path, or None.
        input_names: how errors name config keys (see :func:`check_inputs_not_overwritten`).
    """
    import torch
    from mmengine.runner import Runner

    if resume == 'auto':
        found = find_resume_checkpoint(cfg.work_dir)
        if found is None:
            # Nothing to resume: a fresh run, which still starts from the user's load_from (init weights).
            start = f" from load_from {cfg.load_from}" if cfg.get('load_from') else ''
            print(f'--resume: no checkpoint in {cfg.work_dir} (no last_checkpoint file): training starts at '
                  f'iteration 0{start}', flush=True)
            resume = None
        else:
            print(f'--resume: resuming from {found}', flush=True)
            resume = found
    elif resume is not None and not Path(resume).is_file():
        raise FileNotFoundError(f'--resume: no such checkpoint {resume}')
    check_inputs_not_overwritten(cfg, resume, input_names)
    reschedule = resume is not None and schedule_changed(cfg, resume)
    if resume is not None:
        cfg.resume, cfg.load_from = True, resume
    cfg.launcher = launcher
    if not torch.cuda.is_available():
        tune_cpu_allocator()
    if launcher == 'pytorch':
        prepare_cpu_distributed(cfg)  # no-op with CUDA; gloo + device-less DDP on CPU
    elif launcher != 'none' and not torch.cuda.is_available():
        cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'  # nccl needs CUDA
    if amp:
        if amp not in (True, 'fp16', 'bf16'):
            raise ValueError(f"--amp must be fp16 or bf16, got {amp!r}")
        if not torch.cuda.is_available():
            raise ValueError('--amp needs a CUDA GPU; none is available')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        if amp == 'bf16':
            cfg.optim_wrapper.dtype = 'bfloat16'
        else:
            cfg.optim_wrapper.loss_scale = 'dynamic'
    runner = Runner.from_cfg(cfg)
    if reschedule:
        from .hooks import ResumedScheduleHook

        runner.register_hook(ResumedScheduleHook(cfg.param_scheduler))
    runner.train()
    # Leave the process group in order: an exiting rank with live gloo threads can abort ('terminate called ...').
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def train_main(argv: list[str] | None, description: str, config_help: str) -> None:
    """The whole of tools/train_flow.py and tools/train_vid.py: parse the command line, load the config (with
    ``--cfg-options``, ``data_root=`` re-pointing every dataset root), train with :func:`train_from_cfg`.

    Args:
        argv: the command line after the program name (None: ``sys.argv[1:]``).
        description: the tool's ``--help`` description.
        config_help: ``--help`` text of the config argument.
    """
    from lightflow.cli import ArgumentParser, CfgOptionsAction, check_output_dir

    parser = ArgumentParser(description=description)
    parser.add_argument('config', help=config_help)
    parser.add_argument('--work-dir', help='where logs, checkpoints (and TensorBoard, vis/ for flow) go '
                        '(default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir when CKPT is omitted')
    parser.add_argument('--amp', nargs='?', const='fp16', choices=['fp16', 'bf16'], default=None,
                        help='mixed precision (AmpOptimWrapper; needs a GPU): fp16 (default) or bf16')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config keys, e.g. train_cfg.max_epochs=1; data_root=DIR re-points every '
                             'dataset root that uses the config\'s data_root')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher for distributed training: pytorch for torchrun')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))  # launchers that pass --local-rank instead
    if args.work_dir is not None:
        check_output_dir(args.work_dir, '--work-dir')
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    train_from_cfg(cfg, launcher=args.launcher, amp=args.amp or False, resume=args.resume)
