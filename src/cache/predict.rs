//! Which symbols the cache warmer should load next: a model of when symbols are requested.
//!
//! Storage is a few "slots", each a map symbol → weight that only ever grows by adding a
//! weight to one symbol and is read as "top N by weight". That is a Redis sorted set
//! (ZINCRBY to add, ZREVRANGE … WITHSCORES to read), so the in-memory [`RequestModel`] here
//! and a Redis-backed one rank the same way. There is one global slot ([`Slot::All`]) and
//! one per hour of the week ([`Slot::Hour`], 168 of them, UTC, Monday 00:00 = 0).
//!
//! Recent requests count more, through forward exponential decay: a request at time `t` adds
//! `2^((t - epoch) / half_life)` ([`forward_weight`]). A request one half-life later adds
//! twice as much, so the stored sum ranks symbols exactly as an exponentially decayed count
//! would, and old entries never have to be rewritten. The weights grow with time, so they
//! must be divided down once in a long while ([`renormalize`], [`RequestModel::rebase`]).
//!
//! A prediction for an hour ([`rank`]) blends the hour's own slot, the same hour on the
//! other days of the same kind (weekdays or weekend), the neighbouring hours and the
//! global slot. Each source is divided by the number of slots in it, so every source is an
//! estimate of the same thing, the decayed number of requests per hour-of-week, and the
//! blend is a weighted sum: one ZUNIONSTORE with WEIGHTS in Redis.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// Hours in a week: the number of hour slots.
pub const HOURS_PER_WEEK: u16 = 168;

/// The fixed epoch of the forward weights, 2020-01-01T00:00:00Z, as Unix seconds.
pub const EPOCH_UNIX_SECS: i64 = 1_577_836_800;

/// Default half-life of a request's weight: a week.
pub const DEFAULT_HALF_LIFE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Rebase once the newest weight passes this many half-lives since the epoch, i.e. once
/// a weight exceeds `2^REBASE_AFTER_HALF_LIVES` (about 1e154). An f64 overflows at about
/// `2^1024`, and a slot's sum is at most (number of requests) × (newest weight), so this
/// leaves room for `2^512` requests. With a 7-day half-life and the 2020 epoch the first
/// rebase is due in late 2029; with a 1-day half-life, every 17 months.
pub const REBASE_AFTER_HALF_LIVES: f64 = 512.0;

/// The epoch of [`forward_weight`].
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(EPOCH_UNIX_SECS, 0).expect("valid epoch")
}

/// The hour of the week of `at` in UTC: `weekday * 24 + hour`, Monday 00:xx = 0,
/// Sunday 23:xx = 167.
pub fn slot_of(at: DateTime<Utc>) -> u16 {
    (at.weekday().num_days_from_monday() * 24 + at.hour()) as u16
}

/// Weight of one request at `at`: `2^((at - epoch) / half_life)` from the fixed epoch.
pub fn forward_weight(at: DateTime<Utc>, half_life: Duration) -> f64 {
    forward_weight_from(epoch(), at, half_life)
}

/// [`forward_weight`] from another epoch (the one a model was last rebased to).
pub fn forward_weight_from(epoch: DateTime<Utc>, at: DateTime<Utc>, half_life: Duration) -> f64 {
    half_lives(epoch, at, half_life).exp2()
}

/// How many half-lives `at` is after `epoch` (negative before it).
fn half_lives(epoch: DateTime<Utc>, at: DateTime<Utc>, half_life: Duration) -> f64 {
    let secs = (at - epoch).num_milliseconds() as f64 / 1000.0;
    secs / half_life.as_secs_f64().max(1e-3)
}

/// Divides every weight by `factor`. Ranking is unchanged; exact when `factor` is a power
/// of two. In Redis: `ZUNIONSTORE key 1 key WEIGHTS 1/factor` for each slot.
pub fn renormalize<S>(weights: &mut [(S, f64)], factor: f64) {
    for (_, w) in weights.iter_mut() {
        *w /= factor;
    }
}

/// One sorted set of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// Every request.
    All,
    /// Requests in one hour of the week (`0..168`, see [`slot_of`]).
    Hour(u16),
}

impl Slot {
    /// Short name for a key: `all`, or `h000` … `h167`.
    pub fn name(self) -> String {
        match self {
            Slot::All => "all".to_string(),
            Slot::Hour(h) => format!("h{h:03}"),
        }
    }
}

