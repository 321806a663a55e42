//! The synthetic market: a deterministic universe of N symbols with sectors, industries,
//! market caps and realistic daily OHLCV, generated from a seed.
//!
//! Each symbol's bars depend only on (seed, symbol index), so any worker on any node
//! generates the same bars for the same symbol without coordination. Prices follow a
//! geometric Brownian motion whose drift and volatility switch between regimes; volume is
//! log-normal around a per-symbol base with occasional spikes; a few symbols trade below
//! $1 and a few are illiquid, so the scan's filters have something to filter.
//!
//! **Planted factor** (`data.synthetic.alpha_strength` = a > 0; 0 by default): each symbol
//! also carries a hidden signal `z`, an AR(1) series (ρ = [`FACTOR_PERSISTENCE`], unit
//! variance) drawn from its own random stream. Day t's volume is multiplied by
//! `exp(`[`FACTOR_VOLUME_LOADING`]` · z_t)`, so the signal is observable that day (in volume
//! ratios), and day t+1's log return gains `a · σ · z_t` (σ: that day's volatility), so it
//! predicts the following days' returns (decaying by ρ a day). Nothing before day t+1
//! depends on `z_t`: a model that sees only bars up to t cannot see the future, and one
//! that finds the signal has found something real. With a = 0 nothing is drawn from the
//! factor's stream and the bars are exactly those without it; a > 0 adds
//! `-a{strength}` to the cache namespace.
//!
//! **Trend regimes** (`data.synthetic.trend_strength`, 0 by default) scale the regimes'
//! drift. With 0, each day's log return has mean −σ²/2 (simple returns are a martingale)
//! and, without a planted factor, nothing in the past predicts the future: the ML
//! negative control. A drift that lasts 40–160 days is a real momentum effect: at 1 a
//! model that learns "recent winners keep winning" is right (holdout Rank IC ≈ 0.1). A
//! value other than 1 adds `-t{strength}` to the cache namespace, so the namespace
//! without it still names the trending bars of earlier versions.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate, Weekday};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64Mcg;
use rayon::prelude::*;

use super::{BarRange, DataError, MarketData};
use crate::config::SyntheticSettings;
use crate::market::{Bars, UniverseEntry};

const SECTORS: [(&str, [&str; 3]); 11] = [
    ("Technology", ["Software", "Semiconductors", "IT Services"]),
    (
        "Health Care",
        ["Biotechnology", "Pharmaceuticals", "Medical Devices"],
    ),
    ("Financials", ["Banks", "Insurance", "Capital Markets"]),
    (
        "Consumer Discretionary",
        ["Retail", "Automobiles", "Hotels & Leisure"],
    ),
    (
        "Consumer Staples",
        ["Food Products", "Beverages", "Household Products"],
    ),
    (
        "Industrials",
        ["Aerospace & Defense", "Machinery", "Transportation"],
    ),
    ("Energy", ["Oil & Gas", "Energy Equipment", "Renewables"]),
    ("Materials", ["Chemicals", "Metals & Mining", "Packaging"]),
    (
        "Utilities",
        ["Electric Utilities", "Gas Utilities", "Water Utilities"],
    ),
    (
        "Real Estate",
        ["REITs", "Real Estate Services", "Homebuilders"],
    ),
    (
        "Communication Services",
        ["Media", "Telecom", "Interactive Media"],
    ),
];

/// Deterministic synthetic provider (see the module doc).
pub struct SyntheticProvider {
    inner: Arc<Inner>,
}

struct Inner {
    seed: u64,
    days: usize,
    dates: Vec<NaiveDate>,
    universe: Vec<UniverseEntry>,
    index: HashMap<String, usize>,
    latency: std::time::Duration,
    failure_rate: f64,
    alpha_strength: f64,
    trend_strength: f64,
    poison: std::collections::HashSet<String>,
}

/// Day-to-day persistence of the planted factor (see the module doc): a half-life of
/// about 6.6 days, so it matters over 5- and 10-day horizons.
pub const FACTOR_PERSISTENCE: f64 = 0.9;
/// How strongly the planted factor shows in the log of a day's volume.
pub const FACTOR_VOLUME_LOADING: f64 = 0.5;

impl SyntheticProvider {
    pub fn new(settings: &SyntheticSettings) -> Self {
        let dates = weekdays_ending(settings.end_date, settings.days);
        let universe: Vec<UniverseEntry> = (0..settings.symbols)
            .map(|i| entry(settings.seed, i))
            .collect();
        let index = universe
            .iter()
            .enumerate()
            .map(|(i, e)| (e.symbol.clone(), i))
            .collect();
        SyntheticProvider {
            inner: Arc::new(Inner {
                seed: settings.seed,
                days: settings.days,
                dates,
                universe,
                index,
                latency: std::time::Duration::from_millis(settings.latency_ms),
                failure_rate: settings.failure_rate,
                alpha_strength: settings.alpha_strength,
                trend_strength: settings.trend_strength,
                poison: settings
                    .poison_symbols
                    .iter()
                    .map(|s| s.to_ascii_uppercase())
                    .collect(),
            }),
        }
    }
}

