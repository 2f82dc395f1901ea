"""The deployed video detector side by side with the single-frame detector and with PyTorch, in one run (issue 21).

    PYTHONPATH=. python tools/benchmark_deploy.py CONFIG CKPT [--single-config C --single-ckpt K]
        --intervals 1 5 10 20 [--policies fixed motion] [--threads 1 2] --out-dir DIR --cfg-options data_root=...

Exports both detectors (``mmdet_plugin.export_video.export_trained_detector``; the single-frame one, ``motion=None``,
as key_feats + head) into DIR/graphs_*, runs them in ``lightflow_deploy`` (ONNX Runtime) on the config's val set
(CocoVID json, frames read with ``lightflow.frames.read_cocovid``), interleaved: video by video, every (threads,
detector, policy) setting in a rotating order. Reports ms / frame (the median over videos of each video's mean), fps,
key / non-key ms (medians), mAP@50 of the runtime's detections (``VIDMotionMetric`` on the dataset's own annotations),
the same detector in PyTorch (``run_video_test``: mAP, ms inside ``predict``) and a per-part profile of the graphs
(features, flow, warp, GRU, head, decode + NMS; medians). Writes DIR/benchmark_deploy.md atomically and prints it."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lightflow.cli import ArgumentParser, check_not_an_input, check_output_dir, positive_float, positive_int, run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description='Deployed video detector vs single-frame detector vs PyTorch.')
    parser.add_argument('config', help='FlowVideoDetector config with a motion module')
    parser.add_argument('checkpoint', help='checkpoint of that config')
    parser.add_argument('--single-config', help='the single-frame detector config (motion=None)')
    parser.add_argument('--single-ckpt', help='checkpoint of --single-config')
    parser.add_argument('--intervals', type=positive_int, nargs='+', default=[1, 5, 10, 20])
    parser.add_argument('--policies', nargs='+', default=['fixed', 'motion'], choices=['fixed', 'motion'])
    parser.add_argument('--motion-threshold', type=positive_float, default=4.0,
                        help='motion policy: threshold (input pixels) of the flow statistic')
    parser.add_argument('--motion-statistic', default='mean', choices=['mean', 'p90', 'p90_relative'])
    parser.add_argument('--max-interval', type=positive_int, default=20, help='motion policy: longest key gap')
    parser.add_argument('--threads', type=positive_int, nargs='+', default=[1, 2])
    parser.add_argument('--max-videos', type=positive_int, help='only the first N val videos')
    parser.add_argument('--no-pytorch', action='store_true', help='skip the PyTorch reference runs')
    parser.add_argument('--pytorch-threads', type=positive_int, nargs='+', default=[1],
                        help='torch threads of the PyTorch runs (OpenMP spins: on a busy machine more threads than '
                             'free cores collapse)')
    parser.add_argument('--profile-reps', type=positive_int, default=30, help='repetitions per part (profile)')
    parser.add_argument('--out-dir', required=True, help='graphs_*/ and benchmark_deploy.md go here')
    parser.add_argument('--cfg-options', nargs='+', default=[], help='KEY=VALUE overrides (data_root=DIR)')
    args = parser.parse_args(argv)
    if (args.single_config is None) != (args.single_ckpt is None):
        parser.error('--single-config and --single-ckpt go together')
    return args


def _options(items: list[str]) -> dict:
    from mmengine.config import DictAction
    out = {}
    for item in items:
        if '=' not in item:
            raise ValueError(f'--cfg-options: {item!r} is not KEY=VALUE')
        key, value = item.split('=', 1)
        out[key] = DictAction._parse_iterable(value)
    return out


def settings(args: argparse.Namespace, single: bool) -> list[tuple[str, str, dict]]:
    """(detector, label, policy changes) of every runtime run."""
    runs = [('single', 'every frame', {})] if single else []
    if 'fixed' in args.policies:
        runs += [('video', f'interval {k}', dict(type='fixed', key_frame_interval=k)) for k in args.intervals]
    if 'motion' in args.policies:
        runs.append(('video', f'motion {args.motion_statistic} > {args.motion_threshold:g} px',
                     dict(type='motion', threshold=args.motion_threshold, statistic=args.motion_statistic,
                          max_interval=args.max_interval, min_interval=1)))
    return runs


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    for path in (args.config, args.checkpoint, args.single_config, args.single_ckpt):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f'{path}: no such file')
    out_dir = check_output_dir(args.out_dir, '--out-dir')
    report = out_dir / 'benchmark_deploy.md'
    check_not_an_input([report], {'config': args.config, 'checkpoint': args.checkpoint,
                                  'single checkpoint': args.single_ckpt or args.checkpoint}, '--out-dir')
    from lightflow.engine.config import load_config
    from lightflow.frames import read_cocovid
    from lightflow.io import atomic_write
    from lightflow.sysinfo import cpu_name
    from mmdet_plugin.deploy_benchmark import (ground_truth, part_graphs, profile_graphs, pytorch_reference,
                                               report_tables, run_runtime)
    from mmdet_plugin.export_video import export_trained_detector

    options = _options(args.cfg_options)
    cfg = load_config(args.config, options)
    if cfg.model.get('motion', None) is None:
        raise ValueError(f'{args.config}: no motion module; give the video detector config first')
    ann, gt, classes = ground_truth(cfg)
    videos = list(read_cocovid(ann)[0].values())[:args.max_videos]
    graphs = {'video': out_dir / 'graphs_video'}
    export_trained_detector(args.config, args.checkpoint, graphs['video'], cfg_options=options)
    if args.single_config:
        graphs['single'] = out_dir / 'graphs_single'
        export_trained_detector(args.single_config, args.single_ckpt, graphs['single'], cfg_options=options)
    parts = part_graphs(args.config, args.checkpoint, options, out_dir / 'graphs_parts')
    runs = settings(args, 'single' in graphs)
    rows = run_runtime(graphs, videos, runs, args.threads, gt, classes)
    prof = profile_graphs(graphs['video'], parts, [videos[0][0]['path'], videos[0][5]['path']], args.threads,
                          args.profile_reps)
    torch_rows = []
    if not args.no_pytorch:
        video_runs = [r for r in runs if r[0] == 'video']
        torch_rows = pytorch_reference(args.config, args.checkpoint, options, out_dir / 'work', video_runs,
                                       args.pytorch_threads, args.max_videos)
        if args.single_config:
            torch_rows += pytorch_reference(args.single_config, args.single_ckpt, options, out_dir / 'work_single',
                                            [r for r in runs if r[0] == 'single'], args.pytorch_threads,
                                            args.max_videos)
    import onnxruntime
    caveat = (f'{len(videos)} val videos, {sum(len(v) for v in videos)} frames; {cpu_name()}, '
              f'{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; ONNX Runtime '
              f'{onnxruntime.__version__} (CPU EP), PyTorch at {args.pytorch_threads} thread(s). Timings on a '
              'shared machine are noisy: ms / frame is the median over videos of each video\'s mean, the runs '
              'interleaved video by video; key / non-key ms are medians of frames. PyTorch ms are inside predict '
              '(no preprocess), the runtime\'s include preprocess and decode + NMS.')
    text = report_tables(rows, torch_rows, prof, f'{Path(args.config).stem} @ {Path(args.checkpoint).name}', caveat)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(report, 'w') as f:
        f.write(text)
    print(text)
    print(f'wrote {report}')
    return text


if __name__ == '__main__':
    sys.exit(run_main(main))
