//! The scan: pure computation from bars to ranked trade ideas. Every rule, threshold and
//! default it implements is written out in `docs/scan-rules.md`; change both together.
//!
//! Owns [`ScanConfig`] and its validation, the per-symbol pipeline ([`evaluate`]),
//! scoring, trade plans, ranking and the [`ScanReport`] shape. No I/O and no async:
//! the cluster's workers call [`evaluate`], its coordinator calls [`rank`].

mod config;
mod evaluate;
pub mod export;
mod features;
mod plan;
mod rank;
mod report;
mod score;

pub use config::{name_problems, InvalidConfig, ScanConfig, SortKey};
pub use evaluate::{
    compute_features, evaluate, score, Evaluation, SymbolFeatures, FEATURES_VERSION,
};
pub use features::Features;
pub use plan::{trade_plan, TradePlan};
pub use rank::{blend, neutral_alphas, rank};
pub use report::{
    Failure, FilterReason, FromCache, ScanReport, ScanResult, ScanStatus, Stages, Timing,
};
pub use score::{sign, signal, sub_scores, tech_rating, Signal, SubScores};
