//! A real headless Chromium driven through chromedriver (WebDriver, fantoccini) for the
//! dashboard tests: a chromedriver process on a reserved port, killed on drop; waits that
//! poll with deadlines; screenshots into `target/screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tempfile::TempDir;

use super::ports::Port;
pub use super::wait::DEADLINE;
use super::wait::{wait_for_async, Probe};

/// One browser at a time: Chromium is heavy on a 2-core machine, and the tests that use
/// it must not starve each other's servers into timeouts.
pub static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// chromedriver and a headless Chromium session, with a download directory.
pub struct Browser {
    pub client: Client,
    driver: Child,
    pub downloads: TempDir,
    /// chromedriver's port (reserved while it runs) and the WebDriver session, so a
    /// panicking test still ends the session (and with it Chromium) from `Drop`.
    port: Port,
    session: Option<String>,
}

impl Browser {
    pub async fn start() -> Browser {
        let driver_bin = find_binary(&["chromedriver"]).expect(
            "chromedriver not found: scripts/test.sh installs chromium and chromium-driver",
        );
        let chrome = find_binary(&["chromium", "chromium-browser", "google-chrome"])
            .expect("chromium not found: scripts/test.sh installs it");
        let port = Port::reserve();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={}", port.number()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let downloads = tempfile::tempdir().expect("download dir");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chrome,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000",
                         "--no-first-run", "--no-default-browser-check"],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                    "safebrowsing.enabled": false
                }
            }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!("a literal object"),
        };
        let url = format!("http://{}", port.addr());
        let client = wait_for_async("a chromedriver session", DEADLINE, async || {
            ClientBuilder::rustls()
                .expect("rustls connector")
                .capabilities(caps.clone())
                .connect(&url)
                .await
        })
        .await;
        let session = client.session_id().await.ok().flatten();
        Browser {
            client,
            driver,
            downloads,
            port,
            session,
        }
    }

    /// Opens the dashboard at `base` and waits for its script to have run.
    pub async fn open(&self, url: &str) {
        self.client.goto(url).await.expect("goto");
        self.wait_for("the dashboard script", || async {
            let v = self
                .client
                .execute("return document.body.dataset.ready === 'true'", vec![])
                .await
                .ok()?;
            v.as_bool().filter(|b| *b)
        })
        .await;
    }

    pub async fn by_testid(&self, id: &str) -> Element {
        self.client
            .find(Locator::Css(&format!("[data-testid=\"{id}\"]")))
            .await
            .unwrap_or_else(|e| panic!("data-testid={id}: {e}"))
    }

    pub async fn text(&self, id: &str) -> String {
        self.by_testid(id).await.text().await.unwrap_or_default()
    }

    pub async fn attr(&self, id: &str, name: &str) -> Option<String> {
        self.by_testid(id).await.attr(name).await.ok().flatten()
    }

    /// Clicks the navigation link whose text is `name`.
    pub async fn nav(&self, name: &str) {
        self.client
            .find(Locator::LinkText(name))
            .await
            .unwrap_or_else(|e| panic!("link {name}: {e}"))
            .click()
            .await
            .expect("click link");
    }

    /// Runs a scan of `universe_size` synthetic symbols from the Scanner page (open) and
    /// waits until its stage is `done`.
    pub async fn scan(&self, universe_size: &str) {
        self.set_input("scan-universe-size", universe_size).await;
        self.click("scan-start").await;
        self.wait_text("scan-stage", |t| t == "done").await;
    }

    pub async fn set_input(&self, id: &str, value: &str) {
        let e = self.by_testid(id).await;
        e.clear().await.expect("clear");
        e.send_keys(value).await.expect("type");
    }

    /// Types `token` into the API token field and saves it.
    pub async fn enter_token(&self, token: &str) {
        self.set_input("api-token", token).await;
        self.client
            .find(Locator::Css("#token-form button"))
            .await
            .expect("the token form's button")
            .click()
            .await
            .expect("click");
    }

    pub async fn click(&self, id: &str) {
        self.by_testid(id).await.click().await.expect("click");
    }

    /// Polls `probe` until it yields, or panics at the deadline naming `what`.
    pub async fn wait_for<P: Probe>(&self, what: &str, probe: impl AsyncFnMut() -> P) -> P::Value {
        wait_for_async(what, DEADLINE, probe).await
    }

    /// Waits until the text of `data-testid=id` satisfies `ok`; returns it.
    pub async fn wait_text(&self, id: &str, ok: impl Fn(&str) -> bool) -> String {
        let what = format!("data-testid={id} to match");
        wait_for_async(&what, DEADLINE, async || {
            let e = self
                .client
                .find(Locator::Css(&format!("[data-testid=\"{id}\"]")))
                .await
                .map_err(|e| e.to_string())?;
            let text = e.text().await.unwrap_or_default();
            if ok(&text) {
                Ok(text)
            } else {
                Err(format!("text {text:?}"))
            }
        })
        .await
    }

    /// The visible text of every `<tbody><tr>` of a table, one `Vec` of cells per row.
    pub async fn rows(&self, table_testid: &str) -> Vec<Vec<String>> {
        let v = self
            .client
            .execute(
                "const t = document.querySelector(`[data-testid=\"${arguments[0]}\"]`);
                 return [...t.tBodies[0].rows].map(r => [...r.cells].map(c => c.textContent.trim()));",
                vec![json!(table_testid)],
            )
            .await
            .expect("rows");
        serde_json::from_value(v).expect("rows as strings")
    }

    /// The text of each `<li>` of the list `data-testid=id`.
    pub async fn rows_of_list(&self, id: &str) -> Vec<String> {
        let v = self
            .client
            .execute(
                "return [...document.querySelectorAll(`[data-testid=\"${arguments[0]}\"] li`)].map(l => l.textContent.trim());",
                vec![json!(id)],
            )
            .await
            .expect("list items");
        serde_json::from_value(v).expect("strings")
    }

    /// Saves a screenshot as `target/screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Presses and releases one key (a `fantoccini::key::Key` or a character) on whatever
    /// has the focus, as a user's keyboard does.
    pub async fn press(&self, key: impl Into<char>) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let k = key.into();
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: k })
            .then(KeyAction::Up { value: k });
        self.client
            .perform_actions(actions)
            .await
            .expect("key press");
    }

    /// The text of the focused element.
    pub async fn focused_text(&self) -> String {
        match self.client.active_element().await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn resize(&self, w: u32, h: u32) {
        self.client
            .set_window_size(w, h)
            .await
            .expect("window size");
    }

    /// Ends the WebDriver session; chromedriver is killed on drop.
    pub async fn close(mut self) {
        if self.client.clone().close().await.is_ok() {
            self.session = None;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked never reached `close`: end the session over plain blocking
        // HTTP (the async client needs the runtime that is unwinding), so chromedriver quits
        // Chromium instead of orphaning it when chromedriver is killed below.
        if let Some(id) = self.session.take() {
            delete_session(self.port.number(), &id);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/{id}` to chromedriver, waiting (bounded) for its answer.
fn delete_session(port: u16, id: &str) {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
    let req = format!(
        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if conn.write_all(req.as_bytes()).is_ok() {
        // The answer comes once the session (and Chromium) is gone; its first bytes do.
        let mut answer = [0u8; 512];
        let _ = conn.read(&mut answer);
    }
}

/// `target/screenshots` (or `$CARGO_TARGET_DIR/screenshots`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("screenshots")
}

/// Enough injected latency per symbol that a scan of a few hundred symbols takes about a
/// second on two workers: long enough to watch the bar move, short enough for a test.
pub const SLOW: (&str, &str) = ("TECHNIC_DATA__SYNTHETIC__LATENCY_MS", "4");

pub fn num(s: Option<String>) -> f64 {
    s.and_then(|v| v.parse().ok()).unwrap_or(-1.0)
}

/// Clicks Start and follows `aria-valuenow` until the stage is terminal; returns every
/// value seen, in order.
pub async fn start_and_follow(b: &Browser) -> Vec<f64> {
    b.click("scan-start").await;
    fn record(v: f64, seen: &mut Vec<f64>) {
        if seen.last() != Some(&v) {
            seen.push(v);
        }
    }
    let mut seen = Vec::new();
    wait_for_async("the scan to finish", DEADLINE, async || {
        record(
            num(b.attr("scan-progress", "aria-valuenow").await),
            &mut seen,
        );
        let stage = b.text("scan-stage").await;
        if ["done", "failed", "cancelled"].contains(&stage.as_str()) {
            // The scan may have ended between the two reads: the bar's last value.
            record(
                num(b.attr("scan-progress", "aria-valuenow").await),
                &mut seen,
            );
            Ok(())
        } else {
            Err(format!("stage {stage}, values {seen:?}"))
        }
    })
    .await;
    seen
}
