//! SmartTtl: how long a cached value stays valid.
//!
//! A base TTL per kind; halved for high-volatility symbols (daily vol above
//! `high_vol_daily`), doubled for low (below `low_vol_daily`); and for daily bars (and the
//! features and scan reports computed from them) while the market is closed: valid until
//! the next session
//! opens, when the data already holds the last completed session — nothing can change
//! before then. Exchange holidays are not modelled (a holiday costs one extra refresh).
//! Time comes from a [`Clock`], so every rule is tested without waiting.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::Kind;
pub use crate::config::TtlSettings;
use crate::config::{MarketHours, SettingsError};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Why a TTL came out as it did (shown in analytics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TtlRule {
    Base,
    HighVolatility,
    LowVolatility,
    UntilNextOpen,
}

#[derive(Clone)]
pub struct SmartTtl {
    settings: TtlSettings,
    tz: Tz,
    open: NaiveTime,
    close: NaiveTime,
    clock: Arc<dyn Clock>,
}

impl SmartTtl {
    /// Validates the settings (time zone, times, thresholds) and lists every problem.
    pub fn new(settings: TtlSettings, clock: Arc<dyn Clock>) -> Result<Self, SettingsError> {
        let MarketHours { tz, open, close } = settings.market_hours()?;
        Ok(SmartTtl {
            settings,
            tz,
            open,
            close,
            clock,
        })
    }

    /// The same policy with other settings (and the same clock).
    pub fn with_settings(&self, settings: TtlSettings) -> Result<Self, SettingsError> {
        SmartTtl::new(settings, Arc::clone(&self.clock))
    }

    pub fn settings(&self) -> &TtlSettings {
        &self.settings
    }

    pub fn base(&self, kind: Kind) -> Duration {
        let s = &self.settings;
        Duration::from_secs(match kind {
            Kind::Bars => s.bars_secs,
            Kind::Features => s.features_secs,
            Kind::Ml => s.ml_secs,
            Kind::Scan => s.scan_secs,
            Kind::Meta => s.meta_secs,
        })
    }

    /// The TTL for a value of `kind`, given the symbol's daily volatility (if known) and
    /// the date of the last bar the value was computed from (if any).
    pub fn ttl(
        &self,
        kind: Kind,
        daily_vol: Option<f64>,
        last_bar: Option<NaiveDate>,
    ) -> (Duration, TtlRule) {
        let base = self.base(kind);
        let (adjusted, rule) = match daily_vol {
            Some(v) if v > self.settings.high_vol_daily => (base / 2, TtlRule::HighVolatility),
            Some(v) if v < self.settings.low_vol_daily => (base * 2, TtlRule::LowVolatility),
            _ => (base, TtlRule::Base),
        };
        if matches!(kind, Kind::Bars | Kind::Features | Kind::Ml | Kind::Scan) {
            if let Some(until_open) = last_bar.and_then(|d| self.until_next_open_if_final(d)) {
                if until_open > adjusted {
                    return (until_open, TtlRule::UntilNextOpen);
                }
            }
        }
        (adjusted, rule)
    }

    /// While the market is closed and `last_bar` is the last completed session: the time
    /// until the next session opens.
    fn until_next_open_if_final(&self, last_bar: NaiveDate) -> Option<Duration> {
        let now_utc = self.clock.now();
        let now = now_utc.with_timezone(&self.tz);
        let today = now.date_naive();
        let is_session = |d: NaiveDate| !matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
        let in_session = is_session(today) && now.time() >= self.open && now.time() < self.close;
        if in_session {
            return None;
        }
        // The last completed session: today if past the close on a weekday, else the
        // previous weekday.
        let mut last_completed = if is_session(today) && now.time() >= self.close {
            today
        } else {
            today.pred_opt()?
        };
        while !is_session(last_completed) {
            last_completed = last_completed.pred_opt()?;
        }
        if last_bar < last_completed {
            return None;
        }
        let mut next = if is_session(today) && now.time() < self.open {
            today
        } else {
            today.succ_opt()?
        };
        while !is_session(next) {
            next = next.succ_opt()?;
        }
        let open_at = self
            .tz
            .from_local_datetime(&next.and_time(self.open))
            .earliest()?;
        (open_at.with_timezone(&Utc) - now_utc).to_std().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(DateTime<Utc>);
    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    fn settings() -> TtlSettings {
        TtlSettings {
            bars_secs: 3600,
            features_secs: 300,
            ml_secs: 300,
            scan_secs: 300,
            meta_secs: 86400,
            high_vol_daily: 0.05,
            low_vol_daily: 0.02,
            market_timezone: "America/New_York".into(),
            market_open: "09:30".into(),
            market_close: "16:00".into(),
        }
    }

    /// A clock at this New York local time.
    fn at(y: i32, m: u32, d: u32, hh: u32, mm: u32) -> SmartTtl {
        let ny: Tz = "America/New_York".parse().expect("tz");
        let t = ny
            .with_ymd_and_hms(y, m, d, hh, mm, 0)
            .single()
            .expect("valid local time")
            .with_timezone(&Utc);
        SmartTtl::new(settings(), Arc::new(Fixed(t))).expect("valid settings")
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn base_per_kind_and_volatility_adjustment() {
        // Wednesday 2026-11-25 11:00, market open: no close rule.
        let t = at(2026, 11, 25, 11, 0);
        assert_eq!(
            t.ttl(Kind::Bars, Some(0.03), Some(date(2026, 11, 24))),
            (Duration::from_secs(3600), TtlRule::Base)
        );
        assert_eq!(
            t.ttl(Kind::Bars, Some(0.06), None),
            (Duration::from_secs(1800), TtlRule::HighVolatility)
        );
        assert_eq!(
            t.ttl(Kind::Features, Some(0.01), None),
            (Duration::from_secs(600), TtlRule::LowVolatility)
        );
        assert_eq!(t.ttl(Kind::Meta, None, None).0, Duration::from_secs(86400));
        assert_eq!(
            t.ttl(Kind::Scan, Some(0.5), None).0,
            Duration::from_secs(150)
        );
    }

    #[test]
    fn after_the_close_bars_live_until_the_next_open() {
        // Wednesday 2026-11-25 17:00 NY, today's bar is in: valid until Thursday 09:30 (16h30).
        let t = at(2026, 11, 25, 17, 0);
        assert_eq!(
            t.ttl(Kind::Bars, Some(0.03), Some(date(2026, 11, 25))),
            (
                Duration::from_secs(16 * 3600 + 1800),
                TtlRule::UntilNextOpen
            )
        );
        // ... but stale data (yesterday's bar) gets the normal TTL.
        assert_eq!(
            t.ttl(Kind::Bars, Some(0.03), Some(date(2026, 11, 24))).1,
            TtlRule::Base
        );
        // Saturday noon with Friday's bar: until Monday 09:30 (45h30).
        let t = at(2026, 11, 28, 12, 0);
        assert_eq!(
            t.ttl(Kind::Features, None, Some(date(2026, 11, 27))),
            (
                Duration::from_secs(45 * 3600 + 1800),
                TtlRule::UntilNextOpen
            )
        );
        // Monday 08:00 before the open with Friday's bar: until 09:30 (1h30).
        let t = at(2026, 11, 30, 8, 0);
        assert_eq!(
            t.ttl(Kind::Features, Some(0.03), Some(date(2026, 11, 27))),
            (Duration::from_secs(5400), TtlRule::UntilNextOpen)
        );
        // At 09:00 the open is 30 min away, shorter than the base hour: the base wins.
        let t = at(2026, 11, 30, 9, 0);
        assert_eq!(
            t.ttl(Kind::Bars, Some(0.03), Some(date(2026, 11, 27))),
            (Duration::from_secs(3600), TtlRule::Base)
        );
        // Scan reports and alpha predictions follow it (their bar is final), meta values
        // never do.
        for kind in [Kind::Scan, Kind::Ml] {
            assert_eq!(
                at(2026, 11, 28, 12, 0)
                    .ttl(kind, None, Some(date(2026, 11, 27)))
                    .1,
                TtlRule::UntilNextOpen,
                "{kind:?}"
            );
        }
        assert_eq!(
            at(2026, 11, 28, 12, 0)
                .ttl(Kind::Meta, None, Some(date(2026, 11, 27)))
                .1,
            TtlRule::Base
        );
    }

    #[test]
    fn invalid_settings_are_all_listed() {
        let s = TtlSettings {
            market_timezone: "Mars/Olympus".into(),
            market_open: "9h30".into(),
            low_vol_daily: 0.1,
            ..settings()
        };
        let err = SmartTtl::new(s, Arc::new(SystemClock))
            .err()
            .expect("invalid");
        assert_eq!(err.problems.len(), 3, "{err:?}");
    }
}
