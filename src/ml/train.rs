//! Training: from a [`Dataset`] to a [`Model`] with honest holdout figures.
//!
//! One walk-forward split for every horizon (the longest sets the embargo): the holdout
//! is the last dates whose longest label is known, training ends an embargo before it. The
//! normalisation is fitted on training dates only, each horizon's network on its
//! training labels (winsorised at 5 standard deviations and divided by that deviation), and
//! then, once, it predicts the holdout, whose figures decide whether it is accepted.

use chrono::Utc;

use super::dataset::Dataset;
use super::features::{COUNT, NAMES};
use super::metrics::{std_dev, Holdout};
use super::model::{HorizonModel, Model, Period, Scaling, FORMAT};
use super::net::{self, Fit};
use super::split::{walk_forward, Split};

/// What a training run is asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub holdout_days: usize,
    /// Dates left out between training and holdout (at least the longest horizon).
    pub embargo_days: usize,
    pub fit: Fit,
    pub min_t_stat: f64,
    pub namespace: String,
    pub lookback_days: usize,
    pub min_bars: usize,
}

/// Trains one network per horizon of `ds`; `Err` says why the data cannot be split.
pub fn train(ds: &Dataset, opts: &Options) -> Result<Model, String> {
    let longest = ds.horizons.iter().copied().max().unwrap_or(0);
    let split = walk_forward(
        ds.dates.len(),
        opts.holdout_days,
        longest,
        opts.embargo_days,
    )?;
    let normalisation: Vec<Scaling> = (0..COUNT)
        .map(|k| {
            Scaling::fit(
                ds.by_date[split.train.clone()]
                    .iter()
                    .flatten()
                    .map(|s| s.inputs[k])
                    .collect(),
            )
        })
        .collect();
    let mut model = Model {
        format: FORMAT,
        features: NAMES.iter().map(|n| n.to_string()).collect(),
        normalisation,
        architecture: opts.fit.architecture,
        namespace: opts.namespace.clone(),
        lookback_days: opts.lookback_days,
        min_bars: opts.min_bars,
        trained_at: Utc::now(),
        min_t_stat: opts.min_t_stat,
        accepted: false,
        horizons: Vec::new(),
    };
    for (h, &horizon) in ds.horizons.iter().enumerate() {
        let hm = train_horizon(ds, &model, &split, h, horizon, opts);
        model.horizons.push(hm);
    }
    model.accepted = model.horizons.iter().all(|h| h.accepted);
    Ok(model)
}

fn period(ds: &Dataset, dates: &std::ops::Range<usize>) -> Period {
    Period {
        first: ds.dates[dates.start],
        last: ds.dates[dates.end - 1],
        dates: dates.len(),
    }
}

fn train_horizon(
    ds: &Dataset,
    model: &Model,
    split: &Split,
    h: usize,
    horizon: usize,
    opts: &Options,
) -> HorizonModel {
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for s in ds.by_date[split.train.clone()].iter().flatten() {
        if let Some(l) = s.labels[h] {
            rows.push(s.inputs);
            labels.push(l);
        }
    }
    let sd = std_dev(&labels).filter(|s| *s > 0.0).unwrap_or(1.0);
    let targets: Vec<f32> = labels
        .iter()
        .map(|l| (l / sd).clamp(-5.0, 5.0) as f32)
        .collect();
    let layers = net::fit(&model.normalise(&rows), &targets, &opts.fit);
    let mut hm = HorizonModel {
        horizon,
        train: period(ds, &split.train),
        holdout: period(ds, &split.holdout),
        metrics: Holdout::of(&[], horizon, 0),
        accepted: false,
        label_scale: sd,
        layers,
    };
    let mut per_date = Vec::new();
    let mut symbols = std::collections::HashSet::new();
    for samples in &ds.by_date[split.holdout.clone()] {
        let labelled: Vec<_> = samples.iter().filter(|s| s.labels[h].is_some()).collect();
        let rows: Vec<[f64; COUNT]> = labelled.iter().map(|s| s.inputs).collect();
        let pred = hm.predict(&model.normalise(&rows), rows.len());
        let realised: Vec<f64> = labelled.iter().filter_map(|s| s.labels[h]).collect();
        symbols.extend(labelled.iter().map(|s| s.symbol));
        per_date.push((pred, realised));
    }
    hm.metrics = Holdout::of(&per_date, horizon, symbols.len());
    hm.accepted = hm.metrics.t_stat.is_some_and(|t| t >= opts.min_t_stat);
    hm
}
