//! Which symbols the cache warmer should load next: a model of when symbols are requested.
//!
//! Storage is a few "slots", each a map symbol → weight that only ever grows by adding a
//! weight to one symbol and is read back with its weights. That is a Redis sorted set
//! (ZINCRBY to add, ZRANGE … WITHSCORES to read), so the in-memory [`RequestModel`] here and
//! a Redis-backed store rank the same way. There is one global slot ([`Slot::All`]) and one
//! per hour of the week ([`Slot::Hour`], 168 of them, UTC, Monday 00:00 = 0).
//!
//! Recent requests count more, through forward exponential decay: a request at time `t` adds
//! `2^((t - epoch) / half_life)` ([`forward_weight_from`]). A request one half-life later adds
//! twice as much, so the stored sums rank symbols exactly as exponentially decayed counts
//! would. Weights grow with time, so they are kept in eras ([`ERA_HALF_LIVES`]): each era
//! counts from its own start and has its own slots, and a prediction reads its era and the
//! one before ([`stored_slots`]). Nothing stored is ever rewritten, and no weight nears
//! f64's limit.
//!
//! A prediction for one hour ([`rank`]) compares two estimates of each symbol's decayed
//! requests per hour slot: the global one (the global slot / 168) and a local one (the
//! hour's own slot, the same hour on the other days of the same kind and the neighbouring
//! hours, blended by [`Blend`]). How far it moves from global towards local is measured,
//! not fixed: [`structure`] is the share of the difference between the two that is more
//! than counting noise. Hours with a clear pattern follow it; without one the model ranks
//! like decayed frequency. A prediction reads the global slot and at most 7 hour slots
//! whole (ZRANGE 0 -1 WITHSCORES) of two eras ([`slots_read`]), then ranks in the caller
//! ([`predict_from`]). The cache stores exactly this layout ([`Weights`], added by
//! `Cache::add_request_weights`, read by `Cache::request_slots`), so the warmer ranks as
//! [`RequestModel`] does in the bench.
//!
//! Co-occurrence of symbols within a request was measured (symbols requested with those of
//! the last hour) and left out: it did not raise warming precision.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// Hours in a week: the number of hour slots.
pub const HOURS_PER_WEEK: u16 = 168;

/// The fixed epoch eras count from, 2020-01-01T00:00:00Z, in Unix seconds.
pub const EPOCH_UNIX_SECS: i64 = 1_577_836_800;

/// Default half-life of a request's weight: a week.
pub const DEFAULT_HALF_LIFE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Half-lives per era of stored weights, counted from the epoch. Within its era a request
/// weighs `2^(half-lives since the era began)`, in `[1, 2^256)`: a slot's sum stays below
/// f64's `2^1024` for up to `2^700` requests. The previous era's weights, divided by
/// `2^256`, are in the current era's unit. With the week-long half-life an era lasts
/// about 4.9 years; with a one-hour half-life, 10.7 days.
pub const ERA_HALF_LIVES: i32 = 256;

/// The epoch eras count from.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(EPOCH_UNIX_SECS, 0).expect("valid epoch")
}

/// The hour of the week of `at` in UTC: `weekday * 24 + hour`, Monday 00:xx = 0,
/// Sunday 23:xx = 167.
pub fn slot_of(at: DateTime<Utc>) -> u16 {
    (at.weekday().num_days_from_monday() * 24 + at.hour()) as u16
}

/// Weight of one request at `at`: `2^((at - epoch) / half_life)`.
pub fn forward_weight_from(epoch: DateTime<Utc>, at: DateTime<Utc>, half_life: Duration) -> f64 {
    half_lives(epoch, at, half_life).exp2()
}

/// How many half-lives `at` is after `epoch` (negative before it).
fn half_lives(epoch: DateTime<Utc>, at: DateTime<Utc>, half_life: Duration) -> f64 {
    let secs = (at - epoch).num_milliseconds() as f64 / 1000.0;
    secs / half_life.as_secs_f64().max(1e-3)
}

/// The era (see [`ERA_HALF_LIVES`]) a request at `at` is stored in.
pub fn era_of(at: DateTime<Utc>, half_life: Duration) -> i64 {
    (half_lives(epoch(), at, half_life) / f64::from(ERA_HALF_LIVES)).floor() as i64
}

fn era_start(era: i64, half_life: Duration) -> DateTime<Utc> {
    let ms = half_life.as_secs_f64() * 1000.0 * f64::from(ERA_HALF_LIVES) * era as f64;
    epoch() + chrono::Duration::milliseconds(ms.round() as i64)
}

