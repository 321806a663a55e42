//! Shards: the unit of work a worker pulls, and how a universe is split into them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::market::UniverseEntry;
use crate::scan::ScanConfig;

/// A slice of one scan's universe. Carries the scan config so a worker on any node can
/// process it without asking anyone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    pub scan_id: String,
    pub index: u32,
    pub entries: Vec<UniverseEntry>,
    pub config: Arc<ScanConfig>,
    /// 1 on first delivery; incremented on each re-delivery.
    pub attempt: u32,
    /// Symbols in the whole scan: lets a remote provider choose bulk loading per scan.
    #[serde(default)]
    pub scan_symbols: usize,
    /// The epoch of the scan's owner that dispatched it: workers drop shards of an older
    /// epoch (the scan was taken over and its missing shards dispatched again).
    #[serde(default)]
    pub epoch: u64,
}

/// The shard size for a universe: at most `max_size`, and small enough that each of
/// `workers` workers can pull about four shards (so a slow shard does not leave the
/// others idle at the end).
pub fn shard_size(universe: usize, workers: usize, max_size: usize) -> usize {
    let per_worker = universe.div_ceil(workers.max(1) * 4);
    per_worker.clamp(1, max_size.max(1))
}

/// Splits `entries` into consecutive shards of `size` (the last may be smaller).
pub fn plan_shards(
    scan_id: &str,
    entries: &[UniverseEntry],
    size: usize,
    config: &Arc<ScanConfig>,
) -> Vec<Shard> {
    entries
        .chunks(size.max(1))
        .enumerate()
        .map(|(i, chunk)| Shard {
            scan_id: scan_id.to_string(),
            index: i as u32,
            entries: chunk.to_vec(),
            config: Arc::clone(config),
            attempt: 1,
            scan_symbols: entries.len(),
            epoch: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn shard_plans_cover_every_symbol_exactly_once(n in 0usize..3000, workers in 1usize..64, max in 1usize..200) {
            let entries: Vec<UniverseEntry> = (0..n).map(|i| UniverseEntry::bare(format!("S{i}"))).collect();
            let cfg = Arc::new(ScanConfig::from_settings(&Settings::defaults().scan));
            let size = shard_size(n, workers, max);
            prop_assert!(size >= 1 && size <= max);
            let shards = plan_shards("x", &entries, size, &cfg);
            let flat: Vec<&UniverseEntry> = shards.iter().flat_map(|s| &s.entries).collect();
            prop_assert_eq!(flat.len(), n);
            for (a, b) in flat.iter().zip(&entries) {
                prop_assert_eq!(&a.symbol, &b.symbol);
            }
            prop_assert!(shards.iter().all(|s| !s.entries.is_empty() && s.entries.len() <= size));
            if n >= workers * 4 * max {
                prop_assert_eq!(size, max);
            } else if n > 0 {
                prop_assert!(shards.len() >= (n / size).max(1));
            }
        }
    }
}
