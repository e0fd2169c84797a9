//! `edp check-metadata`: everything wrong with a metadata set, listed at once with file
//! and line, before any work. A set as EDP ships it can hold JSON syntax errors, fields
//! without variable records, `TBD_` placeholders that nothing replaces, datasets the
//! PO.DAAC table does not know (no short name, no DOI) and missing ACDD attributes; each
//! would otherwise surface one at a time, granule by granule, or not at all.
//!
//! JSON syntax errors are recovered from where the fix is unambiguous (a missing comma
//! between two records), so that one error does not hide the next or the checks that
//! follow.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::load::{find_by_suffix, EMBEDDED};
use super::{Grouping, MetadataSet, Product, Record};
use crate::granule_name::GranuleName;
use crate::time::Frequency;

/// One problem of a metadata set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    pub what: String,
    /// The grouping (`filename`) the problem concerns, when it concerns only one: a
    /// run that makes none of its granules is not held up by it.
    pub grouping: Option<String>,
    /// Reported, but not a reason to refuse a run (an editors' note in a value).
    pub warning: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let warning = if self.warning { "warning: " } else { "" };
        match self.line {
            Some(l) => write!(f, "{}:{l}: {warning}{}", self.file.display(), self.what),
            None => write!(f, "{}: {warning}{}", self.file.display(), self.what),
        }
    }
}

/// The JSON files a set is read from (by suffix, as the loader finds them) and whether
/// the loader requires them.
const JSON_FILES: &[(&str, bool)] = &[
    ("groupings_for_native_datasets.json", true),
    ("groupings_for_latlon_datasets.json", true),
    ("variable_metadata.json", true),
    ("variable_metadata_for_latlon_datasets.json", false),
    ("coordinate_metadata_for_native_datasets.json", true),
    ("coordinate_metadata_for_latlon_datasets.json", false),
    ("geometry_metadata_for_native_datasets.json", false),
    ("geometry_metadata_for_latlon_datasets.json", false),
    ("time_coordinate_metadata.json", true),
    ("global_metadata_for_all_datasets.json", true),
    ("global_metadata_for_native_datasets.json", true),
    ("global_metadata_for_latlon_datasets.json", false),
];

/// Global attributes edp sets itself on every granule (from the release constants, the
/// task, the PO.DAAC row or the clock): a template value for them never reaches a
/// granule, placeholder or not. `id`, `title`, `identifier_product_doi` and
/// `metadata_link` come from the PO.DAAC row, whose presence is checked separately.
const SET_BY_EDP: &[&str] = &[
    "metadata_link",
    "identifier_product_doi",
    "identifier_product_doi_authority",
    "time_coverage_start",
    "time_coverage_end",
    "time_coverage_duration",
    "time_coverage_resolution",
    "date_created",
    "date_modified",
    "date_metadata_modified",
    "date_issued",
    "history",
    "geospatial_vertical_min",
    "product_time_coverage_start",
    "product_time_coverage_end",
    "product_version",
    "references",
    "source",
    "project_summary",
    "keywords",
    "uuid",
    "comment",
    "product_name",
    "summary",
    "id",
    "title",
    "coordinates_note",
];

/// ACDD-1.3 required and recommended global attributes. `geospatial_bounds`,
/// `geospatial_bounds_crs` and `geospatial_bounds_vertical_crs` are left out: ECCO's
/// granules (EDP's included) give the extent as lat/lon/vertical min and max instead.
const ACDD: &[&str] = &[
    "title",
    "summary",
    "keywords",
    "Conventions",
    "id",
    "naming_authority",
    "history",
    "source",
    "processing_level",
    "comment",
    "acknowledgement",
    "license",
    "standard_name_vocabulary",
    "date_created",
    "creator_name",
    "creator_email",
    "creator_url",
    "institution",
    "project",
    "publisher_name",
    "publisher_email",
    "publisher_url",
];

/// The data's extents as ACDD global attributes: ECCO's granules give the extent this
/// way, and the compliance enrichment (`granule::compliance`) recomputes these from
/// the data.
pub const GEOSPATIAL_EXTENTS: &[&str] = &[
    "geospatial_lat_min",
    "geospatial_lat_max",
    "geospatial_lon_min",
    "geospatial_lon_max",
    "geospatial_vertical_min",
    "geospatial_vertical_max",
];

