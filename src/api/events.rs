//! `GET /api/v1/scans/{id}/events`: Server-Sent Events of one scan. The current state
//! first (so a late subscriber is never behind), then each progress event as the
//! coordinator publishes it (a slow subscriber skips to the newest: progress is a `watch`),
//! then the final report (`event: report`) or error (`event: error`), then the end.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use tokio::sync::watch;

use super::error::{ApiError, ErrorBody};
use super::history::ScanRecord;
use super::scans::{find, Found, Shared};
use crate::cluster::Progress;

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
}

fn progress_event(p: &Progress) -> Event {
    Event::default()
        .event("progress")
        .data(serde_json::to_string(p).unwrap_or_default())
}

fn final_event(r: &ScanRecord) -> Event {
    match (r.report_json(), &r.error) {
        (Some(json), _) => Event::default().event("report").data(&*json),
        (None, Some(e)) => Event::default()
            .event("error")
            .data(ApiError(e.clone()).to_json().to_string()),
        (None, None) => Event::default().event("error").data("{}"),
    }
}

async fn next(mut f: Feed) -> Option<(Result<Event, Infallible>, Feed)> {
    loop {
        match std::mem::replace(&mut f.phase, Phase::End) {
            Phase::End => return None,
            Phase::Final(r) => {
                let ev = final_event(&r);
                return Some((Ok(ev), f));
            }
            Phase::Start => {
                let done = f
                    .finished
                    .as_mut()
                    .and_then(|rx| rx.borrow_and_update().clone());
                let p = f.progress.as_mut().map(|rx| rx.borrow_and_update().clone());
                match (done, p) {
                    (Some(r), _) => {
                        let ev = progress_event(&r.progress);
                        f.phase = Phase::Final(r);
                        return Some((Ok(ev), f));
                    }
                    (None, Some(p)) => {
                        f.phase = Phase::Running;
                        return Some((Ok(progress_event(&p)), f));
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
                            return None;
                        }
                        let rec = fin.borrow_and_update().clone();
                        if let Some(r) = rec {
                            let ev = progress_event(&r.progress);
                            f.phase = Phase::Final(r);
                            return Some((Ok(ev), f));
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
                                return Some((Ok(progress_event(&p)), f));
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
    params(("id" = String, Path, description = "scan id")),
    responses((status = 200, description = "text/event-stream: `progress` events (Progress JSON), then one `report` (the ScanReport) or `error` event", content_type = "text/event-stream"),
        (status = 404, body = ErrorBody)))]
pub async fn events(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let feed = match find(&state, &id).await? {
        Found::Live(l) => Feed {
            progress: Some(l.progress.clone()),
            finished: Some(l.finished.clone()),
            phase: Phase::Start,
        },
        Found::Done(r) => Feed {
            progress: None,
            finished: None,
            phase: Phase::Final(r.clone()),
        }
        .with_first_progress(r),
    };
    let keep_alive = Duration::from_secs(state.settings.api.sse_keep_alive_secs);
    Ok(Sse::new(stream::unfold(feed, next)).keep_alive(KeepAlive::new().interval(keep_alive)))
}

impl Feed {
    /// A finished scan: its last progress, then the final event.
    fn with_first_progress(self, r: Arc<ScanRecord>) -> Self {
        let (tx, rx) = watch::channel(None);
        let _ = tx.send(Some(r));
        Feed {
            progress: None,
            finished: Some(rx),
            phase: Phase::Start,
        }
    }
}
