//! Loading a metadata set: the embedded V4r4 files or a directory (V4r4 or V4r5
//! naming, files found by suffix), each JSON file parsed into records.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::diagnostics::parse_diagnostics;
use super::podaac::parse_podaac;
use super::{Grouping, MetadataError, MetadataSet, Product, Record, Release};
use crate::error::FileError;

/// Files of the embedded V4r4 set, by the suffix they are looked up with.
pub(super) const EMBEDDED: &[(&str, &str)] = &[
    (
        "groupings_for_native_datasets.json",
        include_str!("../../metadata/V4r4/ECCOv4r4_groupings_for_native_datasets.json"),
    ),
    (
        "groupings_for_latlon_datasets.json",
        include_str!("../../metadata/V4r4/ECCOv4r4_groupings_for_latlon_datasets.json"),
    ),
    (
        "variable_metadata.json",
        include_str!("../../metadata/V4r4/ECCOv4r4_variable_metadata.json"),
    ),
    (
        "variable_metadata_for_latlon_datasets.json",
        include_str!("../../metadata/V4r4/ECCOv4r4_variable_metadata_for_latlon_datasets.json"),
    ),
    (
        "coordinate_metadata_for_native_datasets.json",
        include_str!("../../metadata/V4r4/ECCOv4r4_coordinate_metadata_for_native_datasets.json"),
    ),
    (
        "coordinate_metadata_for_latlon_datasets.json",
        include_str!("../../metadata/V4r4/ECCOv4r4_coordinate_metadata_for_latlon_datasets.json"),
    ),
    (
        "geometry_metadata_for_native_datasets.json",
        include_str!("../../metadata/V4r4/ECCOv4r4_geometry_metadata_for_native_datasets.json"),
    ),
    (
        "geometry_metadata_for_latlon_datasets.json",
        include_str!("../../metadata/V4r4/ECCOv4r4_geometry_metadata_for_latlon_datasets.json"),
    ),
    (
        "Geometry and Mixing Dataset Info.txt",
        include_str!("../../metadata/V4r4/ECCO Geometry and Mixing Dataset Info.txt"),
    ),
    (
        "global_metadata_for_all_datasets.json",
        include_str!("../../metadata/V4r4/ECCOv4r4_global_metadata_for_all_datasets.json"),
    ),
    (
        "global_metadata_for_native_datasets.json",
        include_str!("../../metadata/V4r4/ECCOv4r4_global_metadata_for_native_datasets.json"),
    ),
    (
        "global_metadata_for_latlon_datasets.json",
        include_str!("../../metadata/V4r4/ECCOv4r4_global_metadata_for_latlon_datasets.json"),
    ),
    (
        "time_coordinate_metadata.json",
        include_str!("../../metadata/V4r4/time_coordinate_metadata.json"),
    ),
    (
        "PODAAC_datasets-revised_20210226.5.csv",
        include_str!("../../metadata/V4r4/PODAAC_datasets-revised_20210226.5.csv"),
    ),
    (
        "available_diagnostics.log",
        include_str!("../../metadata/V4r4/available_diagnostics.log"),
    ),
];

/// The file of `files` whose name ends with `suffix`, preferring the shortest name (so
/// `variable_metadata.json` does not pick `..._for_latlon_datasets.json`).
pub(super) fn find_by_suffix<'a>(files: &'a [PathBuf], suffix: &str) -> Option<&'a PathBuf> {
    files
        .iter()
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.ends_with(suffix)
                    && (n.len() == suffix.len()
                        || !n[..n.len() - suffix.len()].ends_with("for_latlon_datasets_"))
            })
        })
        .min_by_key(|p| p.as_os_str().len())
}

/// Where the text of each metadata file comes from.
enum Source<'a> {
    Embedded,
    Dir(&'a Path, Vec<PathBuf>),
}