/// ACDD-1.3 attributes checked after [`GEOSPATIAL_EXTENTS`] (kept in this order so the
/// problems are listed as before).
const ACDD_TAIL: &[&str] = &[
    "geospatial_vertical_positive",
    "time_coverage_start",
    "time_coverage_end",
    "time_coverage_duration",
    "time_coverage_resolution",
];

/// A metadata file's text, with the path to name in messages.
struct Text {
    path: PathBuf,
    text: String,
}

impl Text {
    /// Line of the record whose `name` is `name` (the first line holding both `"name"`
    /// and `"<name>"`).
    fn record_line(&self, name: &str) -> Option<usize> {
        let quoted = format!("\"{name}\"");
        self.text
            .lines()
            .position(|l| l.contains("\"name\"") && l.contains(&quoted))
            .map(|i| i + 1)
    }

    /// First line holding `needle`.
    fn line_of(&self, needle: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
    }

    fn problem(&self, line: Option<usize>, what: String) -> Problem {
        Problem {
            file: self.path.clone(),
            line,
            what,
            grouping: None,
            warning: false,
        }
    }

    fn grouping_problem(&self, line: Option<usize>, grouping: &str, what: String) -> Problem {
        Problem {
            grouping: Some(grouping.to_string()),
            ..self.problem(line, what)
        }
    }
}

/// Checks the embedded V4r4 set.
pub fn check_embedded() -> Vec<Problem> {
    let texts: HashMap<&str, Text> = EMBEDDED
        .iter()
        .map(|(suffix, text)| {
            (
                *suffix,
                Text {
                    path: PathBuf::from(format!("<embedded V4r4>/{suffix}")),
                    text: text.to_string(),
                },
            )
        })
        .collect();
    let mut problems = Vec::new();
    for (suffix, _) in JSON_FILES {
        if let Some(t) = texts.get(suffix) {
            problems.extend(syntax(t).1);
        }
    }
    match MetadataSet::embedded() {
        Ok(m) => {
            let podaac = texts.get(m.release.podaac_file.as_str());
            problems.extend(semantic(&m, &texts, podaac));
        }
        Err(e) => problems.push(Problem {
            file: PathBuf::from("<embedded V4r4>"),
            line: None,
            what: e.to_string(),
            grouping: None,
            warning: false,
        }),
    }
    problems
}

/// Checks a metadata directory (what `--metadata DIR` would load).
pub fn check_dir(dir: &Path) -> Vec<Problem> {
    let whole = |what: String| Problem {
        file: dir.to_path_buf(),
        line: None,
        what,
        grouping: None,
        warning: false,
    };
    let files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(e) => return vec![whole(format!("cannot list the directory: {e}"))],
    };
    let mut problems = Vec::new();
    let mut texts: HashMap<&str, Text> = HashMap::new();
    let mut repaired: Vec<(PathBuf, String)> = Vec::new();
    let mut unrecoverable = false;
    for (suffix, required) in JSON_FILES {
        let Some(path) = find_by_suffix(&files, suffix) else {
            if *required {
                problems.push(whole(format!(
                    "no file matching '*{suffix}' (a required part of a metadata set)"
                )));
                unrecoverable = true;
            }
            continue;
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem {
                    file: path.clone(),
                    line: None,
                    what: format!("cannot read: {e}"),
                    grouping: None,
                    warning: false,
                });
                unrecoverable = true;
                continue;
            }
        };
        let t = Text {
            path: path.clone(),
            text,
        };
        let (fixed, found) = syntax(&t);
        match fixed {
            Some(f) if !found.is_empty() => repaired.push((path.clone(), f.clone())),
            Some(_) => {}
            None => unrecoverable = true,
        }
        problems.extend(found);
        texts.insert(suffix, t);
    }
    let config = dir.join("product_generation_config.yaml");
    if let Ok(text) = std::fs::read_to_string(&config) {
        let t = Text { path: config, text };
        for (key, value, line) in super::release::generation_config_scalars(&t.text) {
            if let Some(note) = super::release::editor_note(&value) {
                problems.push(Problem {
                    warning: true,
                    ..t.problem(
                        Some(line),
                        format!("{key} begins with the editors' note {note:?}: {value:?}"),
                    )
                });
            }
        }
    }
    let release = dir.join("edp_release.json");
    if let Ok(text) = std::fs::read_to_string(&release) {
        let (fixed, found) = syntax(&Text {
            path: release,
            text,
        });
        unrecoverable |= fixed.is_none() || !found.is_empty();
        problems.extend(found);
    }
    if unrecoverable {
        return problems;
    }
    // The set as the loader sees it, from the repaired texts when there were syntax
    // errors, so that the checks below still run.
    let loaded = if repaired.is_empty() {
        MetadataSet::from_dir(dir)
    } else {
        repaired_copy(dir, &files, &repaired).and_then(|copy| {
            let m = MetadataSet::from_dir(&copy.1);
            let _ = std::fs::remove_dir_all(&copy.0);
            m
        })
    };
    let m = match loaded {
        Ok(m) => m,
        Err(e) => {
            problems.push(whole(e.to_string()));
            return problems;
        }
    };
    let podaac = find_by_suffix(&files, &m.release.podaac_file)
        .or_else(|| find_by_suffix(&files, "dataset_table.csv"))
        .and_then(|p| {
            std::fs::read_to_string(p).ok().map(|text| Text {
                path: p.clone(),
                text,
            })
        });
    problems.extend(semantic(&m, &texts, podaac.as_ref()));
    problems
}

