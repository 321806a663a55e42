//! Building the cache a process uses from settings and a [`CacheTarget`].

use std::sync::Arc;
use std::time::Duration;

use super::{Cache, CacheError, CacheTarget, MemoryCache, ScanCache, SmartTtl, SystemClock};
use crate::config::CacheSettings;

/// The typed cache for `target`, or `None` for `none`. Redis targets connect lazily:
/// an unreachable Redis does not fail here, it degrades the first scan that uses it.
pub async fn build(
    settings: &CacheSettings,
    target: &CacheTarget,
) -> Result<Option<Arc<ScanCache>>, CacheError> {
    let backend: Arc<dyn Cache> = match target {
        CacheTarget::None => return Ok(None),
        CacheTarget::Memory => Arc::new(MemoryCache::new(settings.memory_max_bytes)),
        CacheTarget::Redis(_) | CacheTarget::RedisCluster(_) => {
            return Err(CacheError::Unavailable(
                "redis backends are not built yet".into(),
            ))
        }
    };
    let ttl = SmartTtl::new(settings.ttl.clone(), Arc::new(SystemClock)).map_err(|p| {
        CacheError::Unavailable(format!("invalid cache.ttl settings: {}", p.join("; ")))
    })?;
    Ok(Some(Arc::new(ScanCache::new(
        backend,
        ttl,
        Duration::from_millis(settings.retry_after_ms),
    ))))
}
