//! The fallback chain: a provider made of sources tried in order (e.g. `polygon` then
//! `csv:DIR`). Each symbol the sources before could not serve — any per-symbol error — is
//! asked of the next; bars a fallback served are marked [`Origin::Fallback`] so the scan
//! reports them per symbol, and every use of a fallback is logged. A symbol no source
//! can serve keeps the primary's error (the actionable one: a bad key, a rate limit), with
//! what the fallbacks said appended.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::warn;

use super::resilience::CircuitState;
use super::{BarRange, DataError, MarketData};
use crate::market::{Bars, Origin, UniverseEntry};

/// Sources tried in order; the first is the primary.
pub struct FallbackChain {
    sources: Vec<Arc<dyn MarketData>>,
}

impl FallbackChain {
    /// A chain over `sources` (the first is the primary). An empty list is a chain that
    /// serves nothing.
    pub fn new(sources: Vec<Arc<dyn MarketData>>) -> Self {
        FallbackChain { sources }
    }
}

/// The error to report when `fallback` failed too.
fn combine(primary: DataError, fallback_name: &str, fallback: DataError) -> DataError {
    match primary {
        // "No data" from the primary says nothing more than the fallback's own error.
        DataError::NotFound { .. } => fallback,
        DataError::Invalid { symbol, message } => DataError::Invalid {
            symbol,
            message: format!("{message}; {fallback_name} fallback: {fallback}"),
        },
        DataError::Unavailable { message } => DataError::Unavailable {
            message: format!("{message}; {fallback_name} fallback: {fallback}"),
        },
        DataError::Auth { message } => DataError::Auth {
            message: format!("{message}; {fallback_name} fallback: {fallback}"),
        },
        DataError::RateLimited { message } => DataError::RateLimited {
            message: format!("{message}; {fallback_name} fallback: {fallback}"),
        },
    }
}

#[async_trait]
impl MarketData for FallbackChain {
    fn name(&self) -> &'static str {
        self.sources.first().map_or("none", |s| s.name())
    }

    /// Every source's namespace: cached bars of a chain may come from any of them.
    fn cache_namespace(&self) -> String {
        let parts: Vec<String> = self.sources.iter().map(|s| s.cache_namespace()).collect();
        parts.join("+")
    }

    /// Every source's version (a symbol may be served by any of them); `None` when one
    /// cannot tell.
    async fn data_version(&self) -> Option<String> {
        let mut parts = Vec::with_capacity(self.sources.len());
        for source in &self.sources {
            parts.push(source.data_version().await?);
        }
        Some(parts.join("+"))
    }

    /// The first source's universe that can be listed.
    async fn universe(&self) -> Result<Vec<UniverseEntry>, DataError> {
        let mut first_error = None;
        for (i, source) in self.sources.iter().enumerate() {
            match source.universe().await {
                Ok(u) => {
                    if i > 0 {
                        warn!(
                            source = source.name(),
                            "universe listed by a fallback source"
                        );
                    }
                    return Ok(u);
                }
                Err(e) => {
                    warn!(source = source.name(), error = %e, "cannot list the universe");
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(DataError::Unavailable {
            message: "no data source configured".into(),
        }))
    }

    async fn daily_bars(&self, symbol: &str, range: BarRange) -> Result<Bars, DataError> {
        let mut all = self.load_many(&[symbol.to_string()], range).await;
        all.pop().unwrap_or_else(|| {
            Err(DataError::NotFound {
                symbol: symbol.to_string(),
            })
        })
    }

    async fn load_many(&self, symbols: &[String], range: BarRange) -> Vec<Result<Bars, DataError>> {
        let Some((primary, rest)) = self.sources.split_first() else {
            return symbols
                .iter()
                .map(|s| Err(DataError::NotFound { symbol: s.clone() }))
                .collect();
        };
        let mut out = primary.load_many(symbols, range).await;
        for source in rest {
            let failed: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_err()).collect();
            if failed.is_empty() {
                break;
            }
            let asked: Vec<String> = failed.iter().map(|&i| symbols[i].clone()).collect();
            // The fallback sees only the failed share of the scan: scale the size hint so a
            // remote fallback does not choose a whole-market load for a few symbols.
            let mut sub = range;
            sub.scan_symbols = range
                .scan_symbols
                .map(|n| (n * asked.len()).div_ceil(symbols.len().max(1)));
            let got = source.load_many(&asked, sub).await;
            let mut served = 0usize;
            for (i, r) in failed.into_iter().zip(got) {
                let before = std::mem::replace(
                    &mut out[i],
                    Err(DataError::NotFound {
                        symbol: String::new(),
                    }),
                );
                out[i] = match (before, r) {
                    (_, Ok(mut bars)) => {
                        served += 1;
                        bars.origin = Origin::Fallback(source.name().to_string());
                        Ok(bars)
                    }
                    (Err(primary_err), Err(e)) => Err(combine(primary_err, source.name(), e)),
                    (Ok(bars), Err(_)) => Ok(bars),
                };
            }
            if served > 0 {
                warn!(
                    source = source.name(),
                    symbols = served,
                    asked = asked.len(),
                    "symbols served by a fallback source"
                );
            }
        }
        out
    }

    fn circuits(&self) -> Vec<(&'static str, CircuitState)> {
        self.sources.iter().flat_map(|s| s.circuits()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_code_is_kept_with_the_fallbacks_reason_unless_it_only_said_no_data() {
        let csv_missing = || DataError::NotFound { symbol: "X".into() };
        let auth = combine(
            DataError::Auth {
                message: "polygon: HTTP 401".into(),
            },
            "csv",
            csv_missing(),
        );
        assert_eq!(auth.code(), "DATA_AUTH");
        assert!(
            auth.to_string().contains("csv fallback: no data for X"),
            "{auth}"
        );
        let bad_file = DataError::Invalid {
            symbol: "X".into(),
            message: "X.csv:3: bad".into(),
        };
        assert_eq!(combine(csv_missing(), "csv", bad_file.clone()), bad_file);
    }

    #[tokio::test]
    async fn an_empty_chain_serves_nothing() {
        let chain = FallbackChain::new(Vec::new());
        let got = chain.load_many(&["A".into()], BarRange::new(None, 5)).await;
        assert_eq!(
            got[0].as_ref().map_err(DataError::code).err(),
            Some("DATA_NOT_FOUND")
        );
        assert!(chain.universe().await.is_err());
    }
}
