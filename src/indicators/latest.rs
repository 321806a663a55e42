//! The scanner's features at the last bar, in one fused pass ([`latest`]).
//!
//! Owns the fast path of a scan: a symbol needs only each indicator's latest value,
//! so the recursive indicators (EMA, RSI, MACD, ATR) and the SMA running totals
//! advance as scalar state over the series, with no output vectors, and the
//! window features (returns, volatility, highs/lows, volume) are computed from the
//! tail only. Every field equals the last element of the per-bar function named in
//! its doc (NaN exactly when that is NaN); a property test holds it to that.

use super::macd::MacdState;
use super::moving_average::ema_k;
use super::returns::{annualized_sample_std, gap_mean_at, simple_return};
use super::rsi::RsiState;
use super::true_range::AtrState;
use super::volume::{dollar_volume_at, volume_spike_at};
use super::window::window_fold;
use super::{common_len, ema_step, tr_at};

/// Each scanner feature at the last bar of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latest {
    /// Last close.
    pub close: f64,
    /// Last of `sma(close, 20)`.
    pub sma_20: f64,
    /// Last of `sma(close, 50)`.
    pub sma_50: f64,
    /// Last of `sma(close, 200)`.
    pub sma_200: f64,
    /// Last of `ema(close, 20)`.
    pub ema_20: f64,
    /// Last of `rsi(close, 14)`.
    pub rsi_14: f64,
    /// Last of `macd(close, 12, 26, 9).hist`.
    pub macd_hist: f64,
    /// Last of `atr(high, low, close, 14)`.
    pub atr_14: f64,
    /// Last of `returns(close, 1)`.
    pub ret_1d: f64,
    /// Last of `returns(close, 5)`.
    pub ret_5d: f64,
    /// Last of `returns(close, 21)`.
    pub ret_21d: f64,
    /// Last of `realized_vol(close, 20)`.
    pub vol_realized_20: f64,
    /// Last of `rolling_max(close, 20)`.
    pub max_close_20: f64,
    /// Last of `rolling_min(close, 20)`.
    pub min_close_20: f64,
    /// Last of `dollar_volume(close, volume, 20)`.
    pub dollar_vol_20: f64,
    /// Last of `volume_spike(volume, 20)`.
    pub vol_spike_20: f64,
    /// Last of `gap_mean(open, close, 10)`.
    pub gap_mean_10: f64,
}

impl Latest {
    const NAN: Latest = Latest {
        close: f64::NAN,
        sma_20: f64::NAN,
        sma_50: f64::NAN,
        sma_200: f64::NAN,
        ema_20: f64::NAN,
        rsi_14: f64::NAN,
        macd_hist: f64::NAN,
        atr_14: f64::NAN,
        ret_1d: f64::NAN,
        ret_5d: f64::NAN,
        ret_21d: f64::NAN,
        vol_realized_20: f64::NAN,
        max_close_20: f64::NAN,
        min_close_20: f64::NAN,
        dollar_vol_20: f64::NAN,
        vol_spike_20: f64::NAN,
        gap_mean_10: f64::NAN,
    };
}

fma_dispatch! {
/// Computes [`Latest`] for one series in a single pass. All five columns are cut
/// to their shortest common length first; an empty series gives all-NaN fields.
pub fn latest(open: &[f64], high: &[f64], low: &[f64], close: &[f64], volume: &[f64]) -> Latest {
    let len = common_len(&[open, high, low, close, volume]);
    if len == 0 {
        return Latest::NAN;
    }
    let (open, high, low) = (&open[..len], &high[..len], &low[..len]);
    let (close, volume) = (&close[..len], &volume[..len]);
    let mut out = Latest::NAN;
    recursive_features(high, low, close, &mut out);
    window_features(open, close, volume, &mut out);
    out
}
}

