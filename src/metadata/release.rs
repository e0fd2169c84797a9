//! Release constants: what EDP's `config_<release>.yaml` gives granules (model clock,
//! labels, DOI prefix, description tails), with V4r4's values built in. A metadata
//! directory sets them from EDP's own `product_generation_config.yaml` when it ships
//! one, else infers the release from its PO.DAAC table's version column; its
//! `edp_release.json` overrides either.

use std::path::Path;

use serde_json::{Map, Value};

use super::MetadataError;
use crate::time::{Instant, ModelClock};

/// Release constants (EDP's `config_<release>.yaml` values that granules use).
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub product_version: String,
    pub clock: ModelClock,
    pub native_label: String,
    pub latlon_label: String,
    pub history: String,
    pub references: String,
    pub source: String,
    pub doi_prefix: String,
    pub metadata_link_root: String,
    pub geospatial_vertical_min: f64,
    pub tail_native: String,
    pub tail_latlon: String,
    pub podaac_file: String,
}

impl Release {
    /// V4r4 values from EDP's `configs/config_V4r4.yaml`.
    pub fn v4r4() -> Release {
        Release {
            version: "V4r4".into(),
            product_version: "Version 4, Release 4".into(),
            clock: ModelClock::v4r4(),
            native_label: "llc0090".into(),
            latlon_label: "0p50deg".into(),
            history: "Inaugural release of an ECCO Central Estimate solution to PO.DAAC".into(),
            references: "ECCO Consortium, Fukumori, I., Wang, O., Fenty, I., Forget, G., Heimbach, P., & Ponte, R. M. 2020. Synopsis of the ECCO Central Production Global Ocean and Sea-Ice State Estimate (Version 4 Release 4). doi:10.5281/zenodo.3765928".into(),
            source: "The ECCO V4r4 state estimate was produced by fitting a free-running solution of the MITgcm (checkpoint 66g) to satellite and in situ observational data in a least squares sense using the adjoint method.".into(),
            doi_prefix: "10.5067".into(),
            metadata_link_root: "https://cmr.earthdata.nasa.gov/search/collections.umm_json?ShortName=".into(),
            geospatial_vertical_min: -6134.5,
            tail_native: " on the native Lat-Lon-Cap 90 (LLC90) model grid from the ECCO Version 4 revision 4 (V4r4) ocean and sea-ice state estimate.".into(),
            tail_latlon: " interpolated to a regular 0.5-degree grid from the ECCO Version 4 revision 4 (V4r4) ocean and sea-ice state estimate.".into(),
            podaac_file: "PODAAC_datasets-revised_20210226.5.csv".into(),
        }
    }

    /// The grid size the native label names (`llc0090` → 90), if it names one.
    /// Granule names, and with them the PO.DAAC rows (titles, ids, DOIs) a granule is
    /// given, follow this label, so a grid of another size needs a metadata set of its own.
    pub fn native_label_size(&self) -> Option<usize> {
        self.native_label.strip_prefix("llc")?.parse().ok()
    }

