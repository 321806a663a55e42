#!/usr/bin/env python3
"""Time TA-Lib doing the work of `indicators::table`, for comparison with
`cargo bench --bench indicators` (group "indicators", `table/<case>`).

The nine calls (SMA20, SMA50, SMA200, EMA20, RSI14, MACD(12,26,9), ATR14,
BBANDS(20,2,2,0), ADX14) run on the same arrays the Rust bench reads: the
`tests/fixtures/talib/<case>.input.csv` files. Prints the best-of-N time per
bar in nanoseconds, single-threaded, Python call overhead included (each talib
call also allocates its outputs, as `table` does).

It also times the first 250 bars of `gbm_long` (criterion: `table/gbm_long_prefix250`)
and prints the marginal cost per bar, (t(2000) - t(250)) / 1750, which removes the
fixed per-call cost (Python call, argument checks, output allocation) and leaves
what TA-Lib's C loops spend per additional bar.

Usage: python3 scripts/bench_talib.py [--reps N] [--rounds R]
"""

import argparse
import csv
import os
import time

import numpy as np
import talib

CASES = ["gbm_long", "penny", "volatile", "flat", "short"]


def load(case):
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "tests", "fixtures", "talib", f"{case}.input.csv")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    col = lambda k: np.array([float(r[k]) for r in rows], dtype=np.float64)
    return col("high"), col("low"), col("close")


def nine_calls(h, l, c):
    talib.SMA(c, 20)
    talib.SMA(c, 50)
    talib.SMA(c, 200)
    talib.EMA(c, 20)
    talib.RSI(c, 14)
    talib.MACD(c, 12, 26, 9)
    talib.ATR(h, l, c, 14)
    talib.BBANDS(c, 20, 2.0, 2.0, 0)
    talib.ADX(h, l, c, 14)


def best_ns(h, l, c, reps, rounds):
    for _ in range(50):
        nine_calls(h, l, c)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(reps):
            nine_calls(h, l, c)
        best = min(best, (time.perf_counter_ns() - t0) / reps)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2000, help="calls per timed round")
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds (best is kept)")
    args = ap.parse_args()
    print(f"talib {talib.__version__}, numpy {np.__version__}")
    for case in CASES:
        h, l, c = load(case)
        n = len(c)
        best = best_ns(h, l, c, args.reps, args.rounds)
        print(f"{case:>9}: {n:5d} bars  {best / 1000:9.2f} us/series  {best / n:7.2f} ns/bar")
    h, l, c = load("gbm_long")
    full = best_ns(h, l, c, args.reps, args.rounds)
    short = best_ns(h[:250].copy(), l[:250].copy(), c[:250].copy(), args.reps, args.rounds)
    print(f"gbm_long prefix 250 bars: {short / 1000:.2f} us/series; "
          f"marginal {(full - short) / 1750:.2f} ns/bar")


if __name__ == "__main__":
    main()
