//! Warming precision of the request-pattern model against plain frequency warming.
//!
//! Synthetic request traces over 5 weeks and 2,000 symbols (seeded, so every run is the
//! same): requests of 1–50 symbols, like watchlists and symbol-list scans.
//!
//! - `structured`: user groups, each active at its own hours of the day and week, each with
//!   its own favourite symbols (Zipf-like within the group), plus background requests at
//!   any hour drawn from the global popularity.
//! - `unstructured`: the same requests, at uniformly random times.
//! - `drifting`: like `structured`, but each group's favourites shift week by week.
//!
//! Both models learn online over the first 4 weeks; in the last week, at the top of each
//! hour, each model names K symbols to warm and then sees the hour's requests. Precision is
//! (warmed symbols requested in the hour) / K, recall is (requested symbols that were
//! warmed) / (requested symbols), both averaged over the hours with at least one request.
//! `oracle` is the best any model could do (the hour's own requests, most requested first).
//!
//! Run: `cargo bench --bench warm_predict`. `WARM_PREDICT_SWEEP=1` also prints the
//! half-life and blend sweep the defaults were chosen from.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};

use technic::cache::predict::{Blend, FrequencyModel, RequestModel, WarmModel, DEFAULT_HALF_LIFE};

const UNIVERSE: usize = 2_000;
const WEEKS: usize = 5;
const HOURS: usize = WEEKS * 168;
const TRAIN_HOURS: usize = (WEEKS - 1) * 168;
const K: usize = 100;
const DAY: u64 = 24 * 3600;

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

/// Zipf(1) over `n` ranks, sampled by binary search of the cumulative weights.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, exponent: f64) -> Self {
        let mut acc = 0.0;
        let cdf = (1..=n)
            .map(|r| {
                acc += 1.0 / (r as f64).powf(exponent);
                acc
            })
            .collect::<Vec<_>>();
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
    hours: std::ops::Range<usize>,
    /// Mean requests per active hour.
    rate: f64,
    favourites: usize,
    size: (usize, usize),
}

const WEEKDAYS: u8 = 0b001_1111;
const WEEKEND: u8 = 0b110_0000;
const EVERY_DAY: u8 = 0b111_1111;