/// SMA running totals and the EMA/RSI/MACD/ATR recursions, advanced over every bar
/// exactly as the per-bar functions advance them. Nothing is divided per bar: the
/// SMA quotients and the RSI ratio are taken once, at the end.
#[inline(always)]
fn recursive_features(high: &[f64], low: &[f64], close: &[f64], out: &mut Latest) {
    let len = close.len();
    let k20 = ema_k(20);
    // `s*` are the running totals; `t*` hold them at the last bar, before the
    // oldest value is dropped (the SMA's numerator).
    let (mut s20, mut s50, mut s200, mut e20) = (0.0, 0.0, 0.0, 0.0);
    let (mut t20, mut t50, mut t200) = (0.0, 0.0, 0.0);
    let mut rsi = RsiState::new(14);
    let mut atr = AtrState::new(14);
    let mut atr_v = f64::NAN;
    let mut macd: Option<MacdState> = None;
    let mut hist = f64::NAN;
    let warm = len.min(STEADY_FROM);
    for i in 0..warm {
        let x = close[i];
        s20 += x;
        s50 += x;
        s200 += x;
        if i >= 19 {
            t20 = s20;
            s20 -= close[i - 19];
            e20 = if i == 19 {
                t20 / 20.0
            } else {
                ema_step(e20, x, k20)
            };
        }
        if i >= 49 {
            t50 = s50;
            s50 -= close[i - 49];
        }
        if i >= 199 {
            t200 = s200;
            s200 -= close[i - 199];
        }
        if i == 0 {
            continue;
        }
        rsi.step(x - close[i - 1], i);
        let a = atr.step(tr_at(high[i], low[i], close[i - 1]), i);
        if i >= 14 {
            atr_v = a;
        }
        if let Some(state) = macd.as_mut() {
            if let Some((_, _, h)) = state.step(x, i) {
                hist = h;
            }
        } else if i == 25 {
            macd = Some(MacdState::new(close, 12, 26, 9).0);
        }
    }
    if let (true, Some(state)) = (warm == STEADY_FROM, macd.as_mut()) {
        for i in STEADY_FROM..len {
            let (x, prev) = (close[i], close[i - 1]);
            s20 += x;
            t20 = s20;
            s20 -= close[i - 19];
            s50 += x;
            t50 = s50;
            s50 -= close[i - 49];
            s200 += x;
            t200 = s200;
            s200 -= close[i - 199];
            e20 = ema_step(e20, x, k20);
            rsi.step_steady(x - prev);
            atr_v = atr.step_steady(tr_at(high[i], low[i], prev));
            hist = state.step_steady(x).2;
        }
    }
    let nan_unless = |ready: bool, v: f64| if ready { v } else { f64::NAN };
    out.sma_20 = nan_unless(len >= 20, t20 / 20.0);
    out.sma_50 = nan_unless(len >= 50, t50 / 50.0);
    out.sma_200 = nan_unless(len >= 200, t200 / 200.0);
    out.ema_20 = nan_unless(len >= 20, e20);
    out.rsi_14 = nan_unless(len > 14, rsi.value());
    out.atr_14 = atr_v;
    out.macd_hist = hist;
}

/// First bar at which every recursion is in its steady state.
const STEADY_FROM: usize = 200;