impl Inner {
    fn bars(&self, symbol: &str) -> Result<Bars, DataError> {
        let i = *self.index.get(symbol).ok_or_else(|| DataError::NotFound {
            symbol: symbol.to_string(),
        })?;
        // Fault injection for supervision tests: the worker processing this symbol dies.
        assert!(
            !self.poison.contains(symbol),
            "poison symbol {symbol} (data.synthetic.poison_symbols)"
        );
        // Injected upstream failures: the same symbols fail for the same seed.
        if self.failure_rate > 0.0 && rng_for(self.seed, i, 3).random::<f64>() < self.failure_rate {
            return Err(DataError::Unavailable {
                message: format!("injected failure for {symbol} (data.synthetic.failure_rate)"),
            });
        }
        Ok(generate_bars(
            self.seed,
            i,
            &self.dates,
            self.days,
            self.alpha_strength,
            self.trend_strength,
        ))
    }
}

#[async_trait]
impl MarketData for SyntheticProvider {
    fn name(&self) -> &'static str {
        "synthetic"
    }

    /// Generated data is a function of what the namespace already names (seed, days,
    /// last date): one version.
    async fn data_version(&self) -> Option<String> {
        Some("generated".into())
    }

    fn cache_namespace(&self) -> String {
        let i = &self.inner;
        let mut factor = if i.alpha_strength > 0.0 {
            format!("-a{}", i.alpha_strength)
        } else {
            String::new()
        };
        if i.trend_strength != 1.0 {
            factor.push_str(&format!("-t{}", i.trend_strength));
        }
        format!(
            "synthetic-{}-{}-{}{factor}",
            i.seed,
            i.days,
            i.dates.last().map(|d| d.to_string()).unwrap_or_default()
        )
    }

    async fn universe(&self) -> Result<Vec<UniverseEntry>, DataError> {
        Ok(self.inner.universe.clone())
    }

    async fn daily_bars(&self, symbol: &str, _range: BarRange) -> Result<Bars, DataError> {
        tokio::time::sleep(self.inner.latency).await;
        self.inner.bars(symbol)
    }

    async fn load_many(
        &self,
        symbols: &[String],
        _range: BarRange,
    ) -> Vec<Result<Bars, DataError>> {
        if !self.inner.latency.is_zero() {
            // Injected latency: one sequential request per symbol, like a naive remote fetch.
            tokio::time::sleep(self.inner.latency * symbols.len() as u32).await;
        }
        let inner = Arc::clone(&self.inner);
        let symbols = symbols.to_vec();
        crate::cpu::run(move || symbols.par_iter().map(|s| inner.bars(s)).collect()).await
    }
}

/// The `days` weekdays ending at `end` (or the last weekday before it), ascending.
fn weekdays_ending(end: NaiveDate, days: usize) -> Vec<NaiveDate> {
    let mut out = Vec::with_capacity(days);
    let mut d = end;
    while out.len() < days {
        if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            out.push(d);
        }
        match d.pred_opt() {
            Some(p) => d = p,
            None => break,
        }
    }
    out.reverse();
    out
}

/// A 4-letter ticker, unique per index: 7919 is coprime with 26⁴, so the map is a bijection
/// on 0..26⁴ (far above any configured universe size).
fn ticker(i: usize) -> String {
    let mut n = (i as u64 * 7919 + 1234) % 26u64.pow(4);
    let mut t = [b'A'; 4];
    for slot in t.iter_mut().rev() {
        *slot = b'A' + (n % 26) as u8;
        n /= 26;
    }
    String::from_utf8_lossy(&t).into_owned()
}

fn rng_for(seed: u64, i: usize, stream: u64) -> Pcg64Mcg {
    let mixed = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(stream.wrapping_mul(0x94D0_49BB_1331_11EB));
    Pcg64Mcg::seed_from_u64(mixed)
}

fn entry(seed: u64, i: usize) -> UniverseEntry {
    let mut rng = rng_for(seed, i, 1);
    let (sector, industries) = SECTORS[rng.random_range(0..SECTORS.len())];
    let industry = industries[rng.random_range(0..industries.len())];
    let z: f64 = rng.sample(StandardNormal);
    let market_cap = (21.0 + 1.8 * z).exp().clamp(2.0e7, 3.0e12);
    let symbol = ticker(i);
    UniverseEntry {
        name: format!("{symbol} {industry} Inc"),
        symbol,
        sector: sector.to_string(),
        industry: industry.to_string(),
        market_cap: Some(market_cap.round()),
    }
}