/// The era of a request at `at` and its weight there: also the `unit` of a prediction for
/// `at` (one request's weight then).
pub fn stored_weight(at: DateTime<Utc>, half_life: Duration) -> (i64, f64) {
    let era = era_of(at, half_life);
    (
        era,
        forward_weight_from(era_start(era, half_life), at, half_life),
    )
}

/// The slots a prediction for the hour of `at` reads, in the order [`predict_from`] takes
/// them: the global slot, then the hour slots of [`slot_weights`].
pub fn slots_read(at: DateTime<Utc>, blend: &Blend) -> Vec<Slot> {
    std::iter::once(Slot::All)
        .chain(
            slot_weights(at, blend)
                .into_iter()
                .map(|(h, _)| Slot::Hour(h)),
        )
        .collect()
}

/// The stored `(era, slot)`s a prediction for `at` reads, in order: each of
/// [`slots_read`] in `at`'s era, then in the era before.
pub fn stored_slots(at: DateTime<Utc>, half_life: Duration, blend: &Blend) -> Vec<(i64, Slot)> {
    let era = era_of(at, half_life);
    slots_read(at, blend)
        .into_iter()
        .flat_map(|slot| [(era, slot), (era - 1, slot)])
        .collect()
}

/// The top `n` symbols for the hour of `at` with their scores, from the contents of
/// [`stored_slots`] in its order (each slot's two eras are merged here).
pub fn predict_stored(
    stored: Vec<Vec<(String, f64)>>,
    at: DateTime<Utc>,
    half_life: Duration,
    n: usize,
    blend: &Blend,
) -> Vec<(String, f64)> {
    predict_from(&merged(stored, at, blend), at, half_life, n, blend)
}

/// Each slot of [`slots_read`] with its two eras merged, from the contents of
/// [`stored_slots`] in its order.
fn merged(
    stored: Vec<Vec<(String, f64)>>,
    at: DateTime<Utc>,
    blend: &Blend,
) -> Vec<(Slot, Vec<(String, f64)>)> {
    let mut stored = stored.into_iter();
    slots_read(at, blend)
        .into_iter()
        .map(|slot| {
            let current = stored.next().unwrap_or_default();
            let previous = stored.next().unwrap_or_default();
            (slot, merge_eras(current, previous))
        })
        .collect()
}

/// One slot as a prediction reads it: its weights in the current era plus those of the
/// era before, brought into the current era's unit.
fn merge_eras(current: Vec<(String, f64)>, previous: Vec<(String, f64)>) -> Vec<(String, f64)> {
    if previous.is_empty() {
        return current;
    }
    let scale = (-f64::from(ERA_HALF_LIVES)).exp2();
    let mut all: HashMap<String, f64> = current.into_iter().collect();
    for (s, w) in previous {
        *all.entry(s).or_default() += w * scale;
    }
    all.into_iter().collect()
}

/// The top `n` symbols for the hour of `at` with their scores, from the slots
/// [`slots_read`] names, as read (eras merged), in that order.
pub fn predict_from(
    read: &[(Slot, Vec<(String, f64)>)],
    at: DateTime<Utc>,
    half_life: Duration,
    n: usize,
    blend: &Blend,
) -> Vec<(String, f64)> {
    let (global, hours) = split_read(read);
    rank(global, &hours, at, stored_weight(at, half_life).1, n, blend)
}

/// One slot's entries, as read.
type Entries<'a> = &'a [(String, f64)];

/// The global slot and the hour slots of what [`slots_read`] read.
fn split_read(read: &[(Slot, Vec<(String, f64)>)]) -> (Entries<'_>, Vec<(u16, Entries<'_>)>) {
    let global = read
        .iter()
        .find(|(slot, _)| *slot == Slot::All)
        .map_or(&[][..], |(_, v)| v.as_slice());
    let hours = read
        .iter()
        .filter_map(|(slot, v)| match slot {
            Slot::Hour(h) => Some((*h, v.as_slice())),
            Slot::All => None,
        })
        .collect();
    (global, hours)
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

/// How the local estimate for an hour is made from the hour slots; only the ratios matter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Blend {
    /// The hour's own slot.
    pub hour: f64,
    /// The same hour on the other days of the same kind (weekdays or weekend days).
    pub same_hour: f64,
    /// The hour before and the hour after.
    pub neighbours: f64,
}

