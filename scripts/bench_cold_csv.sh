#!/usr/bin/env bash
# Cold CSV scan: a 5,000-file CSV universe (500 bars each), each run a fresh `technic`
# process with no cache of its own, timed as a whole process (start to exit); then the
# plain pandas + TA-Lib baseline (scripts/pandas_scan_baseline.py) on the same files.
#
#   scripts/bench_cold_csv.sh            # RUNS=5 by default
#   DROP_CACHES=1 scripts/bench_cold_csv.sh   # also drop the OS page cache before each run (root)
#
# The data is written once by `technic snapshot` into bench-data/csv5000 (git-ignored).
# The baseline needs python3 with pandas and TA-Lib (pip install pandas TA-Lib).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${BENCH_DIR:-bench-data/csv5000}
RUNS=${RUNS:-5}

cargo build --release --locked -q
BIN=./target/release/technic
if [ ! -f "$DIR/universe.csv" ]; then
  "$BIN" snapshot --universe-size 5000 --out "$DIR"
fi
echo "universe: $(ls "$DIR" | wc -l) files, $(du -sh "$DIR" | cut -f1)"

python3 - "$BIN" "$DIR" "$RUNS" "${DROP_CACHES:-0}" <<'PY'
import os, statistics, subprocess, sys, time
bin_, d, runs, drop = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"

def drop_caches():
    if drop:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")

def timed(cmd):
    out = []
    for _ in range(runs):
        drop_caches()
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out

tech = timed([bin_, "scan", "--data", f"csv:{d}", "--format", "json", "--out", "/dev/null", "--quiet"])
print(f"technic cold CSV scan (whole process): min {min(tech):.3f} s, median {statistics.median(tech):.3f} s over {runs} runs")
try:
    import pandas, talib  # noqa: F401
except ImportError:
    print("baseline skipped: pip install pandas TA-Lib")
    sys.exit(0)
base = timed([sys.executable, "scripts/pandas_scan_baseline.py", d])
print(f"pandas + TA-Lib baseline (whole process): min {min(base):.3f} s, median {statistics.median(base):.3f} s over {runs} runs")
print(f"speedup (median): {statistics.median(base) / statistics.median(tech):.1f}x")
PY
