//! One way to stop: [`Shutdown`], shared by every long-running task of a process.
//!
//! Stopping is a broadcast (a cancellation token every task listens to), and completion is
//! the last guard dropped (a task tracker every task is spawned on): the owner triggers
//! the stop, then waits for every task to end, under a deadline. A task started after the
//! trigger sees it at once. A [`Shutdown::child`] scope (a worker node inside a process)
//! can be stopped on its own, and stops with its parent; the parent's completion waits
//! for the child's tasks too.
//!
//! Nothing here sleeps or polls, and no task is aborted for an orderly stop.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

/// The stop signal and the completion guard of one scope. Cheap to clone; every clone is
/// the same scope.
#[derive(Clone, Debug)]
pub struct Shutdown {
    token: CancellationToken,
    /// This scope's tracker first, then its ancestors': a task of a child scope is waited
    /// for by every scope above it, while the scope's own handle keeps nothing open.
    trackers: Vec<TaskTracker>,
}

/// Keeps the completion of a scope (and of its ancestors) open until dropped.
#[derive(Debug)]
pub struct ShutdownGuard {
    _tokens: Vec<TaskTrackerToken>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            token: CancellationToken::new(),
            trackers: vec![TaskTracker::new()],
        }
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// A scope that stops when this one does (or on its own), and whose tasks this one's
    /// [`Shutdown::complete`] waits for.
    pub fn child(&self) -> Shutdown {
        let mut trackers = vec![TaskTracker::new()];
        trackers.extend(self.trackers.iter().cloned());
        Shutdown {
            token: self.token.child_token(),
            trackers,
        }
    }

    /// Starts the stop: every [`Shutdown::triggered`] of this scope and its children resolves.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the stop has been triggered (at once if it already was).
    pub async fn triggered(&self) {
        self.token.cancelled().await
    }

    /// Spawns a task that completion waits for. The task itself decides when to return
    /// after [`Shutdown::triggered`] (it finishes what it must first).
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let guard = self.guard();
        tokio::spawn(async move {
            let _guard = guard;
            task.await
        })
    }

    /// A guard for work that is not a spawned task (an actor, a server loop): completion
    /// waits until it is dropped.
    pub fn guard(&self) -> ShutdownGuard {
        ShutdownGuard {
            _tokens: self.trackers.iter().map(TaskTracker::token).collect(),
        }
    }

    /// Triggers the stop and waits until every task and guard of this scope (and of its
    /// children) has ended, at most `deadline`. Returns whether everything ended in time.
    pub async fn complete(&self, deadline: Duration) -> bool {
        self.trigger();
        // Every constructor puts this scope's own tracker first.
        let own = &self.trackers[0];
        own.close();
        tokio::time::timeout(deadline, own.wait()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn complete_waits_for_every_task_and_child() {
        let root = Shutdown::new();
        let child = root.child();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (name, scope) in [("root", root.clone()), ("child", child.clone())] {
            let s = scope.clone();
            let tx = tx.clone();
            scope.spawn(async move {
                s.triggered().await;
                // Cleanup that takes time must still be waited for.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = tx.send(name);
            });
        }
        drop(child);
        drop(tx);
        assert!(root.complete(Duration::from_secs(1)).await);
        let mut ended = vec![rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        ended.sort();
        assert_eq!(ended, ["child", "root"]);
    }

    #[tokio::test]
    async fn a_child_stops_alone_and_a_late_task_sees_the_stop() {
        let root = Shutdown::new();
        let child = root.child();
        assert!(child.complete(Duration::from_secs(1)).await);
        assert!(child.is_triggered());
        assert!(
            !root.is_triggered(),
            "stopping a child leaves its parent running"
        );
        root.trigger();
        let late = root.child();
        tokio::time::timeout(Duration::from_millis(1), late.triggered())
            .await
            .expect("a scope made after the trigger is already stopped");
    }

    #[tokio::test]
    async fn a_child_handle_kept_alive_does_not_hold_up_its_parent() {
        let root = Shutdown::new();
        let child = root.child();
        let task = child.clone();
        child.spawn(async move { task.triggered().await });
        assert!(root.complete(Duration::from_secs(1)).await);
        assert!(
            child.is_triggered(),
            "{child:?} is still held here, and stopped"
        );
    }

    #[tokio::test]
    async fn the_deadline_caps_the_wait() {
        let root = Shutdown::new();
        let _held = root.guard();
        assert!(!root.complete(Duration::from_millis(100)).await);
    }
}