/// How much each source counts in a prediction for one hour. Each source is the decayed
/// number of requests per hour-of-week slot, so the weights are directly comparable.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Blend {
    /// The hour's own slot.
    pub hour: f64,
    /// The same hour on the other days of the same kind (weekdays or weekend days).
    pub same_hour: f64,
    /// The hour before and the hour after.
    pub neighbours: f64,
    /// The global slot.
    pub global: f64,
}

impl Default for Blend {
    fn default() -> Self {
        Blend {
            hour: 0.3,
            same_hour: 0.5,
            neighbours: 0.1,
            global: 0.1,
        }
    }
}

/// The slots a prediction for the hour of `at` reads, each with the factor its weights are
/// multiplied by (blend weight divided by the number of slots in the source). Factors of
/// a slot in two sources add up; slots with a zero factor are left out.
pub fn slot_weights(at: DateTime<Utc>, blend: &Blend) -> Vec<(Slot, f64)> {
    let h = slot_of(at);
    let hour_of_day = h % 24;
    let day = h / 24;
    let weekend = |d: u16| d >= 5;
    let other_days: Vec<u16> = (0..7u16)
        .filter(|&d| d != day && weekend(d) == weekend(day))
        .map(|d| d * 24 + hour_of_day)
        .collect();
    let neighbours = [
        (h + HOURS_PER_WEEK - 1) % HOURS_PER_WEEK,
        (h + 1) % HOURS_PER_WEEK,
    ];

    let mut out: Vec<(Slot, f64)> = Vec::with_capacity(2 + other_days.len() + 2);
    let mut add = |slot: Slot, f: f64| {
        if f == 0.0 {
            return;
        }
        match out.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, g)) => *g += f,
            None => out.push((slot, f)),
        }
    };
    add(Slot::Hour(h), blend.hour);
    for &o in &other_days {
        add(Slot::Hour(o), blend.same_hour / other_days.len() as f64);
    }
    for &n in &neighbours {
        add(Slot::Hour(n), blend.neighbours / neighbours.len() as f64);
    }
    add(Slot::All, blend.global / f64::from(HOURS_PER_WEEK));
    out
}

/// The top `n` symbols for the hour of `at`, best first, from the global slot and the hour
/// slots given (any slot [`slot_weights`] asks for; others are ignored, missing ones count
/// as empty). Scores are the blended weights; ties go to the smaller symbol.
pub fn rank<S: AsRef<str>>(
    global: &[(S, f64)],
    slots: &[(u16, &[(S, f64)])],
    at: DateTime<Utc>,
    n: usize,
    blend: &Blend,
) -> Vec<(String, f64)> {
    let factors = slot_weights(at, blend);
    let mut scores: HashMap<&str, f64> = HashMap::with_capacity(global.len());
    for (slot, f) in factors {
        let entries: Option<&[(S, f64)]> = match slot {
            Slot::All => Some(global),
            Slot::Hour(h) => slots.iter().find(|(s, _)| *s == h).map(|(_, e)| *e),
        };
        for (sym, w) in entries.unwrap_or_default() {
            *scores.entry(sym.as_ref()).or_insert(0.0) += f * w;
        }
    }
    top_n(scores.into_iter(), n)
        .into_iter()
        .map(|(s, w)| (s.to_string(), w))
        .collect()
}

/// The `n` best (highest score, then smallest symbol) of `scores`, best first.
fn top_n<'a, I: Iterator<Item = (&'a str, f64)>>(scores: I, n: usize) -> Vec<(&'a str, f64)> {
    let mut all: Vec<(&str, f64)> = scores.filter(|(_, w)| *w > 0.0).collect();
    let better = |a: &(&str, f64), b: &(&str, f64)| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0));
    if all.len() > n && n > 0 {
        all.select_nth_unstable_by(n - 1, better);
    }
    all.truncate(n);
    all.sort_unstable_by(better);
    all
}

/// What a warmer needs from a model: learn from requests, name the symbols to load.
pub trait WarmModel {
    /// Records one request for `symbols` at `at`.
    fn observe(&mut self, symbols: &[String], at: DateTime<Utc>);
    /// The `n` symbols most likely to be requested in the hour of `at`, best first.
    fn predict(&self, at: DateTime<Utc>, n: usize) -> Vec<String>;
}

