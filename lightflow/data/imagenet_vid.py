"""ImageNet VID (ILSVRC2015) XML annotations as CocoVID dicts for ``CocoVIDDataset`` (``tools/convert_imagenet_vid.py``
writes them as JSON). ``file_name`` is relative to the ILSVRC root (``Data/VID/train/<...>/<video>/000000.JPEG``).

- VID videos: listed by ``ImageSets/VID/train_*.txt`` (``<video dir> <class>`` lines) and ``ImageSets/VID/val.txt``
  (``<video>/<frame> <index>`` lines); without those files, every folder of XMLs under ``Annotations/VID/<split>``.
  Every annotated frame becomes an image (also frames without objects); ``frame_id`` is the XML's number
  (``000012.xml`` -> 12). Objects' ``<trackid>`` become ``instance_id`` (unique in the file, from 1).
- DET: the images of ``Annotations/DET/train`` (or those in ``det_list``, FGFA's ``DET_train_30classes.txt``
  format: ``<path without extension> <n>``) that contain at least one of the 30 VID classes, each as a one-frame
  video; objects of other classes are dropped. Each DET object gets its own ``instance_id``.
- Boxes: ``[xmin, ymin, xmax - xmin, ymax - ymin]`` (mmtracking's / FGFA's convention for these 0-based XML
  coordinates; no VOC ``+1``), ``area = w * h``.
- Bad XML is an error naming the file: an image size that is not a positive integer, a coordinate that is not a
  finite number, a box whose width, height or area is not (``+-1e308``), an inverted box (``xmax < xmin`` or
  ``ymax < ymin``), a ``<trackid>`` / ``<occluded>`` / ``<generated>`` that is not an integer, the same ``<trackid>``
  on two objects of one frame (a track has one box per frame). A zero-width or zero-height box is kept as it is (the
  JSON stays a faithful copy of the XML); ``CocoVIDDataset``, like mmdet's datasets, skips boxes under 1 px when it
  loads the file. The JSON is standard (``allow_nan=False``).
- A list line (``ImageSets``, ``det_list``) that is absolute or climbs with ``..`` is an error naming the file and
  line (it would read files outside the root); so is a split with no video (or no DET image of a VID class).
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

from tqdm import tqdm

__all__ = ['VID_CLASSES', 'WNID_TO_CAT', 'CATEGORIES', 'parse_xml', 'list_vid_videos', 'convert_vid', 'convert_det']

# The 30 ImageNet VID classes: WordNet id -> name (category ids 1..30 in this order).
VID_CLASSES = (
    ('n02691156', 'airplane'), ('n02419796', 'antelope'), ('n02131653', 'bear'), ('n02834778', 'bicycle'),
    ('n01503061', 'bird'), ('n02924116', 'bus'), ('n02958343', 'car'), ('n02402425', 'cattle'),
    ('n02084071', 'dog'), ('n02121808', 'domestic_cat'), ('n02503517', 'elephant'), ('n02118333', 'fox'),
    ('n02510455', 'giant_panda'), ('n02342885', 'hamster'), ('n02374451', 'horse'), ('n02129165', 'lion'),
    ('n01674464', 'lizard'), ('n02484322', 'monkey'), ('n03790512', 'motorcycle'), ('n02324045', 'rabbit'),
    ('n02509815', 'red_panda'), ('n02411705', 'sheep'), ('n01726692', 'snake'), ('n02355227', 'squirrel'),
    ('n02129604', 'tiger'), ('n04468005', 'train'), ('n01662784', 'turtle'), ('n04530566', 'watercraft'),
    ('n02062744', 'whale'), ('n02391049', 'zebra'))
WNID_TO_CAT = {wnid: i + 1 for i, (wnid, _) in enumerate(VID_CLASSES)}
CATEGORIES = [dict(id=i + 1, name=name, wnid=wnid) for i, (wnid, name) in enumerate(VID_CLASSES)]


def _int_field(element: ET.Element, tag: str, path: Path, where: str, default: int | None = None) -> int | None:
    """The integer in ``element``'s ``<tag>`` (``default`` when absent or empty); ``ValueError`` naming the file."""
    text = element.findtext(tag)
    if text is None or not text.strip():
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f'{path}: {where}<{tag}> must be an integer, got {text.strip()!r}') from None


