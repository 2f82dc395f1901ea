"""CocoVID video dataset: COCO JSON plus ``videos`` and per-image ``video_id`` / ``frame_id`` (ImageNet VID style).

Each item of the dataset is one video, ``{'video_id', 'video_length', 'images': [frame infos by frame_id]}``, as in
mmdet's :class:`BaseVideoDataset`; mmdet's ``TrackImgSampler`` turns it into (video, frame) samples.
"""
from __future__ import annotations

import bisect
import copy
import os.path as osp
from collections import defaultdict
from typing import Any

import mmengine.fileio as fileio
import numpy as np
from mmengine.logging import print_log

from mmdet.datasets import BaseVideoDataset
from mmdet.datasets.api_wrappers import COCO
from mmdet.registry import DATASETS

from lightflow.frames import validate_cocovid

__all__ = ['CocoVIDDataset', 'ConcatVideoDataset', 'validate_cocovid']


@DATASETS.register_module()
class CocoVIDDataset(BaseVideoDataset):
    """Video detection dataset read from a CocoVID JSON (validated on load).

    Differences from :class:`BaseVideoDataset`: the file is validated (:func:`validate_cocovid`); frames of a video
    are ordered by ``frame_id`` and videos by ``video_id``; labels follow the order of ``metainfo['classes']``
    (matched by category name; all categories of the file, by id, when no classes are given); videos left with no
    frame after filtering are dropped; in test mode every frame's ``video_length`` is the video's length (mmdet's
    base class sets it to the number of frames in the sample, i.e. 1 with ``TrackImgSampler``).

    ``filter_cfg``: ``filter_empty_gt`` (default True, as mmdet) drops training frames without boxes, ``min_size``
    (default 32) drops frames smaller than that. Test mode never filters.
    """

    METAINFO = dict(classes=None)

    def load_data_list(self) -> list[dict]:
        if not fileio.exists(self.ann_file, backend_args=self.backend_args):
            raise FileNotFoundError(f'{self.ann_file}: CocoVID annotation file not found')
        with fileio.get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            coco = COCO(local_path)
        validate_cocovid(coco.dataset, self.ann_file)

        categories = sorted(coco.dataset.get('categories', []), key=lambda c: c['id'])
        classes = self.metainfo.get('classes')
        if not classes:
            classes = tuple(c['name'] for c in categories)
            self._metainfo['classes'] = classes
        name_to_id = {c['name']: c['id'] for c in categories}
        missing = [name for name in classes if name not in name_to_id]
        if missing:
            raise ValueError(f'{self.ann_file}: classes {missing} are not among the file\'s categories '
                             f'{sorted(name_to_id)}')
        self.cat_ids = [name_to_id[name] for name in classes]
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}
        self.cat_img_map = {cat_id: list(coco.cat_img_map.get(cat_id, [])) for cat_id in self.cat_ids}
        self.img_ids_with_ann = set()

        videos: dict[Any, dict] = {}
        ann_ids_seen = 0
        all_ann_ids = set()
        for img_id in coco.get_img_ids():
            raw_img_info = dict(coco.load_imgs([img_id])[0], img_id=img_id)
            ann_ids = coco.get_ann_ids(img_ids=[img_id], cat_ids=self.cat_ids)
            ann_ids_seen += len(ann_ids)
            all_ann_ids.update(ann_ids)
            info = self.parse_data_info(dict(raw_img_info=raw_img_info, raw_ann_info=coco.load_anns(ann_ids)))
            if info['instances']:
                self.img_ids_with_ann.add(img_id)
            video = videos.setdefault(raw_img_info['video_id'],
                                      dict(video_id=raw_img_info['video_id'], images=[], video_length=0))
            video['images'].append(info)
            video['video_length'] += 1
        if len(all_ann_ids) != ann_ids_seen:
            raise ValueError(f'{self.ann_file}: annotation ids are not unique')
        data_list = [videos[k] for k in sorted(videos)]
        for video in data_list:
            video['images'].sort(key=lambda info: info['frame_id'])
        return data_list

    def filter_data(self) -> list[dict]:
        if self.test_mode:
            return self.data_list
        cfg = self.filter_cfg or {}
        filter_empty_gt = cfg.get('filter_empty_gt', True)
        min_size = cfg.get('min_size', 32)
        before = after = 0
        kept = []
        for video in self.data_list:
            images = [info for info in video['images']
                      if (not filter_empty_gt or info['img_id'] in self.img_ids_with_ann)
                      and min(info['width'], info['height']) >= min_size]
            before += len(video['images'])
            after += len(images)
            if images:
                kept.append(dict(video, images=images, video_length=len(images)))
        print_log(f'CocoVIDDataset {osp.basename(str(self.ann_file))}: frames before / after filtering: '
                  f'{before} / {after} ({len(kept)} videos)', 'current')
        return kept

    def prepare_data(self, idx) -> Any:
        if not self.test_mode:
            return super().prepare_data(idx)
        video_idx, frame_idx = idx if isinstance(idx, tuple) else (idx, None)
        video = self.get_data_info(video_idx)
        indices = range(video['video_length']) if frame_idx is None else [frame_idx]
        results: dict[str, list] = defaultdict(list)
        for index in indices:
            frame = dict(video['images'][index], video_id=video['video_id'],
                         video_length=video['video_length'], ori_video_length=video['video_length'])
            for key, value in frame.items():
                results[key].append(value)
        return self.pipeline(dict(results))


