//! Machine-learning alpha: what a model sees (`features`, `dataset`: rows built from the
//! scan's own window at each date), how it is validated (`metrics`: IC, Rank
//! IC, ICIR, t-statistic, decile spread on a holdout) and how dates are split so that no
//! holdout information reaches training (`split`).
//!
//! Pure functions, no I/O: the training command and the scan's inference build on them.

pub mod dataset;
pub mod features;
pub mod metrics;
pub mod split;
