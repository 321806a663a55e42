//! The model file and serving it.
//!
//! A model file is JSON: a format version, the input names in order, the normalisation
//! fitted on the training dates, the data namespace and window it was trained on, and per
//! horizon its training and holdout dates, holdout metrics, whether it was accepted and the
//! network's weights. Its version is the FNV-1a hash of its bytes, so a node that reads
//! the same file, or the same bytes from Redis, serves the same version.
//!
//! [`Model::parse`] refuses what this build cannot serve (another format version, other
//! inputs, damaged weights) and, unless forced, a model that was not accepted; every
//! refusal says what to do.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::features::{self, COUNT, NAMES};
use super::metrics::Holdout;
use super::net::{self, Architecture, Layer};
use crate::scan::Features;

/// The model file format this build reads and writes.
pub const FORMAT: u32 = 1;

/// Normalised inputs are clipped to this many scales from the centre.
const CLIP: f64 = 5.0;

/// How one input is normalised: `(x − center) / scale`, clipped to ±5; a missing input
/// (not finite) becomes 0, the centre.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub center: f64,
    pub scale: f64,
}

impl Scaling {
    /// The median and the interquartile range over 1.349 (the standard deviation of a
    /// normal sample, robust to the fat tails of returns) of the finite `values`; scale 1
    /// where they have no spread.
    pub fn fit(mut values: Vec<f64>) -> Scaling {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return Scaling {
                center: 0.0,
                scale: 1.0,
            };
        }
        values.sort_by(f64::total_cmp);
        let q = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
        let iqr = (q(0.75) - q(0.25)) / 1.349;
        Scaling {
            center: q(0.5),
            scale: if iqr > 0.0 && iqr.is_finite() {
                iqr
            } else {
                1.0
            },
        }
    }

    pub fn apply(&self, x: f64) -> f32 {
        if x.is_finite() {
            ((x - self.center) / self.scale).clamp(-CLIP, CLIP) as f32
        } else {
            0.0
        }
    }
}

/// First and last date of a period and how many dates it holds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Period {
    pub first: NaiveDate,
    pub last: NaiveDate,
    pub dates: usize,
}

/// The network for one horizon and what its holdout showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HorizonModel {
    /// Trading days ahead.
    pub horizon: usize,
    pub train: Period,
    pub holdout: Period,
    pub metrics: Holdout,
    /// Holdout t-statistic of the daily Rank ICs at least the model's `min_t_stat`.
    pub accepted: bool,
    /// The network predicts the forward return over this (the training labels' standard
    /// deviation): its output times this is a return.
    pub label_scale: f64,
    pub layers: Vec<Layer>,
}

impl HorizonModel {
    /// Predicted forward returns of `rows` normalised inputs (row-major).
    pub fn predict(&self, normalised: &[f32], rows: usize) -> Vec<f64> {
        net::predict(&self.layers, normalised, rows)
            .into_iter()
            .map(|p| f64::from(p) * self.label_scale)
            .collect()
    }
}

/// A trained model, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub format: u32,
    pub features: Vec<String>,
    pub normalisation: Vec<Scaling>,
    pub architecture: Architecture,
    /// The data it was trained on (a provider's cache namespace) and the window each row
    /// saw.
    pub namespace: String,
    pub lookback_days: usize,
    pub min_bars: usize,
    pub trained_at: DateTime<Utc>,
    /// The acceptance bar it was held to.
    pub min_t_stat: f64,
    /// Every horizon accepted.
    pub accepted: bool,
    pub horizons: Vec<HorizonModel>,
}

/// Why a model cannot be served, and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub message: String,
    pub suggestions: Vec<String>,
}

impl Refusal {
    fn new(message: String, suggestion: &str) -> Refusal {
        Refusal {
            message,
            suggestions: vec![suggestion.to_string()],
        }
    }
}

const RETRAIN: &str = "retrain it with `technic ml train` on this version of technic";

/// A model that may be served, with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub model: Model,
    /// FNV-1a of the file's bytes, 16 hex digits.
    pub version: String,
}

impl Served {
    /// The alphas of `rows`: per row, one predicted forward return per horizon (in the
    /// model's order). An inference that fails or yields a non-finite number is an error,
    /// not a guess.
    pub fn alphas(&self, rows: &[[f64; COUNT]]) -> Result<Vec<Vec<f64>>, Refusal> {
        let failed = |why: &str| {
            Refusal::new(
                format!("model {} failed to predict: {why}", self.version),
                "the alphas are neutral until it predicts again; check the node's log and retrain if it persists",
            )
        };
        let per_horizon = std::panic::catch_unwind(|| self.model.predict(rows))
            .map_err(|_| failed("the inference panicked"))?;
        if per_horizon.iter().flatten().any(|p| !p.is_finite()) {
            return Err(failed("a prediction is not a finite number"));
        }
        Ok((0..rows.len())
            .map(|i| per_horizon.iter().map(|h| h[i]).collect())
            .collect())
    }
}

