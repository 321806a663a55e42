//! Free loopback ports that no other test is handed at the same time: the one way tests get
//! a port for a server they start.
//!
//! Binding `127.0.0.1:0` and dropping the listener is not enough: the port is free again the
//! moment the listener closes, so two tests (threads of one binary, or test binaries that
//! cargo or a developer runs side by side) can be handed the same port before either server
//! binds it. Here a port is *reserved*:
//!
//! 1. An exclusive, non-blocking `flock` on `$TMPDIR/technic-test-ports/PORT.lock`. A
//!    `flock` belongs to the open file description, so it excludes other threads of this
//!    process as well as other processes, and the kernel releases it when the holder exits,
//!    however it exits: a killed test binary leaves no stale reservation. The lock files are
//!    never deleted (deleting one would let a second file with the same name be locked
//!    while the first is still held).
//! 2. A bind check on `127.0.0.1:PORT`, for a process outside the tests holding it.
//!
//! The [`Port`] guard holds the lock until it is dropped: keep it as long as the server
//! that uses the port (the server structs of this folder own theirs). Candidates come from
//! [`RANGE`], below Linux's ephemeral range (32768–60999 by default), so the kernel never
//! picks one as the source port of an outgoing connection between the check and the
//! server's own bind. A Redis Cluster node also needs its bus port (port + 10000):
//! [`Port::reserve_with_bus`] reserves and checks both.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where reservations are looked for: below the ephemeral range, and with room for the
/// cluster bus port (+10000) below it too.
pub const RANGE: Range<u16> = 15_000..22_000;

/// The Redis Cluster bus port's offset from the client port.
pub const BUS_OFFSET: u16 = 10_000;

/// A reserved port (and, for a cluster node, its bus port); free again when dropped.
#[derive(Debug)]
pub struct Port {
    port: u16,
    _locks: Vec<File>,
}

impl Port {
    /// A port free on 127.0.0.1 and reserved for the guard's lifetime.
    pub fn reserve() -> Port {
        reserve(&[0])
    }

    /// A port and its cluster bus port (port + 10000), both free and reserved.
    pub fn reserve_with_bus() -> Port {
        reserve(&[0, BUS_OFFSET])
    }

    pub fn number(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// The first candidate of this call: spread over the range by process and call, so
/// concurrent binaries and threads rarely contend for the same lock file.
fn start_offset() -> usize {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(call.wrapping_mul(97))
        .wrapping_add(nanos);
    mixed as usize % RANGE.len()
}

fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("technic-test-ports");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Locks `PORT.lock` exclusively without waiting; `None` when another holder has it.
fn try_lock(dir: &std::path::Path, port: u16) -> Option<File> {
    let path = dir.join(format!("{port}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: `flock` on a descriptor this function owns; it reads no memory.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    locked.then_some(file)
}

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Reserves the first candidate `p` for which every `p + offset` is locked and bindable.
fn reserve(offsets: &[u16]) -> Port {
    let dir = lock_dir();
    let len = RANGE.len();
    let first = start_offset();
    for i in 0..len {
        let port = RANGE.start + ((first + i) % len) as u16;
        let mut locks = Vec::with_capacity(offsets.len());
        for &offset in offsets {
            match try_lock(&dir, port + offset) {
                Some(lock) if bindable(port + offset) => locks.push(lock),
                _ => break,
            }
        }
        if locks.len() == offsets.len() {
            return Port {
                port,
                _locks: locks,
            };
        }
        // Dropping the partial `locks` releases them.
    }
    panic!(
        "no free port in {RANGE:?} (lock files in {})",
        dir.display()
    );
}
