# Pieces shared by the CPU demos in scripts/demos/ (sourced from the repository root, never run alone).
#
# demo_absolute PATH        PATH relative to $HERE (the folder the user ran the demo from) unless absolute
# demo_common_arg NAME ARG [VALUE]
#                           one of the options every demo has (--out DIR, --data DIR, --fast, --keep, -h) into OUT,
#                           DATA, FAST, KEEP; DEMO_SHIFT = the words it used; anything else exits 2 naming the demo
# demo_paths NAME DEFAULT_OUT REUSE_QUICKSTART
#                           OUT (DEFAULT_OUT unless --out) and DATA made absolute; a --data folder needs classes.txt;
#                           REUSE_QUICKSTART=1 without --data and --fast reuses outputs/quickstart/data when finished
# demo_prepare NAME         moves an earlier $OUT aside (unless KEEP=1), makes $OUT and $OUT/logs, sets TIMINGS and START
# demo_data NAME            sets ROOT (a quickstart data folder: $DATA when given, else made in $OUT/data from
#                           NUM_VIDEOS synthetic clips at SIZE px whose classes are $CLASSES, default direction;
#                           the array SYNTHETIC_FLAGS, when set, adds make_synthetic flags),
#                           NB_CLASSES and NUM_TRAIN; caps BATCH at NUM_TRAIN
# demo_banner TEXT          a stage banner with the seconds since START
# demo_wait_pair NAME PID1 PID2
#                           waits for two background stages (PID1 first); if one fails the other is killed, the
#                           tails of $OUT/logs/*.log are printed and the demo exits 1
# demo_finetune NAME DIR MODEL LR [flags]
#                           run_finetuning.py with the quickstart's recipe on ROOT (EPOCHS, WARMUP, BATCH, SIZE,
#                           VIEWS); the extra flags come last and win; skipped when KEEP=1 and DIR has its test
#                           summary; the wall time is appended to TIMINGS

demo_absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$HERE" "$1" ;; esac; }

demo_common_arg() {
  local name="$1"; shift
  case "$1" in
    --out) OUT="$2"; DEMO_SHIFT=2 ;;
    --data) DATA="$2"; DEMO_SHIFT=2 ;;
    --fast) FAST=1; DEMO_SHIFT=1 ;;
    --keep) KEEP=1; DEMO_SHIFT=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "$name demo: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
}

demo_paths() {
  local name="$1" default_out="$2" reuse="$3"
  if [ -z "$OUT" ]; then OUT="$default_out"; else OUT=$(demo_absolute "$OUT"); fi
  if [ -n "$DATA" ]; then
    DATA=$(demo_absolute "$DATA")
    [ -f "$DATA/classes.txt" ] || { echo "$name demo: --data $DATA has no classes.txt (a quickstart data folder)" >&2; exit 2; }
  elif [ "$reuse" = 1 ] && [ "$FAST" = 0 ] && [ -f outputs/quickstart/data/classes.txt ] \
      && [ -f outputs/quickstart/data/train.csv ]; then
    DATA=$(pwd)/outputs/quickstart/data
  fi
}

demo_wait_pair() {
  local name="$1" first="$2" second="$3"
  if wait "$first" && wait "$second"; then return 0; fi
  kill "$first" "$second" 2>/dev/null || true
  echo "$name demo: a stage failed; see $OUT/logs/" >&2
  tail -n 20 "$OUT"/logs/*.log >&2
  exit 1
}

demo_banner() { printf '\n== %s  [%ds]\n' "$1" "$((SECONDS - START))"; }

demo_prepare() {
  if [ "$KEEP" = 0 ] && [ -d "$OUT" ]; then
    echo "$1 demo: $OUT exists; moving it to $OUT.old (pass --keep to reuse finished stages)"
    rm -rf "$OUT.old"; mv "$OUT" "$OUT.old"
  fi
  mkdir -p "$OUT/logs"
  TIMINGS="$OUT/timings.tsv"
  START=$SECONDS
}

demo_data() {
  if [ -n "$DATA" ]; then
    demo_banner "1. data: reusing $DATA"
    ROOT="$DATA"
  else
    demo_banner "1. synthetic dataset: $NUM_VIDEOS clips, ${CLASSES:-direction} classes, linear grey at $SIZE px"
    local -a extra=()
    if [ -n "${SYNTHETIC_FLAGS+x}" ]; then extra=("${SYNTHETIC_FLAGS[@]}"); fi
    if [ ! -f "$OUT/raw/classes.txt" ]; then
      python -m snappix.tools.make_synthetic "$OUT/raw" --num_videos "$NUM_VIDEOS" --seed 0 --workers 2 \
        --height "$SIZE" --width 84 --classes "${CLASSES:-direction}" "${extra[@]}" --no_progress
    fi
    python preprocess_data.py "$OUT/raw/videos" "$OUT/data/videos" --input_format .mp4 --cores 2 --short_side "$SIZE"
    for f in train val; do cp "$OUT/raw/$f.csv" "$OUT/data/$f.csv"; done
    cp "$OUT/raw/classes.txt" "$OUT/data/classes.txt"
    ROOT="$OUT/data"
  fi
  NB_CLASSES=$(grep -c . "$ROOT/classes.txt")
  NUM_TRAIN=$(grep -c . "$ROOT/train.csv")
  if [ "$NUM_TRAIN" -lt "$BATCH" ]; then BATCH=$NUM_TRAIN; fi
}

demo_finetune() {
  local name="$1" dir="$2" model="$3" lr="$4"; shift 4
  if [ "$KEEP" = 1 ] && [ -f "$OUT/$dir/test/multiview_summary.json" ]; then
    echo "($name: kept from an earlier run)"; return
  fi
  local t0=$SECONDS
  python run_finetuning.py --model "$model" --data_set custom --nb_classes "$NB_CLASSES" \
    --data_path "$ROOT/train.csv" --val_path "$ROOT/val.csv" --test_path "$ROOT/val.csv" \
    --class_names "$ROOT/classes.txt" --data_root "$ROOT" --num_frames 16 --sampling_rate 1 \
    --input_size "$SIZE" --short_side_size "$SIZE" --batch_size "$BATCH" --num_workers 0 --cache_videos \
    --device cpu --precision auto --seed 0 --save_ckpt_freq 1000 \
    --epochs "$EPOCHS" --warmup_epochs "$WARMUP" --lr "$lr" --layer_decay 1.0 --weight_decay 0.05 \
    --mixup 0 --cutmix 0 --reprob 0 --aa none --smoothing 0 --flip off --drop_path 0 --init_scale 1.0 \
    --train_crop_scale 0.6 0.75 --train_crop_ratio 1 1 --eval_freq 1000 --test_best "${VIEWS[@]}" \
    --output_dir "$OUT/$dir" --log_dir "$OUT/tensorboard/$dir" --no_progress "$@"
  printf '%s\t%s\n' "$name" "$((SECONDS - t0))" >> "$TIMINGS"
}
# --flip off: a horizontal flip turns E into W (changes the label); square crops keep directions and speeds;
# --eval_freq 1000 validates once, after the last epoch, so checkpoint-best is the final model.
