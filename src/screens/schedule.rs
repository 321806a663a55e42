//! A screen's schedule: a cron pattern (5 fields, or 6 with seconds first, parsed by
//! croner) in an IANA time zone, and the ticks it has in a window.

use std::str::FromStr;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use serde::{Deserialize, Serialize};

/// `{"cron": "0 15 16 * * Mon-Fri", "timezone": "America/New_York"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// `[SECONDS] MINUTES HOURS DAY-OF-MONTH MONTH DAY-OF-WEEK`, e.g. `0 15 16 * * Mon-Fri`
    /// (16:15:00 every weekday) or `*/2 * * * * *` (every 2 seconds).
    pub cron: String,
    /// An IANA time zone (default `UTC`).
    #[serde(default = "utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".into()
}

/// A schedule ready to give ticks.
pub struct Ticks {
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// The parsed schedule, or every problem with it.
    pub fn parse(&self) -> Result<Ticks, Vec<String>> {
        let mut p = Vec::new();
        let fields = self.cron.split_whitespace().count();
        let cron = if !(5..=6).contains(&fields) {
            p.push(format!(
                "schedule.cron {:?} has {fields} fields: give 5 (minute hour day month weekday) or 6 (seconds first)",
                self.cron
            ));
            None
        } else {
            CronParser::builder()
                .seconds(Seconds::Optional)
                .build()
                .parse(&self.cron)
                .map_err(|e| p.push(format!("schedule.cron {:?}: {e}", self.cron)))
                .ok()
        };
        let tz = Tz::from_str(&self.timezone)
            .map_err(|_| {
                p.push(format!(
                    "schedule.timezone {:?} is not an IANA time zone (e.g. America/New_York, UTC)",
                    self.timezone
                ))
            })
            .ok();
        match (cron, tz) {
            (Some(cron), Some(tz)) if p.is_empty() => {
                let ticks = Ticks { cron, tz };
                if ticks.next_after(chrono::Utc::now()).is_none() {
                    return Err(vec![format!(
                        "schedule.cron {:?} never fires (no such date)",
                        self.cron
                    )]);
                }
                Ok(ticks)
            }
            _ => Err(p),
        }
    }
}

impl Ticks {
    /// The first tick after `t` (ticks fall on whole seconds).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let whole = t.with_nanosecond(0).unwrap_or(t);
        self.cron
            .find_next_occurrence(&whole.with_timezone(&self.tz), false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The ticks in `(after, until]`, oldest first, at most `max` (the newest ones).
    pub fn between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        max: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut at = after;
        while let Some(t) = self.next_after(at).filter(|t| *t <= until) {
            out.push(t);
            if out.len() > max {
                out.remove(0);
            }
            at = t;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn s(cron: &str, tz: &str) -> Schedule {
        Schedule {
            cron: cron.into(),
            timezone: tz.into(),
        }
    }

    #[test]
    fn after_the_close_in_new_york_is_utc_by_the_season() {
        let t = s("0 15 16 * * Mon-Fri", "America/New_York")
            .parse()
            .expect("valid");
        // Friday 2026-07-03 17:00 UTC (13:00 EDT) → 16:15 EDT = 20:15 UTC the same day.
        let fri = Utc.with_ymd_and_hms(2026, 7, 3, 17, 0, 0).unwrap();
        assert_eq!(
            t.next_after(fri),
            Some(Utc.with_ymd_and_hms(2026, 7, 3, 20, 15, 0).unwrap())
        );
        // After it, the weekend is skipped: Monday 2026-07-06.
        let after = Utc.with_ymd_and_hms(2026, 7, 3, 20, 15, 0).unwrap();
        assert_eq!(
            t.next_after(after),
            Some(Utc.with_ymd_and_hms(2026, 7, 6, 20, 15, 0).unwrap())
        );
        // In winter (EST) it is 21:15 UTC.
        let dec = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        assert_eq!(
            t.next_after(dec),
            Some(Utc.with_ymd_and_hms(2026, 12, 1, 21, 15, 0).unwrap())
        );
    }

    #[test]
    fn seconds_give_fast_ticks_and_the_window_keeps_the_newest() {
        let t = s("*/2 * * * * *", "UTC").parse().expect("valid");
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 1).unwrap();
        let until = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 10).unwrap();
        let ticks = t.between(from, until, 100);
        assert_eq!(ticks.len(), 5);
        assert_eq!(ticks[0], Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 2).unwrap());
        assert_eq!(ticks[4], until);
        let newest = t.between(from, until, 2);
        assert_eq!(newest, ticks[3..]);
        // 5 fields: minutes.
        let m = s("*/15 * * * *", "UTC").parse().expect("valid");
        assert_eq!(m.between(from, until, 10), Vec::<DateTime<Utc>>::new());
    }

    #[test]
    fn every_problem_is_reported() {
        let e = s("61 * *", "Mars/Olympus").parse().err().expect("invalid");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains("3 fields") && e[1].contains("Mars/Olympus"),
            "{e:?}"
        );
        let e = s("0 61 * * *", "UTC").parse().err().expect("invalid");
        assert!(e[0].contains("schedule.cron"), "{e:?}");
        let e = s("0 0 30 2 *", "UTC").parse().err().expect("February 30");
        assert!(e[0].contains("never fires"), "{e:?}");
    }
}
