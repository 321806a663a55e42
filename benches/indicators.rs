//! Indicator benchmarks (criterion group "indicators").
//!
//! - `table/<case>`: the fused per-bar table on the golden-fixture series
//!   (`tests/fixtures/talib/<case>.input.csv`), reported per bar; compare with
//!   `python3 scripts/bench_talib.py`, which times TA-Lib's nine calls on the same arrays.
//! - `table/gbm_long_prefix250`: the first 250 bars of `gbm_long`; with `table/gbm_long`
//!   it gives the marginal cost per bar, `(t(2000) − t(250)) / 1750`.
//! - `latest_500_bars`: the scanner's fused latest-value pass on one 500-bar series.
//!
//! Run: `cargo bench --bench indicators`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use technic::indicators::{latest, table};

const CASES: [&str; 5] = ["gbm_long", "penny", "volatile", "flat", "short"];

/// OHLCV columns of one fixture input CSV (`date,open,high,low,close,volume`).
struct Series {
    open: Vec<f64>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
    volume: Vec<f64>,
}

fn read_series(case: &str) -> Series {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", "talib"]
        .iter()
        .collect::<PathBuf>()
        .join(format!("{case}.input.csv"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut s = Series {
        open: vec![],
        high: vec![],
        low: vec![],
        close: vec![],
        volume: vec![],
    };
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let v: Vec<f64> = line
            .split(',')
            .skip(1)
            .map(|c| c.parse().expect("number"))
            .collect();
        s.open.push(v[0]);
        s.high.push(v[1]);
        s.low.push(v[2]);
        s.close.push(v[3]);
        s.volume.push(v[4]);
    }
    s
}

fn indicators(c: &mut Criterion) {
    let mut group = c.benchmark_group("indicators");
    for case in CASES {
        let s = read_series(case);
        group.throughput(Throughput::Elements(s.close.len() as u64));
        group.bench_function(format!("table/{case}"), |b| {
            b.iter(|| table(black_box(&s.high), black_box(&s.low), black_box(&s.close)))
        });
    }
    let s = read_series("gbm_long");
    let (h, l, cl) = (&s.high[..250], &s.low[..250], &s.close[..250]);
    group.throughput(Throughput::Elements(250));
    group.bench_function("table/gbm_long_prefix250", |b| {
        b.iter(|| table(black_box(h), black_box(l), black_box(cl)))
    });
    let tail = |v: &[f64]| v[v.len() - 500..].to_vec();
    let (o, h, l, cl, v) = (
        tail(&s.open),
        tail(&s.high),
        tail(&s.low),
        tail(&s.close),
        tail(&s.volume),
    );
    group.throughput(Throughput::Elements(1));
    group.bench_function("latest_500_bars", |b| {
        b.iter(|| {
            latest(
                black_box(&o),
                black_box(&h),
                black_box(&l),
                black_box(&cl),
                black_box(&v),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, indicators);
criterion_main!(benches);
