//! Shared helpers for integration tests: real processes, started on free ports.
#![allow(dead_code)]

pub mod redis;
pub mod technic;
