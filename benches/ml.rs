//! Alpha model benchmarks.
//!
//! - `ml/inference_5000/{linear,mlp}`: the 5- and 10-day alphas of 5,000 symbols from
//!   their scan features, as a shard's batch is served (normalisation, then one forward
//!   pass per horizon): `Served::alphas`. Target: at most 5 ms on 2 cores.
//!
//! The models are trained first on the synthetic market with a planted factor (300
//! symbols × 360 days). Training at full size (5,000 symbols × 500 bars, two horizons)
//! takes about a minute per run, too long for criterion's repetitions: it is timed by
//! `scripts/bench_ml.sh`, next to the Python gradient-boosted baseline.

use criterion::{criterion_group, criterion_main, Criterion};
use rayon::prelude::*;

use technic::config::{Architecture, Settings, SyntheticSettings};
use technic::data::{BarRange, MarketData, SyntheticProvider};
use technic::ml::dataset;
use technic::ml::features::{self, COUNT};
use technic::ml::model::{Model, Served};
use technic::ml::net::Fit;
use technic::ml::train::{train, Options};
use technic::scan::compute_features;

fn provider(symbols: usize, days: usize, alpha: f64) -> SyntheticProvider {
    SyntheticProvider::new(&SyntheticSettings {
        symbols,
        days,
        alpha_strength: alpha,
        ..Settings::defaults().data.synthetic
    })
}

async fn symbols(p: &SyntheticProvider) -> Vec<String> {
    let universe = p.universe().await.expect("universe");
    universe.into_iter().map(|e| e.symbol).collect()
}

/// A model trained on the planted market, as a node serves it.
async fn served(architecture: Architecture) -> Served {
    let s = Settings::defaults();
    let p = provider(300, 360, 0.3);
    let (ds, failed) = dataset::load(
        &p,
        &symbols(&p).await,
        360,
        s.scan.lookback_days,
        s.scan.min_bars,
        &[5, 10],
    )
    .await;
    assert!(failed.is_empty());
    let opts = Options {
        holdout_days: 60,
        embargo_days: s.ml.embargo_days,
        fit: Fit {
            architecture,
            hidden: s.ml.hidden,
            epochs: 150,
            learning_rate: s.ml.learning_rate,
            seed: s.ml.seed,
        },
        min_t_stat: s.ml.min_t_stat,
        namespace: p.cache_namespace(),
        lookback_days: s.scan.lookback_days,
        min_bars: s.scan.min_bars,
    };
    let model = train(&ds, &opts).expect("trained");
    Model::parse(&model.to_bytes(), "bench", true).expect("served")
}

/// The model inputs of the default universe (5,000 × 500) at its last date.
async fn inputs() -> Vec<[f64; COUNT]> {
    let p = provider(5_000, 500, 0.0);
    let bars = p
        .load_many(&symbols(&p).await, BarRange::new(None, 500))
        .await;
    bars.into_par_iter()
        .map(|b| {
            let b = b.expect("synthetic bars");
            let f = compute_features(b.window(None, 500)).expect("features");
            features::vector(&f.features)
        })
        .collect()
}

fn inference(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rows = rt.block_on(inputs());
    let mut g = c.benchmark_group("ml/inference_5000");
    for (name, architecture) in [("linear", Architecture::Linear), ("mlp", Architecture::Mlp)] {
        let served = rt.block_on(served(architecture));
        g.bench_function(name, |b| {
            b.iter(|| served.alphas(&rows).expect("alphas"));
        });
    }
    g.finish();
}

criterion_group!(benches, inference);
criterion_main!(benches);
