//! Saved screens, watchlists, schedules and alerts on what changed.
//!
//! A **screen** is a named, versioned scan config, optionally with a cron schedule; a
//! **watchlist** is a named list of symbols a scan can take as its universe. Each run of a
//! screen is compared with its previous run ([`Diff`]: new, dropped and changed matches)
//! and a non-empty difference goes to the registered **webhooks**, signed, retried and,
//! after the last attempt, kept in a dead-letter list ([`webhook`]).
//!
//! Everything lives in the [`Library`]: the cluster's Redis, or one JSON file for the
//! embedded default ([`store`]). Running a screen is the caller's: the control plane runs
//! it on the cluster (and on schedule, on the leader), `technic screen run` in process;
//! both hand the outcome to [`Library::conclude`].

pub mod schedule;
pub mod store;
pub mod webhook;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use schedule::Schedule;
pub use store::{Store, StoreError};
pub use webhook::{Delivery, Event, Webhook};

use crate::config::ScreenSettings;
use crate::error::{ErrorCode, UserError};
use crate::scan::{ScanConfig, ScanResult};

/// A saved scan config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Screen {
    pub name: String,
    /// 1 when created, +1 on every change; a run records the version it ran.
    pub version: u64,
    /// The scan config, every field resolved (as `POST /api/v1/scans` takes it).
    #[schema(value_type = Object)]
    pub config: ScanConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A named list of symbols.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Watchlist {
    pub name: String,
    pub symbols: Vec<String>,
    pub version: u64,
    pub updated_at: DateTime<Utc>,
}

/// A signal that changed between two runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    pub symbol: String,
    pub from: String,
    pub to: String,
}

/// What changed between two runs of a screen: symbols now matching, no longer matching,
/// and matching both times with another signal. Sorted by symbol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Diff {
    pub new: Vec<String>,
    pub dropped: Vec<String>,
    pub changed: Vec<Change>,
}