/// Features that depend only on the last few bars.
fn window_features(open: &[f64], close: &[f64], volume: &[f64], out: &mut Latest) {
    let len = close.len();
    let last = len - 1;
    out.close = close[last];
    let ret = |k: usize| {
        if last >= k {
            simple_return(close[last], close[last - k])
        } else {
            f64::NAN
        }
    };
    out.ret_1d = ret(1);
    out.ret_5d = ret(5);
    out.ret_21d = ret(21);
    if last >= 20 {
        let mut daily = [0.0; 20];
        for (j, d) in daily.iter_mut().enumerate() {
            let i = last - 19 + j;
            *d = simple_return(close[i], close[i - 1]);
        }
        out.vol_realized_20 = annualized_sample_std(&daily);
        out.vol_spike_20 = volume_spike_at(volume, last, 20);
    }
    if len >= 20 {
        let tail = &close[len - 20..];
        out.max_close_20 = window_fold(tail, f64::max);
        out.min_close_20 = window_fold(tail, f64::min);
        out.dollar_vol_20 = dollar_volume_at(close, volume, last, 20);
    }
    if last >= 10 {
        out.gap_mean_10 = gap_mean_at(open, close, last, 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicators::{
        atr, dollar_volume, ema, gap_mean, macd, realized_vol, returns, rolling_max, rolling_min,
        rsi, sma, volume_spike,
    };
    use proptest::prelude::*;

    fn close_enough(got: f64, want: f64) -> bool {
        if want.is_nan() || got.is_nan() {
            return want.is_nan() && got.is_nan();
        }
        (got - want).abs() <= 1e-12 + 1e-9 * want.abs()
    }

    fn last(v: Vec<f64>) -> f64 {
        v.last().copied().unwrap_or(f64::NAN)
    }

    fn expected(
        o: &[f64],
        h: &[f64],
        l: &[f64],
        c: &[f64],
        v: &[f64],
    ) -> [(&'static str, f64); 17] {
        [
            ("close", c.last().copied().unwrap_or(f64::NAN)),
            ("sma_20", last(sma(c, 20))),
            ("sma_50", last(sma(c, 50))),
            ("sma_200", last(sma(c, 200))),
            ("ema_20", last(ema(c, 20))),
            ("rsi_14", last(rsi(c, 14))),
            ("macd_hist", last(macd(c, 12, 26, 9).hist)),
            ("atr_14", last(atr(h, l, c, 14))),
            ("ret_1d", last(returns(c, 1))),
            ("ret_5d", last(returns(c, 5))),
            ("ret_21d", last(returns(c, 21))),
            ("vol_realized_20", last(realized_vol(c, 20))),
            ("max_close_20", last(rolling_max(c, 20))),
            ("min_close_20", last(rolling_min(c, 20))),
            ("dollar_vol_20", last(dollar_volume(c, v, 20))),
            ("vol_spike_20", last(volume_spike(v, 20))),
            ("gap_mean_10", last(gap_mean(o, c, 10))),
        ]
    }

    fn fields(x: &Latest) -> [f64; 17] {
        [
            x.close,
            x.sma_20,
            x.sma_50,
            x.sma_200,
            x.ema_20,
            x.rsi_14,
            x.macd_hist,
            x.atr_14,
            x.ret_1d,
            x.ret_5d,
            x.ret_21d,
            x.vol_realized_20,
            x.max_close_20,
            x.min_close_20,
            x.dollar_vol_20,
            x.vol_spike_20,
            x.gap_mean_10,
        ]
    }

    #[test]
    fn empty_series_is_all_nan() {
        assert!(fields(&latest(&[], &[], &[], &[], &[]))
            .iter()
            .all(|v| v.is_nan()));
        let one = latest(&[1.0], &[1.0], &[1.0], &[1.0, 2.0], &[1.0]);
        assert_eq!(one.close, 1.0);
        assert!(one.sma_20.is_nan());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn latest_equals_last_of_per_bar(
            seed_price in 0.5f64..500.0,
            bars in proptest::collection::vec(
                (-0.08f64..0.08, -0.03f64..0.03, 0.0f64..0.04, 0.0f64..0.04, 0.0f64..1e6, 0u8..10),
                0..600,
            ),
        ) {
            let (mut o, mut h, mut l, mut c, mut v) = (vec![], vec![], vec![], vec![], vec![]);
            let mut price = seed_price;
            for &(ret, gap, up, down, vol, kind) in &bars {
                let open = price * (1.0 + gap);
                // kind 0: an unchanged, single-print bar; kind 1: zero volume.
                if kind != 0 {
                    price *= 1.0 + ret;
                }
                let (hi, lo) = if kind == 0 {
                    (price, price)
                } else {
                    (open.max(price) * (1.0 + up), open.min(price) * (1.0 - down))
                };
                o.push(if kind == 0 { price } else { open });
                h.push(hi);
                l.push(lo);
                c.push(price);
                v.push(if kind == 1 { 0.0 } else { vol });
            }
            let got = fields(&latest(&o, &h, &l, &c, &v));
            for ((name, want), got) in expected(&o, &h, &l, &c, &v).into_iter().zip(got) {
                prop_assert!(close_enough(got, want), "{}: {} vs {} (len {})", name, got, want, c.len());
            }
        }
    }
}
