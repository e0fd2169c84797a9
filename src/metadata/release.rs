//! Release constants: what EDP's `config_<release>.yaml` gives granules (model clock,
//! labels, DOI prefix, description tails), with V4r4's values built in and overrides
//! from a metadata directory's `edp_release.json`.

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
