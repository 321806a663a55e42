//! Training rows of one symbol: at every date, the model's inputs as a scan at that date
//! would compute them, and the return over each horizon after it.
//!
//! A row at date `d` is built from the scan's window ending at `d` (`Bars::window(d,
//! lookback)`, the same call a scan with `as_of = d` makes) and nothing later; its label
//! for horizon `h` is `close[d + h] / close[d] − 1`, absent when the series ends first.
//! Building each row from its own window costs O(lookback) per date, a few seconds for
//! 5,000 symbols × 500 dates, and makes the rows equal to the scan's features by
//! construction, where an incremental pass would have to be proven equal.

use std::io::Write;

use chrono::NaiveDate;

use rayon::prelude::*;

use super::features::{self, COUNT};
use super::split::Split;
use crate::data::{BarRange, DataError, MarketData};
use crate::market::Bars;
use crate::scan::compute_features;

/// One symbol at one date.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub date: NaiveDate,
    pub inputs: [f64; COUNT],
    /// The return over each horizon asked for, in order; `None` past the series' end.
    pub labels: Vec<Option<f64>>,
}

/// A row for every date with at least `min_bars` bars up to it (see the module doc).
pub fn symbol_rows(bars: &Bars, lookback: usize, min_bars: usize, horizons: &[usize]) -> Vec<Row> {
    let n = bars.len();
    (min_bars.max(1) - 1..n)
        .filter_map(|d| {
            let date = bars.dates[d];
            let sf = compute_features(bars.window(Some(date), lookback))?;
            let labels = horizons
                .iter()
                .map(|&h| {
                    let later = *bars.close.get(d + h)?;
                    let r = later / bars.close[d] - 1.0;
                    r.is_finite().then_some(r)
                })
                .collect();
            Some(Row {
                date,
                inputs: features::vector(&sf.features),
                labels,
            })
        })
        .collect()
}

/// One symbol's row at a date, within a [`Dataset`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Index into [`Dataset::symbols`].
    pub symbol: usize,
    pub inputs: [f64; COUNT],
    /// Per horizon, the forward return minus the mean of that date's labelled symbols
    /// (what a cross-sectional model predicts: which symbols beat the others).
    pub labels: Vec<Option<f64>>,
}

/// Every symbol's rows, grouped by date in ascending order: what a split by date cuts.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub horizons: Vec<usize>,
    pub symbols: Vec<String>,
    pub dates: Vec<NaiveDate>,
    /// Per date (same order as `dates`), its samples in symbol order.
    pub by_date: Vec<Vec<Sample>>,
}

impl Dataset {
    /// Groups the rows of each symbol (as [`symbol_rows`] made them, `horizons` in the same
    /// order) by date and demeans each date's labels.
    pub fn from_rows(horizons: &[usize], per_symbol: Vec<(String, Vec<Row>)>) -> Dataset {
        let mut dates: Vec<NaiveDate> = per_symbol
            .iter()
            .flat_map(|(_, rows)| rows.iter().map(|r| r.date))
            .collect();
        dates.sort_unstable();
        dates.dedup();
        let mut by_date: Vec<Vec<Sample>> = vec![Vec::new(); dates.len()];
        let mut symbols = Vec::with_capacity(per_symbol.len());
        for (i, (symbol, rows)) in per_symbol.into_iter().enumerate() {
            symbols.push(symbol);
            for row in rows {
                let Ok(d) = dates.binary_search(&row.date) else {
                    continue;
                };
                by_date[d].push(Sample {
                    symbol: i,
                    inputs: row.inputs,
                    labels: row.labels,
                });
            }
        }
        for samples in &mut by_date {
            for h in 0..horizons.len() {
                let known: Vec<f64> = samples.iter().filter_map(|s| s.labels[h]).collect();
                if known.is_empty() {
                    continue;
                }
                let mean = known.iter().sum::<f64>() / known.len() as f64;
                for s in samples.iter_mut() {
                    if let Some(l) = s.labels[h].as_mut() {
                        *l -= mean;
                    }
                }
            }
        }
        Dataset {
            horizons: horizons.to_vec(),
            symbols,
            dates,
            by_date,
        }
    }
}

