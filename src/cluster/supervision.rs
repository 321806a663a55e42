//! The restart policy for worker actors, in one place: exponential backoff per recent
//! failure, and a limit on restarts within a sliding window, after which the pool gives up.
//! Time is passed in, so tests need no clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::ClusterSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    RestartAfter(Duration),
    GiveUp,
}

#[derive(Debug, Clone)]
pub struct RestartPolicy {
    max_restarts: u32,
    window: Duration,
    base: Duration,
    max_backoff: Duration,
    recent: VecDeque<Instant>,
}

impl RestartPolicy {
    pub fn new(c: &ClusterSettings) -> Self {
        RestartPolicy {
            max_restarts: c.max_restarts,
            window: Duration::from_secs(c.restart_window_secs),
            base: Duration::from_millis(c.restart_backoff_base_ms),
            max_backoff: Duration::from_millis(c.restart_backoff_max_ms),
            recent: VecDeque::new(),
        }
    }

    /// Records a failure at `now` and decides what to do.
    pub fn on_failure(&mut self, now: Instant) -> Decision {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= self.max_restarts {
            return Decision::GiveUp;
        }
        let exp = self.recent.len().min(16) as u32;
        self.recent.push_back(now);
        Decision::RestartAfter((self.base * 2u32.pow(exp)).min(self.max_backoff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn backoff_doubles_caps_and_the_window_limits_restarts() {
        let mut c = Settings::defaults().cluster;
        c.max_restarts = 3;
        c.restart_window_secs = 10;
        c.restart_backoff_base_ms = 100;
        c.restart_backoff_max_ms = 250;
        let mut p = RestartPolicy::new(&c);
        let t0 = Instant::now();
        assert_eq!(
            p.on_failure(t0),
            Decision::RestartAfter(Duration::from_millis(100))
        );
        assert_eq!(
            p.on_failure(t0),
            Decision::RestartAfter(Duration::from_millis(200))
        );
        assert_eq!(
            p.on_failure(t0),
            Decision::RestartAfter(Duration::from_millis(250))
        );
        assert_eq!(p.on_failure(t0), Decision::GiveUp);
        // Once the window has passed, failures are forgiven.
        assert_eq!(
            p.on_failure(t0 + Duration::from_secs(11)),
            Decision::RestartAfter(Duration::from_millis(100))
        );
    }
}
