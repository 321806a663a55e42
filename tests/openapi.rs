//! The OpenAPI document against outside tools, over a real `technic serve`: the served
//! document is valid OpenAPI (`openapi-spec-validator`), and the live API holds to it
//! (`schemathesis`: generated valid and invalid requests, every check).
//!
//! The tools are Python packages that `scripts/test.sh` installs, pinned, into a venv
//! (`target/py`) and names in `PY_TEST_TOOLS`. Without them these tests fail, saying
//! so: they are never skipped.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::api::{assert_error, Server};

/// The token the fuzzed server is started with: the mutating routes are fuzzed with it.
const TOKEN: &str = "openapi-test-token";

/// Examples per operation and phase: with the coverage and stateful phases, several
/// hundred requests in all, well under a minute on 2 cores.
const MAX_EXAMPLES: &str = "10";

/// A fixed seed: the same requests on every run, so a failure reproduces.
const SEED: &str = "20240601";

/// The directory holding the `openapi-spec-validator` and `schemathesis` executables:
/// `PY_TEST_TOOLS`, else the venv `scripts/test.sh` creates.
fn tools() -> PathBuf {
    let dir = std::env::var_os("PY_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/py/bin"));
    for tool in ["openapi-spec-validator", "schemathesis"] {
        assert!(
            dir.join(tool).is_file(),
            "{tool} not found in {} (PY_TEST_TOOLS or target/py/bin): run scripts/test.sh, \
             which installs the pinned Python test tools into target/py and runs every test",
            dir.display()
        );
    }
    dir
}

fn run(mut cmd: Command, what: &str) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn the_served_document_is_valid_openapi() {
    let tools = tools();
    let s = Server::start(&[], &[]).await;
    let doc = support::api::client()
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("get the document")
        .text()
        .await
        .expect("body");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, &doc).expect("write the document");
    let mut cmd = Command::new(tools.join("openapi-spec-validator"));
    cmd.arg(&path);
    let out = run(cmd, "openapi-spec-validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejects /api/v1/openapi.json:\n{}",
        text(&out)
    );

    // The documented bounds are the handlers': outside them, 400 in the error shape.
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("json");
    let limit = &doc["paths"]["/api/v1/scans"]["get"]["parameters"][0];
    assert_eq!(limit["name"], "limit", "{limit}");
    let max = limit["schema"]["maximum"].as_u64().expect("maximum");
    for q in [
        "limit=0",
        &format!("limit={}", max + 1),
        "limit=abc",
        "limit=-1",
    ] {
        let (status, body) = s.get(&format!("/api/v1/scans?{q}")).await;
        assert_error(status, &body, 400, "INVALID_INPUT");
    }
    let (status, _) = s.get(&format!("/api/v1/scans?limit={max}")).await;
    assert_eq!(status, 200);
    for q in ["format=xml", "sort=bogus", "limit=0"] {
        let (status, body) = s
            .get(&format!("/api/v1/scans/no-such-scan/results?{q}"))
            .await;
        assert_error(status, &body, 400, "INVALID_INPUT");
    }
}

/// Every check schemathesis has, with per-operation exceptions, each with its reason. Only
/// `positive_data_acceptance` ("a request the schema allows must be accepted") is
/// relaxed, and only where the server validates across fields or against its own
/// settings, which a JSON Schema cannot say: everything else (server errors, status
/// codes, content types, response schemas, rejection of schema-violating input, auth) is
/// checked on every route.
const CONFIG: &str = r#"
[checks]
enabled = true

# A body over api.max_body_bytes (a warm request of 1,001 symbols can be one) is refused
# with 413 before it is read: a rejection like the default list's.
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5xx"]

[cache]
enabled = false

# POST /api/v1/scans: min_bars must not exceed lookback_days, universe_size and the
# symbol count are bounded by the server's scan.max_universe_size, as_of by api.min_as_of
# and today, symbols by a character set after trimming: a schema-valid body can still be
# an invalid scan (400 with every problem listed).
[[operations]]
include-path = "/api/v1/scans"
include-method = "POST"
checks.positive_data_acceptance.enabled = false

# PUT /api/v1/cache/ttl: market_timezone must be an IANA zone, market_open/close HH:MM
# with open before close, low_vol_daily below high_vol_daily.
[[operations]]
include-path = "/api/v1/cache/ttl"
include-method = "PUT"
checks.positive_data_acceptance.enabled = false
"#;

/// Every route is fuzzed, the mutating ones with the token (the cache cleared is this
/// test server's own in-memory cache).
#[tokio::test]
async fn the_live_api_holds_to_its_document() {
    let tools = tools();
    // schemathesis runs in a scratch directory: its config file, nothing left behind; the
    // screens it saves go to a file there.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("screens.json").display().to_string();
    let s = Server::start(
        &["--workers", "1", "--cache", "memory"],
        &[
            ("TECHNIC_API__TOKEN", TOKEN),
            ("TECHNIC_SCREENS__PATH", &store),
        ],
    )
    .await;
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).expect("write the config");
    let mut cmd = Command::new(tools.join("schemathesis"));
    cmd.current_dir(dir.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(s.url("/api/v1/openapi.json"))
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        .args(["--request-timeout", "30"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .arg("--no-color");
    let out = run(cmd, "schemathesis");
    assert!(
        out.status.success(),
        "schemathesis found the API breaking its document:\n{}\nserver log:\n{}",
        text(&out),
        s.log()
    );
}
