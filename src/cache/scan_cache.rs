//! The typed cache layer. Not built yet.
