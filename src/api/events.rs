//! `GET /api/v1/scans/{id}/events`: Server-Sent Events of one scan. The current state
//! first (so a late subscriber is never behind), then each progress event as the
//! coordinator publishes it (a slow subscriber skips to the newest: progress is a `watch`),
//! then the final report (`event: report`) or error (`event: error`), then the end.
//!
//! Any serve answers for any scan: one this process owns is followed in memory; one owned
//! by another serve is followed in the scan book (polled every [`POLL`]). Events carry
//! ids (`DONE.STAGE` for progress, `end` for the report or error), the same on every
//! serve, so a client whose serve died reconnects anywhere with `Last-Event-ID`: it gets
//! the current state (unless it already has it), the rest of the progress and the report.
//! A client that already has the end gets 204, which tells an `EventSource` to stop.
//! A scan followed in memory that this process stops owning before it ends (taken over
//! elsewhere, or taken back here at a newer epoch after a Redis stall) goes on in the book.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::watch;

use super::error::{ApiError, ErrorBody};
use super::history::ScanRecord;
use super::scans::{find, Found, Shared};
use super::state::AppState;
use crate::cluster::{BookEntry, Progress};

enum Phase {
    Start,
    Running,
    Final(Arc<ScanRecord>),
    End,
}

struct Feed {
    progress: Option<watch::Receiver<Progress>>,
    finished: Option<watch::Receiver<Option<Arc<ScanRecord>>>>,
    phase: Phase,
    /// The client's `Last-Event-ID`: the first progress event is skipped when it is that.
    skip: Option<String>,
    /// The id of the last progress event sent (or the client's `Last-Event-ID`), for the
    /// book to go on from if this process stops owning the scan.
    last: Option<String>,
    state: Arc<AppState>,
    id: String,
}

/// Where a stream's events come from: this process's memory, or the scan book.
enum Follow {
    Local(Feed),
    Remote(Remote),
}

async fn next_event(f: Follow) -> Option<(Result<Event, Infallible>, Follow)> {
    match f {
        Follow::Local(feed) => next(feed).await,
        Follow::Remote(r) => next_remote(r).await.map(|(ev, r)| (ev, Follow::Remote(r))),
    }
}

/// How often a scan owned by another serve is read from the scan book.
const POLL: Duration = Duration::from_millis(250);
/// The id of the last event of a scan.
const END_ID: &str = "end";

fn progress_id(p: &Progress) -> String {
    format!("{}.{}", p.done, p.stage.as_str())
}

fn progress_event(p: &Progress) -> Event {
    Event::default()
        .event("progress")
        .id(progress_id(p))
        .data(serde_json::to_string(p).unwrap_or_default())
}

fn final_event(r: &ScanRecord) -> Event {
    let ev = Event::default().id(END_ID);
    match (r.report_json(), &r.error) {
        (Some(json), _) => ev.event("report").data(&*json),
        (None, Some(e)) => ev
            .event("error")
            .data(ApiError(e.clone()).to_json().to_string()),
        (None, None) => ev.event("error").data("{}"),
    }
}

/// A scan owned by another serve, followed in the scan book.
struct Remote {
    state: Arc<AppState>,
    id: String,
    /// The id of the last progress event sent (or the client's `Last-Event-ID`).
    last: Option<String>,
    end: Option<Arc<ScanRecord>>,
}

