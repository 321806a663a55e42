//! Warming precision of the request-pattern model against plain frequency warming.
//!
//! Synthetic request traces over 5 weeks and 2,000 symbols (seeded, so every run is the
//! same): requests of 1–50 symbols, like watchlists and symbol-list scans.
//!
//! - `structured`: user groups, each active at its own hours of the day and week, each with
//!   its own favourite symbols (Zipf-like within the group), plus background requests at
//!   any hour drawn from the global popularity.
//! - `unstructured`: the same requests at uniformly random times.
//! - `drifting`: like `structured`, but each group's favourites shift week by week.
//!
//! Both models learn online over the first 4 weeks; in the last week, at the top of each
//! hour, each model names K symbols to warm and then sees the hour's requests. Precision is
//! (warmed symbols requested in the hour) / K, recall is (requested symbols that were
//! warmed) / (requested symbols), both averaged over the hours with at least one request.
//! `oracle` is the best any model could do (it warms the hour's own requests).
//! `structure` is the predictive model's mean structure weight over those hours.
//!
//! Run: `cargo bench --bench warm_predict`. With `WARM_PREDICT_SWEEP=1` it also prints the
//! half-life × blend sweep the defaults were chosen from.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};

use technic::cache::predict::{Blend, FrequencyModel, RequestModel, WarmModel};

const UNIVERSE: usize = 2_000;
const WEEKS: usize = 5;
const HOURS: usize = WEEKS * 168;
const TRAIN_HOURS: usize = (WEEKS - 1) * 168;
const K: usize = 100;
const DAY_SECS: u64 = 24 * 3600;

/// splitmix64: small, seeded, good enough for synthetic traces.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.f64() * n as f64) as usize
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// Poisson by multiplication (fine for the small means used here).
    fn poisson(&mut self, mean: f64) -> usize {
        let limit = (-mean).exp();
        let mut k = 0;
        let mut p = self.f64();
        while p > limit {
            k += 1;
            p *= self.f64();
        }
        k
    }
}

/// Zipf over `n` ranks (rank r has weight r^-exponent), sampled by binary search.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, exponent: f64) -> Self {
        let mut acc = 0.0;
        let cdf: Vec<f64> = (1..=n)
            .map(|r| {
                acc += (r as f64).powf(-exponent);
                acc
            })
            .collect();
        Zipf(cdf.iter().map(|c| c / acc).collect())
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.f64();
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }

    /// `k` distinct ranks.
    fn sample_distinct(&self, rng: &mut Rng, k: usize) -> Vec<usize> {
        let k = k.min(self.0.len());
        let mut seen = HashSet::with_capacity(k);
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            let r = self.sample(rng);
            if seen.insert(r) {
                out.push(r);
            }
        }
        out
    }
}

struct Group {
    /// Bit d set: active on day d (Monday = 0).
    days: u8,
    /// Active hours of the day, UTC.
    hours: std::ops::Range<usize>,
    /// Mean requests per active hour.
    rate: f64,
    favourites: usize,
    /// Symbols per request, inclusive.
    size: (usize, usize),
}

const WEEKDAYS: u8 = 0b001_1111;
const WEEKEND: u8 = 0b110_0000;
const EVERY_DAY: u8 = 0b111_1111;

#[rustfmt::skip]
fn groups() -> Vec<Group> {
    vec![
        // US open and close, Europe, Asia: weekdays at their own hours.
        Group { days: WEEKDAYS, hours: 13..16, rate: 25.0, favourites: 150, size: (1, 20) },
        Group { days: WEEKDAYS, hours: 19..21, rate: 15.0, favourites: 150, size: (1, 20) },
        Group { days: WEEKDAYS, hours: 7..10, rate: 12.0, favourites: 150, size: (1, 20) },
        Group { days: WEEKDAYS, hours: 0..3, rate: 10.0, favourites: 120, size: (1, 20) },
        // Weekend browsing.
        Group { days: WEEKEND, hours: 9..18, rate: 6.0, favourites: 200, size: (1, 10) },
        // Nightly symbol-list scans: few requests, many symbols each.
        Group { days: EVERY_DAY, hours: 2..3, rate: 4.0, favourites: 200, size: (50, 50) },
    ]
}

/// Background requests per hour, at any hour, from the global popularity.
const BACKGROUND_RATE: f64 = 8.0;
const BACKGROUND_SIZE: (usize, usize) = (1, 5);

struct Request {
    hour: usize,
    at: DateTime<Utc>,
    symbols: Vec<String>,
}

/// The first hour of the trace, a Monday.
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

