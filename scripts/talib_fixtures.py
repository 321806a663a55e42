#!/usr/bin/env python3
"""Generate the TA-Lib golden fixtures used by tests/indicator_parity.rs.

Each case is a deterministic (seeded) synthetic OHLCV series: geometric Brownian
motion with regime changes in drift and volatility. For every case this writes

    tests/fixtures/talib/<case>.input.csv     date,open,high,low,close,volume
    tests/fixtures/talib/<case>.expected.csv  date,sma_20,...,adx_14

Values are written with Python's repr(float), which round-trips exactly, and
NaN (TA-Lib warm-up) is written as an empty cell. The expected values come from
the PyPI package `TA-Lib` (import talib) called on exactly the arrays that were
written, after reading them back from the CSV text.

Usage: python3 scripts/talib_fixtures.py [OUTPUT_DIR]
"""

import datetime as dt
import math
import os
import sys

import numpy as np
import talib

COLUMNS = [
    "sma_20", "sma_50", "sma_200", "ema_20", "rsi_14", "macd", "macd_signal",
    "macd_hist", "atr_14", "bb_upper", "bb_middle", "bb_lower", "adx_14",
]


def weekdays(n, start=dt.date(2015, 1, 2)):
    out, d = [], start
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d.isoformat())
        d += dt.timedelta(days=1)
    return out


def gbm(rng, n, start, regimes, jump_prob=0.0, jump_scale=0.0, decimals=2):
    """Closes from GBM whose (drift, vol) switch at random regime boundaries."""
    closes = np.empty(n)
    price = start
    bounds = np.sort(rng.choice(np.arange(20, n - 20), size=len(regimes) - 1, replace=False))
    regime_of = np.searchsorted(bounds, np.arange(n), side="right")
    for i in range(n):
        mu, sigma = regimes[regime_of[i]]
        r = rng.normal(mu - 0.5 * sigma * sigma, sigma)
        if jump_prob and rng.random() < jump_prob:
            r += rng.normal(0.0, jump_scale)
        price = price * math.exp(r)
        closes[i] = price
    return np.round(closes, decimals)


def ohlcv(rng, closes, gap_scale, wick_scale, decimals, base_volume):
    n = len(closes)
    opens = np.empty(n)
    opens[0] = closes[0]
    gaps = rng.normal(0.0, gap_scale, n)
    opens[1:] = closes[:-1] * np.exp(gaps[1:])
    opens = np.round(opens, decimals)
    body_hi = np.maximum(opens, closes)
    body_lo = np.minimum(opens, closes)
    highs = np.round(body_hi * (1.0 + np.abs(rng.normal(0.0, wick_scale, n))), decimals)
    lows = np.round(body_lo * (1.0 - np.abs(rng.normal(0.0, wick_scale, n))), decimals)
    highs = np.maximum(highs, body_hi)
    lows = np.maximum(np.minimum(lows, body_lo), 10.0 ** -decimals)
    volume = np.round(base_volume * np.exp(rng.normal(0.0, 0.5, n))) + 1.0
    return opens, highs, lows, closes, volume


def case_gbm_long(rng):
    regimes = [(0.0004, 0.012), (-0.0006, 0.025), (0.0008, 0.009), (0.0, 0.018), (0.0003, 0.03)]
    c = gbm(rng, 2000, 100.0, regimes)
    return ohlcv(rng, c, 0.004, 0.008, 2, 2_000_000)


def case_penny(rng):
    regimes = [(0.001, 0.04), (-0.002, 0.06), (0.0015, 0.05), (-0.0005, 0.03)]
    raw = gbm(rng, 1000, 0.9, regimes, decimals=12)
    # Reflect the log-price path into [log 0.2, log 3] so it stays a penny stock
    # without sticking to a bound.
    lo, hi = math.log(0.2), math.log(3.0)
    width = hi - lo
    folded = np.mod(np.log(raw) - lo, 2.0 * width)
    folded = np.where(folded > width, 2.0 * width - folded, folded)
    c = np.clip(np.round(np.exp(lo + folded), 4), 0.2, 3.0)
    return ohlcv(rng, c, 0.01, 0.02, 4, 30_000_000)


