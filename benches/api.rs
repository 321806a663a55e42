//! Control-plane overhead (`cargo bench --bench api`).
//!
//! - `api/in_process_100`: submit a 100-symbol scan to the cluster and await its report
//!   (what `technic scan` does), no HTTP.
//! - `api/http_submit_to_report_100`: the same scan on the same cluster through the real
//!   router on a loopback socket: `POST /api/v1/scans`, then `GET …/events` until the
//!   final `report` event, parsed. The difference is the API's overhead.
//! - `api/sse_fanout_200`: one 100-symbol scan followed by 200 concurrent SSE
//!   subscribers (200 connections), each until it has read the whole final report (its
//!   bytes; the client does not parse 200 copies).
//!
//! No cache (every scan computes), synthetic data, 2 local workers.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::Value;

use technic::api::{self, AppState};
use technic::config::Settings;
use technic::node::{NodeArgs, Role};
use technic::scan::ScanConfig;

const BODY: &str = r#"{"universe_size": 100}"#;

/// Reads the SSE stream until the complete `report` event; parses it when `parse`, else
/// returns its length in bytes (so the fan-out figure is the server's, not 200 parses).
async fn report_over_sse(client: &reqwest::Client, base: &str, id: &str, parse: bool) -> Value {
    let mut resp = client
        .get(format!("{base}/api/v1/scans/{id}/events"))
        .send()
        .await
        .expect("events");
    let mut buf = String::new();
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(at) = buf.find("event: report\ndata: ") {
            let rest = &buf[at + "event: report\ndata: ".len()..];
            if let Some(end) = rest.find("\n\n") {
                if !parse {
                    return Value::from(end);
                }
                return serde_json::from_str(&rest[..end]).expect("report json");
            }
        }
    }
    panic!("stream ended without a report");
}

async fn submit(client: &reqwest::Client, base: &str) -> String {
    let v: Value = client
        .post(format!("{base}/api/v1/scans"))
        .body(BODY)
        .send()
        .await
        .expect("submit")
        .json_text()
        .await;
    v["id"].as_str().expect("id").to_string()
}

trait JsonText {
    async fn json_text(self) -> Value;
}

impl JsonText for reqwest::Response {
    async fn json_text(self) -> Value {
        serde_json::from_str(&self.text().await.expect("body")).expect("json")
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut settings = Settings::defaults();
    settings.api.max_active_scans = 64;
    let (state, base) = rt.block_on(async {
        let node_args = NodeArgs {
            workers: Some("2".into()),
            cache: Some("none".into()),
            ..NodeArgs::default()
        };
        let mut node = node_args
            .plan(&settings, Role::Serve)
            .expect("plan")
            .start(settings.clone(), None, &[], None)
            .await
            .expect("node");
        let state = Arc::new(AppState::new(&mut node).expect("state"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = api::router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (state, base)
    });
    let client = reqwest::Client::new();
    let config: ScanConfig = api::scan_request::parse(BODY.as_bytes(), &settings).expect("config");

    let mut g = c.benchmark_group("api");
    g.sample_size(30);
    g.bench_function("in_process_100", |b| {
        b.iter(|| {
            rt.block_on(async {
                let cluster = state.cluster.as_ref().expect("cluster");
                let h = cluster.submit(config.clone()).await.expect("submit");
                let r = h.report().await.expect("report");
                assert_eq!(r.universe_size, 100);
            })
        })
    });
    g.bench_function("http_submit_to_report_100", |b| {
        b.iter(|| {
            rt.block_on(async {
                let id = submit(&client, &base).await;
                let r = report_over_sse(&client, &base, &id, true).await;
                assert_eq!(r["universe_size"], 100);
            })
        })
    });
    g.sample_size(10);
    g.bench_function("sse_fanout_200", |b| {
        b.iter(|| {
            rt.block_on(async {
                let id = submit(&client, &base).await;
                let tasks: Vec<_> = (0..200)
                    .map(|_| {
                        let (client, base, id) = (client.clone(), base.clone(), id.clone());
                        tokio::spawn(
                            async move { report_over_sse(&client, &base, &id, false).await },
                        )
                    })
                    .collect();
                let mut sizes = Vec::with_capacity(200);
                for t in tasks {
                    sizes.push(t.await.expect("subscriber").as_u64().expect("size"));
                }
                // Every subscriber got the whole report (the same bytes).
                assert!(sizes[0] > 10_000 && sizes.iter().all(|n| *n == sizes[0]));
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
