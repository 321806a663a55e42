//! Machine-learning alpha: how a model of forward returns is validated (`metrics`: IC, Rank
//! IC, ICIR, t-statistic, decile spread on a holdout) and how dates are split so that no
//! holdout information reaches training (`split`).
//!
//! Pure functions, no I/O: the training command and the scan's inference build on them.

pub mod metrics;
pub mod split;