/// The planted factor of one symbol: its own stream, and today's value.
struct Factor {
    rng: Pcg64Mcg,
    z: f64,
}

impl Factor {
    /// Starts at a draw of its stationary distribution.
    fn new(seed: u64, i: usize) -> Self {
        let mut rng = rng_for(seed, i, 4);
        let z = rng.sample(StandardNormal);
        Factor { rng, z }
    }

    /// Moves to the next day.
    fn step(&mut self) -> f64 {
        let rho = FACTOR_PERSISTENCE;
        let e: f64 = self.rng.sample(StandardNormal);
        self.z = rho * self.z + (1.0 - rho * rho).sqrt() * e;
        self.z
    }
}

fn generate_bars(
    seed: u64,
    i: usize,
    dates: &[NaiveDate],
    days: usize,
    alpha: f64,
    trend: f64,
) -> Bars {
    let mut rng = rng_for(seed, i, 2);
    let mut factor = (alpha > 0.0).then(|| Factor::new(seed, i));
    let n = days.min(dates.len());
    let mut bars = Bars::with_capacity(n);

    // Per-symbol character: start price (a few under $1), volatility, liquidity.
    let z0: f64 = rng.sample(StandardNormal);
    let mut close = (3.4 + 1.2 * z0).exp().clamp(0.3, 2000.0);
    let base_vol = 0.15 + 0.55 * rng.random::<f64>().powi(2); // annualised
    let z1: f64 = rng.sample(StandardNormal);
    let base_volume = (12.5 + 1.6 * z1).exp().clamp(2.0e3, 5.0e8);

    let mut drift = 0.0;
    let mut vol_mult = 1.0;
    let mut regime_left = 0u32;
    for &date in &dates[dates.len() - n..] {
        if regime_left == 0 {
            regime_left = rng.random_range(40..160);
            drift = trend * 0.45 * rng.sample::<f64, _>(StandardNormal); // annualised drift
            vol_mult = [0.6, 1.0, 1.0, 1.7][rng.random_range(0..4usize)];
        }
        regime_left -= 1;
        let sigma = base_vol * vol_mult / 252f64.sqrt();
        let mu = drift / 252.0 - 0.5 * sigma * sigma;
        let gap: f64 = 0.25 * sigma * rng.sample::<f64, _>(StandardNormal);
        let mut body: f64 = mu + 0.97 * sigma * rng.sample::<f64, _>(StandardNormal);
        // Yesterday's signal moves today's return; today's shows in today's volume.
        let mut volume_factor = 1.0;
        if let Some(f) = factor.as_mut() {
            body += alpha * sigma * f.z;
            volume_factor = (FACTOR_VOLUME_LOADING * f.step()).exp();
        }
        let open = close * gap.exp();
        let next_close = (open * body.exp()).max(0.01);
        let wick_up = sigma * 0.5 * rng.sample::<f64, _>(StandardNormal).abs();
        let wick_down = sigma * 0.5 * rng.sample::<f64, _>(StandardNormal).abs();
        let high = open.max(next_close) * (1.0 + wick_up);
        let low = open.min(next_close) * (1.0 - wick_down).max(0.5);
        let spike = if rng.random::<f64>() < 0.03 {
            2.0 + 3.0 * rng.random::<f64>()
        } else {
            1.0
        };
        let noise: f64 = 0.35 * rng.sample::<f64, _>(StandardNormal);
        let volume =
            (base_volume * noise.exp() * spike * (1.0 + 20.0 * body.abs()) * volume_factor).round();
        // Quoted like an exchange would: cents, or 1/100 cent under $1. Rounding is
        // monotonic, so high ≥ max(open, close) and low ≤ min(open, close) still hold.
        let (open, high, low) = (tick(open), tick(high), tick(low).max(0.0001));
        close = tick(next_close);
        bars.push(date, open, high, low, close, volume);
    }
    bars
}

