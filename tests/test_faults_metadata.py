"""The fault suite, bad annotations and id lists: degenerate COCO boxes, undecodable polygons, an image id
listed twice with two sizes, ids the json lacks, ids that would leave their folder and repeated ids are each
reported by name (file, annotation, image or line)."""
import json
import os

import pytest

import genPseudoMasks
import test as test_backbone
import trainLPG
from datasets.coco_json import load_instances
from datasets.voc import read_split, split_file
from tests.conftest import cli, write_coco
from tests.faults import CPU, generation_flags, pngs
from utils import parseCOCO
from utils.pseudo_masks.methods import mask_dir


# ---------------------------------------------------------------------------------------------- COCO annotations
def test_degenerate_coco_boxes_are_reported(data, tmp_path, monkeypatch):
    annos_path = os.path.join(data['coco'], 'annotations', 'coco_train2017_bbox_annos.json')
    import json
    annos = json.load(open(annos_path))
    image_id, boxes = next((key, boxes) for key, boxes in annos.items()
                           if os.path.exists(os.path.join(data['coco'], 'train2017_seg60', f'{int(key):012d}.png')))
    x1, y1, x2, y2, cat = next(box for box in boxes if box[4] not in (1, 18))  # a non-VOC category
    boxes.append([x1, y1, x1, y2, cat])  # zero width
    json.dump(annos, open(annos_path, 'w'))
    status, message = cli(trainLPG, '--coco_root_dir', data['coco'], '--round', 1, '--model_save_path', tmp_path,
                          '--crop_size', 128, '--batch_size', 2, '--num_max_iterations', 1, *CPU,
                          monkeypatch=monkeypatch)
    assert status == 1 and annos_path in message and f'image {image_id}' in message and 'has no area' in message


def test_a_bad_polygon_names_annotation_and_file_and_the_rest_is_parsed(tmp_path, monkeypatch):
    path = write_coco(str(tmp_path))
    import json
    instances = json.load(open(path))
    instances['annotations'][3]['segmentation'] = [[1.0, 2.0]]  # annotation 104 (image 1): not a polygon
    json.dump(instances, open(path, 'w'))
    status, message = cli(parseCOCO, '--dataRoot', tmp_path, monkeypatch=monkeypatch)
    assert status == 1 and 'annotation 104' in message and path in message and 'image 1' in message
    assert os.listdir(tmp_path / 'train2017_seg60') == ['000000000042.png']  # the other image is written


def test_a_coco_image_id_listed_twice_with_two_sizes_is_refused(tmp_path, monkeypatch):
    path = write_coco(str(tmp_path))
    data = json.load(open(path))
    first = data['images'][0]
    data['images'].append(dict(first))  # the same entry again: used once, with a warning
    json.dump(data, open(path, 'w'))
    with pytest.warns(UserWarning, match=f'image id {first["id"]} is listed twice with the same entry'):
        assert load_instances(path).images[first['id']]['height'] == first['height']
    data['images'][-1] = dict(first, height=first['height'] + 7)
    json.dump(data, open(path, 'w'))
    status, message = cli(parseCOCO, '--dataRoot', tmp_path, monkeypatch=monkeypatch)
    assert status == 1
    assert message.startswith(f'error: malformed COCO annotation file {path}: image id {first["id"]} has two entries')
    assert str(first['height'] + 7) in message and not os.path.exists(tmp_path / 'train2017_seg60')


def test_coco_ids_missing_from_the_json_fail_by_name(data, lpg_path, tmp_path, monkeypatch, capsys):
    names = sorted(name[:-4] for name in os.listdir(os.path.join(data['coco'], 'train2017_seg60')))[:2]
    ids = tmp_path / 'ids.txt'
    ids.write_text(f'{int(names[0])}\n999999\n{names[1]}\n')
    flags = ['--dataset', 'coco', '--round', 1, '--model_path_test', lpg_path, '--coco_root_dir', data['coco'],
             '--coco_proposals_dir', tmp_path / 'out', '--coco_test_size', 128, '--split_file', ids, *CPU]
    status, message = cli(genPseudoMasks, *flags, monkeypatch=monkeypatch)
    assert status == 1 and 'has no image 999999 (it is in the id list)' in message
    assert sorted(pngs(mask_dir(str(tmp_path / 'out'), 'lpg', 'vgg16', 1))) == [f'{n}.png' for n in names]
    assert '3 images: 2 written, 0 already done, 1 failed' in capsys.readouterr().out
    ids.write_text(f'{names[0]}\n\nimage_7\n')
    status, message = cli(genPseudoMasks, *flags, '--coco_proposals_dir', tmp_path / 'out2', monkeypatch=monkeypatch)
    assert status == 1
    assert message == f"error: {ids}, line 3: 'image_7' is not a COCO image id (a number, such as 139 or 000000000139)"


# ---------------------------------------------------------------------------------------------- id lists
@pytest.mark.parametrize('bad_id', ['../../escaped', '/tmp/escaped', 'a/b'])
def test_ids_cannot_escape_their_folders(data, lpg_path, tmp_path, monkeypatch, bad_id):
    ids_file = tmp_path / 'ids.txt'
    ids_file.write_text(f'{read_split(split_file(data["voc"], "val"))[0]}\n{bad_id}\n')
    status, message = cli(genPseudoMasks, *generation_flags(data, lpg_path, tmp_path / 'out', '--split_file', ids_file),
                          monkeypatch=monkeypatch)
    assert status == 1 and repr(bad_id) in message and 'line 2' in message
    status, message = cli(test_backbone, '--type', 'masks', '--root_path', data['voc'], '--pred_dir', tmp_path,
                          '--split_file', ids_file, *CPU, monkeypatch=monkeypatch)
    assert status == 1 and repr(bad_id) in message
    assert not os.path.exists(tmp_path / 'escaped') and not os.path.exists('/tmp/escaped.png')


def test_duplicate_ids_are_used_once_with_a_warning(tmp_path):
    (tmp_path / 'ids.txt').write_text('a\nb\na\n')
    with pytest.warns(UserWarning, match='1 repeated image ids'):
        assert read_split(str(tmp_path / 'ids.txt')) == ['a', 'b']
