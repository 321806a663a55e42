//! The signals a command reacts to, registered before its work starts, so an early Ctrl-C
//! or SIGTERM is never the default (process-killing) action.

#[cfg(unix)]
use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct Signals {
    #[cfg(unix)]
    streams: Vec<Signal>,
}

impl Signals {
    /// SIGINT (Ctrl-C).
    pub fn interrupt() -> Self {
        #[cfg(unix)]
        {
            Self::of(&[SignalKind::interrupt()])
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// SIGINT and SIGTERM: what stops a long-running process.
    pub fn stop() -> Self {
        #[cfg(unix)]
        {
            Self::of(&[SignalKind::interrupt(), SignalKind::terminate()])
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    #[cfg(unix)]
    fn of(kinds: &[SignalKind]) -> Self {
        Signals {
            streams: kinds.iter().filter_map(|k| signal(*k).ok()).collect(),
        }
    }

    /// Waits for the next of the signals.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        {
            if self.streams.is_empty() {
                return std::future::pending().await;
            }
            let waits = self.streams.iter_mut().map(|s| Box::pin(s.recv()));
            futures_util::future::select_all(waits).await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