impl Dataset {
    /// The dataset as CSV, for other tools to train on the same rows: `date,symbol,split`
    /// (`train`, `embargo`, `holdout`, or `unlabelled` after the last holdout date), the
    /// inputs by name (raw, before normalisation; empty where missing), then
    /// `label_{h}d` per horizon (demeaned per date; empty where unknown).
    pub fn write_csv(&self, split: &Split, out: &mut impl Write) -> std::io::Result<()> {
        let mut header = String::from("date,symbol,split");
        for name in features::NAMES {
            header.push(',');
            header.push_str(name);
        }
        for h in &self.horizons {
            header.push_str(&format!(",label_{h}d"));
        }
        writeln!(out, "{header}")?;
        let number = |x: f64| {
            if x.is_finite() {
                x.to_string()
            } else {
                String::new()
            }
        };
        for (d, samples) in self.by_date.iter().enumerate() {
            let part = if split.train.contains(&d) {
                "train"
            } else if split.holdout.contains(&d) {
                "holdout"
            } else if d < split.holdout.start {
                "embargo"
            } else {
                "unlabelled"
            };
            for s in samples {
                let mut line = format!("{},{},{part}", self.dates[d], self.symbols[s.symbol]);
                for x in s.inputs {
                    line.push(',');
                    line.push_str(&number(x));
                }
                for l in &s.labels {
                    line.push(',');
                    line.push_str(&l.map(number).unwrap_or_default());
                }
                writeln!(out, "{line}")?;
            }
        }
        Ok(())
    }
}

/// Symbols loaded per provider call (a remote provider's bulk path and rate limit apply).
const CHUNK: usize = 256;