impl Source<'_> {
    /// Finds the file whose name ends with `suffix` (preferring the shortest name, so
    /// `variable_metadata.json` does not pick `..._for_latlon_datasets.json`).
    fn read(
        &self,
        suffix: &str,
        required: bool,
    ) -> Result<Option<(PathBuf, String)>, MetadataError> {
        match self {
            Source::Embedded => Ok(EMBEDDED
                .iter()
                .find(|(s, _)| *s == suffix)
                .map(|(s, text)| {
                    (
                        PathBuf::from(format!("<embedded V4r4>/{s}")),
                        text.to_string(),
                    )
                })),
            Source::Dir(dir, files) => {
                let hit = find_by_suffix(files, suffix);
                match hit {
                    Some(p) => {
                        let text = std::fs::read_to_string(p)
                            .map_err(FileError::at(p, "read metadata file"))?;
                        Ok(Some((p.clone(), text)))
                    }
                    None if required => Err(MetadataError::Missing {
                        dir: dir.to_path_buf(),
                        suffix: suffix.to_string(),
                    }),
                    None => Ok(None),
                }
            }
        }
    }
}

fn records(path: &Path, text: &str) -> Result<Vec<Record>, MetadataError> {
    let v: Value = serde_json::from_str(text).map_err(|source| MetadataError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let Value::Array(items) = v else {
        return Err(MetadataError::Format {
            path: path.to_path_buf(),
            what: "expected a JSON list of records".into(),
        });
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(m) if m.get("name").is_some_and(Value::is_string) => Ok(m),
            _ => Err(MetadataError::Format {
                path: path.to_path_buf(),
                what: format!("record {i} is not an object with a string 'name'"),
            }),
        })
        .collect()
}

impl MetadataSet {
    /// The V4r4 set compiled into the binary.
    pub fn embedded() -> Result<MetadataSet, MetadataError> {
        Self::load_from(Source::Embedded, "embedded V4r4".into(), Release::v4r4())
    }

    /// A metadata directory (V4r4 or V4r5 naming). Files the directory lacks that only
    /// describe the model (the diagnostics table) fall back to the embedded copy.
    pub fn from_dir(dir: &Path) -> Result<MetadataSet, MetadataError> {
        let rd = std::fs::read_dir(dir).map_err(FileError::at(dir, "list metadata directory"))?;
        let mut files = Vec::new();
        for e in rd {
            let e = e.map_err(FileError::at(dir, "list metadata directory"))?;
            files.push(e.path());
        }
        let mut release = Release::v4r4();
        // EDP's own config when the set ships it, else the PO.DAAC table's version.
        let generation = dir.join("product_generation_config.yaml");
        if generation.is_file() {
            let text = std::fs::read_to_string(&generation)
                .map_err(FileError::at(&generation, "read metadata file"))?;
            release.apply_generation_config(&text, &generation)?;
        } else if let Some((version, table)) = podaac_release(&files) {
            release.infer_from_podaac(&version, &table);
        } else if let Some(v) = guess_version(dir) {
            release.version = v;
        }
        let cfg = dir.join("edp_release.json");
        if cfg.is_file() {
            let text =
                std::fs::read_to_string(&cfg).map_err(FileError::at(&cfg, "read metadata file"))?;
            let v: Value = serde_json::from_str(&text).map_err(|source| MetadataError::Json {
                path: cfg.clone(),
                source,
            })?;
            let Value::Object(m) = v else {
                return Err(MetadataError::Format {
                    path: cfg,
                    what: "expected a JSON object".into(),
                });
            };
            release.apply_overrides(&m, &cfg)?;
        }
        Self::load_from(Source::Dir(dir, files), dir.display().to_string(), release)
    }