    /// Applies overrides from an `edp_release.json` in a metadata directory
    /// (keys named as in EDP's YAML config: `ecco_version`, `model_start_time`, …).
    pub(super) fn apply_overrides(
        &mut self,
        v: &Map<String, Value>,
        path: &Path,
    ) -> Result<(), MetadataError> {
        let bad = |what: String| MetadataError::Format {
            path: path.to_path_buf(),
            what,
        };
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        if let Some(s) = text("ecco_version") {
            self.version = s;
        }
        if let Some(s) = text("product_version") {
            self.product_version = s;
        }
        for (key, slot) in [
            ("history", &mut self.history),
            ("references", &mut self.references),
            ("source", &mut self.source),
            ("doi_prefix", &mut self.doi_prefix),
            ("metadata_link_root", &mut self.metadata_link_root),
            ("dataset_description_tail_native", &mut self.tail_native),
            ("dataset_description_tail_latlon", &mut self.tail_latlon),
            ("podaac_metadata_filename", &mut self.podaac_file),
        ] {
            if let Some(s) = text(key) {
                *slot = s;
            }
        }
        if let Some(labels) = v.get("ecco_production_filestr_grid_label") {
            if let Some(s) = labels.get("native").and_then(Value::as_str) {
                self.native_label = s.into();
            }
            if let Some(s) = labels.get("latlon").and_then(Value::as_str) {
                self.latlon_label = s.into();
            }
        }
        if let Some(x) = v.get("geospatial_vertical_min").and_then(Value::as_f64) {
            self.geospatial_vertical_min = x;
        }
        for (key, slot) in [
            ("model_start_time", &mut self.clock.start),
            ("model_end_time", &mut self.clock.end),
        ] {
            if let Some(s) = text(key) {
                *slot = Instant::parse(&s).map_err(|e| bad(format!("{key}: {e}")))?;
            }
        }
        if v.contains_key("model_timestep") || v.contains_key("model_timestep_units") {
            let n = v.get("model_timestep").and_then(Value::as_i64).unwrap_or(1);
            let unit = text("model_timestep_units").unwrap_or_else(|| "h".into());
            self.clock.step_seconds =
                ModelClock::step_seconds_from(n, &unit).map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }
}

/// The top-level `key: value` scalars of EDP's `product_generation_config.yaml`, with
/// their lines. The file is flat YAML (comments, quoted or bare scalars, flow lists);
/// only scalars are kept (nested or list values are not release constants).
pub(super) fn generation_config_scalars(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with([' ', '\t', '#', '-']) {
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let rest = rest.trim();
        let value = match rest.chars().next() {
            Some(q @ ('\'' | '"')) => match rest[1..].find(q) {
                Some(end) => rest[1..1 + end].to_string(),
                None => continue,
            },
            Some('[' | '{') | None => continue,
            Some(_) => rest.split(" #").next().unwrap_or("").trim().to_string(),
        };
        out.push((key.trim().to_string(), value, i + 1));
    }
    out
}

/// Editors' notes EDP's V4r5 config leaves at the start of values (`NEEDS DOI …`,
/// `CHECK THIS DOI 10.5067`): text that must not reach a granule as it is.
pub(super) fn editor_note(value: &str) -> Option<&str> {
    ["NEEDS ", "CHECK THIS", "TBD", "TODO", "FIXME", "XXX"]
        .iter()
        .find(|n| value.starts_with(**n))
        .copied()
}

impl Release {
    /// Sets the constants EDP's `product_generation_config.yaml` gives (the keys are
    /// those of `edp_release.json`, which it uses; `filename_tail_*` give the grid
    /// labels and `doi` the DOI prefix, read as the `10.NNNN` it holds).
    pub(super) fn apply_generation_config(
        &mut self,
        text: &str,
        path: &Path,
    ) -> Result<(), MetadataError> {
        let mut m = Map::new();
        for (key, value, line) in generation_config_scalars(text) {
            if let Some(note) = editor_note(&value) {
                log::warn!(
                    "{}:{line}: {key} begins with the editors' note {note:?}",
                    path.display()
                );
            }
            match key.as_str() {
                "doi" => {
                    // `CHECK THIS DOI 10.5067` → 10.5067.
                    if let Some(prefix) = value
                        .split_whitespace()
                        .find(|w| w.starts_with("10.") && w.len() > 3)
                    {
                        m.insert("doi_prefix".into(), Value::String(prefix.into()));
                    }
                }
                "filename_tail_native" | "filename_tail_latlon" => {
                    let label = value.strip_suffix(".nc").unwrap_or(&value).to_string();
                    if !label.is_empty() {
                        let which = if key.ends_with("native") {
                            "native"
                        } else {
                            "latlon"
                        };
                        let labels = m
                            .entry("ecco_production_filestr_grid_label")
                            .or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(l) = labels {
                            l.insert(which.into(), Value::String(label));
                        }
                    }
                }
                "geospatial_vertical_min" => {
                    if let Ok(x) = value.parse::<f64>() {
                        m.insert(key, Value::from(x));
                    }
                }
                "model_timestep" => {
                    if let Ok(x) = value.parse::<i64>() {
                        m.insert(key, Value::from(x));
                    }
                }
                _ if !value.is_empty() => {
                    m.insert(key, Value::String(value));
                }
                _ => {}
            }
        }
        self.apply_overrides(&m, path)
    }

    /// Infers the release from a PO.DAAC table's `DATASET_CITATION.VERSION` column
    /// (`V4r5` → version V4r5, "Version 4, Release 5", this table for the DOIs, and the
    /// description tails' release named anew). History, references and source stay
    /// V4r4's: only a config file or `edp_release.json` knows them.
    pub(super) fn infer_from_podaac(&mut self, version: &str, table: &str) {
        let Some((major, minor)) = version
            .strip_prefix('V')
            .and_then(|v| v.split_once('r'))
            .filter(|(a, b)| {
                !a.is_empty() && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
            })
        else {
            return;
        };
        let old = self.version.clone();
        self.version = version.to_string();
        self.product_version = format!("Version {major}, Release {minor}");
        self.podaac_file = table.to_string();
        for tail in [&mut self.tail_native, &mut self.tail_latlon] {
            *tail = tail
                .replace(&format!("({old})"), &format!("({version})"))
                .replace("revision 4", &format!("release {minor}"));
        }
        log::warn!(
            "release {version} inferred from the PO.DAAC table {table}; history, references and source are {old}'s (give them in edp_release.json)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::Release;

    #[test]
    fn native_label_names_its_grid_size() {
        let mut r = Release::v4r4();
        assert_eq!(r.native_label_size(), Some(90));
        r.native_label = "llc1080".into();
        assert_eq!(r.native_label_size(), Some(1080));
        // A label that is not llc<size> names no size.
        r.native_label = "native_grid".into();
        assert_eq!(r.native_label_size(), None);
    }
}