impl Default for Blend {
    fn default() -> Self {
        Blend {
            hour: 0.25,
            same_hour: 0.5,
            neighbours: 0.25,
        }
    }
}

/// The hour slots the local estimate for the hour of `at` reads, each with its factor:
/// the source's share of the blend split evenly over its slots. Factors sum to 1.
pub fn slot_weights(at: DateTime<Utc>, blend: &Blend) -> Vec<(u16, f64)> {
    let h = slot_of(at);
    let day = h / 24;
    let weekend = |d: u16| d >= 5;
    let other_days: Vec<u16> = (0..7u16)
        .filter(|&d| d != day && weekend(d) == weekend(day))
        .map(|d| d * 24 + h % 24)
        .collect();
    let neighbours = [
        (h + HOURS_PER_WEEK - 1) % HOURS_PER_WEEK,
        (h + 1) % HOURS_PER_WEEK,
    ];
    let clamp = |x: f64| if x.is_finite() { x.max(0.0) } else { 0.0 };
    let (hour, same, near) = (
        clamp(blend.hour),
        clamp(blend.same_hour),
        clamp(blend.neighbours),
    );
    let total = hour + same + near;
    let (hour, same, near) = if total > 0.0 {
        (hour / total, same / total, near / total)
    } else {
        (1.0, 0.0, 0.0)
    };

    let mut out: Vec<(u16, f64)> = Vec::with_capacity(1 + other_days.len() + neighbours.len());
    let mut add = |slot: u16, f: f64| {
        if f <= 0.0 {
            return;
        }
        match out.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, g)) => *g += f,
            None => out.push((slot, f)),
        }
    };
    add(h, hour);
    for &d in &other_days {
        add(d, same / other_days.len() as f64);
    }
    for &n in &neighbours {
        add(n, near / neighbours.len() as f64);
    }
    out
}

/// Per symbol: (global estimate, local estimate), both in decayed requests per hour slot;
/// and the structure weight between them.
struct Estimates<'a> {
    per_symbol: HashMap<&'a str, (f64, f64)>,
    structure: f64,
}

fn estimates<'a, S: AsRef<str>>(
    global: &'a [(S, f64)],
    slots: &[(u16, &'a [(S, f64)])],
    at: DateTime<Utc>,
    unit: f64,
    blend: &Blend,
) -> Estimates<'a> {
    let per_slot = 1.0 / f64::from(HOURS_PER_WEEK);
    let mut per_symbol: HashMap<&str, (f64, f64)> = HashMap::with_capacity(global.len());
    for (s, w) in global {
        per_symbol.entry(s.as_ref()).or_default().0 += w * per_slot;
    }
    let factors = slot_weights(at, blend);
    for &(slot, f) in &factors {
        // A slot given twice counts once; a slot not given is empty.
        if let Some((_, entries)) = slots.iter().find(|(h, _)| *h == slot) {
            for (s, w) in entries.iter() {
                per_symbol.entry(s.as_ref()).or_default().1 += f * w;
            }
        }
    }

    // In units of one request at `at`, e (global) and x (local) estimate the same rate when
    // there is no structure, and then x - e is noise: x is a blend of Poisson counts, with
    // variance about e × Σf². So Σ(x - e)² / Σf² is about Σe without structure, and the
    // share of it beyond Σe is signal (a James-Stein style shrinkage factor). Weighting by
    // e keeps rarely requested symbols, whose counts are mostly noise, from dominating.
    let sum_sq: f64 = factors.iter().map(|(_, f)| f * f).sum();
    let unit = if unit.is_finite() && unit > 0.0 {
        unit
    } else {
        1.0
    };
    let (mut observed, mut expected) = (0.0, 0.0);
    for &(g, l) in per_symbol.values() {
        let (e, x) = (g / unit, l / unit);
        observed += (x - e) * (x - e) / sum_sq;
        expected += e;
    }
    let structure = if observed > expected {
        1.0 - expected / observed
    } else {
        0.0
    };
    Estimates {
        per_symbol,
        structure,
    }
}

/// How much a prediction for the hour of `at` follows the hour's own pattern: 0 when the
/// local counts differ from the global ones no more than noise would, towards 1 the clearer
/// the difference. Arguments as for [`rank`].
pub fn structure<S: AsRef<str>>(
    global: &[(S, f64)],
    slots: &[(u16, &[(S, f64)])],
    at: DateTime<Utc>,
    unit: f64,
    blend: &Blend,
) -> f64 {
    estimates(global, slots, at, unit, blend).structure
}

