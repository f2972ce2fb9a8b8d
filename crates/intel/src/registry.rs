//! A small model registry: every trained model is kept as a numbered version with its evaluation,
//! and becomes the one in use only if it beats the current one on the same held-out days.
//!
//! The registry lives in memory (the simulator retrains inside a deterministic run) and saves to
//! and loads from a directory: `v0001/model.json`, `v0001/card.json`, …, and `current` naming
//! the version in use.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{
    Evaluation, Forecaster, Series,
    forecast::{ForecastError, evaluate},
};

/// What the registry knows of a version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Card {
    /// Version number, from 1.
    pub version: u32,
    /// When it was trained (UTC ms, as the caller's clock says).
    pub trained_at_ms: i64,
    /// Training span: UTC ms of the first slot and of the end of the last.
    pub trained_on: (i64, i64),
    /// Held-out span it was judged on.
    pub judged_on: (i64, i64),
    /// Its evaluation on the held-out span.
    pub evaluation: Evaluation,
    /// The current model's evaluation on the same span, when there was one.
    pub incumbent: Option<(u32, Evaluation)>,
    /// Whether it became the model in use.
    pub promoted: bool,
    /// Why (or why not).
    pub reason: String,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Registry {
    versions: Vec<(Card, Forecaster)>,
    current: Option<usize>,
}

/// Registry errors.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// File trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A file that is not what it should be.
    #[error("{0}")]
    Format(String),
    /// The model itself.
    #[error(transparent)]
    Model(#[from] ForecastError),
}

fn wape_at_hour(e: &Evaluation) -> f64 {
    e.at_hour().map_or(f64::INFINITY, |s| s.model_wape)
}

impl Registry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The model in use and its card.
    #[must_use]
    pub fn current(&self) -> Option<(&Card, &Forecaster)> {
        self.current
            .and_then(|k| self.versions.get(k))
            .map(|(c, m)| (c, m))
    }

    /// Every version's card, oldest first.
    #[must_use]
    pub fn cards(&self) -> Vec<&Card> {
        self.versions.iter().map(|(c, _)| c).collect()
    }

    /// Registers a freshly trained model, judged on slots `[test_start, series.slots)`: it is
    /// promoted when there is no current model, or when its per-zone WAPE at one hour is lower
    /// than the current model's on the same slots.
    pub fn submit(
        &mut self,
        model: Forecaster,
        series: &Series,
        test_start: usize,
        now_ms: i64,
    ) -> &Card {
        let evaluation = evaluate(&model, series, test_start);
        let incumbent = self
            .current()
            .map(|(c, m)| (c.version, evaluate(m, series, test_start)));
        let (promoted, reason) = match &incumbent {
            None => (true, "first model".to_owned()),
            Some((v, old)) => {
                let (new_w, old_w) = (wape_at_hour(&evaluation), wape_at_hour(old));
                if new_w < old_w {
                    (
                        true,
                        format!(
                            "WAPE at 1 h {new_w:.2}% beats v{v}'s {old_w:.2}% on the same days"
                        ),
                    )
                } else {
                    (
                        false,
                        format!(
                            "WAPE at 1 h {new_w:.2}% does not beat v{v}'s {old_w:.2}% on the same days"
                        ),
                    )
                }
            }
        };
        let version = u32::try_from(self.versions.len() + 1).unwrap_or(u32::MAX);
        let card = Card {
            version,
            trained_at_ms: now_ms,
            trained_on: (series.start_ms, series.slot_start(test_start)),
            judged_on: (
                series.slot_start(test_start),
                series.slot_start(series.slots),
            ),
            evaluation,
            incumbent,
            promoted,
            reason,
        };
        self.versions.push((card, model));
        if promoted {
            self.current = Some(self.versions.len() - 1);
        }
        &self.versions[self.versions.len() - 1].0
    }

    /// Writes every version and the pointer to the current one under `dir`.
    ///
    /// # Errors
    /// File trouble.
    pub fn save(&self, dir: &Path) -> Result<(), RegistryError> {
        std::fs::create_dir_all(dir)?;
        for (card, model) in &self.versions {
            let vdir = dir.join(format!("v{:04}", card.version));
            std::fs::create_dir_all(&vdir)?;
            write_atomic(&vdir.join("model.json"), model.to_json()?.as_bytes())?;
            let card = serde_json::to_vec_pretty(card)
                .map_err(|e| RegistryError::Format(e.to_string()))?;
            write_atomic(&vdir.join("card.json"), &card)?;
        }
        if let Some((card, _)) = self.current() {
            write_atomic(
                &dir.join("current"),
                format!("v{:04}\n", card.version).as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Reads a registry written by [`Self::save`] (an absent directory is an empty registry).
    ///
    /// # Errors
    /// Unreadable or malformed files.
    pub fn load(dir: &Path) -> Result<Self, RegistryError> {
        let mut reg = Self::new();
        if !dir.exists() {
            return Ok(reg);
        }
        let mut names: Vec<String> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with('v') && n[1..].chars().all(|c| c.is_ascii_digit()))
            .collect();
        names.sort();
        for name in &names {
            let vdir = dir.join(name);
            let card: Card = serde_json::from_slice(&std::fs::read(vdir.join("card.json"))?)
                .map_err(|e| RegistryError::Format(format!("{name}/card.json: {e}")))?;
            let model = Forecaster::from_json(&std::fs::read_to_string(vdir.join("model.json"))?)?;
            reg.versions.push((card, model));
        }
        if let Ok(cur) = std::fs::read_to_string(dir.join("current")) {
            let cur = cur.trim();
            reg.current = names.iter().position(|n| n == cur);
            if reg.current.is_none() {
                return Err(RegistryError::Format(format!(
                    "current names {cur}, which is not in the registry"
                )));
            }
        }
        Ok(reg)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}