/// A dataset of `symbols` from `provider`: the last `history_days` bars of each, rows as
/// [`symbol_rows`] builds them (on the compute pool). Symbols the provider cannot load are returned
/// with their error, and left out.
pub async fn load(
    provider: &dyn MarketData,
    symbols: &[String],
    history_days: usize,
    lookback: usize,
    min_bars: usize,
    horizons: &[usize],
) -> (Dataset, Vec<(String, DataError)>) {
    let mut per_symbol = Vec::with_capacity(symbols.len());
    let mut failed = Vec::new();
    for chunk in symbols.chunks(CHUNK) {
        let loaded = provider
            .load_many(chunk, BarRange::new(None, history_days))
            .await;
        let bars: Vec<(String, Bars)> = chunk
            .iter()
            .cloned()
            .zip(loaded)
            .filter_map(|(symbol, b)| match b {
                Ok(b) => Some((symbol, b)),
                Err(e) => {
                    failed.push((symbol, e));
                    None
                }
            })
            .collect();
        let horizons = horizons.to_vec();
        per_symbol.extend(
            crate::cpu::run(move || {
                bars.into_par_iter()
                    .map(|(symbol, b)| {
                        let rows = symbol_rows(&b, lookback, min_bars, &horizons);
                        (symbol, rows)
                    })
                    .collect::<Vec<_>>()
            })
            .await,
        );
    }
    (Dataset::from_rows(horizons, per_symbol), failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::data::{BarRange, MarketData, SyntheticProvider};

    async fn bars(symbol_index: usize, alpha_strength: f64) -> Bars {
        let mut s = Settings::defaults().data.synthetic;
        s.symbols = 20;
        s.days = 300;
        s.alpha_strength = alpha_strength;
        let p = SyntheticProvider::new(&s);
        let u = p.universe().await.unwrap();
        p.daily_bars(&u[symbol_index].symbol, BarRange::new(None, 300))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_row_is_the_scan_on_bars_cut_at_its_date_and_labels_look_ahead_only() {
        let b = bars(3, 0.0).await;
        let rows = symbol_rows(&b, 120, 30, &[5, 10]);
        assert_eq!(rows.len(), 300 - 29);
        for d in [29, 60, 150, 200, 289, 295, 299] {
            let row = &rows[d - 29];
            assert_eq!(row.date, b.dates[d]);
            // The same symbol with every bar after d removed: what a scan on that day saw.
            let cut = b.window(Some(b.dates[d]), usize::MAX).to_bars();
            let sf = compute_features(cut.window(None, 120)).unwrap();
            let want = features::vector(&sf.features);
            assert!(
                row.inputs
                    .iter()
                    .zip(&want)
                    .all(|(a, w)| a.to_bits() == w.to_bits()),
                "{d}: {:?} vs {want:?}",
                row.inputs
            );
            let label = |h: usize| (d + h < 300).then(|| b.close[d + h] / b.close[d] - 1.0);
            assert_eq!(row.labels, vec![label(5), label(10)], "{d}");
        }
    }

    /// Pooled over 20 symbols: the Spearman correlation of the volume-spike input with the
    /// 5-day return after it.
    async fn volume_input_vs_5d_return(alpha_strength: f64) -> f64 {
        let spike = features::NAMES
            .iter()
            .position(|n| *n == "log_vol_spike_20")
            .unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..20 {
            for row in symbol_rows(&bars(i, alpha_strength).await, 120, 30, &[5]) {
                if let (Some(label), v) = (row.labels[0], row.inputs[spike]) {
                    if v.is_finite() {
                        x.push(v);
                        y.push(label);
                    }
                }
            }
        }
        crate::ml::metrics::spearman(&x, &y).unwrap()
    }

    #[tokio::test]
    async fn a_dataset_groups_rows_by_date_and_demeans_each_dates_labels() {
        let mut per_symbol = Vec::new();
        for i in 0..5 {
            let b = bars(i, 0.0).await;
            per_symbol.push((format!("S{i}"), symbol_rows(&b, 120, 30, &[5])));
        }
        let raw = per_symbol.clone();
        let ds = Dataset::from_rows(&[5], per_symbol);
        assert_eq!(ds.dates.len(), 271);
        assert!(ds.dates.windows(2).all(|w| w[0] < w[1]));
        for (d, samples) in ds.by_date.iter().enumerate() {
            assert_eq!(samples.len(), 5, "every symbol on every date");
            let labels: Vec<f64> = samples.iter().filter_map(|s| s.labels[0]).collect();
            if d < 266 {
                assert_eq!(labels.len(), 5);
                assert!(labels.iter().sum::<f64>().abs() < 1e-12, "demeaned");
            } else {
                assert!(labels.is_empty(), "no label within 5 dates of the end");
            }
            for s in samples {
                let row = &raw[s.symbol].1[d];
                assert_eq!(row.date, ds.dates[d]);
                assert_eq!(row.inputs.map(f64::to_bits), s.inputs.map(f64::to_bits));
            }
        }
    }

    #[tokio::test]
    async fn the_csv_holds_every_row_with_its_split_inputs_and_labels() {
        let b = bars(0, 0.0).await;
        let rows = symbol_rows(&b, 120, 30, &[5]);
        let ds = Dataset::from_rows(&[5], vec![("S0".into(), rows.clone())]);
        let split = crate::ml::split::walk_forward(ds.dates.len(), 50, 5, 10).unwrap();
        let mut out = Vec::new();
        ds.write_csv(&split, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(lines[0][..4], ["date", "symbol", "split", "ret_1d"]);
        assert_eq!(lines[0].last(), Some(&"label_5d"));
        assert_eq!(lines.len(), 1 + rows.len());
        let count = |part: &str| lines.iter().filter(|l| l[2] == part).count();
        assert_eq!(
            [
                count("train"),
                count("embargo"),
                count("holdout"),
                count("unlabelled")
            ],
            [split.train.len(), 10, 50, 5]
        );
        for (line, row) in lines[1..].iter().zip(&rows) {
            assert_eq!((line[0], line[1]), (row.date.to_string().as_str(), "S0"));
            let parsed = |x: &str| x.parse::<f64>().ok();
            for (text, x) in line[3..3 + COUNT].iter().zip(row.inputs) {
                assert_eq!(parsed(text), x.is_finite().then_some(x), "{line:?}");
            }
            // One symbol: demeaned per date, every label is 0.
            assert_eq!(parsed(line[3 + COUNT]), row.labels[0].map(|_| 0.0));
        }
    }

    #[tokio::test]
    async fn the_inputs_see_the_synthetic_markets_planted_factor_and_nothing_without_it() {
        let none = volume_input_vs_5d_return(0.0).await;
        let planted = volume_input_vs_5d_return(0.3).await;
        assert!(none.abs() < 0.05, "{none}");
        assert!(planted > 0.1, "{planted}");
    }
}