def case_volatile(rng):
    regimes = [(0.0, 0.04), (0.002, 0.07), (-0.003, 0.05)]
    c = gbm(rng, 800, 50.0, regimes, jump_prob=0.04, jump_scale=0.15)
    return ohlcv(rng, c, 0.05, 0.03, 2, 5_000_000)


def case_flat(rng):
    """Long runs of identical closes and high == low bars (TA-Lib's zero branches)."""
    n = 600
    closes = np.empty(n)
    price = 20.0
    i = 0
    while i < n:
        run = int(rng.integers(1, 60)) if rng.random() < 0.5 else 1
        if rng.random() < 0.5:
            price = round(price * math.exp(rng.normal(0.0, 0.01)), 2)
        closes[i:i + run] = price
        i += run
    opens, highs, lows, closes, volume = ohlcv(rng, closes, 0.0, 0.004, 2, 100_000)
    # Whole stretches where the bar is a single print: open == high == low == close.
    flat = np.zeros(n, dtype=bool)
    flat[100:260] = True
    flat[400:470] = True
    flat |= rng.random(n) < 0.1
    for j in np.nonzero(flat)[0]:
        opens[j] = highs[j] = lows[j] = closes[j]
    # Every bar in 100..260 prints the same price, so TR, DM, gains and losses are 0.
    opens[100:260] = highs[100:260] = lows[100:260] = closes[100:260] = closes[100]
    # The first 60 bars too: flat since the start, TA-Lib's RSI, ADX and Bollinger
    # see sums that are exactly 0 (RSI 0, DX skipped so ADX 0, zero-width bands).
    opens[:60] = highs[:60] = lows[:60] = closes[:60] = closes[0]
    return opens, highs, lows, closes, volume


def case_short(rng):
    regimes = [(0.0005, 0.015), (-0.001, 0.02)]
    c = gbm(rng, 250, 35.0, regimes)
    return ohlcv(rng, c, 0.005, 0.01, 2, 800_000)


CASES = {
    "gbm_long": (11, case_gbm_long),
    "penny": (22, case_penny),
    "volatile": (33, case_volatile),
    "flat": (44, case_flat),
    "short": (55, case_short),
}


def indicators(h, l, c):
    macd, signal, hist = talib.MACD(c, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    return {
        "sma_20": talib.SMA(c, 20),
        "sma_50": talib.SMA(c, 50),
        "sma_200": talib.SMA(c, 200),
        "ema_20": talib.EMA(c, 20),
        "rsi_14": talib.RSI(c, 14),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": hist,
        "atr_14": talib.ATR(h, l, c, 14),
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
        "adx_14": talib.ADX(h, l, c, 14),
    }


def fmt(v):
    v = float(v)
    return "" if math.isnan(v) else repr(v)


def write_case(out_dir, name, seed, make):
    rng = np.random.default_rng(seed)
    o, h, l, c, v = (np.asarray(a, dtype=np.float64) for a in make(rng))
    assert np.all(h >= np.maximum(o, c)) and np.all(l <= np.minimum(o, c)) and np.all(v > 0)
    dates = weekdays(len(c))
    lines = ["date,open,high,low,close,volume"]
    for i in range(len(c)):
        lines.append(",".join([dates[i]] + [repr(float(x[i])) for x in (o, h, l, c, v)]))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, f"{name}.input.csv"), "w") as f:
        f.write(text)
    # Re-read what was written so TA-Lib sees exactly the bytes the Rust test reads.
    rows = [r.split(",") for r in text.splitlines()[1:]]
    cols = [np.array([float(r[k]) for r in rows]) for k in range(1, 6)]
    assert all(np.array_equal(a, b) for a, b in zip(cols, (o, h, l, c, v)))
    out = indicators(cols[1], cols[2], cols[3])
    lines = ["date," + ",".join(COLUMNS)]
    for i in range(len(c)):
        lines.append(",".join([dates[i]] + [fmt(out[k][i]) for k in COLUMNS]))
    with open(os.path.join(out_dir, f"{name}.expected.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "tests", "fixtures", "talib")
    out_dir = sys.argv[1] if len(sys.argv) > 1 else default
    os.makedirs(out_dir, exist_ok=True)
    for name, (seed, make) in CASES.items():
        write_case(out_dir, name, seed, make)
        print(f"wrote {name} (talib {talib.__version__}, numpy {np.__version__})")


if __name__ == "__main__":
    main()
