//! How well a model's predictions order the symbols' realised forward returns on the
//! holdout, in the figures quant research reports (Qlib's IC, Rank IC and ICIR):
//!
//! - per date, the Pearson correlation of predictions and realised returns (IC) and the
//!   Spearman one (Rank IC: Pearson of average ranks, ties sharing their mean rank);
//! - across dates, their means, and the mean over the standard deviation (ICIR);
//! - the t-statistics of the mean daily Rank IC and of the mean daily IC, Newey–West with
//!   `horizon − 1` lags: daily ICs of a `horizon`-day return overlap, so a plain
//!   t-statistic would overstate them;
//! - the top-minus-bottom decile spread: per date, the mean return of the tenth of symbols
//!   predicted highest minus that of the tenth predicted lowest, averaged over dates.
//!
//! A date with fewer than 3 symbols or without spread in either series has no IC; one
//! with fewer than 10 symbols has no decile spread.

use serde::{Deserialize, Serialize};

/// Pearson correlation; `None` for fewer than 3 pairs or a series without spread.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len().min(y.len());
    if n < 3 {
        return None;
    }
    let (x, y) = (&x[..n], &y[..n]);
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let r = sxy / (sxx * syy).sqrt();
    (sxx > 0.0 && syy > 0.0 && r.is_finite()).then_some(r.clamp(-1.0, 1.0))
}

/// 1-based ranks, ties sharing the mean of their ranks.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut out = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            out[k] = mean;
        }
        i = j + 1;
    }
    out
}

/// Spearman rank correlation (see [`pearson`] for `None`).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&ranks(x), &ranks(y))
}

/// Mean label of the tenth of symbols with the highest predictions minus that of the
/// lowest tenth (`n / 10` symbols each, ties by input order); `None` under 10 symbols.
pub fn decile_spread(pred: &[f64], label: &[f64]) -> Option<f64> {
    let n = pred.len().min(label.len());
    let k = n / 10;
    if k == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| pred[a].total_cmp(&pred[b]));
    let mean = |idx: &[usize]| idx.iter().map(|&i| label[i]).sum::<f64>() / idx.len() as f64;
    Some(mean(&order[n - k..]) - mean(&order[..k]))
}

pub(crate) fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation (n − 1); `None` under 2 values.
pub(crate) fn std_dev(xs: &[f64]) -> Option<f64> {
    (xs.len() >= 2).then(|| {
        let m = mean(xs);
        (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
    })
}

/// The t-statistic of the mean of `xs`, its variance estimated by Newey–West with `lags`
/// lags (Bartlett weights `1 − k/(lags+1)`; autocovariances over n). `None` under 2 values
/// or without variance.
pub fn newey_west_t(xs: &[f64], lags: usize) -> Option<f64> {
    let n = xs.len();
    if n < 2 {
        return None;
    }
    let m = mean(xs);
    let e: Vec<f64> = xs.iter().map(|x| x - m).collect();
    let gamma = |k: usize| e[k..].iter().zip(&e).map(|(a, b)| a * b).sum::<f64>() / n as f64;
    let mut var = gamma(0);
    for k in 1..=lags.min(n - 1) {
        var += 2.0 * (1.0 - k as f64 / (lags + 1) as f64) * gamma(k);
    }
    let t = m / (var / n as f64).sqrt();
    (var > 0.0 && t.is_finite()).then_some(t)
}

/// A model's figures on the holdout for one horizon (see the module doc). `None` where the
/// holdout does not allow the figure (too few dates or symbols, no variance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    pub ic: Option<f64>,
    pub rank_ic: Option<f64>,
    pub icir: Option<f64>,
    pub rank_icir: Option<f64>,
    /// Newey–West t-statistic of the mean daily Rank IC.
    pub t_stat: Option<f64>,
    /// Newey–West t-statistic of the mean daily IC (absent in model files written before
    /// it was recorded).
    #[serde(default)]
    pub ic_t_stat: Option<f64>,
    pub spread: Option<f64>,
    /// Dates with an IC.
    pub dates: usize,
    /// Distinct symbols in the holdout.
    pub symbols: usize,
}