def parse_xml(path: Path) -> dict:
    """Read one ILSVRC XML: ``{'width', 'height', 'objects': [{'wnid', 'bbox' (x, y, w, h), 'trackid', ...}]}``.

    Raises ``ValueError`` naming ``path`` for anything that would put a wrong number in the JSON (see the module
    docstring).
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f'{path}: not a valid XML file ({err})') from None
    size = root.find('size')
    try:
        width, height = int(size.findtext('width')), int(size.findtext('height'))
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f'{path}: missing or bad <size><width>/<height>') from None
    if width <= 0 or height <= 0:
        raise ValueError(f'{path}: image size must be positive, got <width>{width}</width> <height>{height}</height>')
    objects = []
    for index, obj in enumerate(root.findall('object')):
        where = f'object {index} '
        box = obj.find('bndbox')
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f'{path}: {where}has no valid <bndbox>') from None
        corners = f'xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g}'
        if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)):
            raise ValueError(f'{path}: {where}has a non-finite box {corners}')
        if xmax < xmin or ymax < ymin:
            raise ValueError(f'{path}: {where}has an inverted box {corners}')
        if not math.isfinite((xmax - xmin) * (ymax - ymin)):
            raise ValueError(f'{path}: {where}has a box too large for its width, height or area to be a finite '
                             f'number {corners}')
        objects.append(dict(wnid=(obj.findtext('name') or '').strip(),
                            bbox=[xmin, ymin, xmax - xmin, ymax - ymin],
                            trackid=_int_field(obj, 'trackid', path, where),
                            occluded=_int_field(obj, 'occluded', path, where, 0),
                            generated=_int_field(obj, 'generated', path, where, 0)))
    tracks = [obj['trackid'] for obj in objects if obj['trackid'] is not None]
    repeated = sorted({t for t in tracks if tracks.count(t) > 1})
    if repeated:
        # One box per instance and frame: the motion IoU (speed split) and the instance ids assume it.
        raise ValueError(f'{path}: <trackid>{repeated[0]}</trackid> is on {tracks.count(repeated[0])} objects; a '
                         f'track has one box per frame')
    return dict(width=width, height=height, objects=objects)


def _frame_id(stem: str, position: int) -> int:
    return int(stem) if stem.isdigit() else position


def _list_entries(path: Path) -> list[str]:
    """The first word of each non-empty line of an ImageSets-style list; ``ValueError`` naming the file and line for
    an entry that is absolute or climbs with ``..`` (it would read files outside the dataset root)."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        entry = line.split()[0]
        if Path(entry).is_absolute() or '..' in Path(entry).parts:
            raise ValueError(f'{path}:{number}: {entry!r} leaves the dataset root (absolute or with ..)')
        entries.append(entry)
    return entries


def list_vid_videos(root: Path, split: str) -> list[str]:
    """Video folders (relative to ``Annotations/VID/<split>``) of a split, from ImageSets/VID or by scanning."""
    sets = root / 'ImageSets' / 'VID'
    videos: list[str] = []
    if split == 'train':
        files = sorted(sets.glob('train_*.txt'))
        for f in files:
            videos += _list_entries(f)
    elif (sets / f'{split}.txt').is_file():
        files = [sets / f'{split}.txt']
        videos = [entry.rsplit('/', 1)[0] for entry in _list_entries(files[0])]
    else:
        files = []
    if not files:
        ann_dir = root / 'Annotations' / 'VID' / split
        if not ann_dir.is_dir():
            raise FileNotFoundError(f'{ann_dir}: no VID annotations for split {split!r} (and no ImageSets/VID list)')
        videos = sorted(str(p.parent.relative_to(ann_dir)) for p in ann_dir.rglob('000000.xml'))
        files = [ann_dir]
    if not videos:
        raise ValueError(f'{", ".join(map(str, files))}: VID split {split!r} lists no videos')
    return list(dict.fromkeys(videos))  # unique, first-seen order


