#!/usr/bin/env bash
# The alpha model's training, timed as a whole `technic ml train` process, and the
# gradient-boosted baseline (scripts/ml_baseline.py, LightGBM) on the same rows.
#
#   scripts/bench_ml.sh              # SYMBOLS=5000 DAYS=500 ALPHA=0.3 by default
#
# 1. technic trains on SYMBOLS × DAYS of the synthetic market with the planted factor at
#    ALPHA, linear then MLP, and writes its rows (--dataset-out) once;
# 2. the baseline trains and judges LightGBM on those rows (same split, same holdout);
# 3. both networks train on the martingale market (ALPHA 0) and must be refused.
# Both print their holdout figures; technic's wall time includes loading the data and
# building the rows, the baseline's train_seconds is the fit alone.
# The baseline's Python packages go to a git-ignored venv (target/py-ml).
set -euo pipefail
cd "$(dirname "$0")/.."
SYMBOLS=${SYMBOLS:-5000}
DAYS=${DAYS:-500}
ALPHA=${ALPHA:-0.3}
OUT=${OUT:-bench-data/ml}
mkdir -p "$OUT"

cargo build --release --locked -q
BIN=./target/release/technic
export TECHNIC_DATA__SYNTHETIC__ALPHA_STRENGTH="$ALPHA" TECHNIC_DATA__SYNTHETIC__DAYS="$DAYS" \
  TECHNIC_ML__HISTORY_DAYS="$DAYS"

# One line per horizon of a report (technic's --format json, or the baseline's).
figures() {
  python3 - "$1" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for h, m in report["horizons"].items():
    ts = "".join("  %s %.1f" % (name, m[key]) for key, name in
                 (("t_stat", "t(rank IC)"), ("ic_t_stat", "t(IC)")) if m.get(key) is not None)
    print("  %sd: rank IC %.4f  rank ICIR %.3f  IC %.4f  ICIR %.3f  spread %.4f%s"
          % (h, m["rank_ic"], m["rank_icir"], m["ic"], m["icir"], m["spread"], ts))
PY
}

for arch in linear mlp; do
  extra=()
  if [ "$arch" = linear ]; then extra=(--dataset-out "$OUT/rows.csv"); fi
  start=$(date +%s.%N)
  "$BIN" ml train --universe-size "$SYMBOLS" --architecture "$arch" --format json \
    --out "$OUT/model-$arch.json" "${extra[@]}" > "$OUT/report-$arch.json"
  end=$(date +%s.%N)
  echo "technic ml train ($arch, $SYMBOLS × $DAYS, 5d+10d): $(echo "$end - $start" | bc) s wall"
  figures "$OUT/report-$arch.json"
done

venv=target/py-ml
pins="pandas==2.3.3 numpy==2.3.5 scipy==1.16.3 lightgbm==4.6.0"
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q $pins
  echo "$pins" > "$venv/.pins"
fi
"$venv/bin/python" scripts/ml_baseline.py "$OUT/rows.csv" > "$OUT/baseline.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("LightGBM baseline: fit %.1f s (load %.1f s)" % (r["train_seconds"], r["load_seconds"]))' "$OUT/baseline.json"
figures "$OUT/baseline.json"

# The negative control at the same size: the default martingale market (no planted
# factor, no trends) must be refused by both networks.
for arch in linear mlp; do
  TECHNIC_DATA__SYNTHETIC__ALPHA_STRENGTH=0 "$BIN" ml train --universe-size "$SYMBOLS" \
    --architecture "$arch" --format json --out "$OUT/noise-$arch.json" > "$OUT/noise-report-$arch.json"
  echo "martingale, $arch: accepted = $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accepted"])' "$OUT/noise-report-$arch.json")"
  figures "$OUT/noise-report-$arch.json"
done
