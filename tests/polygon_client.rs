//! The Polygon client against a real HTTP server on loopback (wiremock standing in for
//! Polygon): per-symbol aggregates with pagination, missing results, the grouped-daily
//! (bulk) path giving the same bars as per-symbol requests, and the reference universe.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use support::fake_polygon::FakePolygon;
use support::polygon::{
    as_of, bars_json, code, day, juneteenth, market, range, received, same_prices, serve, settings,
    KEY,
};
use technic::config::BulkMode;
use technic::data::{DataError, MarketData, PolygonProvider};
use technic::market::{Bars, Origin};
use wiremock::matchers::{bearer_token, method, path_regex, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn pagination_follows_next_url_and_resends_the_key_in_the_header() {
    let server = MockServer::start().await;
    let next = format!(
        "{}/v2/aggs/ticker/AAPL/range/1/day/2024-06-11/2024-06-28?cursor=p2&apiKey=dropme",
        server.uri()
    );
    let first = format!(
        "{{\"status\":\"OK\",\"results\":{},\"next_url\":\"{next}\"}}",
        bars_json(&[(day(25), 10.0), (day(26), 11.0)])
    );
    Mock::given(method("GET"))
        .and(path_regex("^/v2/aggs/ticker/AAPL/range/1/day/"))
        .and(query_param_is_missing("cursor"))
        .and(query_param("adjusted", "true"))
        .and(query_param("sort", "asc"))
        .and(query_param("limit", "50000"))
        .and(bearer_token(KEY))
        .respond_with(ResponseTemplate::new(200).set_body_raw(first, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let second = format!(
        "{{\"status\":\"OK\",\"results\":{}}}",
        bars_json(&[(day(27), 12.0), (day(28), 13.0)])
    );
    Mock::given(method("GET"))
        .and(query_param("cursor", "p2"))
        .and(query_param_is_missing("apiKey"))
        .and(bearer_token(KEY))
        .respond_with(ResponseTemplate::new(200).set_body_raw(second, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let p = PolygonProvider::new(&settings(&server)).expect("provider");
    let bars = p.daily_bars("AAPL", range(5)).await.expect("two pages");
    assert_eq!(bars.dates, [day(25), day(26), day(27), day(28)]);
    assert_eq!(bars.close, [10.0, 11.0, 12.0, 13.0]);
    let reqs = received(&server).await;
    assert!(
        reqs.iter().all(|r| !r.url.as_str().contains(KEY)),
        "the key is never in a URL"
    );
    server.verify().await;
}

#[tokio::test]
async fn missing_results_is_not_found_and_a_next_url_elsewhere_is_refused() {
    let server = MockServer::start().await;
    Mock::given(path_regex("/ZZZ/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            "{\"ticker\":\"ZZZ\",\"status\":\"OK\",\"queryCount\":0,\"resultsCount\":0}",
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(path_regex("/EVIL/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!("{{\"status\":\"OK\",\"results\":{},\"next_url\":\"http://example.invalid/steal\"}}", bars_json(&[(day(3), 1.0)])),
            "application/json",
        ))
        .mount(&server)
        .await;
    let p = PolygonProvider::new(&settings(&server)).expect("provider");
    let got = p.load_many(&["ZZZ".into(), "EVIL".into()], range(5)).await;
    assert_eq!(
        got[0].as_ref().err(),
        Some(&DataError::NotFound {
            symbol: "ZZZ".into()
        })
    );
    assert_eq!(code(&got[1]), "DATA_INVALID");
    assert!(got[1]
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default()
        .contains("another host"));
    assert_eq!(received(&server).await.len(), 2, "neither is retried");
}

#[tokio::test]
async fn grouped_daily_issues_one_request_per_date_and_gives_the_per_symbol_bars() {
    let fake = FakePolygon::new(market(40, 60).await, HashSet::new(), Duration::ZERO)
        .omitting_from_grouped(HashSet::new());
    let symbols = fake.symbols();
    let server = serve(&fake).await;
    let p = Arc::new(PolygonProvider::new(&settings(&server)).expect("provider"));
    // Two shards of one 40-symbol scan, loaded concurrently: lookback 20 bars is a
    // 38-day window, 28 weekdays < 40 symbols, so "auto" goes bulk.
    let scan = |shard: &[String]| {
        let p = Arc::clone(&p);
        let shard = shard.to_vec();
        async move { p.load_many(&shard, range(20).with_scan_symbols(40)).await }
    };
    let (a, b) = tokio::join!(scan(&symbols[..20]), scan(&symbols[20..]));
    let bulk: Vec<Bars> = a
        .into_iter()
        .chain(b)
        .map(|r| r.expect("bulk bars"))
        .collect();
    let (from, to) = range(20).calendar_window(as_of());
    let weekdays = from
        .iter_days()
        .take_while(|d| *d <= to)
        .filter(|d| chrono::Datelike::weekday(d).number_from_monday() <= 5)
        .count();
    let grouped: Vec<String> = fake
        .hits()
        .into_iter()
        .map(|(_, p)| p)
        .filter(|p| p.contains("/grouped/"))
        .collect();
    assert_eq!(
        grouped.len(),
        weekdays,
        "one request per weekday of the window"
    );
    assert_eq!(
        grouped.iter().collect::<HashSet<_>>().len(),
        weekdays,
        "no date twice, even across shards"
    );
    assert!(
        grouped.iter().all(|p| p.ends_with("?adjusted=true")),
        "{:?}",
        grouped[0]
    );
    assert_eq!(fake.count("/v2/aggs/ticker/"), 0, "no per-symbol requests");
    assert!(bulk
        .iter()
        .all(|b| b.origin == Origin::Bulk && !b.dates.contains(&juneteenth())));
    assert_eq!(p.stats().grouped_days as usize, weekdays);

    let mut s = settings(&server);
    s.bulk = BulkMode::Never;
    let per_symbol = PolygonProvider::new(&s)
        .expect("provider")
        .load_many(&symbols, range(20).with_scan_symbols(40))
        .await;
    for ((sym, g), one) in symbols.iter().zip(&bulk).zip(per_symbol) {
        let one = one.expect("per-symbol bars");
        assert_eq!(one.origin, Origin::Primary);
        assert!(
            same_prices(g, &one),
            "{sym}: grouped and per-symbol bars differ"
        );
        let source = fake
            .bars(sym)
            .expect("known")
            .window(Some(as_of()), usize::MAX);
        assert_eq!(g.close.last(), source.close.last());
    }
    assert_eq!(fake.count("/v2/aggs/ticker/"), 40);

    // A small scan stays per symbol under "auto", and the held days make a later big
    // one free.
    let before = fake.hits().len();
    let small = p
        .load_many(&symbols[..3], range(200).with_scan_symbols(3))
        .await;
    assert!(small
        .iter()
        .all(|r| r.as_ref().is_ok_and(|b| b.origin == Origin::Primary)));
    assert_eq!(fake.hits().len() - before, 3);
    let again = p
        .load_many(&symbols[..3], range(20).with_scan_symbols(3))
        .await;
    assert!(
        again
            .iter()
            .all(|r| r.as_ref().is_ok_and(|b| b.origin == Origin::Bulk)),
        "held days cost nothing"
    );
    assert_eq!(fake.hits().len() - before, 3);
}

#[tokio::test]
async fn symbols_missing_from_grouped_days_are_loaded_per_symbol() {
    let market = market(12, 40).await;
    let otc = market.keys().next().expect("a symbol").clone();
    let fake = FakePolygon::new(market, HashSet::new(), Duration::ZERO)
        .omitting_from_grouped(HashSet::from([otc.clone()]));
    let server = serve(&fake).await;
    let mut s = settings(&server);
    s.bulk = BulkMode::Always;
    let p = PolygonProvider::new(&s).expect("provider");
    let symbols = fake.symbols();
    let got = p.load_many(&symbols, range(10)).await;
    for (sym, r) in symbols.iter().zip(&got) {
        let b = r.as_ref().expect("every symbol served");
        assert_eq!(
            b.origin,
            if *sym == otc {
                Origin::Primary
            } else {
                Origin::Bulk
            },
            "{sym}"
        );
    }
    assert_eq!(fake.count("/v2/aggs/ticker/"), 1, "only the gap");
}

#[tokio::test]
async fn the_reference_universe_is_paged_and_filtered_by_type() {
    let server = MockServer::start().await;
    let next = format!("{}/v3/reference/tickers?cursor=c2", server.uri());
    Mock::given(path_regex("^/v3/reference/tickers$"))
        .and(query_param("type", "CS"))
        .and(query_param("market", "stocks"))
        .and(query_param("active", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!("{{\"results\":[{{\"ticker\":\"AAPL\",\"name\":\"Apple Inc.\"}}],\"next_url\":\"{next}\"}}"),
            "application/json",
        ))
        .mount(&server)
        .await;
    Mock::given(query_param("cursor", "c2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("{\"results\":[{\"ticker\":\"MSFT\"}]}", "application/json"),
        )
        .mount(&server)
        .await;
    let p = PolygonProvider::new(&settings(&server)).expect("provider");
    let u = p.universe().await.expect("listed");
    assert_eq!(
        u.iter().map(|e| e.symbol.as_str()).collect::<Vec<_>>(),
        ["AAPL", "MSFT"]
    );
    assert_eq!(u[0].name, "Apple Inc.");
    assert_eq!(p.universe().await.expect("memoised").len(), 2);
    assert_eq!(received(&server).await.len(), 2, "listed once a day");
}
