//! The ECCO metadata set: dataset groupings, variable / coordinate / global attribute
//! records, the PO.DAAC dataset table, the MITgcm diagnostics table, and the release
//! constants (model clock, labels, DOI prefix, description tails).
//!
//! The V4r4 set is vendored under `metadata/V4r4/` and embedded in the binary as the
//! default; `--metadata DIR` loads another release's set (V4r5 names its files without
//! the `ECCOv4r4_` prefix, so files are found by suffix). These are data: nothing here
//! knows how a granule is laid out.
//!
//! `model.rs` holds the types (groupings, records, the whole set and its look-ups),
//! `release.rs` the release constants, `load.rs` finds and parses the files (embedded or
//! a directory), `podaac.rs` reads the PO.DAAC dataset table and `diagnostics.rs`
//! MITgcm's diagnostics table.

mod check;
mod derived;
mod diagnostics;
mod load;
mod model;
mod podaac;
mod release;

use std::path::PathBuf;

use serde_json::{Map, Value};

pub use check::{check_dir, check_embedded, Problem, GEOSPATIAL_EXTENTS};
pub use derived::{derived_groupings, is_geometry, GEOMETRY};
pub use diagnostics::parse_diagnostics;
pub use model::{record_named, Diagnostic, Grouping, MetadataSet, PodaacRow, Product};
pub use release::Release;

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error(transparent)]
    Io(#[from] crate::error::FileError),
    #[error("metadata file {path} is not valid JSON")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("metadata file {path}: {what}")]
    Format { path: PathBuf, what: String },
    #[error("metadata directory {dir} has no file matching '*{suffix}'")]
    Missing { dir: PathBuf, suffix: String },
}

/// One record of an attribute JSON file: `name` plus attribute keys in file order.
pub type Record = Map<String, Value>;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::llc::PointType;

    #[test]
    fn embedded_set_loads() {
        let m = MetadataSet::embedded().unwrap();
        assert_eq!(m.groupings_native.len(), 21);
        let ssh = &m.groupings_native[0];
        assert_eq!(ssh.filename, "SEA_SURFACE_HEIGHT");
        assert_eq!(ssh.fields, ["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]);
        assert_eq!(ssh.frequencies.len(), 3);
        let vel = m
            .grouping_by_filename(Product::Native, "OCEAN_VELOCITY")
            .unwrap();
        assert_eq!(vel.output_name("WVELMASS"), "WVEL");
        assert!(m.variable("THETA").is_some());
        assert!(
            m.variable("hFacC").is_some(),
            "geometry records are included"
        );
        assert!(!m.podaac.is_empty());
    }

    #[test]
    fn diagnostics_point_types() {
        let m = MetadataSet::embedded().unwrap();
        let d = &m.diagnostics;
        assert_eq!(d["SSH"].point, PointType::C);
        assert_eq!(d["SSH"].vertical, None);
        assert_eq!(d["UVEL"].point, PointType::U);
        assert_eq!(d["UVEL"].vertical, Some("k"));
        assert_eq!(d["UVEL"].mate.as_deref(), Some("VVEL"));
        assert_eq!(d["oceTAUY"].point, PointType::V);
        assert_eq!(d["WVEL"].vertical, Some("k_l"));
        assert_eq!(d["EXFtaux"].point, PointType::C);
    }

    #[test]
    fn podaac_lookup_wildcards_the_date() {
        let m = MetadataSet::embedded().unwrap();
        let row = m
            .podaac_row(
                "SEA_SURFACE_HEIGHT_mon_mean_1995-07_ECCO_V4r4_native_llc0090.nc",
                "1995-07",
            )
            .unwrap();
        assert_eq!(row.short_name, "ECCO_L4_SSH_LLC0090GRID_MONTHLY_V4R4");
        assert_eq!(row.persistent_id, "PODAAC-ECL5M-SSH44");
    }

    #[test]
    fn v4r5_directory_loads_once_its_json_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ecco-metadata/V4r5");
        if !dir.is_dir() {
            eprintln!("skipping: {} not present", dir.display());
            return;
        }
        // The upstream V4r5 global_metadata_for_all_datasets.json lacks commas
        // (lines 148 and 153): the error must name the file and the line.
        let err = crate::error::chain(&MetadataSet::from_dir(&dir).unwrap_err());
        assert!(
            err.contains("global_metadata_for_all_datasets.json"),
            "{err}"
        );
        assert!(err.contains("line 149"), "{err}");
        let tmp = tempfile::tempdir().unwrap();
        let v4r5 = tmp.path().join("V4r5");
        std::fs::create_dir(&v4r5).unwrap();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let mut text = std::fs::read_to_string(&p).unwrap_or_default();
            if p.ends_with("global_metadata_for_all_datasets.json") {
                text = text.replace("   }\n   {", "   },\n   {");
            }
            std::fs::write(v4r5.join(p.file_name().unwrap()), text).unwrap();
        }
        let m = MetadataSet::from_dir(&v4r5).unwrap();
        assert_eq!(m.release.version, "V4r5");
        assert!(m.groupings_native.len() > 10);
        assert!(m.native_coord("XC").is_some());
        assert!(m.diagnostics.contains_key("THETA"));
    }
}
