//! Hand CPU-bound work to rayon and await it from async code.
//!
//! A project rule: CPU work never runs on a tokio worker thread. Anything heavier than about
//! half a millisecond (a shard's parsing or scoring) goes through [`run`].

use tokio::sync::oneshot;

/// Runs `f` on the rayon pool and awaits its result. A panic inside `f` is resumed in
/// the awaiting task, so actor supervision sees it as the actor's own panic.
pub async fn run<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    rayon::spawn(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        // The receiver is only gone when the awaiting task was dropped; nothing to do then.
        let _ = tx.send(out);
    });
    match rx.await {
        Ok(Ok(r)) => r,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        // rayon::spawn runs every job it accepts, and the closure always sends before returning.
        Err(_) => unreachable!("rayon job dropped its result sender without sending"),
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn returns_the_closure_result() {
        assert_eq!(super::run(|| 6 * 7).await, 42);
    }

    #[tokio::test]
    async fn panics_reach_the_awaiting_task() {
        let joined = tokio::spawn(super::run(|| -> u32 { panic!("boom") })).await;
        assert!(joined.expect_err("must panic").is_panic());
    }
}
