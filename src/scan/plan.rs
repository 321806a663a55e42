//! The trade plan for one result: entry, stop, target and position size
//! (`docs/scan-rules.md`, "Trade plan").

use serde::{Deserialize, Serialize};

use super::config::ScanConfig;
use super::score::Signal;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TradePlan {
    pub entry: f64,
    pub stop: f64,
    pub target: f64,
    pub reward_risk: f64,
    /// Shares such that hitting the stop loses `risk_pct` % of the account.
    pub position_size: u64,
}

/// entry = close; the stop sits `stop_atr_multiple`·ATR away (validated to 0.5–3 ATR),
/// below for longs and above for shorts; target = entry ± target_rr·distance.
/// Signals other than Short/Strong Short get a long plan. Without a usable ATR the
/// stop and target are NaN and the size 0.
pub fn trade_plan(close: f64, atr: f64, signal: Signal, cfg: &ScanConfig) -> TradePlan {
    let dist = cfg.stop_atr_multiple.clamp(0.5, 3.0) * atr;
    if !(dist.is_finite() && dist > 0.0) {
        return TradePlan {
            entry: close,
            stop: f64::NAN,
            target: f64::NAN,
            reward_risk: f64::NAN,
            position_size: 0,
        };
    }
    let dir = if signal.is_short() { -1.0 } else { 1.0 };
    let risk_dollars = cfg.account_size * cfg.risk_pct / 100.0;
    TradePlan {
        entry: close,
        stop: close - dir * dist,
        target: close + dir * cfg.target_rr * dist,
        reward_risk: cfg.target_rr,
        position_size: (risk_dollars / dist).floor() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn long_and_short_plans_mirror() {
        let cfg = ScanConfig::from_settings(&Settings::defaults().scan);
        let long = trade_plan(100.0, 2.0, Signal::Long, &cfg);
        assert_eq!((long.entry, long.stop, long.target), (100.0, 97.0, 106.0));
        assert_eq!(long.position_size, 333); // 1,000 risk / 3 per share
        assert_eq!(long.reward_risk, 2.0);
        let short = trade_plan(100.0, 2.0, Signal::StrongShort, &cfg);
        assert_eq!(
            (short.stop, short.target, short.position_size),
            (103.0, 94.0, 333)
        );
        let none = trade_plan(100.0, f64::NAN, Signal::Long, &cfg);
        assert!(none.stop.is_nan() && none.position_size == 0);
    }
}
