//! Scan history: the finished scans this process ran, in memory, and — when the node has a
//! Redis — the cluster's scan book, so every `technic serve` on that Redis lists the same
//! scans, running or finished, and lists them again after a restart.
//!
//! Over a Redis work queue the coordinator writes each record to the book itself, fenced
//! by its epoch (exactly once, whichever serve finishes the scan); with the in-process queue
//! and a Redis cache the book is only the history, written here. A Redis error never fails
//! a request: it is logged and this process's copy answers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tracing::warn;

pub use crate::cluster::{universe_key, ScanRecord, ScanSummary};
use crate::cluster::{BookEntry, RunningScan, ScanBook};
use crate::redis_link::LinkError;

pub struct History {
    memory: Mutex<VecDeque<Arc<ScanRecord>>>,
    max: usize,
    book: Option<Arc<ScanBook>>,
    /// Whether `put` writes the book (no coordinator does).
    writes_book: bool,
}

impl History {
    /// In-process only (`book` is `None`), or also in the scan book; `writes_book` when
    /// the records do not reach the book through the coordinator.
    pub fn new(book: Option<Arc<ScanBook>>, writes_book: bool, max: usize) -> Self {
        History {
            memory: Mutex::new(VecDeque::with_capacity(max.min(1024))),
            max,
            book,
            writes_book,
        }
    }

    /// Whether records outlive this process.
    pub fn persistent(&self) -> bool {
        self.book.is_some()
    }

    fn mem(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<ScanRecord>>> {
        // Whole records are pushed and popped: a poisoned lock still holds a usable deque.
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a finished scan.
    pub async fn put(&self, record: Arc<ScanRecord>) {
        {
            let mut m = self.mem();
            m.retain(|r| r.id != record.id);
            m.push_back(record.clone());
            while m.len() > self.max {
                m.pop_front();
            }
        }
        if let (Some(book), true) = (&self.book, self.writes_book) {
            if let Err(e) = book.put_finished(&record).await {
                warn!(scan_id = %record.id, error = %e, "scan history not stored in redis");
            }
        }
    }

    /// A scan by id: finished in this process, else whatever the book has; `Err` when the
    /// book cannot be read (the scan may exist: not a 404).
    pub async fn get(&self, id: &str) -> Result<Option<BookEntry>, LinkError> {
        if let Some(r) = self.mem().iter().find(|r| r.id == id) {
            return Ok(Some(BookEntry::Finished(r.clone())));
        }
        let Some(book) = &self.book else {
            return Ok(None);
        };
        book.get(id).await.inspect_err(|e| {
            warn!(scan_id = %id, error = %e, "scan book unreadable in redis");
        })
    }

    /// Asks the owner of a scan running elsewhere to cancel it (`false`: not running).
    pub async fn request_cancel(&self, id: &str) -> Result<bool, crate::redis_link::LinkError> {
        match &self.book {
            Some(book) => book.request_cancel(id).await,
            None => Ok(false),
        }
    }

    /// Scans running in the cluster (every owner's), newest first.
    pub async fn running(&self) -> Vec<RunningScan> {
        let Some(book) = &self.book else {
            return Vec::new();
        };
        book.running().await.unwrap_or_else(|e| {
            warn!(error = %e, "scan book unreadable in redis; listing this process's running scans");
            Vec::new()
        })
    }

    /// Finished scans, newest first: the book's and this process's, merged by id.
    pub async fn list(&self, limit: usize) -> Vec<ScanSummary> {
        let mut out: Vec<ScanSummary> = self.mem().iter().map(|r| r.summary()).collect();
        if let Some(book) = &self.book {
            match book.finished(limit).await {
                Ok(stored) => {
                    for s in stored {
                        if !out.iter().any(|o| o.id == s.id) {
                            out.push(s);
                        }
                    }
                }
                Err(e) => {
                    warn!(error = %e, "scan history unreadable in redis; listing this process's scans")
                }
            }
        }
        out.sort_by(|a, b| {
            b.submitted_at
                .cmp(&a.submitted_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        out.truncate(limit);
        out
    }
}