async fn next_remote(mut r: Remote) -> Option<(Result<Event, Infallible>, Remote)> {
    if let Some(rec) = r.end.take() {
        r.last = Some(END_ID.into());
        return Some((Ok(final_event(&rec)), r));
    }
    if r.last.as_deref() == Some(END_ID) {
        return None;
    }
    loop {
        match r.state.history.get(&r.id).await {
            // Redis is away for a moment (a failover?): keep the stream, ask again.
            Err(_) => {}
            Ok(None) => return None,
            // Its last progress (unless the client has it), then the report.
            Ok(Some(BookEntry::Finished(rec))) => {
                let id = progress_id(&rec.progress);
                if r.last.as_deref() == Some(id.as_str()) {
                    r.last = Some(END_ID.into());
                    return Some((Ok(final_event(&rec)), r));
                }
                let ev = progress_event(&rec.progress);
                r.last = Some(id);
                r.end = Some(rec);
                return Some((Ok(ev), r));
            }
            Ok(Some(BookEntry::Running(s))) => {
                let id = progress_id(&s.progress);
                // The book lags the owner's own progress by up to a renewal: never send a
                // client back below what it already had.
                let behind = r
                    .last
                    .as_deref()
                    .and_then(|l| l.split('.').next()?.parse::<usize>().ok())
                    .is_some_and(|done| s.progress.done < done);
                if !behind && r.last.as_deref() != Some(id.as_str()) {
                    r.last = Some(id);
                    return Some((Ok(progress_event(&s.progress)), r));
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

impl Feed {
    /// A progress event, remembered as the last one sent.
    fn progress(mut self, p: &Progress) -> Option<(Result<Event, Infallible>, Follow)> {
        self.last = Some(progress_id(p));
        Some((Ok(progress_event(p)), Follow::Local(self)))
    }

    /// This process stopped owning the scan before its end: go on from the scan book.
    async fn left(self) -> Option<(Result<Event, Infallible>, Follow)> {
        let remote = Remote {
            state: self.state,
            id: self.id,
            last: self.last,
            end: None,
        };
        next_remote(remote)
            .await
            .map(|(ev, r)| (ev, Follow::Remote(r)))
    }
}

async fn next(mut f: Feed) -> Option<(Result<Event, Infallible>, Follow)> {
    loop {
        match std::mem::replace(&mut f.phase, Phase::End) {
            Phase::End => return None,
            Phase::Final(r) => {
                let ev = final_event(&r);
                return Some((Ok(ev), Follow::Local(f)));
            }
            Phase::Start => {
                let done = f
                    .finished
                    .as_mut()
                    .and_then(|rx| rx.borrow_and_update().clone());
                let p = f.progress.as_mut().map(|rx| rx.borrow_and_update().clone());
                let skip = f.skip.take();
                let seen = |p: &Progress| skip.as_deref() == Some(progress_id(p).as_str());
                match (done, p) {
                    (Some(r), _) => {
                        let first = !seen(&r.progress);
                        let progress = r.progress.clone();
                        f.phase = Phase::Final(r);
                        if first {
                            return f.progress(&progress);
                        }
                    }
                    (None, Some(p)) => {
                        f.phase = Phase::Running;
                        if !seen(&p) {
                            return f.progress(&p);
                        }
                    }
                    (None, None) => return None,
                }
            }
            Phase::Running => {
                let (Some(fin), prog) = (f.finished.as_mut(), f.progress.as_mut()) else {
                    return None;
                };
                tokio::select! {
                    // The record wins ties: the final report is never lost behind progress.
                    biased;
                    changed = fin.changed() => {
                        if changed.is_err() {
                            // The live entry is gone without a record: not ours any more.
                            return f.left().await;
                        }
                        let rec = fin.borrow_and_update().clone();
                        if let Some(r) = rec {
                            let progress = r.progress.clone();
                            f.phase = Phase::Final(r);
                            return f.progress(&progress);
                        }
                        f.phase = Phase::Running;
                    }
                    changed = async { match prog { Some(rx) => rx.changed().await, None => std::future::pending().await } } => {
                        if changed.is_err() {
                            f.progress = None;
                            f.phase = Phase::Running;
                            continue;
                        }
                        let p = f.progress.as_mut().map(|rx| rx.borrow_and_update().clone());
                        f.phase = Phase::Running;
                        if let Some(p) = p {
                            if !p.stage.is_terminal() {
                                return f.progress(&p);
                            }
                            // The terminal stage comes with the record, just after.
                        }
                    }
                }
            }
        }
    }
}

/// Live progress of a scan, then its final report.
#[utoipa::path(get, path = "/api/v1/scans/{id}/events", tag = "scans",
    params(("id" = String, Path, description = "scan id"),
        ("Last-Event-ID" = Option<String>, Header, description = "the id of the last event received (reconnecting, to this or any serve)")),
    responses((status = 200, description = "text/event-stream: `progress` events (Progress JSON, id `DONE.STAGE`), then one `report` (the ScanReport) or `error` event (id `end`)", content_type = "text/event-stream"),
        (status = 204, description = "Last-Event-ID was `end`: the client has the outcome (an EventSource stops reconnecting)"),
        (status = 404, body = ErrorBody)))]
pub async fn events(
    State(state): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if last.as_deref() == Some(END_ID) {
        // The client has the end: 204 stops an EventSource from reconnecting.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let keep_alive =
        KeepAlive::new().interval(Duration::from_secs(state.settings.api.sse_keep_alive_secs));
    let feed = match find(&state, &id).await? {
        Found::Live(l) => Feed {
            progress: Some(l.progress.clone()),
            finished: Some(l.finished.clone()),
            phase: Phase::Start,
            skip: last.clone(),
            last,
            state: state.clone(),
            id,
        },
        Found::Done(r) => Feed {
            progress: None,
            finished: None,
            phase: Phase::Start,
            skip: last.clone(),
            last,
            state: state.clone(),
            id,
        }
        .with_record(r),
        Found::Elsewhere(r) => {
            let remote = Remote {
                state: state.clone(),
                id: r.id,
                last,
                end: None,
            };
            return Ok(Sse::new(stream::unfold(remote, next_remote))
                .keep_alive(keep_alive)
                .into_response());
        }
    };
    Ok(Sse::new(stream::unfold(Follow::Local(feed), next_event))
        .keep_alive(keep_alive)
        .into_response())
}

impl Feed {
    /// A finished scan: its last progress, then the final event.
    fn with_record(self, r: Arc<ScanRecord>) -> Self {
        let (tx, rx) = watch::channel(None);
        let _ = tx.send(Some(r));
        Feed {
            finished: Some(rx),
            ..self
        }
    }
}