fn hour_start(hour: usize) -> DateTime<Utc> {
    start() + chrono::Duration::hours(hour as i64)
}

/// A random second within `hour`.
fn within_hour(hour: usize, rng: &mut Rng) -> DateTime<Utc> {
    hour_start(hour) + chrono::Duration::seconds(rng.below(3600) as i64)
}

fn symbol(i: usize) -> String {
    format!("S{i:04}")
}

/// Each group's favourites are distinct symbols drawn from the global popularity, most
/// favourite first. With `drift`, the list slides by a quarter of its length each week.
fn trace(seed: u64, drift: bool) -> Vec<Request> {
    let mut rng = Rng(seed);
    // Global popularity: rank r is symbol perm[r].
    let mut perm: Vec<usize> = (0..UNIVERSE).collect();
    for i in (1..UNIVERSE).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    let global = Zipf::new(UNIVERSE, 0.8);
    let groups = groups();
    let favourites: Vec<Vec<usize>> = groups
        .iter()
        .map(|g| {
            let len = g.favourites + if drift { g.favourites * WEEKS / 4 } else { 0 };
            let ranks = global.sample_distinct(&mut rng, len);
            ranks.into_iter().map(|r| perm[r]).collect()
        })
        .collect();
    let within: Vec<Zipf> = groups
        .iter()
        .map(|g| Zipf::new(g.favourites, 1.0))
        .collect();

    let mut out = Vec::new();
    for hour in 0..HOURS {
        let day = (hour / 24) % 7;
        let week = hour / 168;
        for (gi, g) in groups.iter().enumerate() {
            if g.days & (1 << day) == 0 || !g.hours.contains(&(hour % 24)) {
                continue;
            }
            let shift = if drift { week * g.favourites / 4 } else { 0 };
            for _ in 0..rng.poisson(g.rate) {
                let k = rng.range(g.size.0, g.size.1);
                let ranks = within[gi].sample_distinct(&mut rng, k);
                let symbols = ranks.into_iter().map(|r| symbol(favourites[gi][shift + r]));
                let at = within_hour(hour, &mut rng);
                out.push(Request {
                    hour,
                    at,
                    symbols: symbols.collect(),
                });
            }
        }
        for _ in 0..rng.poisson(BACKGROUND_RATE) {
            let k = rng.range(BACKGROUND_SIZE.0, BACKGROUND_SIZE.1);
            let ranks = global.sample_distinct(&mut rng, k);
            let symbols = ranks.into_iter().map(|r| symbol(perm[r]));
            let at = within_hour(hour, &mut rng);
            out.push(Request {
                hour,
                at,
                symbols: symbols.collect(),
            });
        }
    }
    out.sort_by_key(|r| r.at);
    out
}

/// The structured trace's requests at uniformly random times.
fn unstructured(seed: u64) -> Vec<Request> {
    let mut rng = Rng(seed ^ 0x5EED);
    let mut requests = trace(seed, false);
    for r in &mut requests {
        r.hour = rng.below(HOURS);
        r.at = within_hour(r.hour, &mut rng);
    }
    requests.sort_by_key(|r| r.at);
    requests
}

#[derive(Clone, Copy)]
struct Score {
    precision: f64,
    recall: f64,
}

/// Online: observe the first 4 weeks; then at the top of each hour of the last week
/// predict K and score them, then observe the hour. `probe` sees the model before each
/// scored prediction.
fn evaluate<M: WarmModel>(
    requests: &[Request],
    model: &mut M,
    mut probe: impl FnMut(&M, DateTime<Utc>),
) -> Score {
    let mut by_hour: Vec<Vec<&Request>> = vec![Vec::new(); HOURS];
    for r in requests {
        by_hour[r.hour].push(r);
    }
    let (mut p, mut r, mut hours) = (0.0, 0.0, 0usize);
    for (hour, reqs) in by_hour.iter().enumerate() {
        if hour >= TRAIN_HOURS && !reqs.is_empty() {
            let top = hour_start(hour);
            probe(model, top);
            let warmed: HashSet<String> = model.predict(top, K).into_iter().collect();
            let requested: HashSet<&str> = reqs
                .iter()
                .flat_map(|q| q.symbols.iter().map(String::as_str))
                .collect();
            let hits = requested.iter().filter(|s| warmed.contains(**s)).count() as f64;
            p += hits / K as f64;
            r += hits / requested.len() as f64;
            hours += 1;
        }
        for q in reqs {
            model.observe(&q.symbols, q.at);
        }
    }
    Score {
        precision: p / hours as f64,
        recall: r / hours as f64,
    }
}