impl Model {
    /// The file's bytes (pretty JSON, newline-terminated).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Reads a model file's bytes (`origin` names it in errors) and checks that this
    /// build can serve it; a model not accepted needs `force`.
    pub fn parse(bytes: &[u8], origin: &str, force: bool) -> Result<Served, Refusal> {
        #[derive(Deserialize)]
        struct Head {
            format: Option<u32>,
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| {
            Refusal::new(
                format!("{origin} is not a technic model file: {e}"),
                "give the file `technic ml train --out FILE` wrote",
            )
        })?;
        if head.format != Some(FORMAT) {
            return Err(Refusal::new(
                format!(
                    "{origin} has model format {}; this technic reads format {FORMAT}",
                    head.format.map_or("(none)".into(), |f| f.to_string())
                ),
                RETRAIN,
            ));
        }
        let model: Model = serde_json::from_slice(bytes)
            .map_err(|e| Refusal::new(format!("{origin} is a damaged model file: {e}"), RETRAIN))?;
        model.check_features(origin)?;
        model.check_shapes(origin)?;
        if !model.accepted && !force {
            return Err(Refusal {
                message: format!(
                    "{origin} was not accepted: its holdout Rank IC and IC are not both \
                     significantly positive ({}; the bar is t ≥ {})",
                    model.t_stats(),
                    model.min_t_stat
                ),
                suggestions: vec![
                    "train on more symbols or dates, or with other settings, and serve a model that is accepted".into(),
                    "serve it anyway with --force (ml.force = true), knowing its predictions did not beat noise".into(),
                ],
            });
        }
        Ok(Served {
            version: format!("{:016x}", crate::fingerprint::fnv1a(bytes)),
            model,
        })
    }

    fn check_features(&self, origin: &str) -> Result<(), Refusal> {
        if self.features.iter().map(String::as_str).eq(NAMES) {
            return Ok(());
        }
        let missing: Vec<&str> = NAMES
            .iter()
            .copied()
            .filter(|n| !self.features.iter().any(|f| f == n))
            .collect();
        let unknown: Vec<&str> = self
            .features
            .iter()
            .map(String::as_str)
            .filter(|f| !NAMES.contains(f))
            .collect();
        let what = if missing.is_empty() && unknown.is_empty() {
            "the same inputs in another order".to_string()
        } else {
            format!(
                "inputs this technic does not compute: [{}]; inputs it lacks: [{}]",
                unknown.join(", "),
                missing.join(", ")
            )
        };
        Err(Refusal::new(
            format!("{origin} was trained on other features than this technic computes ({what})"),
            RETRAIN,
        ))
    }

    fn check_shapes(&self, origin: &str) -> Result<(), Refusal> {
        let fine = self.normalisation.len() == COUNT
            && !self.horizons.is_empty()
            && self.horizons.iter().all(|h| {
                h.horizon > 0
                    && h.label_scale.is_finite()
                    && h.layers.first().is_some_and(|l| l.inputs == COUNT)
                    && h.layers.last().is_some_and(|l| l.outputs == 1)
                    && h.layers.windows(2).all(|w| w[0].outputs == w[1].inputs)
                    && h.layers.iter().all(Layer::is_consistent)
            });
        if fine {
            Ok(())
        } else {
            Err(Refusal::new(
                format!("{origin} is a damaged model file: its weights do not fit its inputs"),
                RETRAIN,
            ))
        }
    }

    fn t_stats(&self) -> String {
        self.horizons
            .iter()
            .map(|h| {
                let t = |t: Option<f64>| t.map_or("n/a".into(), |t| format!("{t:.2}"));
                format!(
                    "{}d: Rank IC t = {}, IC t = {}",
                    h.horizon,
                    t(h.metrics.t_stat),
                    t(h.metrics.ic_t_stat)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The normalised inputs of `rows`, row-major.
    pub fn normalise(&self, rows: &[[f64; COUNT]]) -> Vec<f32> {
        rows.iter()
            .flat_map(|r| r.iter().zip(&self.normalisation).map(|(x, s)| s.apply(*x)))
            .collect()
    }

    /// Predicted forward returns of `rows`, per horizon (in `horizons` order), per row.
    pub fn predict(&self, rows: &[[f64; COUNT]]) -> Vec<Vec<f64>> {
        let x = self.normalise(rows);
        self.horizons
            .iter()
            .map(|h| h.predict(&x, rows.len()))
            .collect()
    }

    /// Predicted forward returns for scan features (see [`Model::predict`]).
    pub fn predict_features<'a>(
        &self,
        rows: impl IntoIterator<Item = &'a Features>,
    ) -> Vec<Vec<f64>> {
        let rows: Vec<[f64; COUNT]> = rows.into_iter().map(features::vector).collect();
        self.predict(&rows)
    }
}
