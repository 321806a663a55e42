//! Training rows of one symbol: at every date, the model's inputs as a scan at that date
//! would compute them, and the return over each horizon after it.
//!
//! A row at date `d` is built from the scan's window ending at `d` (`Bars::window(d,
//! lookback)`, the same call a scan with `as_of = d` makes) and nothing later; its label
//! for horizon `h` is `close[d + h] / close[d] − 1`, absent when the series ends first.
//! Building each row from its own window costs O(lookback) per date, a few seconds for
//! 5,000 symbols × 500 dates, and makes the rows equal to the scan's features by
//! construction, where an incremental pass would have to be proven equal.

use chrono::NaiveDate;

use super::features::{self, COUNT};
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
    async fn the_inputs_see_the_synthetic_markets_planted_factor_and_nothing_without_it() {
        let none = volume_input_vs_5d_return(0.0).await;
        let planted = volume_input_vs_5d_return(0.3).await;
        assert!(none.abs() < 0.05, "{none}");
        assert!(planted > 0.1, "{planted}");
    }
}