/// A temporary copy of `dir` (same directory name, so the release label is still
/// inferred from it) with the repaired files in place: (the copy's root, the set).
fn repaired_copy(
    dir: &Path,
    files: &[PathBuf],
    repaired: &[(PathBuf, String)],
) -> Result<(PathBuf, PathBuf), super::MetadataError> {
    let io = crate::error::FileError::at;
    let root = std::env::temp_dir().join(format!(
        "edp-check-metadata-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let copy = root.join(dir.file_name().unwrap_or_else(|| "metadata".as_ref()));
    std::fs::create_dir_all(&copy).map_err(io(&copy, "create"))?;
    for f in files.iter().filter(|f| f.is_file()) {
        let Some(name) = f.file_name() else { continue };
        let to = copy.join(name);
        match repaired.iter().find(|(p, _)| p == f) {
            Some((_, text)) => std::fs::write(&to, text).map_err(io(&to, "write"))?,
            None => std::fs::copy(f, &to).map(|_| ()).map_err(io(f, "copy"))?,
        }
    }
    Ok((root, copy))
}

/// JSON syntax errors of one file, each with its line. A missing comma between two
/// values is put in and parsing goes on, to find the next error; any other error ends
/// the search. Returns the text that parses (`None` if none does) and the errors.
fn syntax(t: &Text) -> (Option<String>, Vec<Problem>) {
    let mut text = t.text.clone();
    let mut problems = Vec::new();
    for _ in 0..100 {
        let e = match serde_json::from_str::<Value>(&text) {
            Ok(_) => return (Some(text), problems),
            Err(e) => e,
        };
        let full = e.to_string();
        let message = full
            .rfind(" at line ")
            .map_or(full.as_str(), |i| &full[..i]);
        let missing_comma = message.starts_with("expected `,` or");
        problems.push(t.problem(
            Some(e.line()),
            format!(
                "JSON syntax error at column {}: {message}{}",
                e.column(),
                if missing_comma {
                    " (a comma is missing)"
                } else {
                    ""
                }
            ),
        ));
        let offset = text
            .split_inclusive('\n')
            .take(e.line().saturating_sub(1))
            .map(str::len)
            .sum::<usize>()
            + e.column().saturating_sub(1);
        if !missing_comma || offset > text.len() || !text.is_char_boundary(offset) {
            return (None, problems);
        }
        text.insert(offset, ',');
    }
    (None, problems)
}

fn name_of(r: &Record) -> &str {
    r.get("name").and_then(Value::as_str).unwrap_or("")
}

/// A file date of each frequency in the PO.DAAC table's form.
fn sample_date(freq: Frequency) -> &'static str {
    match freq {
        Frequency::Snap => "1992-01-01T000000",
        Frequency::AvgDay => "1992-01-01",
        Frequency::AvgMon => "1992-01",
        Frequency::Ti => "",
    }
}

/// The checks on the loaded set, one named phase each.
fn semantic(m: &MetadataSet, texts: &HashMap<&str, Text>, podaac: Option<&Text>) -> Vec<Problem> {
    let files = Files { m, texts };
    let mut problems = Vec::new();
    grouping_fields_have_records(&files, &mut problems);
    no_placeholders(&files, &mut problems);
    podaac_rows(&files, podaac, &mut problems);
    acdd_and_conventions(&files, &mut problems);
    problems
}

/// The set's files by their suffix, for the line numbers of the problems found in them
/// (a set assembled without its files reports against its origin).
struct Files<'a> {
    m: &'a MetadataSet,
    texts: &'a HashMap<&'a str, Text>,
}

