//! Fuzzing on stable Rust: proptest feeds every decoder of outside input arbitrary bytes and
//! random mutations (byte flips, insertions, deletions, truncation) of a valid input. None may
//! panic, and what each accepts must hold its promises (bars sorted with distinct dates,
//! symbols that follow the rule, configs that validate).
//!
//! The decoders: the CSV bar reader, the `universe.csv` reader, the scan request parser, the
//! settings loader, the cache codec, and the Redis queue's shard and report entries.
//!
//! Bounded for the test command: `FUZZ_CASES` cases per target (default 10,000: about half a
//! minute in all on two cores); longer on demand, e.g. `FUZZ_CASES=1000000 cargo test
//! --release --test fuzz`. A failure prints the smallest input proptest found; add it to the unit tests of
//! that decoder as a regression.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use proptest::prelude::*;
use technic::cache::codec;
use technic::cluster::{decode_shard, plan_shards, process_shard, CacheMode, PipelineContext};
use technic::cluster::{transport, CoordinatorMsg, ResultEntry};
use technic::config::Settings;
use technic::data::csv_bars::{parse_bars_csv, Columns};
use technic::data::{BarRange, CsvProvider, MarketData, SyntheticProvider};
use technic::market::{is_valid_symbol, Bars, UniverseEntry};
use technic::scan::{ScanConfig, SymbolFeatures};

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Failures are reported with their input; regressions go into unit tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary bytes, or `seed` with up to 8 random edits and sometimes cut short.
fn input(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let raw = proptest::collection::vec(any::<u8>(), 0..1024);
    let edits = proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8);
    let mutated = (edits, any::<usize>()).prop_map(move |(edits, cut)| {
        let mut b = seed.clone();
        for (pos, byte, op) in edits {
            let i = pos % (b.len() + 1);
            match op {
                0 if i < b.len() => b[i] = byte,
                1 => b.insert(i, byte),
                _ if i < b.len() => {
                    b.remove(i);
                }
                _ => {}
            }
        }
        if cut % 4 == 0 {
            b.truncate(cut % (b.len() + 1));
        }
        b
    });
    prop_oneof![1 => raw, 3 => mutated]
}

const BARS_CSV: &str = "Date,Open,High,Low,Close,Adj Close,Volume\r\n\
2024-01-02,10.5,11,10,10.75,10.7,12000\r\n\
2024-01-03,\"10.8\",11.2,10.6,11.1,11,13000\r\n\
2024-01-05,11,11.5,10.9,11.4,11.3,9000\r\n";

const UNIVERSE_CSV: &str = "symbol,name,sector,industry,market_cap\n\
AAPL,\"Apple, Inc.\",Technology,Hardware,3e12\nBRK.B,Berkshire,Financials,Insurance,\nXYZ,,,,\n";

