#!/usr/bin/env bash
# Pre-training on generated shapes before the real auxiliary set, within the real-photo recipe's budget:
# round 1 for 1500 iterations on 1000 generated COCO-format images (256 px), then 1500 iterations on the real
# auxiliary set from that generator (the recipe otherwise: batch 8, crop 256, Adam lr 1e-3 poly,
# --box_loss_weight 5, seed 0), against the 3000 real-only iterations of benchmarks/real_photos.py.
#   REALDATA=<folder with coco/ and voc/VOC2012> OUT=<scratch folder> bash benchmarks/real_photos_pretrain.sh
# Prints the training seconds and the pseudo-mask scores of both generators on the target's train_aug images.
set -euo pipefail
cd "$(dirname "$0")/.."
P=${OUT:?set OUT}; R=${REALDATA:?set REALDATA}
COMMON="--round 1 --batch_size 8 --crop_size 256 --lr 1e-3 --box_loss_weight 5 --seed 0 --deterministic --cuda false --workers 2 --num_save_model 500"

# The pseudo masks of the generator in $P/lpg_<name>/ on the target's train_aug images, scored; prints one line.
score() {
  local it=$1
  python genPseudoMasks.py --dataset voc --round 1 --model_path_test $P/lpg_$it/Round_1/LPG_Round1.pth --voc_root_dir $R/voc/VOC2012 --voc_proposals_dir $P/masks_$it --voc_test_size 384 --cuda false --workers 2 --allow_empty > $P/gen_$it.log 2>&1
  python test.py --type masks --root_path $R/voc/VOC2012 --pred_dir $P/masks_$it/vgg16_Round1 --split train_aug --save_path $P/masks_$it > $P/score_$it.log 2>&1
  python -c "import json; d=json.load(open('$P/masks_$it/scores_masks_vgg16_Round1.json'))['pseudo masks']; print('$it', round(100*d['Mean IoU'],1), {k: round(100*v,1) for k,v in d['box foreground'].items()})"
}
python -c "import sys; sys.path.insert(0, '.'); from datasets.synthetic import make_demo_data; print(make_demo_data('$P/synth', num_coco=1000, num_voc_train=1, num_voc_val=1, image_size=256, seed=0))"
python utils/parseCOCO.py --dataRoot $P/synth/coco
t0=$(date +%s)
python trainLPG.py --dataset coco --coco_root_dir $P/synth/coco --model_save_path $P/lpg_synth $COMMON --num_max_iterations 1500 > $P/train_synth.log 2>&1
t1=$(date +%s)
python trainLPG.py --dataset custom --annotations $R/coco/annotations/instances_train2017.json --image_dir $R/coco/train2017 --labels_dir $P/aux_labels --model_save_path $P/lpg_real --init_lpg_model_path $P/lpg_synth/Round_1/LPG_Round1.pth $COMMON --num_max_iterations 1500 > $P/train_real.log 2>&1
t2=$(date +%s)
echo "train seconds: synthetic $((t1-t0)) real $((t2-t1)) total $((t2-t0))"
score synth
score real
# Then 1500 more real iterations from the pre-trained-then-real generator (Adam lr 1e-3 poly again, seed 1):
t0=$(date +%s)
python trainLPG.py --dataset custom --annotations $R/coco/annotations/instances_train2017.json --image_dir $R/coco/train2017 --labels_dir $P/aux_labels --model_save_path $P/lpg_more --init_lpg_model_path $P/lpg_real/Round_1/LPG_Round1.pth --round 1 --batch_size 8 --crop_size 256 --lr 1e-3 --box_loss_weight 5 --seed 1 --deterministic --cuda false --workers 2 --num_save_model 500 --num_max_iterations 1500 > $P/train_more.log 2>&1
t1=$(date +%s)
echo "train seconds: $((t1-t0))"
score more
# Another share of the budget: 1000 iterations on the generated shapes, then 2500 on the real set (seed 0):
t0=$(date +%s)
python trainLPG.py --dataset coco --coco_root_dir $P/synth/coco --model_save_path $P/lpg_synth1000 $COMMON --num_max_iterations 1000 > $P/train_synth1000.log 2>&1
t1=$(date +%s)
python trainLPG.py --dataset custom --annotations $R/coco/annotations/instances_train2017.json --image_dir $R/coco/train2017 --labels_dir $P/aux_labels --model_save_path $P/lpg_real2500 --init_lpg_model_path $P/lpg_synth1000/Round_1/LPG_Round1.pth $COMMON --num_max_iterations 2500 > $P/train_real2500.log 2>&1
t2=$(date +%s)
echo "train seconds: synthetic $((t1-t0)) real $((t2-t1)) total $((t2-t0))"
score real2500