fn tick(p: f64) -> f64 {
    let scale = if p >= 1.0 { 100.0 } else { 10_000.0 };
    (p * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(symbols: usize) -> SyntheticSettings {
        SyntheticSettings {
            seed: 42,
            symbols,
            days: 500,
            end_date: NaiveDate::from_ymd_opt(2026, 11, 27).expect("date"),
            latency_ms: 0,
            failure_rate: 0.0,
            alpha_strength: 0.0,
            trend_strength: 0.0,
            poison_symbols: vec![],
        }
    }

    #[test]
    fn failure_rate_fails_a_reproducible_share_as_unavailable() {
        let mut s = settings(2000);
        s.failure_rate = 0.1;
        let p = SyntheticProvider::new(&s);
        let failed: Vec<&str> = p
            .inner
            .universe
            .iter()
            .filter(|e| match p.inner.bars(&e.symbol) {
                Err(err) => err.code() == "DATA_UNAVAILABLE",
                Ok(_) => false,
            })
            .map(|e| e.symbol.as_str())
            .collect();
        assert!(
            (150..250).contains(&failed.len()),
            "{} of 2000",
            failed.len()
        );
        let again = SyntheticProvider::new(&s);
        assert!(
            failed.iter().all(|sym| again.inner.bars(sym).is_err()),
            "same symbols fail for the same seed"
        );
    }

    #[test]
    fn tickers_are_unique() {
        let set: std::collections::HashSet<String> = (0..20_000).map(ticker).collect();
        assert_eq!(set.len(), 20_000);
    }

    #[test]
    fn bars_are_deterministic_valid_and_dated_on_weekdays() {
        let p = SyntheticProvider::new(&settings(50));
        for e in &p.inner.universe {
            let a = p.inner.bars(&e.symbol).expect("known symbol");
            let b = p.inner.bars(&e.symbol).expect("known symbol");
            assert_eq!(a, b);
            assert_eq!(a.len(), 500);
            a.validate().expect("synthetic bars are valid");
            assert!(a.dates.windows(2).all(|w| w[0] < w[1]));
            assert!(a
                .dates
                .iter()
                .all(|d| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)));
            assert_eq!(
                *a.dates.last().expect("non-empty"),
                NaiveDate::from_ymd_opt(2026, 11, 27).expect("date")
            );
        }
    }

    #[test]
    fn a_symbols_bars_do_not_depend_on_universe_size() {
        let small = SyntheticProvider::new(&settings(10));
        let big = SyntheticProvider::new(&settings(1000));
        let sym = &small.inner.universe[7].symbol;
        assert_eq!(small.inner.bars(sym), big.inner.bars(sym));
    }

    /// Pooled correlation, over every symbol and day, of the day's log volume against
    /// its mean over the 20 days before (what a volume ratio sees) with the log return of
    /// the next 5 days.
    fn volume_signal_vs_forward_returns(p: &SyntheticProvider) -> f64 {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for e in &p.inner.universe {
            let b = p.inner.bars(&e.symbol).expect("bars");
            let lv: Vec<f64> = b.volume.iter().map(|v| v.max(1.0).ln()).collect();
            for t in 20..b.len() - 5 {
                let mean = lv[t - 20..t].iter().sum::<f64>() / 20.0;
                xs.push(lv[t] - mean);
                ys.push((b.close[t + 5] / b.close[t]).ln());
            }
        }
        let n = xs.len() as f64;
        let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
        let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
        for (x, y) in xs.iter().zip(&ys) {
            sxy += (x - mx) * (y - my);
            sxx += (x - mx) * (x - mx);
            syy += (y - my) * (y - my);
        }
        sxy / (sxx * syy).sqrt()
    }

    #[test]
    fn the_planted_factor_shows_in_volume_and_predicts_returns_only_when_asked_for() {
        let plain = SyntheticProvider::new(&settings(200));
        let mut s = settings(200);
        s.alpha_strength = 0.2;
        let planted = SyntheticProvider::new(&s);
        let (none, some) = (
            volume_signal_vs_forward_returns(&plain),
            volume_signal_vs_forward_returns(&planted),
        );
        assert!(none.abs() < 0.03, "pure noise: {none}");
        assert!(some > 0.1, "planted: {some}");
        // The factor changes the data, so it changes where the data is cached; so do the
        // trend regimes, whose namespace without a suffix is the trending market's.
        assert_eq!(plain.cache_namespace(), "synthetic-42-500-2026-11-27-t0");
        assert_eq!(
            planted.cache_namespace(),
            "synthetic-42-500-2026-11-27-a0.2-t0"
        );
        s.trend_strength = 1.0;
        assert_eq!(
            SyntheticProvider::new(&s).cache_namespace(),
            "synthetic-42-500-2026-11-27-a0.2"
        );
        // Only returns after the first day and volumes move; dates do not.
        let sym = &plain.inner.universe[3].symbol;
        let (a, b) = (
            plain.inner.bars(sym).unwrap(),
            planted.inner.bars(sym).unwrap(),
        );
        assert_eq!(a.dates, b.dates);
        assert_ne!(a.volume, b.volume);
    }

    #[test]
    fn unknown_symbol_is_not_found() {
        let p = SyntheticProvider::new(&settings(5));
        assert_eq!(
            p.inner.bars("NOPE").map(|_| ()),
            Err(DataError::NotFound {
                symbol: "NOPE".into()
            })
        );
    }
}
