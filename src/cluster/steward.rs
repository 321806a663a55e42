//! The steward of one scan's record in the scan book, for as long as this process owns the
//! scan: it renews the lease every `cluster.lease_renew_ms`, mirrors the progress (at most
//! every [`PROGRESS_EVERY`]) and the selected universe, passes on a cancel asked on another
//! serve, and tells the coordinator when the lease was lost. At the end it writes the
//! record, fenced by the epoch, exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use ractor::ActorRef;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::book::{Lease, ScanBook, ScanRecord};
use super::coordinator::{CoordinatorMsg, ScanHandle};
use super::progress::Progress;
use crate::market::UniverseEntry;
use crate::redis_link::LinkError;

/// The least time between two progress writes of one scan.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

pub struct Steward {
    book: Arc<ScanBook>,
    epoch: u64,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

struct Watch {
    book: Arc<ScanBook>,
    id: String,
    epoch: u64,
    progress: watch::Receiver<Progress>,
    universe: Option<oneshot::Receiver<Arc<Vec<UniverseEntry>>>>,
    coordinator: ActorRef<CoordinatorMsg>,
    renew_every: Duration,
}

impl Steward {
    /// Starts stewarding `handle`'s scan, whose record exists in `book` at its epoch.
    pub fn attach(handle: &mut ScanHandle, book: Arc<ScanBook>, renew_every: Duration) {
        let stop = CancellationToken::new();
        let w = Watch {
            book: Arc::clone(&book),
            id: handle.id.clone(),
            epoch: handle.epoch,
            progress: handle.progress.clone(),
            universe: handle.universe.take(),
            coordinator: handle.coordinator.clone(),
            renew_every,
        };
        let task = tokio::spawn(w.run(stop.clone()));
        handle.steward = Some(Steward {
            book,
            epoch: handle.epoch,
            stop,
            task,
        });
    }

    /// Stops renewing (the lease then expires by itself, or the record ends it).
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Stops, then writes the final record: `false` when the scan was taken over (the
    /// record is not written). A Redis that stays unreachable leaves the record running;
    /// the scan is then taken over and run again elsewhere, and this process keeps its
    /// result.
    pub async fn finish(self, record: &ScanRecord) -> bool {
        let (book, epoch) = (Arc::clone(&self.book), self.epoch);
        self.stop().await;
        let written = (|| book.finish(record, epoch))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(1))
                    .with_max_times(5),
            )
            .notify(|e: &LinkError, _| warn!(scan_id = %record.id, error = %e, "cannot write the scan record; retrying"))
            .await;
        let (outcome, ours) = match written {
            Ok(true) => ("written", true),
            Ok(false) => {
                warn!(scan_id = %record.id, epoch, "the scan was taken over before its record was written; its new owner reports it");
                ("superseded", false)
            }
            Err(e) => {
                error!(scan_id = %record.id, error = %e, "the scan record could not be written to redis");
                ("unwritten", true)
            }
        };
        count(outcome);
        ours
    }
}

/// Counts a scan record outcome (`technic_scan_records_total`).
pub fn count(outcome: &'static str) {
    crate::telemetry::metrics()
        .scan_records
        .get_or_create(&crate::telemetry::OutcomeLabel { outcome })
        .inc();
}

impl Watch {
    async fn run(mut self, stop: CancellationToken) {
        let mut renew = tokio::time::interval(self.renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut written: Option<Instant> = None;
        let mut pending = false;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = renew.tick() => {
                    match self.book.renew(&self.id, self.epoch).await {
                        Ok(Lease::Held) => failing = false,
                        Ok(Lease::CancelAsked) => {
                            let _ = self.coordinator.send_message(CoordinatorMsg::Cancel(self.id.clone()));
                        }
                        Ok(Lease::Lost) => {
                            let _ = self.coordinator.send_message(CoordinatorMsg::Release(self.id.clone(), self.epoch));
                            return;
                        }
                        Err(e) => {
                            if !failing {
                                warn!(scan_id = %self.id, error = %e, "cannot renew the scan's lease; another serve may take it over");
                            }
                            failing = true;
                        }
                    }
                    if pending {
                        pending = !self.write(None).await;
                        written = Some(Instant::now());
                    }
                }
                universe = async { self.universe.as_mut().expect("guarded").await }, if self.universe.is_some() => {
                    self.universe = None;
                    if let Ok(u) = universe {
                        pending = !self.write(Some(&u)).await;
                        written = Some(Instant::now());
                    }
                }
                changed = self.progress.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    pending = true;
                    if written.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
                        pending = !self.write(None).await;
                        written = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// Mirrors the current progress (terminal stages come with the record): whether it
    /// was written.
    async fn write(&self, universe: Option<&[UniverseEntry]>) -> bool {
        let p = self.progress.borrow().clone();
        if p.stage.is_terminal() {
            return true;
        }
        self.book
            .progress(&self.id, self.epoch, &p, universe)
            .await
            .is_ok()
    }
}