/// The top `n` symbols for the hour of `at`, best first, with their scores (estimated
/// decayed requests in that hour slot); ties go to the smaller symbol.
///
/// `global` is the global slot; `slots` holds the hour slots [`slot_weights`] names (others
/// are ignored, missing ones count as empty). Pass whole slots: the structure test needs
/// every symbol's weight. `unit` is the weight of one request at `at` in the unit the
/// weights are in (`stored_weight(at, half_life).1` for stored weights).
pub fn rank<S: AsRef<str>>(
    global: &[(S, f64)],
    slots: &[(u16, &[(S, f64)])],
    at: DateTime<Utc>,
    unit: f64,
    n: usize,
    blend: &Blend,
) -> Vec<(String, f64)> {
    let Estimates {
        per_symbol,
        structure: k,
    } = estimates(global, slots, at, unit, blend);
    let scores = per_symbol
        .into_iter()
        .map(|(s, (g, l))| (s, (1.0 - k) * g + k * l));
    top_n(scores, n)
        .into_iter()
        .map(|(s, w)| (s.to_string(), w))
        .collect()
}

/// The `n` best (highest score, then smallest symbol) of `scores` above zero, best first.
fn top_n<'a, I: Iterator<Item = (&'a str, f64)>>(scores: I, n: usize) -> Vec<(&'a str, f64)> {
    let mut all: Vec<(&str, f64)> = scores.filter(|(_, w)| *w > 0.0).collect();
    let better = |a: &(&str, f64), b: &(&str, f64)| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0));
    if n == 0 {
        return Vec::new();
    }
    if all.len() > n {
        all.select_nth_unstable_by(n - 1, better);
        all.truncate(n);
    }
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

/// Forward-decayed weights per `(era, slot)` and symbol: the stored model, or what a
/// process has observed and not yet added to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights(HashMap<(i64, Slot), HashMap<String, f64>>);