impl Holdout {
    /// Whether the predictions earned serving: both the mean daily Rank IC and the mean
    /// daily IC are significantly positive (t ≥ `min_t`). Rank IC alone is not enough:
    /// ranks of simple returns over several days are predictable on a martingale, since a
    /// volatile symbol's median return is lower (volatility drag) while its mean is not,
    /// and a model that learns only that predicts no return.
    pub fn earned(&self, min_t: f64) -> bool {
        let significant = |t: Option<f64>| t.is_some_and(|t| t >= min_t);
        significant(self.t_stat) && significant(self.ic_t_stat)
    }

    /// The figures of `per_date` (each date's predictions and realised returns, in the
    /// same symbol order) for a label `horizon` dates ahead; `symbols` is how many distinct
    /// symbols they cover.
    pub fn of(per_date: &[(Vec<f64>, Vec<f64>)], horizon: usize, symbols: usize) -> Holdout {
        let mut ics = Vec::new();
        let mut rank_ics = Vec::new();
        let mut spreads = Vec::new();
        for (pred, label) in per_date {
            if let (Some(ic), Some(rank_ic)) = (pearson(pred, label), spearman(pred, label)) {
                ics.push(ic);
                rank_ics.push(rank_ic);
            }
            spreads.extend(decile_spread(pred, label));
        }
        let ir = |xs: &[f64]| std_dev(xs).filter(|s| *s > 0.0).map(|s| mean(xs) / s);
        let avg = |xs: &[f64]| (!xs.is_empty()).then(|| mean(xs));
        Holdout {
            ic: avg(&ics),
            rank_ic: avg(&rank_ics),
            icir: ir(&ics),
            rank_icir: ir(&rank_ics),
            t_stat: newey_west_t(&rank_ics, horizon.saturating_sub(1)),
            ic_t_stat: newey_west_t(&ics, horizon.saturating_sub(1)),
            spread: avg(&spreads),
            dates: ics.len(),
            symbols,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn correlations_of_known_series() {
        // The textbook example: r = 6 / sqrt(60).
        let r = pearson(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 5.0, 4.0, 5.0]).unwrap();
        assert!(close(r, 6.0 / 60f64.sqrt()), "{r}");
        // Spearman ignores a monotone transform; Pearson does not.
        let x: Vec<f64> = (1..=8).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| v.powi(5)).collect();
        assert_eq!(spearman(&x, &y), Some(1.0));
        assert!(pearson(&x, &y).unwrap() < 0.95);
        let rev: Vec<f64> = y.iter().rev().copied().collect();
        assert_eq!(spearman(&x, &rev), Some(-1.0));
        assert_eq!(pearson(&[1.0, 2.0], &[1.0, 2.0]), None, "too few");
        assert_eq!(
            pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]),
            None,
            "no spread"
        );
    }

    #[test]
    fn tied_values_share_their_mean_rank() {
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 30.0]), [1.0, 2.5, 2.5, 4.0]);
        assert_eq!(ranks(&[3.0, 1.0, 2.0]), [3.0, 1.0, 2.0]);
        assert_eq!(ranks(&[5.0, 5.0, 5.0]), [2.0, 2.0, 2.0]);
    }

    #[test]
    fn decile_spread_of_a_perfect_and_a_short_ranking() {
        let x: Vec<f64> = (0..20).map(f64::from).collect();
        // Top two (18, 19) minus bottom two (0, 1).
        assert_eq!(decile_spread(&x, &x), Some(18.0));
        assert_eq!(decile_spread(&x[..9], &x[..9]), None);
    }

    #[test]
    fn newey_west_by_hand() {
        // Mean 2.5, deviations ±1.5 ±0.5: γ0 = 1.25, γ1 = 0.3125.
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert!(close(
            newey_west_t(&xs, 0).unwrap(),
            2.5 / (1.25f64 / 4.0).sqrt()
        ));
        // 1 lag, weight 1/2: var = 1.25 + 2 · 0.5 · 0.3125 = 1.5625.
        assert!(close(
            newey_west_t(&xs, 1).unwrap(),
            2.5 / (1.5625f64 / 4.0).sqrt()
        ));
        assert_eq!(newey_west_t(&[1.0, 1.0, 1.0], 0), None, "no variance");
    }

    #[test]
    fn holdout_figures_of_a_perfect_a_useless_and_an_inverted_model() {
        // 30 dates × 50 symbols; returns vary per date.
        let dates: Vec<Vec<f64>> = (0..30)
            .map(|d| {
                (0..50)
                    .map(|s| ((s * 7 + d * 13) % 50) as f64 / 100.0)
                    .collect()
            })
            .collect();
        let perfect: Vec<(Vec<f64>, Vec<f64>)> =
            dates.iter().map(|y| (y.clone(), y.clone())).collect();
        let h = Holdout::of(&perfect, 5, 50);
        assert_eq!((h.ic, h.rank_ic), (Some(1.0), Some(1.0)));
        assert_eq!((h.icir, h.t_stat), (None, None), "no variance across dates");
        assert_eq!((h.dates, h.symbols), (30, 50));
        assert!(h.spread.unwrap() > 0.0);
        let inverted: Vec<(Vec<f64>, Vec<f64>)> = dates
            .iter()
            .map(|y| (y.iter().map(|v| -v).collect(), y.clone()))
            .collect();
        let h = Holdout::of(&inverted, 5, 50);
        assert_eq!(h.rank_ic, Some(-1.0));
        assert!(h.spread.unwrap() < 0.0);
        // Predictions unrelated to the returns: a small mean, an insignificant t.
        let useless: Vec<(Vec<f64>, Vec<f64>)> = dates
            .iter()
            .enumerate()
            .map(|(d, y)| {
                let p = (0..50).map(|s| ((s * 31 + d * 17) % 47) as f64).collect();
                (p, y.clone())
            })
            .collect();
        let h = Holdout::of(&useless, 5, 50);
        assert!(h.rank_ic.unwrap().abs() < 0.1, "{h:?}");
        assert!(h.t_stat.unwrap().abs() < 2.0, "{h:?}");
    }

    /// Martingale returns whose volatility the model knows: ranking calm symbols above
    /// volatile ones earns a significant Rank IC (a volatile symbol's median return is
    /// lower) but no IC (every mean is 0), and is not earned.
    #[test]
    fn a_rank_only_edge_from_volatility_drag_is_not_earned() {
        use rand::{Rng, SeedableRng};
        use rand_distr::StandardNormal;
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let per_date: Vec<(Vec<f64>, Vec<f64>)> = (0..120)
            .map(|_| {
                let sigmas: Vec<f64> = (0..400).map(|_| rng.random_range(0.02..0.25)).collect();
                let returns = sigmas
                    .iter()
                    .map(|s| {
                        let z: f64 = rng.sample(StandardNormal);
                        (s * z - s * s / 2.0).exp() - 1.0
                    })
                    .collect();
                (sigmas.iter().map(|s| -s).collect(), returns)
            })
            .collect();
        let h = Holdout::of(&per_date, 1, 400);
        assert!(h.t_stat.unwrap() >= 2.0, "a significant Rank IC: {h:?}");
        assert!(h.ic_t_stat.unwrap() < 2.0, "no IC: {h:?}");
        assert!(!h.earned(2.0));
        // Predicting the returns themselves earns both.
        let known: Vec<(Vec<f64>, Vec<f64>)> = per_date
            .iter()
            .map(|(_, y)| {
                let noisy = y.iter().map(|v| v + rng.random_range(-0.2..0.2)).collect();
                (noisy, y.clone())
            })
            .collect();
        assert!(Holdout::of(&known, 1, 400).earned(2.0));
    }
}
