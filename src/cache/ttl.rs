//! SmartTtl. Not built yet.
