//! Building the cache a process uses from settings and a [`CacheTarget`].

use std::sync::Arc;
use std::time::Duration;

use super::{
    open, CacheError, CacheTarget, OpenOptions, RedisOptions, ScanCache, SmartTtl, SystemClock,
};
use crate::config::CacheSettings;

/// The typed cache for `target`, or `None` for `none`. Redis targets connect lazily:
/// an unreachable Redis does not fail here, it degrades the first scan that uses it.
pub async fn build(
    settings: &CacheSettings,
    target: &CacheTarget,
) -> Result<Option<Arc<ScanCache>>, CacheError> {
    let options = OpenOptions {
        memory_max_bytes: settings.memory_max_bytes,
        redis: RedisOptions {
            connect_timeout: Duration::from_millis(settings.connect_timeout_ms),
            response_timeout: Duration::from_millis(settings.response_timeout_ms),
        },
    };
    let Some(backend) = open(target, &options).await? else {
        return Ok(None);
    };
    let ttl = SmartTtl::new(settings.ttl.clone(), Arc::new(SystemClock)).map_err(|e| {
        CacheError::Unavailable(format!(
            "invalid cache.ttl settings: {}",
            e.problems.join("; ")
        ))
    })?;
    Ok(Some(Arc::new(ScanCache::new(
        backend,
        ttl,
        Duration::from_millis(settings.retry_after_ms),
    ))))
}
