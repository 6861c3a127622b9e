#!/usr/bin/env bash
# Pre-training round 1 on generated shapes before the real auxiliary set, within the real-photo recipe's budget,
# against the 3000 real-only iterations of benchmarks/real_photos.py. Every run: batch 8, crop 256, Adam lr 1e-3
# poly (each run starts its own schedule), --box_loss_weight 5, --deterministic, bf16 by --amp auto.
#   REALDATA=<folder with coco/ and voc/VOC2012> OUT=<scratch folder> bash benchmarks/real_photos_pretrain.sh
# Prints each training's seconds (data loading and the up-front data check included) and the pseudo-mask scores
# of each generator on the target's train_aug images (test size 384).
set -euo pipefail
cd "$(dirname "$0")/.."
P=${OUT:?set OUT}; R=${REALDATA:?set REALDATA}
mkdir -p "$P"
COMMON="--round 1 --batch_size 8 --crop_size 256 --lr 1e-3 --box_loss_weight 5 --deterministic --cuda false --workers 2 --num_save_model 500"
REAL="--dataset custom --annotations $R/coco/annotations/instances_train2017.json --image_dir $R/coco/train2017 --labels_dir $P/aux_labels"

# train NAME DATA ITERATIONS SEED [INIT]: one trainLPG.py run into $P/lpg_NAME, on the real auxiliary set (DATA
# real) or on the generated images of $P/DATA, from the generator $P/lpg_INIT if given; prints its seconds.
train() {
  local name=$1 data=$2 iterations=$3 seed=$4 init=${5:-} t0
  local source="--dataset coco --coco_root_dir $P/$data/coco"
  [ "$data" = real ] && source=$REAL
  t0=$(date +%s)
  python trainLPG.py $source --model_save_path $P/lpg_$name ${init:+--init_lpg_model_path $P/lpg_$init/Round_1/LPG_Round1.pth} \
    $COMMON --seed $seed --num_max_iterations $iterations > $P/train_$name.log 2>&1
  echo "$name: $iterations iterations on $data (seed $seed${init:+, from $init}) in $(($(date +%s) - t0)) s"
}

# score NAME: the pseudo masks of $P/lpg_NAME on the target's train_aug images, scored; prints one line.
score() {
  local name=$1
  python genPseudoMasks.py --dataset voc --round 1 --model_path_test $P/lpg_$name/Round_1/LPG_Round1.pth --voc_root_dir $R/voc/VOC2012 --voc_proposals_dir $P/masks_$name --voc_test_size 384 --cuda false --workers 2 --allow_empty > $P/gen_$name.log 2>&1
  python test.py --type masks --root_path $R/voc/VOC2012 --pred_dir $P/masks_$name/vgg16_Round1 --split train_aug --save_path $P/masks_$name > $P/score_$name.log 2>&1
  python -c "import json; d=json.load(open('$P/masks_$name/scores_masks_vgg16_Round1.json'))['pseudo masks']; print('$name', round(100*d['Mean IoU'],1), {k: round(100*v,1) for k,v in d['box foreground'].items()})"
}

# generate N: N generated COCO-format images of 256 px in $P/shapesN, labelled as COCO-60 is.
generate() {
  python -c "import sys; sys.path.insert(0, '.'); from datasets.synthetic import make_demo_data; print(make_demo_data('$P/shapes$1', num_coco=$1, num_voc_train=1, num_voc_val=1, image_size=256, seed=0))"
  python utils/parseCOCO.py --dataRoot $P/shapes$1/coco > $P/parse_shapes$1.log 2>&1
}

generate 1000
python utils/parseCOCO.py --annotations $R/coco/annotations/instances_train2017.json --labels_dir $P/aux_labels > $P/label_real.log 2>&1
# 1500 on the shapes, then 1500 real; then 1500 more real from there (a second schedule).
train shapes1500 shapes1000 1500 0 && score shapes1500
train real1500 real 1500 0 shapes1500 && score real1500
train more1500 real 1500 1 real1500 && score more1500
# 1000 on the shapes, then 2500 real in one schedule, with seeds 0 and 1.
train shapes1000 shapes1000 1000 0
train real2500 real 2500 0 shapes1000 && score real2500
train shapes1000_seed1 shapes1000 1000 1
train real2500_seed1 real 2500 1 shapes1000_seed1 && score real2500_seed1
# 1000 on the shapes, then 2500 real in two schedules of 1250 (the lr restarted once).
train real1250 real 1250 0 shapes1000 && score real1250
train restart1250 real 1250 1 real1250 && score restart1250
# 1000 iterations on 3000 generated images instead of 1000, then 2500 real (seed 0).
generate 3000
train shapes3000 shapes3000 1000 0
train real2500_shapes3000 real 2500 0 shapes3000 && score real2500_shapes3000
