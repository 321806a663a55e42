//! Technical indicators as pure functions over price slices.
//!
//! Owns the arithmetic of every indicator the scanner uses, with TA-Lib's
//! conventions *and* its order of floating-point operations, so a value printed
//! here can be diffed against `talib` and agree to the last bit (the golden
//! fixtures in `tests/fixtures/talib` pin this down). It must not do I/O,
//! allocate beyond its outputs, panic, or know about bars, symbols or scores:
//! callers hand in `&[f64]` columns and get `Vec<f64>` back.
//!
//! Shared conventions:
//! - every per-bar function returns one value per input bar, `f64::NAN` while the
//!   indicator is warming up (exactly where TA-Lib has no output);
//! - a period of 0 (or below an indicator's documented minimum) and a period longer
//!   than the input give all-NaN output, never a panic;
//! - functions that take several columns use their shortest common length: the
//!   output has that length and trailing extra elements of longer inputs are ignored;
//! - [`table()`] computes the 13-column per-bar table in one fused pass, and
//!   [`latest()`] computes only the last value of each scanner feature in one pass;
//!   both are tested to equal the per-bar functions.

/// Runs `$body` compiled with the x86-64 FMA instruction set when the CPU has it.
///
/// Without `-C target-feature=+fma`, `f64::mul_add` is a call into libm; this
/// recompiles the (inlined) kernel with FMA enabled behind a runtime check, which
/// makes the recursions several times faster. Results are identical either way:
/// `mul_add` is always a correctly rounded fused multiply-add, and Rust never
/// contracts other multiply-adds on its own.
macro_rules! fma_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn kernel($($arg: $ty),*) -> $ret $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "fma")]
                unsafe fn with_fma($($arg: $ty),*) -> $ret {
                    kernel($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: `with_fma` only requires the FMA extension, which the
                    // CPU was just checked to support.
                    return unsafe { with_fma($($arg),*) };
                }
            }
            kernel($($arg),*)
        }
    };
}

mod adx;
mod bollinger;
mod latest;
mod macd;
mod moving_average;
mod returns;
mod rsi;
mod table;
mod true_range;
mod volume;
mod window;

pub use adx::adx;
pub use bollinger::{bollinger, Bollinger};
pub use latest::{latest, Latest};
pub use macd::{macd, Macd};
pub use moving_average::{ema, sma};
pub use returns::{gap_mean, realized_vol, returns};
pub use rsi::rsi;
pub use table::{table, IndicatorTable, TABLE_COLUMNS};
pub use true_range::{atr, true_range};
pub use volume::{dollar_volume, volume_spike};
pub use window::{rolling_max, rolling_min};

/// TA-Lib's `TA_IS_ZERO`: the band inside which a denominator counts as zero.
#[inline(always)]
fn is_zero(v: f64) -> bool {
    -1e-8 < v && v < 1e-8
}

/// One step of an exponential moving average as TA-Lib 0.8 computes it (EMA and
/// MACD): `fma(k, x − prev, prev)`, a single rounding for the multiply-add.
///
/// `mul_add` is an exact fused multiply-add on every target: one instruction where
/// the CPU has FMA, a correctly rounded libm call otherwise (see [`fma_dispatch`]).
#[inline(always)]
fn ema_step(prev: f64, x: f64, k: f64) -> f64 {
    k.mul_add(x - prev, prev)
}

/// True range of bar `i >= 1`, with TA-Lib's comparison order (the result is the
/// same value whichever of the three candidates wins, so ATR and ADX share it).
#[inline(always)]
fn tr_at(high: f64, low: f64, prev_close: f64) -> f64 {
    let mut greatest = high - low;
    let up = (prev_close - high).abs();
    if up > greatest {
        greatest = up;
    }
    let down = (prev_close - low).abs();
    if down > greatest {
        greatest = down;
    }
    greatest
}

/// Length every multi-column function works on: the shortest input.
#[inline]
fn common_len(columns: &[&[f64]]) -> usize {
    columns.iter().map(|c| c.len()).min().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_zero_matches_talib_band() {
        assert!(is_zero(0.0));
        assert!(is_zero(9e-9) && is_zero(-9e-9));
        assert!(!is_zero(1e-8) && !is_zero(-1e-8));
    }

    #[test]
    fn true_range_picks_the_widest_candidate() {
        assert_eq!(tr_at(10.0, 9.0, 9.5), 1.0);
        assert_eq!(tr_at(10.0, 9.0, 12.0), 3.0);
        assert_eq!(tr_at(10.0, 9.0, 7.0), 3.0);
    }

    #[test]
    fn common_len_is_the_shortest() {
        assert_eq!(common_len(&[&[1.0, 2.0], &[1.0]]), 1);
        assert_eq!(common_len(&[]), 0);
    }
}