def convert_vid(root: Path, split: str) -> dict:
    """CocoVID dict of VID ``split`` ('train' or 'val')."""
    coco = dict(categories=CATEGORIES, videos=[], images=[], annotations=[])
    ann_dir = root / 'Annotations' / 'VID' / split
    instance_ids: dict[tuple[int, int], int] = {}
    for video in tqdm(list_vid_videos(root, split), desc=f'VID {split}', unit='video', disable=None):
        xmls = sorted((ann_dir / video).glob('*.xml'))
        if not xmls:
            raise FileNotFoundError(f'{ann_dir / video}: listed video has no XML annotations')
        video_id = len(coco['videos']) + 1
        coco['videos'].append(dict(id=video_id, name=f'{split}/{video}'))
        for position, xml in enumerate(xmls):
            info = parse_xml(xml)
            image_id = len(coco['images']) + 1
            coco['images'].append(dict(id=image_id, file_name=f'Data/VID/{split}/{video}/{xml.stem}.JPEG',
                                       height=info['height'], width=info['width'], video_id=video_id,
                                       frame_id=_frame_id(xml.stem, position)))
            for obj in info['objects']:
                if obj['wnid'] not in WNID_TO_CAT:
                    raise ValueError(f'{xml}: {obj["wnid"]!r} is not one of the 30 VID classes')
                key = (video_id, obj['trackid'] if obj['trackid'] is not None else -len(instance_ids) - 1)
                instance_id = instance_ids.setdefault(key, len(instance_ids) + 1)
                _add_annotation(coco, image_id, video_id, obj, instance_id)
    return coco


def _add_annotation(coco: dict, image_id: int, video_id: int, obj: dict, instance_id: int) -> None:
    x, y, w, h = obj['bbox']
    coco['annotations'].append(dict(id=len(coco['annotations']) + 1, image_id=image_id, video_id=video_id,
                                    category_id=WNID_TO_CAT[obj['wnid']], instance_id=instance_id,
                                    bbox=[x, y, w, h], area=w * h, iscrowd=0, occluded=obj['occluded'],
                                    generated=obj['generated']))


def convert_det(root: Path, det_list: Path | None = None) -> dict:
    """CocoVID dict of the DET train images containing VID classes, each a one-frame video."""
    ann_dir = root / 'Annotations' / 'DET' / 'train'
    if det_list is not None:
        if not det_list.is_file():
            raise FileNotFoundError(f'{det_list}: DET image list not found')
        names = _list_entries(det_list)
        # FGFA's lists are relative to Annotations/DET ('train/ILSVRC2014_train_0000/...').
        xmls = [ann_dir.parent / f'{name}.xml' if name.startswith('train/') else ann_dir / f'{name}.xml'
                for name in dict.fromkeys(names)]
    else:
        if not ann_dir.is_dir():
            raise FileNotFoundError(f'{ann_dir}: no DET train annotations')
        xmls = sorted(ann_dir.rglob('*.xml'))
    coco = dict(categories=CATEGORIES, videos=[], images=[], annotations=[])
    for xml in tqdm(xmls, desc='DET train', unit='image', disable=None):
        if not xml.is_file():
            raise FileNotFoundError(f'{xml}: listed DET annotation not found')
        info = parse_xml(xml)
        objects = [obj for obj in info['objects'] if obj['wnid'] in WNID_TO_CAT]
        if not objects:
            continue
        rel = xml.relative_to(ann_dir).with_suffix('')
        video_id = len(coco['videos']) + 1
        coco['videos'].append(dict(id=video_id, name=f'DET/train/{rel.as_posix()}'))
        image_id = len(coco['images']) + 1
        coco['images'].append(dict(id=image_id, file_name=f'Data/DET/train/{rel.as_posix()}.JPEG',
                                   height=info['height'], width=info['width'], video_id=video_id, frame_id=0))
        for obj in objects:
            _add_annotation(coco, image_id, video_id, obj, len(coco['annotations']) + 1)
    if not coco['images']:
        raise ValueError(f'{det_list or ann_dir}: no DET image holds one of the 30 VID classes')
    return coco