fn bars_accepted(b: &Bars) {
    assert!(!b.is_empty());
    assert!(
        b.dates.windows(2).all(|w| w[0] < w[1]),
        "dates not strictly increasing"
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_bar_reader_never_panics_and_returns_sorted_distinct_dates(
        bytes in input(BARS_CSV.as_bytes().to_vec())
    ) {
        for columns in [Columns::Ohlcv, Columns::Hlc] {
            match parse_bars_csv(&bytes, "F.csv", columns) {
                Ok(b) => bars_accepted(&b),
                Err(e) => prop_assert!(e.to_string().starts_with("F.csv"), "{e}"),
            }
        }
    }

    #[test]
    fn the_universe_reader_never_panics_and_keeps_only_valid_symbols(
        bytes in input(UNIVERSE_CSV.as_bytes().to_vec())
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("universe.csv"), &bytes).expect("write");
        let opened = CsvProvider::open(dir.path());
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        if let Ok(p) = opened {
            let universe = rt.block_on(p.universe()).expect("universe");
            prop_assert!(universe.iter().all(|e| is_valid_symbol(&e.symbol)));
            prop_assert!(universe.iter().all(|e| e.market_cap.is_none_or(|c| c.is_finite() && c >= 0.0)));
        }
    }

    #[test]
    fn the_scan_request_parser_never_panics_and_accepts_only_valid_configs(
        bytes in input(br#"{"universe_size": 50, "symbols": ["AAPL", "MSFT"], "weights": {"trend": 2, "momentum": 3, "volume": 2, "volatility": 1, "oscillator": 1, "breakout": 1}, "min_price": 5, "top": 10, "sort": "momentum", "as_of": "2024-06-28", "signals": ["long"]}"#.to_vec())
    ) {
        let settings = Settings::defaults();
        if let Ok(cfg) = technic::api::scan_request::parse(&bytes, &settings) {
            prop_assert!(cfg.validate(settings.scan.max_universe_size).is_ok(), "{cfg:?}");
        }
    }

    #[test]
    fn the_settings_loader_never_panics_and_returns_only_valid_settings(
        bytes in input(b"[cluster]\nworkers = 2\nshard_size = 32\n\n[scan]\nmin_price = 2.5\n\n[scan.weights]\ntrend = 2.0\n\n[log]\nlevel = \"warn\"\n".to_vec())
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("technic.toml");
        std::fs::write(&path, &bytes).expect("write");
        if let Ok(s) = Settings::load(Some(&path), &HashMap::new()) {
            prop_assert!(s.validate().is_ok());
        }
    }
}

/// Seeds built from the real types: a synthetic symbol's bars, a real shard and the report
/// of running it.
struct Seeds {
    bars: Vec<u8>,
    shard: Vec<u8>,
    report: Vec<u8>,
}

fn seeds() -> Seeds {
    let settings = Settings::defaults();
    let provider: Arc<dyn MarketData> = Arc::new(SyntheticProvider::new(&settings.data.synthetic));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bars = rt
        .block_on(provider.daily_bars("AAAA", BarRange::new(None, 60)))
        .or_else(|_| {
            let first = rt.block_on(provider.universe()).expect("universe")[0]
                .symbol
                .clone();
            rt.block_on(provider.daily_bars(&first, BarRange::new(None, 60)))
        })
        .expect("bars");
    let universe: Vec<UniverseEntry> =
        rt.block_on(provider.universe()).expect("universe")[..3].to_vec();
    let cfg = Arc::new(ScanConfig::from_settings(&settings.scan));
    let shard = plan_shards("scan-fuzz", &universe, 3, &cfg).remove(0);
    let ctx = PipelineContext {
        node_id: "fuzz".into(),
        provider,
        cache: None,
        queue: None,
        ml: Default::default(),
    };
    let report = rt.block_on(process_shard(&ctx, &shard, CacheMode::Use));
    Seeds {
        bars: codec::encode(&bars).expect("encode bars"),
        shard: serde_json::to_vec(&shard).expect("shard json"),
        // The wire form of a report: an externally tagged `ShardDone`, MessagePack maps.
        report: rmp_serde::to_vec_named(&BTreeMap::from([("ShardDone", &report)])).expect("report"),
    }
}

#[test]
fn the_seeds_decode() {
    let s = seeds();
    bars_accepted(&codec::decode::<Bars>(&s.bars).expect("bars"));
    assert!(decode_shard(&s.shard).is_some());
    let entry = ResultEntry {
        scan_id: "scan-fuzz".into(),
        id: "1-0".into(),
        payload: s.report,
    };
    assert!(matches!(
        transport::decode(&entry),
        CoordinatorMsg::ShardDone(_)
    ));
}

#[test]
fn the_cache_codec_and_queue_entry_decoders_never_panic() {
    let s = seeds();
    let mut runner = proptest::test_runner::TestRunner::new(config());
    runner
        .run(&input(s.bars.clone()), |bytes| {
            let _ = codec::decode::<Bars>(&bytes);
            let _ = codec::decode::<SymbolFeatures>(&bytes);
            Ok(())
        })
        .expect("cache codec");
    runner
        .run(&input(s.shard.clone()), |bytes| {
            if let Some(shard) = decode_shard(&bytes) {
                prop_assert!(shard.scan_id.len() <= bytes.len());
            }
            Ok(())
        })
        .expect("shard entries");
    runner
        .run(&input(s.report.clone()), |bytes| {
            let entry = ResultEntry {
                scan_id: "scan-fuzz".into(),
                id: "1-0".into(),
                payload: bytes,
            };
            match transport::decode(&entry) {
                CoordinatorMsg::ShardDone(_)
                | CoordinatorMsg::ShardsExhausted(..)
                | CoordinatorMsg::ReportUnreadable(..) => {}
                _ => prop_assert!(false, "a report decodes to a report or an error"),
            }
            Ok(())
        })
        .expect("report entries");
}