impl Files<'_> {
    fn origin(&self) -> Text {
        Text {
            path: PathBuf::from(&self.m.origin),
            text: String::new(),
        }
    }

    fn get(&self, suffix: &str) -> Text {
        self.texts.get(suffix).map_or_else(
            || self.origin(),
            |t| Text {
                path: t.path.clone(),
                text: t.text.clone(),
            },
        )
    }

    fn groupings(&self, product: Product) -> Text {
        self.get(match product {
            Product::Native => "groupings_for_native_datasets.json",
            Product::Latlon => "groupings_for_latlon_datasets.json",
        })
    }
}

/// Check 1: every grouping's fields have variable metadata (lat-lon granules also take the
/// lat-lon records), and those records have the attributes CF needs.
fn grouping_fields_have_records(files: &Files, problems: &mut Vec<Problem>) {
    let m = files.m;
    for product in [Product::Native, Product::Latlon] {
        let t = files.groupings(product);
        for g in m.groupings(product) {
            let line = t.line_of(&format!("\"{}\"", g.filename));
            for field in &g.fields {
                let out = g.output_name(field);
                let found = m.variable(out).is_some()
                    || (product == Product::Latlon
                        && m.variables_latlon.iter().any(|r| name_of(r) == out));
                if !found {
                    problems.push(t.grouping_problem(
                        line,
                        &g.filename,
                        format!(
                            "grouping {} ({}) lists field {out}, which has no record in the variable metadata",
                            g.filename,
                            product.name()
                        ),
                    ));
                } else if let Some(r) = m.variable(out) {
                    for attr in ["long_name", "units"] {
                        if !r.contains_key(attr) {
                            let vt = files.get("variable_metadata.json");
                            problems.push(vt.problem(
                                vt.record_line(out),
                                format!("variable {out} has no '{attr}' (CF-1.8: the granules rely on it)"),
                            ));
                        }
                    }
                }
            }
        }
    }
}

/// Check 2: no TBD_ placeholder can reach a granule.
fn no_placeholders(files: &Files, problems: &mut Vec<Problem>) {
    let m = files.m;
    for (suffix, records, templates) in [
        ("global_metadata_for_all_datasets.json", &m.global_all, true),
        (
            "global_metadata_for_native_datasets.json",
            &m.global_native,
            true,
        ),
        (
            "global_metadata_for_latlon_datasets.json",
            &m.global_latlon,
            true,
        ),
        ("variable_metadata.json", &m.variables, false),
        (
            "variable_metadata_for_latlon_datasets.json",
            &m.variables_latlon,
            false,
        ),
        (
            "coordinate_metadata_for_native_datasets.json",
            &m.coords_native,
            false,
        ),
        (
            "coordinate_metadata_for_latlon_datasets.json",
            &m.coords_latlon,
            false,
        ),
        ("time_coordinate_metadata.json", &m.time_coords, false),
    ] {
        let t = files.get(suffix);
        for r in records.iter() {
            let name = name_of(r);
            if templates && SET_BY_EDP.contains(&name) {
                continue;
            }
            for (key, v) in r {
                if let Some(s) = v.as_str().filter(|s| s.contains("TBD_")) {
                    let what = if templates {
                        format!("global attribute {name} is the placeholder {s:?}, which edp does not replace")
                    } else {
                        format!("record {name}: '{key}' is the placeholder {s:?}")
                    };
                    problems.push(t.problem(t.record_line(name), what));
                }
            }
        }
    }
}