/// The request-pattern model, in memory: the global slot and the 168 hour slots with
/// forward-decayed weights.
#[derive(Debug, Clone)]
pub struct RequestModel {
    half_life: Duration,
    blend: Blend,
    epoch: DateTime<Utc>,
    slots: HashMap<Slot, HashMap<String, f64>>,
}

impl Default for RequestModel {
    fn default() -> Self {
        RequestModel::new(DEFAULT_HALF_LIFE, Blend::default())
    }
}

impl RequestModel {
    pub fn new(half_life: Duration, blend: Blend) -> Self {
        RequestModel {
            half_life,
            blend,
            epoch: epoch(),
            slots: HashMap::new(),
        }
    }

    /// The epoch the stored weights are relative to.
    pub fn epoch(&self) -> DateTime<Utc> {
        self.epoch
    }

    /// The stored weights of one slot (empty if nothing was recorded in it).
    pub fn slot(&self, slot: Slot) -> Vec<(String, f64)> {
        self.slots
            .get(&slot)
            .map(|m| m.iter().map(|(s, w)| (s.clone(), *w)).collect())
            .unwrap_or_default()
    }

    /// Moves the epoch forward by whole half-lives so that `at` is less than one half-life
    /// after it, dividing every weight by the matching power of two (an exact division:
    /// ranking does not change). [`observe`](WarmModel::observe) does this by itself once
    /// weights pass `2^REBASE_AFTER_HALF_LIVES`.
    pub fn rebase(&mut self, at: DateTime<Utc>) {
        let k = half_lives(self.epoch, at, self.half_life).floor();
        if k <= 0.0 {
            return;
        }
        let factor = k.exp2();
        for weights in self.slots.values_mut() {
            for w in weights.values_mut() {
                // Past 2^1023 every old weight is far below f64 precision anyway.
                *w = if factor.is_finite() { *w / factor } else { 0.0 };
            }
        }
        let shift = self.half_life.as_secs_f64() * k;
        self.epoch += chrono::Duration::milliseconds((shift * 1000.0).round() as i64);
    }
}

impl WarmModel for RequestModel {
    fn observe(&mut self, symbols: &[String], at: DateTime<Utc>) {
        if half_lives(self.epoch, at, self.half_life) > REBASE_AFTER_HALF_LIVES {
            self.rebase(at);
        }
        let w = forward_weight_from(self.epoch, at, self.half_life);
        for slot in [Slot::All, Slot::Hour(slot_of(at))] {
            let weights = self.slots.entry(slot).or_default();
            for s in symbols {
                match weights.get_mut(s.as_str()) {
                    Some(v) => *v += w,
                    None => {
                        weights.insert(s.clone(), w);
                    }
                }
            }
        }
    }

    fn predict(&self, at: DateTime<Utc>, n: usize) -> Vec<String> {
        let view = |slot: Slot| -> Vec<(&str, f64)> {
            self.slots
                .get(&slot)
                .map(|m| m.iter().map(|(s, w)| (s.as_str(), *w)).collect())
                .unwrap_or_default()
        };
        let global = view(Slot::All);
        let hours: Vec<(u16, Vec<(&str, f64)>)> = slot_weights(at, &self.blend)
            .into_iter()
            .filter_map(|(slot, _)| match slot {
                Slot::Hour(h) => Some((h, view(slot))),
                Slot::All => None,
            })
            .collect();
        let slots: Vec<(u16, &[(&str, f64)])> =
            hours.iter().map(|(h, v)| (*h, v.as_slice())).collect();
        rank(&global, &slots, at, n, &self.blend)
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    }
}

/// The baseline: plain cumulative request counts, blind to time.
#[derive(Debug, Clone, Default)]
pub struct FrequencyModel {
    counts: HashMap<String, u64>,
}

impl FrequencyModel {
    pub fn new() -> Self {
        FrequencyModel::default()
    }
}

impl WarmModel for FrequencyModel {
    fn observe(&mut self, symbols: &[String], _at: DateTime<Utc>) {
        for s in symbols {
            *self.counts.entry(s.clone()).or_insert(0) += 1;
        }
    }

    fn predict(&self, _at: DateTime<Utc>, n: usize) -> Vec<String> {
        top_n(self.counts.iter().map(|(s, c)| (s.as_str(), *c as f64)), n)
            .into_iter()
            .map(|(s, _)| s.to_string())
            .collect()
    }
}
