#!/usr/bin/env bash
# One trial of the demo's from-scratch backbone recipe: VGG16 trained on the ground truth of the demo's VOC data,
# then its val mIoU (no CRF). Used to choose the demo's backbone settings (benchmarks/backbone_recipe.md).
#   python -c "from datasets.synthetic import make_demo_data; make_demo_data('/tmp/recipe', num_coco=300)"
#   bash benchmarks/backbone_recipe.sh /tmp/recipe/VOCdevkit/VOC2012 /tmp/recipe/G 300 3e-3 97 --warmup_iterations 50
# Arguments: VOC root, output folder, iterations, lr, crop, then any further main.py flags.
set -euo pipefail
voc=$1; out=$2; iterations=$3; lr=$4; crop=$5; shift 5
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=2
start=$(date +%s)
python main.py --root_path "$voc" --label_path_name SegmentationClassAug --model_type vgg16 --save_path "$out" \
    --from_scratch kaiming --lr "$lr" --batch_size 8 --crop_size "$crop" --num_iterations "$iterations" \
    --workers 1 --num_print_log 50 --deterministic --overwrite "$@" > "$out.log" 2>&1
trained=$(date +%s)
python test.py --type test --root_path "$voc" --model_type vgg16 --model_path "$out/vgg16_final.pth" --split val \
    --save_path "$out/eval" --test_size 128 --workers 1 > "$out.test.log" 2>&1
echo "$(basename "$out"): train $((trained - start)) s, $(grep -m1 'Mean IoU' "$out.test.log")"
