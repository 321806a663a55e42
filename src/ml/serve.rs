//! What a node serves: a model that passed [`Model::parse`], or why there is none. A
//! configured model that cannot be served is not an error that stops anything: every
//! scan runs with neutral alphas (0) and says why (`ML_UNAVAILABLE`).

use std::path::Path;
use std::sync::Arc;

use super::model::{Model, Refusal, Served};
use crate::config::MlSettings;

/// The model a node serves, or why it serves none.
#[derive(Debug, Clone, PartialEq)]
pub enum Serving {
    Ready(Served),
    Unavailable(Refusal),
}

impl Serving {
    /// The model `ml.model` names; `None` when it names none.
    pub fn from_settings(ml: &MlSettings) -> Option<Arc<Serving>> {
        let path = ml.model.trim();
        (!path.is_empty()).then(|| Arc::new(Serving::load(Path::new(path), ml.force)))
    }

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
