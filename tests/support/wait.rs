//! Waiting for something to happen: the one polling helper of the tests. A probe is called
//! until it yields, with a short pause that grows from 5 ms to 50 ms, under a deadline.
//! Nothing sleeps a fixed time to "let things settle".
//!
//! A probe returns `Option<T>` (`None`: not yet) or `Result<T, E>` (`Err`: not yet, and
//! what it saw instead, shown if the deadline passes). [`wait_for`] and [`wait_for_async`]
//! panic at the deadline naming what they waited for; [`poll`] returns instead, for a
//! caller that retries (a server that did not start is started again on another port).

use std::fmt::Display;
use std::time::{Duration, Instant};

/// The deadline of the HTTP and browser helpers.
pub const DEADLINE: Duration = Duration::from_secs(60);

const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// What one call of a probe found.
pub trait Probe {
    type Value;
    /// `Ok` when done; `Err` with what was seen instead (if the probe says) when not yet.
    fn ready(self) -> Result<Self::Value, Option<String>>;
}

impl<T> Probe for Option<T> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Probe for Result<T, E> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(e.to_string()))
    }
}

/// Why a wait ended without a value.
#[derive(Debug)]
pub struct TimedOut {
    pub deadline: Duration,
    /// The last "not yet" the probe explained, if any.
    pub last: Option<String>,
}

impl Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not within {:?}", self.deadline)?;
        if let Some(last) = &self.last {
            write!(f, "; last: {last}")?;
        }
        Ok(())
    }
}

struct Backoff {
    start: Instant,
    deadline: Duration,
    pause: Duration,
}

impl Backoff {
    fn new(deadline: Duration) -> Self {
        Backoff {
            start: Instant::now(),
            deadline,
            pause: FIRST_PAUSE,
        }
    }

    /// The pause before the next probe, or `None` once the deadline has passed.
    fn next(&mut self) -> Option<Duration> {
        if self.start.elapsed() >= self.deadline {
            return None;
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        Some(pause)
    }
}

/// Polls `probe` until it yields; `Err` once `deadline` has passed.
pub fn poll<P: Probe>(
    deadline: Duration,
    mut probe: impl FnMut() -> P,
) -> Result<P::Value, TimedOut> {
    let mut backoff = Backoff::new(deadline);
    loop {
        let last = match probe().ready() {
            Ok(v) => return Ok(v),
            Err(last) => last,
        };
        match backoff.next() {
            Some(pause) => std::thread::sleep(pause),
            None => return Err(TimedOut { deadline, last }),
        }
    }
}

/// Polls `probe` until it yields; panics with `what` after `deadline`.
pub fn wait_for<P: Probe>(what: &str, deadline: Duration, probe: impl FnMut() -> P) -> P::Value {
    poll(deadline, probe).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// [`wait_for`] with an async probe (`async || …`, or a closure returning a future),
/// pausing on the tokio timer.
pub async fn wait_for_async<P: Probe>(
    what: &str,
    deadline: Duration,
    mut probe: impl AsyncFnMut() -> P,
) -> P::Value {
    let mut backoff = Backoff::new(deadline);
    loop {
        let last = match probe().await.ready() {
            Ok(v) => return v,
            Err(last) => last,
        };
        match backoff.next() {
            Some(pause) => tokio::time::sleep(pause).await,
            None => panic!("{what}: {}", TimedOut { deadline, last }),
        }
    }
}
