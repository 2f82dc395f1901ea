"""The measurements and report of ``tools/benchmark_deploy.py``: the deployed video detector (``lightflow_deploy``,
ONNX Runtime) run on a CocoVID val set beside the single-frame detector and beside PyTorch, and a per-part profile of
its graphs.

``lightflow_deploy`` stays free of torch; this module is the torch side (export of the part graphs, PyTorch reference
runs, ground truth from the mmdet dataset). Frames are RGB (H, W, 3) uint8; a run is ``(detector, label, policy
changes)``; times are ms.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from lightflow.cli import load_fitting_checkpoint

from .apis import run_video_test, unwrap_video_detector
from .evaluation.vid_metric import vid_map
from .export import NonKeyStep
from .export_video import KeyFeatStep, find_resize_scale

__all__ = ['ground_truth', 'run_runtime', 'pytorch_reference', 'part_graphs', 'profile_graphs', 'report_tables']


def ground_truth(cfg: Any) -> tuple[Path, dict[int, dict], list[str]]:
    """(val json, {img_id: frame info with the dataset's own ``instances``}, classes) of the test set."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get('default_scope', 'mmdet'))
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    dataset.full_init()
    frames = {}
    for i in range(len(dataset)):  # data_list is serialised: get_data_info per video
        for img in dataset.get_data_info(i)['images']:
            frames[int(img['img_id'])] = img
    ds = cfg.test_dataloader.dataset
    return Path(ds.data_root) / ds.ann_file, frames, list(dataset.metainfo['classes'])


def run_runtime(graphs: dict[str, Path], videos: list[list[dict]], runs: list, threads: list[int],
                gt: dict[int, dict], classes: list[str]) -> list[dict]:
    """Every run on every video, interleaved (per video, the settings in a rotating order)."""
    import cv2

    from lightflow_deploy import VideoDetectorRuntime

    rts = {(name, t): VideoDetectorRuntime(folder, threads=t) for name, folder in graphs.items() for t in threads}
    jobs = [(i, t) for i in range(len(runs)) for t in threads]
    stats = {job: dict(video_ms=[], key_ms=[], nonkey_ms=[], keys=0, frames=0, records=[]) for job in jobs}
    for v, video in enumerate(videos):
        frames = [np.ascontiguousarray(cv2.imread(str(f['path']))[..., ::-1]) for f in video]
        for j in range(len(jobs)):
            i, t = jobs[(j + v) % len(jobs)]
            name, _, changes = runs[i]
            rt, s = rts[(name, t)], stats[(i, t)]
            if changes:
                rt.set_policy(**changes)
            rt.reset()
            total = 0.0
            for info, frame in zip(video, frames):
                t0 = time.perf_counter()
                dets = rt.process(frame)
                ms = 1e3 * (time.perf_counter() - t0)
                total += ms
                s['key_ms' if rt.last.is_key else 'nonkey_ms'].append(ms)
                s['keys'] += rt.last.is_key
                s['frames'] += 1
                if t == threads[0]:
                    s['records'].append((gt[int(info['id'])], dets))
            s['video_ms'].append(total / len(video))
    rows = []
    for (i, t), s in stats.items():
        name, label, _ = runs[i]
        ms = statistics.median(s['video_ms'])
        rows.append(dict(detector=name, setting=label, threads=t, ms=ms, fps=1e3 / ms,
                         key_ms=statistics.median(s['key_ms']) if s['key_ms'] else float('nan'),
                         nonkey_ms=statistics.median(s['nonkey_ms']) if s['nonkey_ms'] else float('nan'),
                         key_fraction=s['keys'] / s['frames'],
                         mAP=vid_map(stats[(i, threads[0])]['records'], classes)))
    return rows


def pytorch_reference(config: str, ckpt: str, options: dict, work_dir: Path, runs: list, threads: list[int],
                      max_videos: int | None) -> list[dict]:
    """mAP and ms (inside ``predict``) of the same detector in PyTorch, per run and thread count."""
    import torch
    from mmengine.runner import Runner

    from lightflow.engine.config import load_config

    cfg = load_config(config, options, str(work_dir))
    cfg.load_from = ckpt
    if max_videos is not None:
        cfg.test_dataloader.dataset.indices = list(range(max_videos))
    runner = Runner.from_cfg(cfg)
    load_fitting_checkpoint(unwrap_video_detector(runner.model), ckpt, config)
    rows = []
    for t in threads:
        torch.set_num_threads(t)
        for name, label, changes in runs:
            policy = dict(changes) or dict(type='fixed', key_frame_interval=1)
            r = run_video_test(runner, key_frame_policy=policy)
            rows.append(dict(detector=name, setting=label, threads=t, ms=r['mean_ms'], fps=r['fps'],
                             key_ms=r.get('key_ms', float('nan')), nonkey_ms=r.get('nonkey_ms', float('nan')),
                             key_fraction=r['key_frames'] / max(r['frames'], 1),
                             mAP=100 * next(v for k, v in r.items() if k.split('/')[-1] == 'mAP')))
    return rows


def part_graphs(config: str, ckpt: str, options: dict, folder: Path) -> dict[str, Path]:
    """flow.onnx (img, key_img -> flow), warp.onnx (feats, flow -> warped) and, with an aggregator, gru_cell.onnx
    (feats, warped state -> state): the parts that nonkey.onnx / gru_step.onnx fuse, for the profile."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    from torch import nn

    from lightflow.engine.config import load_config
    from lightflow.inference import module_onnx_bytes
    from lightflow.io import atomic_write
    from lightflow.warp import flow_warp, resize_flow

    cfg = load_config(config, options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    load_fitting_checkpoint(model, ckpt, config, load=True)
    model.eval().requires_grad_(False)
    step = NonKeyStep(model)

    class Flow(nn.Module):  # the submodules registered: their weights become graph initialisers
        def __init__(self):
            super().__init__()
            self.step = step

        def forward(self, img, key_img):
            return self.step.flow(img, key_img)

    class Warp(nn.Module):
        def forward(self, *args):
            *feats, flow = args
            return tuple(flow_warp(f, resize_flow(flow, (int(f.shape[-2]), int(f.shape[-1]))),
                                   padding_mode=model.warp.padding_mode, fast=True) for f in feats)

    class Cell(nn.Module):
        def __init__(self):
            super().__init__()
            self.aggregator = model.aggregator

        def forward(self, *args):
            n = len(args) // 2
            return tuple(self.aggregator(tuple(args[:n]), tuple(args[n:])))

    size = find_resize_scale(cfg.test_dataloader.dataset.pipeline)
    div = int(getattr(model.data_preprocessor, 'pad_size_divisor', 1))
    img = torch.zeros(1, 3, -(-size[1] // div) * div, -(-size[0] // div) * div)
    with torch.no_grad():
        feats = KeyFeatStep(model)(img)
        flow = Flow()(img, img)
    names = [f'feat{i}' for i in range(len(feats))]
    jobs = [('flow', Flow(), (img, img), ['img', 'key_img'], ['flow']),
            ('warp', Warp(), (*feats, flow), [*names, 'flow'], [f'warped{i}' for i in range(len(feats))])]
    if model.aggregator is not None:
        jobs.append(('gru_cell', Cell(), (*feats, *feats), [*names, *(f'state{i}' for i in range(len(feats)))],
                     [f'new_state{i}' for i in range(len(feats))]))
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, module, example, inputs, outputs in jobs:
        data = module_onnx_bytes(module.eval(), example, inputs, outputs, check=True, what=f'the profile ({name})')
        with atomic_write(folder / f'{name}.onnx', 'wb') as f:
            f.write(data)
        out[name] = folder / f'{name}.onnx'
    return out


def _part_calls(video_graphs: Path, parts: dict[str, Path], rgb: list[np.ndarray], t: int) -> dict[str, Any]:
    """One zero-argument call per part at ``t`` threads, on real frames (key ``rgb[0]``, current ``rgb[1]``)."""
    from lightflow_deploy import VideoDetectorRuntime
    from lightflow_deploy.postprocess import decode_detections, grid_anchors
    from lightflow_deploy.runtime import _OrtSession

    rt = VideoDetectorRuntime(video_graphs, threads=t)
    sess = {k: _OrtSession(p, t) for k, p in parts.items()}
    key, shape, scale = rt.preprocess(rgb[0])
    img = rt.preprocess(rgb[1])[0]
    feats = rt._run('key_feats', key)
    feed = {f'feat{i}': f for i, f in enumerate(feats)}
    flow = sess['flow'].run({'img': img, 'key_img': key})[0]
    warped = sess['warp'].run({**feed, 'flow': flow})
    head = rt._run('head', *warped)
    head_cfg = rt.manifest['head']
    anchors = [grid_anchors(np.asarray(head_cfg['base_anchors'][i], np.float32), head_cfg['strides'][i],
                            head[i].shape[-2:]) for i in range(len(feats))]
    calls = {
        'preprocess': lambda: rt.preprocess(rgb[1]),
        'features (key_feats)': lambda: rt._run('key_feats', key),
        'flow': lambda: sess['flow'].run({'img': img, 'key_img': key}),
        'warp': lambda: sess['warp'].run({**feed, 'flow': flow}),
        'head': lambda: rt._run('head', *warped),
        'non-key step (flow + warp + head)': lambda: rt._run('nonkey', *feats, key, img),
        'decode + NMS': lambda: decode_detections(head, head_cfg, shape, scale, anchors)}
    if 'gru_cell' in sess:
        states = {f'state{i}': f for i, f in enumerate(warped)}
        calls['GRU cell'] = lambda: sess['gru_cell'].run({**feed, **states})
        calls['GRU step (flow + warp + GRU)'] = lambda: rt._run('gru_step', *feats, *warped, key, img)
    return calls


def profile_graphs(video_graphs: Path, parts: dict[str, Path], frames: list[Path], threads: list[int], reps: int
                   ) -> dict[int, dict[str, float]]:
    """Median ms of every graph and of preprocess / decode + NMS on real frames (key frame 0, frame 5), the parts and
    the thread counts interleaved call by call."""
    import cv2

    rgb = [np.ascontiguousarray(cv2.imread(str(f))[..., ::-1]) for f in frames]
    calls = {t: _part_calls(video_graphs, parts, rgb, t) for t in threads}
    times = {t: {k: [] for k in calls[t]} for t in threads}
    for _ in range(reps + 1):  # the first round warms up
        for t in threads:
            for k, call in calls[t].items():
                t0 = time.perf_counter()
                call()
                times[t][k].append(1e3 * (time.perf_counter() - t0))
    return {t: {k: statistics.median(v[1:]) for k, v in times[t].items()} for t in threads}


def report_tables(rows: list[dict], torch_rows: list[dict], prof: dict, title: str, caveat: str) -> str:
    """The markdown report: the runtime's rows (:func:`run_runtime`, with the ms ratio to the single-frame
    detector at the same thread count), the PyTorch rows beside the runtime's (:func:`pytorch_reference`; none: no
    such table) and the per-part profile (:func:`profile_graphs`; empty: none), under ``title`` and ``caveat``."""
    single = {r['threads']: r['ms'] for r in rows if r['detector'] == 'single'}
    lines = [f'# Deployed video detector: {title}', '', caveat, '',
             '## ONNX Runtime (lightflow_deploy), whole frame (preprocess + graphs + decode + NMS)', '',
             '| detector | setting | threads | ms / frame | fps | x single-frame | key ms | non-key ms | key frames '
             '| mAP@50 |', '|---|---|---|---|---|---|---|---|---|---|']
    for r in sorted(rows, key=lambda r: (r['threads'], r['detector'] != 'single')):
        ratio = r['ms'] / single[r['threads']] if r['threads'] in single else float('nan')
        lines.append(f"| {r['detector']} | {r['setting']} | {r['threads']} | {r['ms']:.2f} | {r['fps']:.1f} | "
                     f"{ratio:.2f} | {r['key_ms']:.2f} | {r['nonkey_ms']:.2f} | {r['key_fraction']:.2f} | "
                     f"{r['mAP']:.1f} |")
    if torch_rows:
        deployed = {(r['detector'], r['setting'], r['threads']): r for r in rows}
        lines += ['', '## PyTorch (FlowVideoDetector.predict, run_video_test), the same runs', '',
                  '| detector | setting | threads | ms / frame | fps | key ms | non-key ms | mAP@50 | runtime mAP@50 '
                  '| PyTorch ms / runtime ms |', '|---|---|---|---|---|---|---|---|---|---|']
        for r in torch_rows:
            d = deployed.get((r['detector'], r['setting'], r['threads']))
            lines.append(f"| {r['detector']} | {r['setting']} | {r['threads']} | {r['ms']:.2f} | {r['fps']:.1f} | "
                         f"{r['key_ms']:.2f} | {r['nonkey_ms']:.2f} | {r['mAP']:.1f} | "
                         f"{d['mAP'] if d else float('nan'):.1f} | {r['ms'] / d['ms'] if d else float('nan'):.2f} |")
    if prof:
        parts = list(next(iter(prof.values())))
        lines += ['', '## Per part (ONNX Runtime graphs and numpy; median ms of interleaved calls)', '',
                  '| part | ' + ' | '.join(f'{t} thread(s)' for t in prof) + ' |',
                  '|---|' + '---|' * len(prof)]
        lines += [f'| {p} | ' + ' | '.join(f'{prof[t][p]:.2f}' for t in prof) + ' |' for p in parts]
    return '\n'.join(lines) + '\n'
