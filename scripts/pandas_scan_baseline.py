#!/usr/bin/env python3
"""pandas + TA-Lib baseline of technic's scan (the rules in docs/scan-rules.md).

The kind of code the Python service technic replaces: one ``pd.read_csv`` per
symbol file, TA-Lib per symbol, a plain Python loop, a DataFrame to rank.
It is the reference for the cold-CSV benchmark, so it does the same work as
``technic scan`` over a CSV directory: load, compute the same features
and scores at the latest bar, filter, rank.

Usage: python3 scripts/pandas_scan_baseline.py DIR [--top N] [--json OUT]
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import pandas as pd
import talib

WEIGHTS = {"trend": 3.0, "momentum": 3.0, "volume": 2.0,
           "volatility": 1.0, "oscillator": 1.0, "breakout": 1.0}
MIN_BARS = 20
MIN_PRICE = 1.0
MIN_DOLLAR_VOL = 250_000.0
ACCOUNT = 100_000.0
RISK_PCT = 1.0
TARGET_RR = 2.0
STOP_ATR = 1.5
STOP_MIN_ATR, STOP_MAX_ATR = 0.5, 3.0

NAN = float("nan")


def isnan(x):
    return x is None or (isinstance(x, float) and math.isnan(x))


def sign(a, b):
    """+1 / -1 / 0; a comparison with a NaN side scores 0."""
    if isnan(a) or isnan(b):
        return 0
    return 1 if a > b else (-1 if a < b else 0)


def last(arr):
    return float(arr[-1])


def load_bars(path):
    df = pd.read_csv(path)
    df.columns = [str(c).strip().lower() for c in df.columns]
    dcol = "date" if "date" in df.columns else "timestamp"
    if dcol not in df.columns:
        raise ValueError("no date/timestamp column")
    for c in ("open", "high", "low", "close", "volume"):
        if c not in df.columns:
            raise ValueError(f"missing column {c}")
    if not pd.api.types.is_numeric_dtype(df[dcol]):
        df[dcol] = pd.to_datetime(df[dcol])
    df = df.sort_values(dcol, kind="mergesort").reset_index(drop=True)
    df = df.dropna(subset=["open", "high", "low", "close", "volume"])
    return df


def features(df):
    o = df["open"].to_numpy(dtype=np.float64)
    h = df["high"].to_numpy(dtype=np.float64)
    l = df["low"].to_numpy(dtype=np.float64)
    c = df["close"].to_numpy(dtype=np.float64)
    v = df["volume"].to_numpy(dtype=np.float64)
    n = len(c)
    close = c[-1]
    f = {"close": close, "bars": n}

    for k in (1, 5, 21):
        f[f"ret_{k}d"] = close / c[-1 - k] - 1.0 if n > k else NAN

    rets = df["close"].pct_change()
    f["vol_realized_20"] = (rets.iloc[-20:].std(ddof=1) * math.sqrt(252.0)
                            if n >= 21 else NAN)

    atr = last(talib.ATR(h, l, c, timeperiod=14))
    f["atr_14"] = atr
    f["atr_pct_14"] = atr / close
    for p in (20, 50, 200):
        f[f"sma_{p}"] = last(talib.SMA(c, timeperiod=p))
    f["rsi_14"] = last(talib.RSI(c, timeperiod=14))
    f["macd_hist"] = last(talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)[2])

    if n >= 20:
        w = df["close"].iloc[-20:]
        f["pct_from_high20"] = (close / w.max() - 1.0) * 100.0
        f["pct_from_low20"] = (close / w.min() - 1.0) * 100.0
        f["dollar_vol_20"] = float((df["close"] * df["volume"]).iloc[-20:].mean())
    else:
        f["pct_from_high20"] = f["pct_from_low20"] = f["dollar_vol_20"] = NAN

    if n >= 21:
        base = v[-21:-1].mean()
        f["vol_spike_ratio"] = v[-1] / base if base > 0 else NAN
    else:
        f["vol_spike_ratio"] = NAN

    if n >= 11:
        gaps = (o[1:] - c[:-1]) / c[:-1]
        f["gap_mean_10"] = float(gaps[-10:].mean())
    else:
        f["gap_mean_10"] = NAN
    return f


def scores(f):
    close, rsi, mh = f["close"], f["rsi_14"], f["macd_hist"]
    s20, s50, s200 = f["sma_20"], f["sma_50"], f["sma_200"]

    trend = sign(s20, s50) + sign(s50, s200) + sign(close, s20)

    mom = 0
    if not isnan(rsi):
        mom += int(rsi > 55) + int(rsi > 65) - int(rsi < 45) - int(rsi < 35)
    mom += sign(mh, 0.0)
    mom = max(-3, min(3, mom))

    vs = f["vol_spike_ratio"]
    if isnan(vs):
        vol = 0
    elif vs > 1.5:
        vol = 2
    elif vs > 1.2:
        vol = 1
    elif vs < 0.7:
        vol = -1
    else:
        vol = 0

    ap = f["atr_pct_14"]
    volat = 0 if isnan(ap) else (1 if ap < 0.01 else (-1 if ap > 0.03 else 0))

    if isnan(rsi):
        osc = 0
    elif 55 <= rsi <= 65:
        osc = 1
    elif rsi > 70 or rsi < 40:
        osc = -1
    else:
        osc = 0

    brk = 0
    hi, lo, r5 = f["pct_from_high20"], f["pct_from_low20"], f["ret_5d"]
    if not isnan(hi) and hi > -1:
        brk += 1
    if not isnan(lo) and lo < 1:
        brk -= 1
    if not isnan(r5):
        brk += int(r5 > 0.02) - int(r5 < -0.02)

    sub = {"trend": int(trend), "momentum": int(mom), "volume": vol,
           "volatility": volat, "oscillator": osc, "breakout": int(brk)}
    raw = sum(WEIGHTS[k] * sub[k] for k in sub)
    risk = NAN if isnan(ap) else min(1.0, max(0.0, 1.0 - 50.0 * ap))
    tr = raw * (0.7 + 0.3 * risk)

    t, m = sub["trend"], sub["momentum"]
    if tr >= 22 and t >= 2 and m >= 1:
        signal = "Strong Long"
    elif tr >= 16 and t >= 1:
        signal = "Long"
    elif tr <= -22 and t <= -2 and m <= -1:
        signal = "Strong Short"
    elif tr <= -16 and t <= -1:
        signal = "Short"
    else:
        signal = "Avoid"
    sub.update(raw_score=raw, risk_score=risk, tech_rating=tr, signal=signal)
    return sub


def trade_plan(close, atr, signal):
    short = signal in ("Short", "Strong Short")
    if isnan(atr) or atr <= 0:
        return {"entry": close, "stop": NAN, "target": NAN, "position_size": 0}
    dist = min(max(STOP_ATR * atr, STOP_MIN_ATR * atr), STOP_MAX_ATR * atr)
    if short:
        stop = close + dist
        target = close - TARGET_RR * dist
    else:
        stop = close - dist
        target = close + TARGET_RR * dist
    size = int(math.floor(ACCOUNT * RISK_PCT / 100.0 / dist))
    return {"entry": close, "stop": stop, "target": target, "position_size": size}


def scan(data_dir, top_n):
    names = sorted(os.listdir(data_dir))
    universe = None
    if "universe.csv" in names:
        universe = pd.read_csv(os.path.join(data_dir, "universe.csv"))
        universe.columns = [c.lower() for c in universe.columns]
        universe = universe.set_index("symbol")
    files = [fn for fn in names
             if fn.lower().endswith(".csv") and fn.lower() != "universe.csv"]

    rows, failures = [], []
    for fn in files:
        sym = fn[:-4]
        try:
            df = load_bars(os.path.join(data_dir, fn))
            if len(df) == 0:
                raise ValueError("no bars")
            f = features(df)
            s = scores(f)
            row = {"symbol": sym, **f, **s, **trade_plan(f["close"], f["atr_14"], s["signal"])}
            if universe is not None and sym in universe.index:
                row["sector"] = universe.at[sym, "sector"]
            rows.append(row)
        except Exception as e:  # a bad file is a per-symbol failure, never fatal
            failures.append((sym, type(e).__name__, str(e)))

    res = pd.DataFrame(rows)
    if len(res):
        res = res[(res["bars"] >= MIN_BARS)
                  & (res["close"] >= MIN_PRICE)
                  & (res["dollar_vol_20"] >= MIN_DOLLAR_VOL)]
        res = res.sort_values(["tech_rating", "symbol"], ascending=[False, True],
                              na_position="last", kind="mergesort")
        res = res.head(top_n).reset_index(drop=True)
    return files, res, failures


def jnum(x):
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--json", dest="json_out")
    a = ap.parse_args()

    t0 = time.perf_counter()
    files, res, failures = scan(a.dir, a.top)
    elapsed = time.perf_counter() - t0

    cols = ["symbol", "tech_rating", "signal", "trend", "momentum", "volume",
            "volatility", "oscillator", "breakout", "rsi_14", "macd_hist",
            "atr_pct_14", "close"]
    if len(res):
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(res[cols + ["stop", "target", "position_size"]].to_string(index=True))
    for sym, code, msg in failures[:10]:
        print(f"failed: {sym} {code}: {msg}", file=sys.stderr)
    if len(failures) > 10:
        print(f"... {len(failures) - 10} more failures", file=sys.stderr)
    print(f"baseline: {len(files)} files, {len(res)} results in {elapsed:.3f} s")

    if a.json_out:
        out = []
        for r in res.to_dict("records"):
            d = {}
            for c in cols:
                v = r[c]
                d[c] = v if isinstance(v, str) else (int(v) if c in
                       ("trend", "momentum", "volume", "volatility", "oscillator",
                        "breakout") else jnum(v))
            out.append(d)
        with open(a.json_out, "w") as fh:
            json.dump({"results": out}, fh, indent=1)


if __name__ == "__main__":
    main()