    fn load_from(
        src: Source<'_>,
        origin: String,
        release: Release,
    ) -> Result<MetadataSet, MetadataError> {
        let req = |suffix: &str| -> Result<(PathBuf, String), MetadataError> {
            src.read(suffix, true)?
                .ok_or_else(|| MetadataError::Missing {
                    dir: PathBuf::from(origin.clone()),
                    suffix: suffix.into(),
                })
        };
        let recs = |suffix: &str| -> Result<Vec<Record>, MetadataError> {
            let (p, t) = req(suffix)?;
            records(&p, &t)
        };
        let opt_recs = |suffix: &str| -> Result<Vec<Record>, MetadataError> {
            match src.read(suffix, false)? {
                Some((p, t)) => records(&p, &t),
                None => Ok(Vec::new()),
            }
        };
        let groupings = |suffix: &str, product: Product| -> Result<Vec<Grouping>, MetadataError> {
            let (p, t) = req(suffix)?;
            records(&p, &t)?
                .iter()
                .enumerate()
                .map(|(i, r)| Grouping::from_record(i, product, r, &p))
                .collect()
        };
        let mut variables = recs("variable_metadata.json")?;
        let geometry_native = opt_recs("geometry_metadata_for_native_datasets.json")?;
        variables.extend(geometry_native.iter().cloned());
        let dataset_info = src
            .read("Geometry and Mixing Dataset Info.txt", false)?
            .map(|(_, t)| t)
            .unwrap_or_default();
        let podaac = match src.read(&release.podaac_file, false)? {
            Some((p, t)) => parse_podaac(&p, &t)?,
            None => match src.read("dataset_table.csv", false)? {
                Some((p, t)) => parse_podaac(&p, &t)?,
                None => Vec::new(),
            },
        };
        let diagnostics = match src.read("available_diagnostics.log", false)? {
            Some((_, t)) => parse_diagnostics(&t),
            None => parse_diagnostics(
                EMBEDDED
                    .iter()
                    .find(|(s, _)| *s == "available_diagnostics.log")
                    .map(|(_, t)| *t)
                    .unwrap_or(""),
            ),
        };
        let groupings_native = groupings("groupings_for_native_datasets.json", Product::Native)?;
        let groupings_latlon = groupings("groupings_for_latlon_datasets.json", Product::Latlon)?;
        let geometry_latlon = opt_recs("geometry_metadata_for_latlon_datasets.json")?;
        let derived_groupings = super::derived_groupings(
            &groupings_native,
            &groupings_latlon,
            &geometry_native,
            &geometry_latlon,
        );
        Ok(MetadataSet {
            origin: origin.clone(),
            groupings_native,
            groupings_latlon,
            variables,
            variables_latlon: opt_recs("variable_metadata_for_latlon_datasets.json")?,
            coords_native: recs("coordinate_metadata_for_native_datasets.json")?,
            coords_latlon: opt_recs("coordinate_metadata_for_latlon_datasets.json")?,
            time_coords: recs("time_coordinate_metadata.json")?,
            global_all: recs("global_metadata_for_all_datasets.json")?,
            global_native: recs("global_metadata_for_native_datasets.json")?,
            global_latlon: opt_recs("global_metadata_for_latlon_datasets.json")?,
            podaac,
            diagnostics,
            release,
            geometry_native,
            geometry_latlon,
            dataset_info,
            derived_groupings,
        })
    }
}

/// The newest release a PO.DAAC table of the directory describes, and that table's
/// file name.
fn podaac_release(files: &[PathBuf]) -> Option<(String, String)> {
    let mut found: Vec<(String, String)> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(p).ok()?;
            let version = super::podaac::table_version(&text)?;
            Some((version, p.file_name()?.to_str()?.to_string()))
        })
        .collect();
    // Highest release; among its tables the last by name (dated names sort by date).
    found.sort();
    found.pop()
}

fn guess_version(dir: &Path) -> Option<String> {
    dir.components().rev().find_map(|c| {
        let s = c.as_os_str().to_str()?;
        (s.len() == 4 && s.starts_with("V4r")).then(|| s.to_string())
    })
}
