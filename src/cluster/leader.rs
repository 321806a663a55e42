//! The leader lease: cluster-wide duties (the cache warmer, the node gauge and pruning of
//! long-down nodes) run on exactly one `technic serve`. Every serve tries to take or renew
//! the lease (`P:leader` in the scan book) every `cluster.lease_renew_ms`; the holder keeps
//! it while it renews, and another serve takes it within `cluster.lease_ms` of the
//! holder's death. A serve that cannot reach Redis stops leading at once (it cannot know
//! whether its lease still holds), so two leaders overlap by at most one renewal.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::book::ScanBook;
use crate::shutdown::Shutdown;

/// Whether this process leads now. Cheap to clone and to ask.
#[derive(Clone)]
pub struct Leader(watch::Receiver<bool>);

impl Leader {
    /// A process that is the whole cluster (in process): always the leader.
    pub fn alone() -> Self {
        let (tx, rx) = watch::channel(true);
        // The receiver keeps the last value after the sender is gone.
        drop(tx);
        Leader(rx)
    }

    /// Runs the election for this node of `book` until `shutdown`.
    pub fn elect(book: Arc<ScanBook>, every: Duration, shutdown: &Shutdown) -> Self {
        let (tx, rx) = watch::channel(false);
        let stop = shutdown.clone();
        shutdown.spawn(async move {
            let mut failing = false;
            loop {
                let leads = match book.lead().await {
                    Ok(leads) => {
                        failing = false;
                        leads
                    }
                    Err(e) => {
                        if !failing {
                            warn!(error = %e, "cannot renew the leader lease; not leading");
                        }
                        failing = true;
                        false
                    }
                };
                if *tx.borrow() != leads {
                    info!(node = %book.owner(), leads, "leadership changed");
                    tx.send_replace(leads);
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.triggered() => return,
                }
            }
        });
        Leader(rx)
    }

    pub fn leads(&self) -> bool {
        *self.0.borrow()
    }
}
