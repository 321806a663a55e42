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

/// The one split of `ds` for every horizon: the longest sets the embargo. `Err` says why
/// the data cannot be split.
pub fn split(ds: &Dataset, opts: &Options) -> Result<Split, String> {
    let longest = ds.horizons.iter().copied().max().unwrap_or(0);
    walk_forward(
        ds.dates.len(),
        opts.holdout_days,
        longest,
        opts.embargo_days,
    )
}

/// Trains one network per horizon of `ds`; `Err` says why the data cannot be split.
pub fn train(ds: &Dataset, opts: &Options) -> Result<Model, String> {
    let split = split(ds, opts)?;
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
    hm.accepted = hm.metrics.earned(opts.min_t_stat);
    hm
}

#[cfg(test)]
mod tests {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;

    use super::*;
    use crate::config::{Architecture, Settings};
    use crate::data::{MarketData, SyntheticProvider};
    use crate::ml::dataset::load;

    /// 150 symbols × 300 days of the synthetic market with this seed and planted strength.
    async fn market(seed: u64, alpha_strength: f64) -> Dataset {
        let mut s = Settings::defaults().data.synthetic;
        s.seed = seed;
        s.symbols = 150;
        s.days = 300;
        s.alpha_strength = alpha_strength;
        let p = SyntheticProvider::new(&s);
        let symbols: Vec<String> = p
            .universe()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.symbol)
            .collect();
        let (ds, failed) = load(&p, &symbols, 300, 250, 60, &[5, 10]).await;
        assert!(failed.is_empty());
        ds
    }

    fn options() -> Options {
        Options {
            holdout_days: 60,
            embargo_days: 10,
            fit: Fit {
                architecture: Architecture::Linear,
                hidden: 16,
                epochs: 100,
                learning_rate: 0.02,
                seed: 42,
            },
            min_t_stat: 2.0,
            namespace: String::new(),
            lookback_days: 250,
            min_bars: 60,
        }
    }

    fn figures(m: &Model) -> Vec<&Holdout> {
        m.horizons.iter().map(|h| &h.metrics).collect()
    }

    #[tokio::test]
    async fn a_martingale_market_is_refused_whatever_its_seed() {
        for seed in [1, 2, 3] {
            let m = train(&market(seed, 0.0).await, &options()).unwrap();
            assert!(!m.accepted, "seed {seed}: {:#?}", figures(&m));
        }
    }

    #[tokio::test]
    async fn labels_shuffled_across_dates_destroy_the_planted_edge() {
        let mut ds = market(42, 0.3).await;
        let planted = train(&ds, &options()).unwrap();
        assert!(planted.accepted, "{:#?}", figures(&planted));
        // Every label moves to another date and symbol (one permutation of them all), so
        // the inputs no longer meet what followed them. (The same permutation of dates for
        // every symbol would keep each symbol's own average, which a persistent signal
        // still predicts in sample.)
        let mut labels: Vec<Vec<Option<f64>>> = ds
            .by_date
            .iter()
            .flatten()
            .map(|s| s.labels.clone())
            .collect();
        labels.shuffle(&mut rand_pcg::Pcg64Mcg::seed_from_u64(7));
        for (s, l) in ds.by_date.iter_mut().flatten().zip(labels) {
            s.labels = l;
        }
        let shuffled = train(&ds, &options()).unwrap();
        assert!(!shuffled.accepted, "{:#?}", figures(&shuffled));
        for h in &shuffled.horizons {
            let ic = h.metrics.rank_ic.unwrap();
            assert!(ic.abs() < 0.05, "{}d: {ic}", h.horizon);
        }
    }

    #[tokio::test]
    async fn the_holdout_follows_training_after_the_embargo_and_the_figures_are_reproducible() {
        let ds = market(42, 0.3).await;
        let a = train(&ds, &options()).unwrap();
        for h in &a.horizons {
            let last_train = ds.dates.iter().position(|d| *d == h.train.last).unwrap();
            let first_holdout = ds.dates.iter().position(|d| *d == h.holdout.first).unwrap();
            // No training label (`horizon` dates ahead) reaches the holdout.
            assert!(last_train + 10 < first_holdout, "{h:?}");
            assert_eq!(h.holdout.dates, 60);
        }
        let b = train(&ds, &options()).unwrap();
        assert_eq!(
            (a.horizons[0].layers.clone(), figures(&a)),
            (b.horizons[0].layers.clone(), figures(&b)),
            "the same data and seed train the same model"
        );
    }
}