impl Diff {
    /// The difference from `before` to `after` (symbol → signal).
    pub fn between(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Self {
        let mut d = Diff::default();
        for (symbol, to) in after {
            match before.get(symbol) {
                None => d.new.push(symbol.clone()),
                Some(from) if from != to => d.changed.push(Change {
                    symbol: symbol.clone(),
                    from: from.clone(),
                    to: to.clone(),
                }),
                Some(_) => {}
            }
        }
        d.dropped = before
            .keys()
            .filter(|s| !after.contains_key(*s))
            .cloned()
            .collect();
        d
    }

    pub fn is_empty(&self) -> bool {
        self.new.is_empty() && self.dropped.is_empty() && self.changed.is_empty()
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Manual,
}

/// One run of a screen, in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    /// The scan's id.
    pub run_id: String,
    pub screen: String,
    /// The screen's version the run used.
    pub version: u64,
    pub trigger: Trigger,
    /// The schedule's tick this run is for (scheduled runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The scan's final stage (`done`, `failed`, `cancelled`, …).
    pub stage: String,
    /// Results of the scan (symbols matching).
    pub matches: usize,
    pub diff: Diff,
    /// Webhooks the difference went to (0 when it was empty).
    pub deliveries: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The matches of a run: symbol → signal.
pub fn matches(results: &[ScanResult]) -> BTreeMap<String, String> {
    results
        .iter()
        .map(|r| (r.symbol.clone(), r.signal.as_str().to_string()))
        .collect()
}

/// What a run started with, for [`Library::conclude`].
pub struct RunStart {
    pub run_id: String,
    pub trigger: Trigger,
    pub tick: Option<DateTime<Utc>>,
    /// Who holds the tick's claim (a scheduled run): it becomes done with the record.
    pub claim: Option<String>,
    pub started_at: DateTime<Utc>,
}

pub fn not_found(kind: &str, name: &str) -> UserError {
    UserError::new(
        ErrorCode::NotFound,
        format!("no {kind} named {name:?}"),
        vec![match kind {
            "webhook" => "list them with GET /api/v1/webhooks".to_string(),
            _ => format!("list them with GET /api/v1/{kind}s or `technic {kind} list`"),
        }],
    )
}

const SCREENS: &str = "screens";
const WATCHLISTS: &str = "watchlists";
const WEBHOOKS: &str = "webhooks";
/// The matches of each screen's last run (the base of the next diff).
const LAST: &str = "last";
const DELIVERIES: &str = "deliveries";
const DEAD_LETTERS: &str = "dead-letters";

/// Screens, watchlists, webhooks and their histories, in one [`Store`].
pub struct Library {
    store: Store,
    pub settings: ScreenSettings,
    client: reqwest::Client,
}

fn decode<T: serde::de::DeserializeOwned>(doc: &str) -> Option<T> {
    serde_json::from_str(doc)
        .inspect_err(|e| tracing::warn!(error = %e, "an unreadable document in the screens store was skipped"))
        .ok()
}

fn encode<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Library {
    /// The library of a node: in the cluster's Redis at `redis` (the queue's), else in the
    /// file of `screens.path`.
    pub fn open(
        settings: &crate::config::Settings,
        redis: Option<&str>,
    ) -> Result<Self, UserError> {
        let store = match redis {
            Some(url) => {
                let url = crate::redis_link::RedisUrl::parse(url).map_err(StoreError::from)?;
                Store::redis(&url, &settings.cluster.queue_name)?
            }
            None => Store::file(file_path(&settings.screens)),
        };
        Ok(Library::new(store, settings.screens.clone()))
    }

    pub fn new(store: Store, settings: ScreenSettings) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.webhook_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Library {
            store,
            settings,
            client,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn all<T: serde::de::DeserializeOwned>(&self, coll: &str) -> Result<Vec<T>, UserError> {
        Ok(self
            .store
            .all(coll)
            .await?
            .values()
            .filter_map(|d| decode(d))
            .collect())
    }

    async fn one<T: serde::de::DeserializeOwned>(
        &self,
        coll: &str,
        name: &str,
    ) -> Result<Option<T>, UserError> {
        Ok(self.store.get(coll, name).await?.and_then(|d| decode(&d)))
    }

    // --- screens ---------------------------------------------------------------------------

    pub async fn screens(&self) -> Result<Vec<Screen>, UserError> {
        self.all(SCREENS).await
    }

    pub async fn screen(&self, name: &str) -> Result<Screen, UserError> {
        self.one(SCREENS, name)
            .await?
            .ok_or_else(|| not_found("screen", name))
    }

    /// Saves a screen: a new one when `create` (an existing name is refused), else a new
    /// version of it (created when absent).
    pub async fn save_screen(
        &self,
        name: &str,
        config: ScanConfig,
        schedule: Option<Schedule>,
        create: bool,
    ) -> Result<Screen, UserError> {
        let old: Option<Screen> = self.one(SCREENS, name).await?;
        if create && old.is_some() {
            return Err(exists("screen", name));
        }
        let now = Utc::now();
        let screen = Screen {
            name: name.to_string(),
            version: self.store.next_version(SCREENS, name).await?,
            config,
            schedule,
            created_at: old.map_or(now, |o| o.created_at),
            updated_at: now,
        };
        let doc = encode(&screen);
        if create {
            // Two creates at once: one wins, the other is told.
            if !self.store.put_new(SCREENS, name, &doc).await? {
                return Err(exists("screen", name));
            }
        } else {
            self.store.put(SCREENS, name, &doc).await?;
        }
        Ok(screen)
    }

    /// Deletes a screen with its history and last matches.
    pub async fn delete_screen(&self, name: &str) -> Result<(), UserError> {
        if !self.store.remove(SCREENS, name).await? {
            return Err(not_found("screen", name));
        }
        self.store.remove(LAST, name).await?;
        self.store.clear(&runs_list(name)).await?;
        Ok(())
    }

    /// The newest `n` runs of a screen, newest first.
    pub async fn runs(&self, name: &str, n: usize) -> Result<Vec<Run>, UserError> {
        Ok(self
            .store
            .recent(&runs_list(name), n)
            .await?
            .iter()
            .filter_map(|d| decode(d))
            .collect())
    }

    // --- watchlists ------------------------------------------------------------------------

    pub async fn watchlists(&self) -> Result<Vec<Watchlist>, UserError> {
        self.all(WATCHLISTS).await
    }

    pub async fn watchlist(&self, name: &str) -> Result<Watchlist, UserError> {
        self.one(WATCHLISTS, name)
            .await?
            .ok_or_else(|| not_found("watchlist", name))
    }

    pub async fn save_watchlist(
        &self,
        name: &str,
        symbols: Vec<String>,
        create: bool,
    ) -> Result<Watchlist, UserError> {
        if create && self.store.get(WATCHLISTS, name).await?.is_some() {
            return Err(exists("watchlist", name));
        }
        let list = Watchlist {
            name: name.to_string(),
            symbols,
            version: self.store.next_version(WATCHLISTS, name).await?,
            updated_at: Utc::now(),
        };
        let doc = encode(&list);
        if create {
            if !self.store.put_new(WATCHLISTS, name, &doc).await? {
                return Err(exists("watchlist", name));
            }
        } else {
            self.store.put(WATCHLISTS, name, &doc).await?;
        }
        Ok(list)
    }

    pub async fn delete_watchlist(&self, name: &str) -> Result<(), UserError> {
        if self.store.remove(WATCHLISTS, name).await? {
            Ok(())
        } else {
            Err(not_found("watchlist", name))
        }
    }

    /// A scan config with its watchlist, if it names one, as its symbols (the config then
    /// names no watchlist: a scan records the symbols it scanned), checked again against
    /// `max_universe_size`.
    pub async fn resolve(
        &self,
        mut config: ScanConfig,
        max_universe_size: usize,
    ) -> Result<ScanConfig, UserError> {
        let Some(name) = config.watchlist.take() else {
            return Ok(config);
        };
        let list = match self.watchlist(&name).await {
            Err(e) if e.code == ErrorCode::NotFound => {
                return Err(UserError::new(
                    ErrorCode::InvalidConfig,
                    format!("invalid scan config: watchlist {name:?} does not exist"),
                    vec![
                    "list the watchlists with GET /api/v1/watchlists or `technic watchlist list`"
                        .into(),
                ],
                ))
            }
            other => other?,
        };
        if list.symbols.is_empty() {
            return Err(UserError::new(
                ErrorCode::EmptyUniverse,
                format!("the watchlist {name:?} is empty"),
                vec![format!(
                    "add symbols to it (PUT /api/v1/watchlists/{name} or `technic watchlist save`)"
                )],
            ));
        }
        config.symbols = list.symbols;
        config.validate(max_universe_size).map_err(|e| {
            UserError::new(
                ErrorCode::InvalidConfig,
                format!("watchlist {name:?}: {}", e.problems.join("; ")),
                vec!["shorten the watchlist, or raise scan.max_universe_size".into()],
            )
        })?;
        Ok(config)
    }

    // --- webhooks --------------------------------------------------------------------------

    pub async fn webhooks(&self) -> Result<Vec<Webhook>, UserError> {
        self.all(WEBHOOKS).await
    }

    pub async fn add_webhook(&self, hook: &Webhook) -> Result<(), UserError> {
        Ok(self.store.put(WEBHOOKS, &hook.id, &encode(hook)).await?)
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<(), UserError> {
        if self.store.remove(WEBHOOKS, id).await? {
            Ok(())
        } else {
            Err(not_found("webhook", id))
        }
    }

    /// The newest deliveries (every outcome), newest first.
    pub async fn deliveries(&self, n: usize) -> Result<Vec<Delivery>, UserError> {
        self.log(DELIVERIES, n).await
    }

    /// Deliveries that failed their last attempt, newest first.
    pub async fn dead_letters(&self, n: usize) -> Result<Vec<Delivery>, UserError> {
        self.log(DEAD_LETTERS, n).await
    }

    async fn log(&self, list: &str, n: usize) -> Result<Vec<Delivery>, UserError> {
        Ok(self
            .store
            .recent(list, n)
            .await?
            .iter()
            .filter_map(|d| decode(d))
            .collect())
    }

    /// Records a delivery's outcome (and a failed one as a dead letter). A store that
    /// cannot take it is logged: the delivery itself has happened or failed already.
    async fn record_delivery(&self, d: &Delivery) {
        let doc = encode(d);
        let mut r = self
            .store
            .push(DELIVERIES, &doc, self.settings.delivery_log_max)
            .await;
        if r.is_ok() && !d.delivered {
            r = self
                .store
                .push(DEAD_LETTERS, &doc, self.settings.dead_letters_max)
                .await;
        }
        if let Err(e) = r {
            tracing::warn!(error = %e, event = %d.event.id, "cannot record a webhook delivery");
        }
    }

    // --- runs ------------------------------------------------------------------------------

    /// How long a claim (a tick's, a screen's run lock) lasts without a renewal.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.settings.lease_ms)
    }

    /// After a run of `screen`: its difference from the previous run goes to the webhooks
    /// that follow the screen (when not empty), then the run and its matches are recorded,
    /// in one step, while this run holds the screen's run lock (and, for a scheduled run,
    /// its tick's claim, which becomes done). One run of a screen concludes at a time in the
    /// cluster, so each diff is against the run before it. Recording last means a run that
    /// dies half-way is run again whole, and its webhooks get the same event again (the same
    /// `id`: receivers dedupe).
    pub async fn conclude(
        &self,
        screen: &Screen,
        start: RunStart,
        out: Outcome<'_>,
    ) -> Result<Run, UserError> {
        let lock = format!("run:{}", screen.name);
        let owner = format!("{}:{:016x}", start.run_id, rand::random::<u64>());
        let lease = self.lease();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while let Some(holder) = self.store.claim(&lock, &owner, lease).await? {
            if tokio::time::Instant::now() > deadline {
                return Err(UserError::new(
                    ErrorCode::StoreUnavailable,
                    format!(
                        "another run of screen {:?} ({holder}) has held it for 10 minutes",
                        screen.name
                    ),
                    vec![
                        "check the other serves' logs; the lock lapses when its holder stops"
                            .into(),
                    ],
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = self
            .store
            .renewing(
                &lock,
                &owner,
                lease,
                self.record(screen, start, out, &lock, &owner),
            )
            .await;
        if let Err(e) = self.store.release(&lock, &owner).await {
            tracing::warn!(error = %e, screen = %screen.name, "cannot release a screen's run lock: it lapses");
        }
        r
    }

    async fn record(
        &self,
        screen: &Screen,
        start: RunStart,
        out: Outcome<'_>,
        lock: &str,
        owner: &str,
    ) -> Result<Run, UserError> {
        let mut run = Run {
            run_id: start.run_id.clone(),
            screen: screen.name.clone(),
            version: screen.version,
            trigger: start.trigger,
            tick: start.tick,
            started_at: start.started_at,
            finished_at: Utc::now(),
            stage: out.stage.to_string(),
            matches: out.results.map_or(0, <[ScanResult]>::len),
            diff: Diff::default(),
            deliveries: 0,
            error: out.error,
        };
        let mut last = String::new();
        if let Some(results) = out.results {
            let before: BTreeMap<String, String> =
                self.one(LAST, &screen.name).await?.unwrap_or_default();
            let mut now = matches(results);
            // A symbol that failed to load this time is not dropped: it keeps its last
            // signal until a run sees it again.
            for symbol in out.failed {
                if let Some(signal) = before.get(symbol) {
                    now.entry(symbol.clone()).or_insert_with(|| signal.clone());
                }
            }
            run.diff = Diff::between(&before, &now);
            if !run.diff.is_empty() {
                let event = Event::of(&run);
                let hooks: Vec<Webhook> = self
                    .webhooks()
                    .await?
                    .into_iter()
                    .filter(|h| h.follows(&screen.name))
                    .collect();
                run.deliveries = hooks.len();
                let sends = hooks.iter().map(|h| async {
                    let d = webhook::deliver(&self.client, &self.settings, h, &event).await;
                    self.record_delivery(&d).await;
                });
                futures_util::future::join_all(sends).await;
            }
            last = encode(&now);
        }
        let tick = start.tick.map(|t| tick_key(&screen.name, t));
        let runs = runs_list(&screen.name);
        let doc = encode(&run);
        let keep = Duration::from_secs(self.settings.misfire_grace_secs + 3600);
        let recorded = self
            .store
            .commit(&store::Commit {
                lock,
                owner,
                put: Some((LAST, &screen.name, &last)),
                push: (&runs, &doc, self.settings.history_runs),
                hand_over: tick
                    .as_deref()
                    .zip(start.claim.as_deref())
                    .map(|(k, holder)| (k, holder, TICK_DONE, keep)),
            })
            .await?;
        if !recorded {
            return Err(UserError::new(
                ErrorCode::StoreUnavailable,
                format!("the run of screen {:?} lost its claim before it was recorded: another process runs it again", screen.name),
                vec!["its webhooks may get this event twice (the same id)".into()],
            ));
        }
        crate::telemetry::metrics()
            .screen_runs
            .get_or_create(&crate::telemetry::OutcomeLabel {
                outcome: if out.results.is_some() {
                    "done"
                } else {
                    "failed"
                },
            })
            .inc();
        Ok(run)
    }

    /// Claims the run of `screen`'s `tick` for `owner`: `None` when this call took it,
    /// else who holds it ([`TICK_DONE`] once it ran).
    pub async fn claim_tick(
        &self,
        screen: &str,
        tick: DateTime<Utc>,
        owner: &str,
    ) -> Result<Option<String>, StoreError> {
        self.store
            .claim(&tick_key(screen, tick), owner, self.lease())
            .await
    }

    /// Runs `work` while renewing `owner`'s claim on the tick.
    pub async fn renewing_tick<T>(
        &self,
        screen: &str,
        tick: DateTime<Utc>,
        owner: &str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        self.store
            .renewing(&tick_key(screen, tick), owner, self.lease(), work)
            .await
    }
}

/// How a run ended, for [`Library::conclude`].
pub struct Outcome<'a> {
    /// The scan's final stage (`done`, `failed`, `cancelled`).
    pub stage: &'a str,
    /// The results of a scan that completed; `None` otherwise (nothing is compared, and the
    /// previous matches stay the base of the next diff).
    pub results: Option<&'a [ScanResult]>,
    /// Symbols the scan could not load.
    pub failed: &'a [String],
    pub error: Option<String>,
}

/// What a tick's claim holds once its run is recorded.
/// (Not a node id: those have no spaces.)
pub const TICK_DONE: &str = "tick done";

/// `screens.path`, or the user's data directory (the working directory without a home:
/// never a shared one such as `/tmp`, where another user could plant the file).
pub fn file_path(s: &ScreenSettings) -> std::path::PathBuf {
    if !s.path.trim().is_empty() {
        return s.path.trim().into();
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| ".".into());
    data.join("technic").join("screens.json")
}

fn runs_list(screen: &str) -> String {
    format!("runs:{screen}")
}

fn tick_key(screen: &str, tick: DateTime<Utc>) -> String {
    format!("tick:{screen}:{}", tick.timestamp_millis())
}

fn exists(kind: &str, name: &str) -> UserError {
    UserError::new(
        ErrorCode::AlreadyExists,
        format!("a {kind} named {name:?} exists already"),
        vec![format!(
            "change it with PUT /api/v1/{kind}s/{name}, or pick another name"
        )],
    )
}

/// The symbols of a watchlist CSV: the first column of each row, trimmed and upper-cased;
/// a first row whose first cell is `symbol` or `ticker` is a header; blank rows are
/// skipped. Every invalid row is reported as `SOURCE line N: …`.
pub fn symbols_from_csv(text: &str, source: &str) -> Result<Vec<String>, Vec<String>> {
    let mut symbols = Vec::new();
    let mut problems = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    for (i, row) in reader.records().enumerate() {
        let line = i + 1;
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{source} line {line}: {e}"));
                continue;
            }
        };
        let cell = row.get(0).unwrap_or("").trim();
        if cell.is_empty()
            || (symbols.is_empty()
                && problems.is_empty()
                && ["symbol", "ticker"].contains(&cell.to_ascii_lowercase().as_str()))
        {
            continue;
        }
        let symbol = cell.to_ascii_uppercase();
        match crate::market::symbol_problems([symbol.as_str()]).pop() {
            Some(p) => problems.push(format!("{source} line {line}: {p}")),
            None => symbols.push(symbol),
        }
    }
    if problems.is_empty() {
        Ok(dedup_symbols(symbols))
    } else {
        Err(problems)
    }
}

/// A watchlist as CSV: a `symbol` header, then one symbol per line.
pub fn symbols_to_csv(symbols: &[String]) -> String {
    let mut out = String::from("symbol\n");
    for s in symbols {
        out.push_str(s);
        out.push('\n');
    }
    out
}

/// Every symbol once, in the order given.
pub fn dedup_symbols(symbols: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    symbols
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_diff_lists_new_dropped_and_changed_by_symbol() {
        let before = m(&[("AAA", "Long"), ("BBB", "Long"), ("CCC", "Strong Long")]);
        let after = m(&[("BBB", "Long"), ("CCC", "Long"), ("DDD", "Short")]);
        let d = Diff::between(&before, &after);
        assert_eq!(d.new, ["DDD"]);
        assert_eq!(d.dropped, ["AAA"]);
        assert_eq!(
            d.changed,
            [Change {
                symbol: "CCC".into(),
                from: "Strong Long".into(),
                to: "Long".into()
            }]
        );
        assert!(Diff::between(&after, &after).is_empty());
        assert_eq!(Diff::between(&BTreeMap::new(), &after).new.len(), 3);
    }

    #[test]
    fn a_watchlist_csv_names_the_file_and_line_of_each_bad_row() {
        let ok = symbols_from_csv("Symbol,Name\naapl,Apple\n\n msft \nAAPL\n", "w.csv");
        assert_eq!(ok.expect("valid"), ["AAPL", "MSFT"]);
        let bad = symbols_from_csv("symbol\nAAPL\nnot a symbol!\nMSFT\n$$$\n", "w.csv")
            .expect_err("invalid");
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].starts_with("w.csv line 3: "), "{bad:?}");
        assert!(bad[1].starts_with("w.csv line 5: "), "{bad:?}");
        let back = symbols_from_csv(&symbols_to_csv(&["A".into(), "B.C".into()]), "x");
        assert_eq!(back.expect("round trip"), ["A", "B.C"]);
    }

    #[test]
    fn names_are_checked() {
        use crate::scan::name_problems;
        assert!(name_problems("screen", "momentum_1.v2-x").is_none());
        for bad in ["", "a b", "a/b", &"x".repeat(65)] {
            assert!(name_problems("screen", bad).is_some(), "{bad:?}");
        }
    }
}