@DATASETS.register_module()
class ConcatVideoDataset(BaseVideoDataset):
    """Concatenate video datasets so that mmdet's ``TrackImgSampler`` can sample (video, frame) pairs from all.

    mmengine's ``ConcatDataset`` does not accept the sampler's ``(video_index, frame_index)`` tuples, and the
    sampler's ``ConcatDataset`` branch emits per-dataset video indices. This wrapper is itself a
    ``BaseVideoDataset`` with global video indices (the videos of ``datasets[0]``, then of ``datasets[1]``, ...).
    Each part keeps its own ``pipeline`` and ``filter_cfg`` (e.g. VID videos + DET one-frame videos).

    Args:
        datasets: dataset configs or built video datasets; same ``test_mode`` and classes.
    """

    def __init__(self, datasets: list) -> None:
        if not datasets:
            raise ValueError('ConcatVideoDataset: datasets is empty')
        self.datasets = [DATASETS.build(d) if isinstance(d, dict) else d for d in datasets]
        for d in self.datasets:
            if not isinstance(d, BaseVideoDataset):
                raise ValueError(f'ConcatVideoDataset: expected video datasets, got {type(d).__name__}')
        classes = [tuple(d.metainfo.get('classes') or ()) for d in self.datasets]
        if len(set(classes)) != 1:
            raise ValueError(f'ConcatVideoDataset: the datasets have different classes: {classes}')
        modes = {d.test_mode for d in self.datasets}
        if len(modes) != 1:
            raise ValueError('ConcatVideoDataset: mixing test_mode=True and False datasets')
        self.test_mode = modes.pop()
        self._metainfo = self.datasets[0].metainfo
        self._fully_initialized = True
        self._ends = np.cumsum([len(d) for d in self.datasets]).tolist()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        for d in self.datasets:
            d.full_init()
        self._ends = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return int(self._ends[-1])

    def _locate(self, video_idx: int) -> tuple[int, int]:
        if video_idx < 0:
            video_idx += len(self)
        if not 0 <= video_idx < len(self):
            raise IndexError(f'ConcatVideoDataset: video index {video_idx} out of range ({len(self)} videos)')
        part = bisect.bisect_right(self._ends, video_idx)
        return part, video_idx - (self._ends[part - 1] if part else 0)

    def get_data_info(self, idx: int) -> dict:
        part, local = self._locate(idx)
        return self.datasets[part].get_data_info(local)

    def __getitem__(self, idx) -> Any:
        video_idx, frame_idx = idx if isinstance(idx, tuple) else (idx, None)
        part, local = self._locate(video_idx)
        return self.datasets[part][local if frame_idx is None else (local, frame_idx)]
