#!/usr/bin/env bash
# The published commands with --cuda true on tiny generated data, then the GPU benchmark.
# Prepare the data on any machine first (it needs pycocotools):
#   python -m datasets.synthetic --out .bench/data --num_coco 40 --num_voc_train 8 --num_voc_val 4 \
#     && python utils/parseCOCO.py --dataRoot .bench/data/coco
# then: bash benchmarks/gpu_check.sh OUT_DIR
set -euo pipefail
out=${1:-/tmp/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
voc=.bench/data/VOCdevkit/VOC2012
coco=.bench/data/coco
w=$(mktemp -d)
step() { echo "== $*"; "$@" 2>&1 | grep -v 'it/s]\|batch/s]' | tail -n 4; }
step python3 trainLPG.py --coco_root_dir $coco --round 1 --model_save_path $w/lpg --batch_size 8 --crop_size 128 \
    --num_max_iterations 20 --num_save_model 20 --cuda true --workers 2
step python3 genPseudoMasks.py --dataset voc --round 1 --model_path_test $w/lpg/Round_1/LPG_Round1.pth \
    --voc_root_dir $voc --voc_proposals_dir $w/pv --voc_test_size 128 --model_type vgg16 --cuda true
step python3 test.py --type masks --root_path $voc --pred_dir $w/pv/vgg16_Round1
step python3 main.py --root_path $voc --label_path_name $w/pv/vgg16_Round1 --model_type vgg16 --save_path $w/voc1 \
    --num_iterations 10 --batch_size 4 --crop_size 97 --cuda true --workers 2
step python3 main.py --root_path $voc --label_path_name $w/pv/vgg16_Round1 --model_type resnet101 --save_path $w/res1 \
    --num_iterations 3 --crop_size 97 --cuda true --workers 2
step python3 test.py --type test --root_path $voc --model_type vgg16 --model_path $w/voc1/vgg16_final.pth --cuda true
step python3 test.py --type test --root_path $voc --model_type resnet101 --model_path $w/res1/resnet101_final.pth --cuda true
step python3 genPseudoMasks.py --dataset coco --round 1 --model_path_test $w/lpg/Round_1/LPG_Round1.pth \
    --coco_root_dir $coco --coco_proposals_dir $w/pc --coco_test_size 128 --model_type vgg16 --cuda true
step python3 main.py --dataset coco --root_path $coco --label_path_name $w/pc/vgg16_Round1 --model_type vgg16 \
    --save_path $w/coco1 --num_iterations 10 --batch_size 4 --crop_size 97 --cuda true --workers 2
step python3 trainLPG.py --coco_root_dir $coco --round 2 --init_seg_model_path $w/coco1/vgg16_final.pth \
    --init_lpg_model_path $w/lpg/Round_1/LPG_Round1.pth --model_save_path $w/lpg --batch_size 8 --crop_size 128 \
    --num_max_iterations 10 --num_save_model 10 --cuda true --workers 2
step python3 genPseudoMasks.py --dataset voc --round 2 --model_path_test $w/lpg/Round_2/LPG_Round2.pth \
    --voc_root_dir $voc --voc_proposals_dir $w/pv --voc_test_size 128 --model_type vgg16 \
    --init_voc_model_path $w/voc1/vgg16_final.pth --cuda true
step python3 test.py --type masks --root_path $voc --pred_dir $w/pv/vgg16_Round2
echo "== all published commands ran with --cuda true"
python3 benchmarks/benchmark_gpu.py --out "$out/gpu_results.json"
