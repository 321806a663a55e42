//! What a node serves: a model that passed [`Model::parse`], or why there is none. A
//! configured model that cannot be served is not an error that stops anything: every
//! scan runs with neutral alphas (0) and says why (`ML_UNAVAILABLE`).
//!
//! A node holds its model in a [`ModelSlot`]: loaded from `ml.model` at start, replaced
//! when a model is published to the cluster (`technic ml publish`). Each shard reads the
//! slot once, so a shard's alphas all come from one model.

use std::path::Path;
use std::sync::{Arc, RwLock};

use super::model::{Model, Refusal, Served};
use crate::config::MlSettings;

/// The model a node serves, or why it serves none.
#[derive(Debug, Clone, PartialEq)]
pub enum Serving {
    Ready(Served),
    Unavailable(Refusal),
}

impl Serving {
    /// Reads and checks a model file.
    pub fn load(path: &Path, force: bool) -> Serving {
        let origin = format!("model file {}", path.display());
        match std::fs::read(path) {
            Ok(bytes) => Serving::parse(&bytes, &origin, force),
            Err(e) => Serving::Unavailable(Refusal {
                message: format!("{origin} cannot be read: {e}"),
                suggestions: vec![
                    "check ml.model (or --model): train one with `technic ml train --out FILE`"
                        .into(),
                ],
            }),
        }
    }

    pub fn parse(bytes: &[u8], origin: &str, force: bool) -> Serving {
        match Model::parse(bytes, origin, force) {
            Ok(s) => Serving::Ready(s),
            Err(r) => Serving::Unavailable(r),
        }
    }

    /// The version served, if any.
    pub fn version(&self) -> Option<&str> {
        match self {
            Serving::Ready(s) => Some(&s.version),
            Serving::Unavailable(_) => None,
        }
    }
}

/// Where a served model came from, for the health check and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `ml.model` (or `--model`): a file this node read.
    File,
    /// Published to the cluster's Redis (`technic ml publish`); every node follows it.
    Published,
}

impl Source {
    pub fn as_str(&self) -> &str {
        match self {
            Source::File => "file",
            Source::Published => "published",
        }
    }
}

/// The model a node serves now, shared by its workers, its coordinator and its health
/// check. Empty when none is configured or published.
#[derive(Debug, Default)]
pub struct ModelSlot {
    current: RwLock<Option<(Arc<Serving>, Source)>>,
}

impl ModelSlot {
    /// The slot with the model `ml.model` names (empty when it names none).
    pub fn from_settings(ml: &MlSettings) -> Arc<ModelSlot> {
        let slot = ModelSlot::default();
        slot.load_settings(ml);
        Arc::new(slot)
    }

    /// Serves the model `ml.model` names (reading the file again), or none.
    pub fn load_settings(&self, ml: &MlSettings) {
        let path = ml.model.trim();
        let serving = (!path.is_empty()).then(|| Serving::load(Path::new(path), ml.force));
        self.put(serving.map(|s| (Arc::new(s), Source::File)));
    }

    /// The model served now and where it came from.
    pub fn current(&self) -> Option<(Arc<Serving>, Source)> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The model served now.
    pub fn serving(&self) -> Option<Arc<Serving>> {
        self.current().map(|(s, _)| s)
    }

    /// What the node serves, as its heartbeat and the scan-result key say it: the
    /// version, `unavailable` for a model it cannot serve, `None` for none.
    pub fn served_as(&self) -> Option<String> {
        self.serving()
            .map(|s| s.version().unwrap_or("unavailable").to_string())
    }

    /// Serves `serving` from now on: shards that already read the slot finish with theirs.
    pub fn set(&self, serving: Arc<Serving>, source: Source) {
        self.put(Some((serving, source)));
    }

    fn put(&self, current: Option<(Arc<Serving>, Source)>) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = current;
    }
}