/// The best possible: warm the hour's own requested symbols (up to K).
fn oracle(requests: &[Request]) -> Score {
    let mut by_hour: HashMap<usize, HashSet<&str>> = HashMap::new();
    for q in requests.iter().filter(|q| q.hour >= TRAIN_HOURS) {
        by_hour
            .entry(q.hour)
            .or_default()
            .extend(q.symbols.iter().map(String::as_str));
    }
    let n = by_hour.len() as f64;
    let (p, r) = by_hour.values().fold((0.0, 0.0), |(p, r), s| {
        let hits = s.len().min(K) as f64;
        (p + hits / K as f64, r + hits / s.len() as f64)
    });
    Score {
        precision: p / n,
        recall: r / n,
    }
}

fn main() {
    let t0 = Instant::now();
    let traces: Vec<(&str, Vec<Request>)> = vec![
        ("structured", trace(1, false)),
        ("unstructured", unstructured(1)),
        ("drifting", trace(2, true)),
    ];

    println!(
        "warm_predict: K = {K}, {UNIVERSE} symbols, {WEEKS} weeks (learn 4, score the last \
         week hour by hour)"
    );
    println!(
        "{:<13} {:>8} {:<11} {:>9} {:>7} {:>9}",
        "trace", "requests", "model", "precision", "recall", "structure"
    );
    for (name, requests) in &traces {
        let frequency = evaluate(requests, &mut FrequencyModel::new(), |_, _| {});
        let (mut structure, mut hours) = (0.0, 0.0);
        let predictive = evaluate(requests, &mut RequestModel::default(), |m, at| {
            structure += m.structure(at);
            hours += 1.0;
        });
        let rows = [
            ("frequency", frequency, None),
            ("predictive", predictive, Some(structure / hours)),
            ("oracle", oracle(requests), None),
        ];
        for (model, s, structure) in rows {
            let structure = structure.map(|k| format!("{k:.2}")).unwrap_or_default();
            println!(
                "{:<13} {:>8} {:<11} {:>8.1}% {:>6.1}% {:>9}",
                name,
                requests.len(),
                model,
                s.precision * 100.0,
                s.recall * 100.0,
                structure
            );
        }
    }

    // Predict latency on a model holding every symbol in every hour slot.
    let mut rng = Rng(7);
    let mut model = RequestModel::default();
    for i in 0..40 * UNIVERSE {
        let hour = rng.below(HOURS);
        model.observe(&[symbol(i % UNIVERSE)], within_hour(hour, &mut rng));
    }
    let at = hour_start(HOURS + 14);
    let runs = 200u32;
    let t = Instant::now();
    let mut warmed = 0;
    for _ in 0..runs {
        warmed += model.predict(at, K).len();
    }
    let per = t.elapsed() / runs;
    assert_eq!(warmed, runs as usize * K);
    println!(
        "predict: K = {K} of {UNIVERSE} symbols in every slot: {:.0} µs",
        per.as_secs_f64() * 1e6
    );

    if std::env::var_os("WARM_PREDICT_SWEEP").is_some() {
        sweep(&traces);
    }
    println!("total {:.1} s", t0.elapsed().as_secs_f64());
}

/// Precision (%) of the predictive model per trace, for each half-life and blend.
fn sweep(traces: &[(&str, Vec<Request>)]) {
    let blends = [
        (0.25, 0.5, 0.25),
        (1.0, 0.0, 0.0),
        (0.0, 1.0, 0.0),
        (0.5, 0.5, 0.0),
        (0.4, 0.4, 0.2),
        (0.1, 0.8, 0.1),
    ];
    let names: Vec<&str> = traces.iter().map(|(n, _)| *n).collect();
    println!("sweep: half-life (days), blend hour/same_hour/neighbours → precision (%)");
    println!("{:>9} {:>14}  {}", "half-life", "blend", names.join(" "));
    for days in [1u64, 3, 7, 14, 28] {
        for &(hour, same_hour, neighbours) in &blends {
            let blend = Blend {
                hour,
                same_hour,
                neighbours,
            };
            let half_life = Duration::from_secs(days * DAY_SECS);
            let ps: Vec<String> = traces
                .iter()
                .map(|(name, t)| {
                    let s = evaluate(t, &mut RequestModel::new(half_life, blend), |_, _| {});
                    format!("{:>w$.1}", s.precision * 100.0, w = name.len())
                })
                .collect();
            println!(
                "{days:>9} {:>14}  {}",
                format!("{hour}/{same_hour}/{neighbours}"),
                ps.join(" ")
            );
        }
    }
}