/// Check 3: every grouping x frequency has a PO.DAAC row with a short name and a DOI, and no
/// DOI names two datasets.
fn podaac_rows(files: &Files, podaac: Option<&Text>, problems: &mut Vec<Problem>) {
    let m = files.m;
    let Some(pt) = podaac else {
        problems.push(files.origin().problem(
            None,
            format!(
                "no PO.DAAC dataset table ('{}' or '*dataset_table.csv'): no granule gets an id, title or DOI",
                m.release.podaac_file
            ),
        ));
        return;
    };
    let mut dois: HashMap<&str, &str> = HashMap::new();
    let all = m
        .groupings_native
        .iter()
        .chain(m.groupings_latlon.iter())
        .chain(m.derived_groupings.iter());
    for g in all {
        let t = files.groupings(g.product);
        let line = t.line_of(&format!("\"{}\"", g.filename));
        if g.frequencies.is_empty() {
            problems.push(t.grouping_problem(
                line,
                &g.filename,
                format!(
                    "grouping {} ({}) declares no frequency ('frequency': AVG_DAY, AVG_MON, SNAP or TI)",
                    g.filename,
                    g.product.name()
                ),
            ));
        }
        for freq in g.frequencies.iter().copied() {
            let name = sample_name(m, g, freq);
            let file_name = name.file_name();
            let Some(row) = m.podaac_row(&file_name, &name.date) else {
                problems.push(t.grouping_problem(
                    line,
                    &g.filename,
                    format!(
                        "{} {} {}: no row of the PO.DAAC table {} matches {file_name} (no short name, title or DOI)",
                        g.filename,
                        g.product.name(),
                        freq.job_name(),
                        pt.path.display()
                    ),
                ));
                continue;
            };
            let row_line = pt.line_of(&row.filename);
            if row.short_name.is_empty() || row.persistent_id.is_empty() {
                problems.push(pt.problem(
                    row_line,
                    format!("row of {} has no short name or no DOI", row.filename),
                ));
                continue;
            }
            match dois.get(row.persistent_id.as_str()) {
                Some(other) if *other != row.filename => problems.push(pt.problem(
                    row_line,
                    format!(
                        "DOI {} of {} is also the DOI of {other}",
                        row.persistent_id, row.filename
                    ),
                )),
                _ => {
                    dois.insert(&row.persistent_id, &row.filename);
                }
            }
        }
    }
}

/// The name a granule of this grouping and frequency would get, on a sample date.
fn sample_name(m: &MetadataSet, g: &Grouping, freq: Frequency) -> GranuleName {
    GranuleName {
        prefix: g.filename.clone(),
        freq,
        date: sample_date(freq).into(),
        version: m.release.version.clone(),
        product: g.product,
        label: match g.product {
            Product::Native => m.release.native_label.clone(),
            Product::Latlon => m.release.latlon_label.clone(),
        },
    }
}

/// Check 4: the ACDD-1.3 required and recommended global attributes, and the conventions.
fn acdd_and_conventions(files: &Files, problems: &mut Vec<Problem>) {
    let m = files.m;
    let all = files.get("global_metadata_for_all_datasets.json");
    for (product, records) in [
        (Product::Native, &m.global_native),
        (Product::Latlon, &m.global_latlon),
    ] {
        let have: Vec<&str> = m
            .global_all
            .iter()
            .chain(records.iter())
            .map(name_of)
            .chain(SET_BY_EDP.iter().copied())
            .collect();
        for attr in ACDD.iter().chain(GEOSPATIAL_EXTENTS).chain(ACDD_TAIL) {
            if !have.contains(attr) {
                problems.push(all.problem(
                    None,
                    format!(
                        "ACDD-1.3 global attribute {attr} is missing from the {} granules' templates",
                        product.name()
                    ),
                ));
            }
        }
    }
    let conventions = m
        .global_all
        .iter()
        .chain(m.global_native.iter())
        .find(|r| name_of(r) == "Conventions")
        .and_then(|r| r.get("value"))
        .and_then(Value::as_str);
    if let Some(c) = conventions {
        for want in ["CF-1.8", "ACDD-1.3"] {
            if !c.contains(want) {
                problems.push(all.problem(
                    all.record_line("Conventions"),
                    format!("Conventions is {c:?}, without {want}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_set_has_no_problems() {
        let p = check_embedded();
        assert!(p.is_empty(), "{p:#?}");
    }

    #[test]
    fn missing_commas_are_each_reported_and_recovered_from() {
        let t = Text {
            path: "x.json".into(),
            text: "[\n {\"name\": \"a\"}\n {\"name\": \"b\"}\n {\"name\": \"c\"}\n]\n".into(),
        };
        let (fixed, p) = syntax(&t);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].line, Some(3));
        assert_eq!(p[1].line, Some(4));
        assert!(p[0].what.contains("a comma is missing"), "{}", p[0]);
        let v: Value = serde_json::from_str(&fixed.unwrap()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        // Another error: reported, no recovery.
        let t = Text {
            path: "y.json".into(),
            text: "[\n {\"name\": }\n]".into(),
        };
        let (fixed, p) = syntax(&t);
        assert!(fixed.is_none());
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(2));
    }
}
