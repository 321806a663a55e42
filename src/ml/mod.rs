//! Machine-learning alpha: what a model sees (`features`, `dataset`: rows built from the
//! scan's own window at each date), how it is validated (`metrics`: IC, Rank
//! IC, ICIR, t-statistic, decile spread on a holdout) and how dates are split so that no
//! holdout information reaches training (`split`).
//!
//! The model (`net`: the burn network; `model`: the file, its checks and prediction),
//! training (`train`) and what a node serves (`serve`). The training command and the
//! scan's pipeline build on them.

pub mod dataset;
pub mod features;
pub mod metrics;
pub mod model;
pub mod net;
pub mod serve;
pub mod split;
pub mod train;