fn groups() -> Vec<Group> {
    vec![
        // US open and close, Europe, Asia: weekdays at their own hours.
        Group {
            days: WEEKDAYS,
            hours: 13..16,
            rate: 25.0,
            favourites: 150,
            size: (1, 20),
        },
        Group {
            days: WEEKDAYS,
            hours: 19..21,
            rate: 15.0,
            favourites: 150,
            size: (1, 20),
        },
        Group {
            days: WEEKDAYS,
            hours: 7..10,
            rate: 12.0,
            favourites: 150,
            size: (1, 20),
        },
        Group {
            days: WEEKDAYS,
            hours: 0..3,
            rate: 10.0,
            favourites: 120,
            size: (1, 20),
        },
        // Weekend browsing.
        Group {
            days: WEEKEND,
            hours: 9..18,
            rate: 6.0,
            favourites: 200,
            size: (1, 10),
        },
        // Nightly symbol-list scans: few requests, many symbols each.
        Group {
            days: EVERY_DAY,
            hours: 2..3,
            rate: 4.0,
            favourites: 200,
            size: (50, 50),
        },
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

fn start() -> DateTime<Utc> {
    // A Monday.
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

fn at_hour(hour: usize, rng: &mut Rng) -> DateTime<Utc> {
    start() + chrono::Duration::seconds((hour * 3600 + rng.below(3600)) as i64)
}

/// Each group's favourites: distinct symbols drawn from the global popularity, listed
/// most favourite first. With `drift`, the list slides by a quarter each week.
fn trace(seed: u64, drift: bool) -> Vec<Request> {
    let mut rng = Rng(seed);
    let names: Vec<String> = (0..UNIVERSE).map(|i| format!("S{i:04}")).collect();
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
            global
                .sample_distinct(&mut rng, len)
                .into_iter()
                .map(|r| perm[r])
                .collect()
        })
        .collect();
    let within: Vec<Zipf> = groups
        .iter()
        .map(|g| Zipf::new(g.favourites, 1.0))
        .collect();

    let mut out = Vec::new();
    for hour in 0..HOURS {
        let day = (hour / 24) % 7;
        let hod = hour % 24;
        let week = hour / 168;
        for (gi, g) in groups.iter().enumerate() {
            if g.days & (1 << day) == 0 || !g.hours.contains(&hod) {
                continue;
            }
            let shift = if drift { week * g.favourites / 4 } else { 0 };
            for _ in 0..rng.poisson(g.rate) {
                let k = rng.range(g.size.0, g.size.1);
                let symbols = within[gi]
                    .sample_distinct(&mut rng, k)
                    .into_iter()
                    .map(|r| names[favourites[gi][shift + r]].clone())
                    .collect();
                out.push(Request {
                    hour,
                    at: at_hour(hour, &mut rng),
                    symbols,
                });
            }
        }
        for _ in 0..rng.poisson(BACKGROUND_RATE) {
            let k = rng.range(BACKGROUND_SIZE.0, BACKGROUND_SIZE.1);
            let symbols = global
                .sample_distinct(&mut rng, k)
                .into_iter()
                .map(|r| names[perm[r]].clone());
            out.push(Request {
                hour,
                at: at_hour(hour, &mut rng),
                symbols: symbols.collect(),
            });
        }
    }
    out
}

/// The same requests at uniformly random times.
fn unstructured(seed: u64) -> Vec<Request> {
    let mut rng = Rng(seed ^ 0x5EED);
    let mut requests = trace(seed, false);
    for r in &mut requests {
        r.hour = rng.below(HOURS);
        r.at = at_hour(r.hour, &mut rng);
    }
    requests.sort_by_key(|r| r.at);
    requests
}

#[derive(Default, Clone, Copy)]
struct Score {
    precision: f64,
    recall: f64,
}

/// Online: observe the first 4 weeks, then at each hour of the last week predict K, score,
/// and observe the hour.
fn evaluate(requests: &[Request], model: &mut dyn WarmModel) -> Score {
    let mut by_hour: Vec<Vec<&Request>> = vec![Vec::new(); HOURS];
    for r in requests {
        by_hour[r.hour].push(r);
    }
    let (mut p, mut r, mut hours) = (0.0, 0.0, 0usize);
    for (hour, reqs) in by_hour.iter().enumerate() {
        if hour >= TRAIN_HOURS && !reqs.is_empty() {
            let top = start() + chrono::Duration::hours(hour as i64);
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

/// The best possible: warm the hour's own requested symbols.
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

fn predictive(half_life: Duration, blend: Blend) -> RequestModel {
    RequestModel::new(half_life, blend)
}

fn main() {
    let traces: Vec<(&str, Vec<Request>)> = vec![
        ("structured", trace(1, false)),
        ("unstructured", unstructured(1)),
        ("drifting", trace(2, true)),
    ];

    if std::env::var_os("WARM_PREDICT_SWEEP").is_some() {
        sweep(&traces);
    }
    if std::env::var_os("WARM_PREDICT_COOC").is_some() {
        sweep_cooc(&traces);
        return;
    }
    if std::env::var_os("WARM_PREDICT_ADAPT").is_some() {
        sweep_adapt(&traces);
        return;
    }

    println!("warm_predict: K = {K}, {UNIVERSE} symbols, {WEEKS} weeks (train 4, score the last)");
    println!(
        "{:<13} {:>9} {:<12} {:>9} {:>7}",
        "trace", "requests", "model", "precision", "recall"
    );
    for (name, requests) in &traces {
        let rows: Vec<(&str, Score)> = vec![
            ("frequency", evaluate(requests, &mut FrequencyModel::new())),
            (
                "predictive",
                evaluate(requests, &mut RequestModel::default()),
            ),
            ("oracle", oracle(requests)),
        ];
        for (model, s) in rows {
            println!(
                "{:<13} {:>9} {:<12} {:>8.1}% {:>6.1}%",
                name,
                requests.len(),
                model,
                s.precision * 100.0,
                s.recall * 100.0
            );
        }
    }

    // Predict latency on a model holding every symbol in every slot.
    let mut rng = Rng(7);
    let mut model = RequestModel::default();
    let names: Vec<String> = (0..UNIVERSE).map(|i| format!("S{i:04}")).collect();
    for i in 0..20 * UNIVERSE {
        let hour = rng.below(HOURS);
        model.observe(
            std::slice::from_ref(&names[i % UNIVERSE]),
            at_hour(hour, &mut rng),
        );
    }
    let at = start() + chrono::Duration::hours(HOURS as i64 + 14);
    let runs = 200;
    let t = Instant::now();
    let mut total = 0;
    for _ in 0..runs {
        total += model.predict(at, K).len();
    }
    let per = t.elapsed() / runs;
    assert_eq!(total, runs as usize * K);
    println!(
        "predict K = {K} over {UNIVERSE} symbols: {:.1} µs",
        per.as_secs_f64() * 1e6
    );
}

fn sweep(traces: &[(&str, Vec<Request>)]) {
    let half_lives = [1, 3, 7, 14, 28, 100_000];
    let levels = [0.0, 0.1, 0.2, 0.4, 0.6];
    println!("sweep: half-life days, hour/same_hour/neighbours/global → precision per trace");
    for &days in &half_lives {
        for &hour in &levels {
            for &same_hour in &levels {
                for &neighbours in &[0.0, 0.1, 0.2] {
                    for &global in &[0.0, 0.05, 0.1, 0.2, 0.4] {
                        let blend = Blend {
                            hour,
                            same_hour,
                            neighbours,
                            global,
                        };
                        if hour + same_hour + neighbours + global == 0.0 {
                            continue;
                        }
                        let hl = Duration::from_secs(days * DAY);
                        let ps: Vec<String> = traces
                            .iter()
                            .map(|(_, t)| {
                                let s = evaluate(t, &mut predictive(hl, blend));
                                format!("{:5.1}", s.precision * 100.0)
                            })
                            .collect();
                        println!(
                            "sweep {days:>6} {hour:.2} {same_hour:.2} {neighbours:.2} {global:.2} {}",
                            ps.join(" ")
                        );
                    }
                }
            }
        }
    }
    let _ = DEFAULT_HALF_LIFE;
}

// ---- experiment: adaptive blend (structure test) ----
use technic::cache::predict::{forward_weight_from, slot_weights, Slot};

#[derive(Clone, Copy)]
struct Adapt {
    blend: Blend, // local ratios (global ignored)
    c: f64,
    min_e: f64,
    kappa: f64,
}

struct AdaptModel {
    inner: RequestModel,
    hl: Duration,
    a: Adapt,
}

impl WarmModel for AdaptModel {
    fn observe(&mut self, symbols: &[String], at: DateTime<Utc>) {
        self.inner.observe(symbols, at);
    }
    fn predict(&self, at: DateTime<Utc>, n: usize) -> Vec<String> {
        let mut scores = self.scores(at);
        scores.truncate(n);
        scores.into_iter().map(|(s, _)| s).collect()
    }
}

impl AdaptModel {
    fn scores(&self, at: DateTime<Utc>) -> Vec<(String, f64)> {
        let b = Blend {
            global: 0.0,
            ..self.a.blend
        };
        let sw = slot_weights(at, &b);
        let tot: f64 = sw.iter().map(|(_, f)| f).sum();
        let sumsq: f64 = sw.iter().map(|(_, f)| (f / tot) * (f / tot)).sum();
        let mut local: HashMap<String, f64> = HashMap::new();
        for (slot, f) in &sw {
            for (s, w) in self.inner.slot(*slot) {
                *local.entry(s).or_insert(0.0) += f / tot * w;
            }
        }
        let wnow = forward_weight_from(self.inner.epoch(), at, self.hl);
        let global = self.inner.slot(Slot::All);
        let (mut d, mut m) = (0.0, 0.0);
        for (s, gw) in &global {
            let e = gw / 168.0 / wnow;
            if e / sumsq < self.a.min_e {
                continue;
            }
            let x = local.get(s).copied().unwrap_or(0.0) / wnow;
            d += (x - e) * (x - e) / (e * sumsq * self.a.kappa);
            m += 1.0;
        }
        let lambda = if d > 0.0 {
            (1.0 - self.a.c * m / d).max(0.0)
        } else {
            0.0
        };
        let mut scores: Vec<(String, f64)> = global
            .into_iter()
            .map(|(s, gw)| {
                let g = gw / 168.0;
                let l = local.get(&s).copied().unwrap_or(0.0);
                (s, g + lambda * (l - g))
            })
            .collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        scores
    }
}

struct CoocModel {
    inner: AdaptModel,
    pairs: HashMap<String, HashMap<String, f64>>,
    counts: HashMap<String, f64>,
    recent: Vec<(DateTime<Utc>, Vec<String>)>,
    mu_cooc: f64,
    mu_recent: f64,
}

impl WarmModel for CoocModel {
    fn observe(&mut self, symbols: &[String], at: DateTime<Utc>) {
        self.inner.observe(symbols, at);
        if self.mu_cooc > 0.0 {
            for a in symbols {
                *self.counts.entry(a.clone()).or_insert(0.0) += 1.0;
                let row = self.pairs.entry(a.clone()).or_default();
                for b in symbols {
                    if a != b {
                        *row.entry(b.clone()).or_insert(0.0) += 1.0;
                    }
                }
            }
        }
        self.recent.push((at, symbols.to_vec()));
    }
    fn predict(&self, at: DateTime<Utc>, n: usize) -> Vec<String> {
        let base = self.inner.scores(at);
        let total: f64 = base.iter().take(300).map(|(_, w)| w).sum::<f64>().max(1e-300);
        let mut score: HashMap<String, f64> =
            base.into_iter().take(300).map(|(s, w)| (s, w / total)).collect();
        let ctx: Vec<&String> = self
            .recent
            .iter()
            .rev()
            .take_while(|(t, _)| *t >= at - chrono::Duration::hours(1))
            .flat_map(|(_, s)| s.iter())
            .collect();
        if !ctx.is_empty() {
            if self.mu_recent > 0.0 {
                let f = self.mu_recent / ctx.len() as f64;
                for s in &ctx {
                    *score.entry((*s).clone()).or_insert(0.0) += f;
                }
            }
            if self.mu_cooc > 0.0 {
                let mut co: HashMap<&String, f64> = HashMap::new();
                for r in &ctx {
                    if let Some(row) = self.pairs.get(*r) {
                        let c = self.counts[*r];
                        for (s, v) in row {
                            *co.entry(s).or_insert(0.0) += v / c;
                        }
                    }
                }
                let t: f64 = co.values().sum::<f64>().max(1e-300);
                for (s, v) in co {
                    *score.entry(s.clone()).or_insert(0.0) += self.mu_cooc * v / t;
                }
            }
        }
        let mut v: Vec<(String, f64)> = score.into_iter().collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v.into_iter().map(|(s, _)| s).collect()
    }
}

fn sweep_cooc(traces: &[(&str, Vec<Request>)]) {
    let hl = Duration::from_secs(7 * DAY);
    let a = Adapt { blend: Blend { hour: 0.2, same_hour: 0.4, neighbours: 0.2, global: 0.0 }, c: 1.0, min_e: 1.0, kappa: 1.0 };
    for &(mu_cooc, mu_recent) in &[(0.0, 0.0), (0.05, 0.0), (0.1, 0.0), (0.2, 0.0), (0.5, 0.0), (0.0, 0.05), (0.0, 0.1), (0.0, 0.2), (0.0, 0.5)] {
        let ps: Vec<String> = traces
            .iter()
            .map(|(_, t)| {
                let mut m = CoocModel {
                    inner: AdaptModel { inner: predictive(hl, a.blend), hl, a },
                    pairs: HashMap::new(),
                    counts: HashMap::new(),
                    recent: Vec::new(),
                    mu_cooc,
                    mu_recent,
                };
                let s = evaluate(t, &mut m);
                format!("{:5.1} {:5.1}", s.precision * 100.0, s.recall * 100.0)
            })
            .collect();
        println!("cooc mu_cooc={mu_cooc} mu_recent={mu_recent} {}", ps.join(" | "));
    }
}

fn sweep_adapt(traces: &[(&str, Vec<Request>)]) {
    for &days in &[3u64, 7, 14, 28] {
        for &(hour, same_hour, neighbours) in &[
            (0.2, 0.4, 0.2),
            (0.3, 0.5, 0.1),
            (0.2, 0.6, 0.2),
            (0.5, 0.5, 0.0),
            (0.1, 0.8, 0.1),
            (1.0, 0.0, 0.0),
            (0.0, 1.0, 0.0),
        ] {
            for &c in &[0.5, 1.0, 2.0] {
                for &min_e in &[0.0, 1.0, 5.0] {
                    for &kappa in &[1.0, 0.6] {
                        let a = Adapt {
                            blend: Blend {
                                hour,
                                same_hour,
                                neighbours,
                                global: 0.0,
                            },
                            c,
                            min_e,
                            kappa,
                        };
                        let hl = Duration::from_secs(days * DAY);
                        let ps: Vec<String> = traces
                            .iter()
                            .map(|(_, t)| {
                                let mut m = AdaptModel {
                                    inner: predictive(hl, a.blend),
                                    hl,
                                    a,
                                };
                                let s = evaluate(t, &mut m);
                                format!("{:5.1}", s.precision * 100.0)
                            })
                            .collect();
                        println!("adapt {days:>3} {hour:.2} {same_hour:.2} {neighbours:.2} c={c} min_e={min_e} k={kappa} {}", ps.join(" "));
                    }
                }
            }
        }
    }
}