impl Weights {
    /// Adds one request for each of `symbols` at `at` to the global slot and to its hour
    /// slot, in its era.
    pub fn observe(&mut self, symbols: &[String], at: DateTime<Utc>, half_life: Duration) {
        let (era, w) = stored_weight(at, half_life);
        for slot in [Slot::All, Slot::Hour(slot_of(at))] {
            let weights = self.0.entry((era, slot)).or_default();
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

    /// Adds `other` in; a slot holding `max_symbols` takes no new symbol (known ones
    /// still add).
    pub fn merge(&mut self, other: Weights, max_symbols: usize) {
        for (key, add) in other.0 {
            let weights = self.0.entry(key).or_default();
            for (s, w) in add {
                if let Some(v) = weights.get_mut(&s) {
                    *v += w;
                } else if weights.len() < max_symbols {
                    weights.insert(s, w);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every `(era, slot)` with its symbols and weights.
    pub fn slots(&self) -> impl Iterator<Item = (&(i64, Slot), &HashMap<String, f64>)> {
        self.0.iter()
    }

    /// The weights of one slot of one era, in no particular order.
    pub fn slot(&self, era: i64, slot: Slot) -> Vec<(String, f64)> {
        self.0
            .get(&(era, slot))
            .map(|m| m.iter().map(|(s, w)| (s.clone(), *w)).collect())
            .unwrap_or_default()
    }
}

/// The request-pattern model in memory: the global slot and the hour slots of each era,
/// holding forward-decayed weights, stored and read as the cache backends store and read
/// them.
#[derive(Debug, Clone)]
pub struct RequestModel {
    half_life: Duration,
    blend: Blend,
    weights: Weights,
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
            weights: Weights::default(),
        }
    }

    /// The stored weights of one slot of one era, in no particular order.
    pub fn slot(&self, era: i64, slot: Slot) -> Vec<(String, f64)> {
        self.weights.slot(era, slot)
    }

    /// The contents of [`stored_slots`] for `at`.
    fn stored(&self, at: DateTime<Utc>) -> Vec<Vec<(String, f64)>> {
        stored_slots(at, self.half_life, &self.blend)
            .into_iter()
            .map(|(era, slot)| self.slot(era, slot))
            .collect()
    }

    /// The slots a prediction for `at` reads, eras merged.
    fn read(&self, at: DateTime<Utc>) -> Vec<(Slot, Vec<(String, f64)>)> {
        merged(self.stored(at), at, &self.blend)
    }

    /// The structure weight of a prediction for the hour of `at` (see [`structure`]).
    pub fn structure(&self, at: DateTime<Utc>) -> f64 {
        let read = self.read(at);
        let (global, hours) = split_read(&read);
        structure(
            global,
            &hours,
            at,
            stored_weight(at, self.half_life).1,
            &self.blend,
        )
    }

    /// The top `n` symbols for the hour of `at`, with their scores.
    pub fn ranked(&self, at: DateTime<Utc>, n: usize) -> Vec<(String, f64)> {
        predict_stored(self.stored(at), at, self.half_life, n, &self.blend)
    }
}

impl WarmModel for RequestModel {
    fn observe(&mut self, symbols: &[String], at: DateTime<Utc>) {
        self.weights.observe(symbols, at, self.half_life);
    }

    fn predict(&self, at: DateTime<Utc>, n: usize) -> Vec<String> {
        self.ranked(at, n).into_iter().map(|(s, _)| s).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn syms(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// A small deterministic generator (splitmix64).
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) % n
        }
    }

    #[test]
    fn slot_of_known_dates() {
        // 2024-01-01 is a Monday, 2024-01-07 a Sunday.
        assert_eq!(slot_of(utc(2024, 1, 1, 0, 30)), 0);
        assert_eq!(slot_of(utc(2024, 1, 7, 23, 59)), 167);
        assert_eq!(slot_of(utc(2024, 1, 3, 14, 5)), 2 * 24 + 14);
        assert_eq!(slot_of(utc(2024, 1, 8, 0, 0)), 0);
        assert_eq!(Slot::Hour(7).name(), "h007");
        assert_eq!(Slot::All.name(), "all");
    }

    #[test]
    fn weight_doubles_every_half_life() {
        let hl = Duration::from_secs(7 * 86_400);
        let t = utc(2024, 3, 1, 12, 0);
        let later = t + chrono::Duration::days(7);
        let ratio = forward_weight_from(epoch(), later, hl) / forward_weight_from(epoch(), t, hl);
        assert!((ratio - 2.0).abs() < 1e-12, "ratio {ratio}");
        assert_eq!(forward_weight_from(epoch(), epoch(), hl), 1.0);
        let day = Duration::from_secs(86_400);
        let t = epoch() + chrono::Duration::days(10);
        let r = forward_weight_from(epoch(), t + chrono::Duration::days(3), day)
            / forward_weight_from(epoch(), t, day);
        assert!((r - 8.0).abs() < 1e-9, "ratio {r}");
    }

    #[test]
    fn eras_keep_weights_finite_and_decay_exact_across_the_boundary() {
        // A one-hour half-life: 4 years of half-lives from the 2020 epoch would be far
        // past 2^1024; an era is 256 hours (10.7 days), and the requests below cross two
        // era boundaries.
        let hl = Duration::from_secs(3600);
        let mut model = RequestModel::new(hl, Blend::default());
        let start = utc(2024, 1, 1, 0, 0);
        let mut rng = Rng(3);
        let mut requests = Vec::new();
        for i in 0..1500 {
            let at = start + chrono::Duration::minutes(i * 17);
            let s = format!("S{}", rng.below(20));
            model.observe(std::slice::from_ref(&s), at);
            requests.push((s, at));
        }
        let last = requests.last().expect("requests").1;
        let era = era_of(last, hl);
        assert!(era > era_of(start, hl) + 1, "crossed two boundaries");
        for e in era_of(start, hl)..=era {
            let weights = model.slot(e, Slot::All);
            assert!(weights.iter().all(|(_, w)| w.is_finite() && *w >= 1.0));
        }
        // Read just after the last request, the merged global slot in units of one
        // request then is each symbol's exponentially decayed count of the requests of
        // this era and the one before (older ones weigh under 2^-256).
        let at = last + chrono::Duration::minutes(5);
        let read = model.read(at);
        let unit = stored_weight(at, hl).1;
        let since = era_start(era - 1, hl);
        for (s, w) in &read[0].1 {
            let want: f64 = requests
                .iter()
                .filter(|(r, t)| r == s && *t >= since)
                .map(|(_, t)| half_lives(at, *t, hl).exp2())
                .sum();
            assert!(
                ((w / unit) - want).abs() <= 1e-9 * want.max(1.0),
                "{s}: {} vs {want}",
                w / unit
            );
        }
    }

    #[test]
    fn hourly_pattern_beats_overall_frequency() {
        let mut model = RequestModel::default();
        let mut freq = FrequencyModel::new();
        let start = utc(2024, 1, 1, 0, 0);
        let mut rng = Rng(1);
        for day in 0..28 {
            let midnight = start + chrono::Duration::days(day);
            let mut requests = vec![
                (
                    midnight + chrono::Duration::minutes(14 * 60 + 5),
                    syms(&["DAY"]),
                ),
                (
                    midnight + chrono::Duration::minutes(2 * 60 + 10),
                    syms(&["NIGHT"]),
                ),
                (
                    midnight + chrono::Duration::minutes(2 * 60 + 20),
                    syms(&["NIGHT"]),
                ),
                (
                    midnight + chrono::Duration::minutes(2 * 60 + 30),
                    syms(&["NIGHT"]),
                ),
            ];
            // Background: a few symbols at random hours.
            for _ in 0..6 {
                let at = midnight + chrono::Duration::minutes(rng.below(24 * 60) as i64);
                requests.push((at, vec![format!("BG{}", rng.below(10))]));
            }
            requests.sort_by_key(|(at, _)| *at);
            for (at, s) in requests {
                model.observe(&s, at);
                freq.observe(&s, at);
            }
        }
        let afternoon = utc(2024, 1, 29, 14, 0);
        let night = utc(2024, 1, 29, 2, 0);
        assert_eq!(freq.predict(afternoon, 1), syms(&["NIGHT"]));
        assert_eq!(model.predict(afternoon, 1), syms(&["DAY"]));
        assert_eq!(model.predict(night, 1), syms(&["NIGHT"]));
        assert!(
            model.structure(afternoon) > 0.5,
            "{}",
            model.structure(afternoon)
        );
    }

    #[test]
    fn without_time_structure_it_ranks_like_frequency() {
        let mut model = RequestModel::default();
        let mut freq = FrequencyModel::new();
        let start = utc(2024, 1, 1, 0, 0);
        let weeks = 4;
        let minutes = weeks * 7 * 24 * 60;
        let mut rng = Rng(2);
        let mut requests = Vec::new();
        // Symbol k is requested about 400 / k times, at uniformly random minutes.
        for k in 1..=60u64 {
            for _ in 0..(400 / k) {
                let at = start + chrono::Duration::minutes(rng.below(minutes) as i64);
                requests.push((at, vec![format!("S{k:02}")]));
            }
        }
        requests.sort_by_key(|(at, _)| *at);
        for (at, s) in &requests {
            model.observe(s, *at);
            freq.observe(s, *at);
        }
        let expected = freq.predict(start, 10);
        assert_eq!(
            expected,
            (1..=10).map(|k| format!("S{k:02}")).collect::<Vec<_>>()
        );
        for hour in [3, 14, 20, 60, 130, 160] {
            let at = start + chrono::Duration::hours(weeks as i64 * 168 + hour);
            let got = model.predict(at, 10);
            let common = got.iter().filter(|s| expected.contains(s)).count();
            assert!(common >= 9, "hour {hour}: {got:?} vs {expected:?}");
            assert!(
                model.structure(at) < 0.3,
                "hour {hour}: {}",
                model.structure(at)
            );
        }
    }

    #[test]
    fn slot_weights_cover_the_hour_and_sum_to_one() {
        let wednesday_14 = utc(2024, 1, 3, 14, 0);
        let w = slot_weights(wednesday_14, &Blend::default());
        let total: f64 = w.iter().map(|(_, f)| f).sum();
        assert!((total - 1.0).abs() < 1e-12);
        let slots: Vec<u16> = w.iter().map(|(h, _)| *h).collect();
        // Own hour, the four other weekdays at 14:00, 13:00 and 15:00 on Wednesday.
        assert_eq!(slots, vec![62, 14, 38, 86, 110, 61, 63]);
        // Sunday 23:00: Saturday 23:00 is the other weekend day; Monday 00:00 wraps around.
        let sunday_23 = utc(2024, 1, 7, 23, 0);
        let slots: Vec<u16> = slot_weights(sunday_23, &Blend::default())
            .iter()
            .map(|(h, _)| *h)
            .collect();
        assert_eq!(slots, vec![167, 143, 166, 0]);
    }

    #[test]
    fn frequency_model_counts_requests() {
        let mut freq = FrequencyModel::new();
        let at = utc(2024, 1, 1, 0, 0);
        freq.observe(&syms(&["B", "A"]), at);
        freq.observe(&syms(&["B", "C"]), at);
        assert_eq!(freq.predict(at, 2), syms(&["B", "A"]));
        assert_eq!(freq.predict(at, 0), Vec::<String>::new());
        assert_eq!(freq.predict(at, 10).len(), 3);
    }
}
