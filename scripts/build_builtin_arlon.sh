#!/usr/bin/env bash
# Build the built-in ARLON model (builtin:arlon-shapes) with the project's recipe, from nothing.
#
#   scripts/build_builtin_arlon.sh                 # the recipe: configs/arlon-*.yaml, runs/arlon/
#   SMOKE=1 RUN=runs/arlon-smoke N=8 VAL=4 scripts/build_builtin_arlon.sh   # tiny models, 2 steps a stage
#
# Every stage is skipped when its published model exists and every training run resumes, so after a
# kill just run the script again. The published stage models go to MODELS (default
# stages/arlon-shapes, committed: a new checkout retrains only the stages that are not there yet);
# runs, shards and checkpoints go to RUN (not committed). Stages (docs/arlon.md, "Training recipe"):
#   data -> frame shards -> VAE -> latent shards -> fine VQ-VAE -> code shards -> AR model
#   -> DiT alone -> injection branch on the frozen DiT -> export (fp16, with the quality floors of
#   its own ShapesBench subset run) to OUT.
# After the VAE and after the fine VQ-VAE the log shows what they keep (benchmarks/arlon_ceilings.py).
# Environment: RUN (run folder, default runs/arlon), MODELS (stage models; RUN/models with SMOKE=1),
# N (training clips, 4000), VAL (held-out clips, 64), WORKERS (shard writers, 1), OUT (pipeline folder;
# default src/arvideo/builtin/arlon-shapes, or RUN/arlon-shapes with SMOKE=1), PY (python, .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=${RUN:-runs/arlon}
N=${N:-4000}
VAL=${VAL:-64}
WORKERS=${WORKERS:-1}
PY=${PY:-.venv/bin/python}
SMOKE=${SMOKE:-0}
if [ "$SMOKE" = 1 ]; then
  OUT=${OUT:-$RUN/arlon-shapes}; M=${MODELS:-$RUN/models}; SMOKE_FLAG=(--smoke)
else
  OUT=${OUT:-src/arvideo/builtin/arlon-shapes}; M=${MODELS:-stages/arlon-shapes}; SMOKE_FLAG=()
fi
BUILD="$PY -m arvideo.arlon.build"
ARVIDEO="$PY -m arvideo"
mkdir -p "$RUN/configs" "$RUN/data" "$RUN/shards" "$M"

step() { echo "== $*" >&2; }

# ceilings [flags]: ShapesBench t2v on ground truth through the published stages (a downstream stage
# cannot draw more than they keep); printed into the log, read it before trusting the later stages
ceilings() {
  step "ceilings"
  if [ "$SMOKE" = 1 ]; then set -- "$@" --cases 2; fi
  $PY benchmarks/arlon_ceilings.py --vae "$M/vae" "$@"
}

# 1. captioned clips of the shapes world (17 frames, 64x64)
[ -f "$RUN/data/train/captions.csv" ] || { step "data"; $ARVIDEO data shapes --out "$RUN/data/train" -n "$N" --seed 0 --overwrite; }
[ -f "$RUN/data/val/captions.csv" ] || { step "validation data"; $ARVIDEO data shapes --out "$RUN/data/val" -n "$VAL" --seed 1 --overwrite; }

# shards KIND NAME [flags]: train and validation shards of one kind (a rerun continues them)
shards() {
  local kind=$1 name=$2; shift 2
  step "$kind shards"
  $BUILD "$kind" "$RUN/data/train" "$RUN/shards/$name" --workers "$WORKERS" "$@"
  $BUILD "$kind" "$RUN/data/val" "$RUN/shards/val-$name" "$@"
}

# train STAGE CONFIG [publish flags]: train (resuming) unless the model is published, then publish it
train() {
  local stage=$1 config=$2; shift 2
  [ -f "$M/$stage/config.json" ] && return 0
  step "train $stage ($config)"
  local cfg="$RUN/configs/$(basename "$config")"
  $BUILD config "$config" "$cfg" --run "$RUN" --models "$M" "${SMOKE_FLAG[@]}"
  $ARVIDEO train "$cfg" --resume
  local out_dir
  out_dir=$($PY -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['out_dir'])" "$cfg")
  $BUILD publish "$out_dir" "$M/$stage" "$@"
}

# 2. the video VAE, on frames; publishing measures its latent statistics
shards frames frames
train vae configs/arlon-vae.yaml --vae-stats "$RUN/shards/frames"
ceilings

# 3. the fine latent VQ-VAE, on the VAE's latents: its codes for the AR model, its F for the injection
shards latents latents --vae "$M/vae"
train fine_vq configs/arlon-vq-fine.yaml
ceilings --fine-vq "$M/fine_vq"

# 4. the AR model (Lumos-1) on fine codes
shards codes codes --vae "$M/vae" --fine-vq "$M/fine_vq"
train ar configs/arlon-ar.yaml

# 5. the DiT alone, then its injection branch on the frozen backbone
train dit_base configs/arlon-dit-base.yaml
train dit configs/arlon-dit-inject.yaml

# 6. the pipeline folder
step "export $OUT"
$BUILD export "$OUT" --vae "$M/vae" --fine-vq "$M/fine_vq" --ar "$M/ar" --dit "$M/dit" --overwrite
