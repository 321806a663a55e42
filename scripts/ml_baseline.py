#!/usr/bin/env python3
"""The gradient-boosted baseline for technic's alpha model, on the same rows.

    python3 scripts/ml_baseline.py ROWS.csv

ROWS.csv is what `technic ml train --dataset-out ROWS.csv` writes: date, symbol, split
(train / embargo / holdout / unlabelled), the model inputs by name, and label_{h}d per
horizon (the forward return, demeaned per date). Per horizon, LightGBM (depth-8 trees with row and feature subsampling and an L2 penalty,
200 rounds: conventional settings for daily alpha) is fit on the train rows and
judged on the holdout rows exactly as technic judges its own model: IC (Pearson per date,
averaged), Rank IC (Spearman per date), ICIR and Rank ICIR (mean / standard deviation of
the daily figures), and the top-minus-bottom-decile spread. Prints one JSON object:
{"horizons": {"5": {...}, ...}, "load_seconds", "train_seconds"} (training only, both
horizons, on this machine's cores).

Needs pandas, numpy, scipy and lightgbm (pip install pandas numpy scipy lightgbm).
"""

import json
import sys
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import rankdata


def daily_figures(frame, pred, label):
    ics, rank_ics, spreads = [], [], []
    for _, day in frame.groupby("date", sort=True):
        p, y = day[pred].to_numpy(), day[label].to_numpy()
        if len(p) < 10 or np.std(p) == 0 or np.std(y) == 0:
            continue
        ics.append(np.corrcoef(p, y)[0, 1])
        rank_ics.append(np.corrcoef(rankdata(p), rankdata(y))[0, 1])
        order = np.argsort(p, kind="stable")
        k = max(1, len(p) // 10)
        spreads.append(y[order[-k:]].mean() - y[order[:k]].mean())

    def ir(xs):
        sd = np.std(xs, ddof=1) if len(xs) > 1 else 0.0
        return float(np.mean(xs) / sd) if sd > 0 else None

    return {
        "ic": float(np.mean(ics)),
        "rank_ic": float(np.mean(rank_ics)),
        "icir": ir(ics),
        "rank_icir": ir(rank_ics),
        "spread": float(np.mean(spreads)),
        "dates": len(ics),
        "symbols": int(frame["symbol"].nunique()),
    }


def main(path):
    t = time.perf_counter()
    rows = pd.read_csv(path)
    load_seconds = time.perf_counter() - t
    inputs = [c for c in rows.columns if c not in ("date", "symbol", "split") and not c.startswith("label_")]
    labels = [c for c in rows.columns if c.startswith("label_")]
    train = rows[rows["split"] == "train"]
    holdout = rows[rows["split"] == "holdout"].copy()
    params = {
        "objective": "regression",
        "learning_rate": 0.05,
        "num_leaves": 63,
        "max_depth": 8,
        "min_data_in_leaf": 200,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "verbose": -1,
        "seed": 42,
        "deterministic": True,
    }
    out, train_seconds = {}, 0.0
    for label in labels:
        fit = train[train[label].notna()]
        t = time.perf_counter()
        booster = lgb.train(params, lgb.Dataset(fit[inputs], fit[label]), num_boost_round=200)
        train_seconds += time.perf_counter() - t
        judged = holdout[holdout[label].notna()].copy()
        judged["pred"] = booster.predict(judged[inputs])
        horizon = label[len("label_"):-1]
        out[horizon] = daily_figures(judged, "pred", label)
    print(json.dumps({"horizons": out, "load_seconds": load_seconds, "train_seconds": train_seconds}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
