//! The jobs file: EDP's compact description of what to produce, one job per line,
//! `[<grouping id>, <'native'|'latlon'>, <'SNAP'|'AVG_DAY'|'AVG_MON'|'TI'>, <'all'|[steps]>]`.
//!
//! The grouping may also be named by its `filename` (`'OCEAN_3D_MIXING_COEFFS'`);
//! names reach the time-invariant groupings the groupings files lack: the geometry
//! datasets (`'GRID_GEOMETRY'`, alias `'GEOMETRY'`) and the lat-lon mixing
//! coefficients.
//!
//! Product `'1D'` names one of the four 1D (global time series) collections by its id in
//! the 1D groupings file (0 to 2, as EDP numbers them) or its `filename`, at the
//! frequency V4r4 publishes it (`[0, '1D', 'SNAP', 'all']`, `['GLOBAL_MEAN_SEA_LEVEL',
//! '1D', 'AVG_DAY', 'all']`); its granule holds the whole record, so its steps are
//! `'all'` ([`OneDJob`]).
//!
//! Each line is a Python literal (list or tuple, single or double quotes); blank lines
//! and `#` comments are allowed. Unlike EDP, which silently skips any line it cannot
//! parse, every malformed line is an error naming the file, line and what was expected.
//! This module checks only the grammar and values against the groupings; finding
//! inputs is discovery's job.

use std::path::{Path, PathBuf};

use crate::metadata::{MetadataSet, Product};
use crate::time::Frequency;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}{}: {what}", path.display(), if *line > 0 { format!(":{line}") } else { String::new() })]
pub struct JobsError {
    pub path: PathBuf,
    pub line: usize,
    pub what: String,
}

/// Which steps a job asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Steps {
    All,
    List(Vec<u64>),
}

/// One job: a grouping of one product at one frequency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// 1-based line in the jobs file.
    pub line: usize,
    pub grouping: usize,
    pub product: Product,
    pub freq: Frequency,
    pub steps: Steps,
}

/// A job for one of the 1D collections: one granule holding the whole record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneDJob {
    /// 1-based line in the jobs file.
    pub line: usize,
    pub dataset: crate::oned::OneD,
}

/// A jobs file's jobs: those on the model grid and the 1D ones, each in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobsFile {
    pub jobs: Vec<Job>,
    pub one_d: Vec<OneDJob>,
}

/// A value of the literal grammar.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Int(i64),
    Str(String),
    List(Vec<Lit>),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn err(&self, what: &str) -> String {
        format!("column {}: {what}", self.pos + 1)
    }

    fn value(&mut self) -> Result<Lit, String> {
        self.ws();
        match self.s.get(self.pos) {
            Some(b'[') | Some(b'(') => {
                let close = if self.s[self.pos] == b'[' { b']' } else { b')' };
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.s.get(self.pos) == Some(&close) {
                        self.pos += 1;
                        return Ok(Lit::List(items));
                    }
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(c) if *c == close => {}
                        _ => return Err(self.err(&format!("expected ',' or '{}'", close as char))),
                    }
                }
            }
            Some(q @ (b'\'' | b'"')) => {
                let q = *q;
                let start = self.pos + 1;
                let end = self.s[start..]
                    .iter()
                    .position(|c| *c == q)
                    .ok_or_else(|| self.err("unterminated string"))?;
                self.pos = start + end + 1;
                Ok(Lit::Str(
                    String::from_utf8_lossy(&self.s[start..start + end]).into_owned(),
                ))
            }
            Some(c) if c.is_ascii_digit() || *c == b'-' || *c == b'+' => {
                let start = self.pos;
                self.pos += 1;
                while self.pos < self.s.len()
                    && (self.s[self.pos].is_ascii_digit() || self.s[self.pos] == b'_')
                {
                    self.pos += 1;
                }
                let text: String =
                    String::from_utf8_lossy(&self.s[start..self.pos]).replace('_', "");
                text.parse::<i64>()
                    .map(Lit::Int)
                    .map_err(|_| self.err(&format!("'{text}' is not an integer")))
            }
            Some(_) => Err(self.err("expected a list, a quoted string or an integer")),
            None => Err(self.err("unexpected end of line")),
        }
    }
}

/// Strips a trailing `#` comment that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '#') => return &line[..i],
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    line
}

/// Parses one job line (without comment). `None` for blank lines.
/// How a job line names its grouping.
enum GroupingRef {
    Id(i64),
    Name(String),
}

fn parse_line(text: &str) -> Result<Option<(GroupingRef, String, String, Lit)>, String> {
    let t = strip_comment(text).trim();
    if t.is_empty() {
        return Ok(None);
    }
    let mut p = Parser {
        s: t.as_bytes(),
        pos: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.pos != t.len() {
        return Err(p.err("unexpected text after the job"));
    }
    let Lit::List(items) = v else {
        return Err(
            "expected a job [<grouping id>, <product>, <frequency>, <'all' | [steps]>]".into(),
        );
    };
    let [id, product, freq, steps] = <[Lit; 4]>::try_from(items).map_err(|items| {
        format!(
            "expected 4 elements [<grouping id>, <product>, <frequency>, <'all' | [steps]>], found {}",
            items.len()
        )
    })?;
    let id = match id {
        Lit::Int(n) => GroupingRef::Id(n),
        Lit::Str(s) => GroupingRef::Name(s),
        Lit::List(_) => {
            return Err(
                "the grouping (first element) must be an integer id or a quoted grouping name"
                    .into(),
            )
        }
    };
    let (Lit::Str(product), Lit::Str(freq)) = (product, freq) else {
        return Err(
            "the product type and frequency (second and third elements) must be quoted strings"
                .into(),
        );
    };
    Ok(Some((id, product, freq, steps)))
}

/// Parses and validates a jobs file's text against the metadata's groupings; a `'1D'`
/// line is an error here (see [`parse_jobs_file`]).
pub fn parse_jobs(path: &Path, text: &str, m: &MetadataSet) -> Result<Vec<Job>, JobsError> {
    let file = parse_jobs_file(path, text, m)?;
    match file.one_d.first() {
        Some(j) => Err(JobsError {
            path: path.to_path_buf(),
            line: j.line,
            what: "a '1D' job: read this jobs file with jobs::read_jobs_file".into(),
        }),
        None => Ok(file.jobs),
    }
}

/// Parses and validates a jobs file's text, with its 1D jobs.
pub fn parse_jobs_file(path: &Path, text: &str, m: &MetadataSet) -> Result<JobsFile, JobsError> {
    let mut jobs = Vec::new();
    let mut one_d = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |what: String| JobsError {
            path: path.to_path_buf(),
            line,
            what,
        };
        let Some((id, product, freq, steps)) = parse_line(raw).map_err(err)? else {
            continue;
        };
        let product = match product.as_str() {
            "native" => Product::Native,
            "latlon" => Product::Latlon,
            "1D" => {
                let dataset = one_d_dataset(id, &freq, steps, m).map_err(err)?;
                one_d.push(OneDJob { line, dataset });
                continue;
            }
            other => {
                return Err(err(format!(
                    "unknown product type '{other}' (expected 'native', 'latlon' or '1D')"
                )))
            }
        };
        let freq = Frequency::parse(&freq).ok_or_else(|| {
            err(format!(
                "unknown frequency '{freq}' (expected 'SNAP', 'AVG_DAY', 'AVG_MON' or 'TI')"
            ))
        })?;
        let groupings = m.groupings(product);
        let g = match id {
            GroupingRef::Name(name) => {
                let canonical = if name.eq_ignore_ascii_case("GEOMETRY") {
                    "GRID_GEOMETRY"
                } else {
                    name.as_str()
                };
                m.grouping_named(product, canonical).ok_or_else(|| {
                    err(format!("no {} grouping is named '{name}'", product.name()))
                })?
            }
            // The groupings file's ids, then the derived time-invariant groupings'
            // numbered after them (README: native GRID_GEOMETRY = 21).
            GroupingRef::Id(id) => usize::try_from(id)
                .ok()
                .and_then(|g| m.grouping(product, g))
                .ok_or_else(|| {
                    let last = (groupings.len()..groupings.len() + 8)
                        .take_while(|&i| m.grouping(product, i).is_some())
                        .last()
                        .unwrap_or(groupings.len().saturating_sub(1));
                    err(format!(
                        "grouping id {id} is out of range: the {} groupings are numbered 0 to {last} (`edp groupings --product {}` lists them)",
                        product.name(),
                        product.name()
                    ))
                })?,
        };
        let grouping = g.index;
        if !g.frequencies.contains(&freq) {
            let offered: Vec<&str> = g.frequencies.iter().map(|f| f.job_name()).collect();
            return Err(err(format!(
                "grouping {grouping} ({}) is not offered at {} for {} (offered: {})",
                g.filename,
                freq.job_name(),
                product.name(),
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            )));
        }
        let steps = match steps {
            Lit::Str(s) if s.eq_ignore_ascii_case("all") => Steps::All,
            Lit::List(items) => Steps::List(
                items
                    .into_iter()
                    .map(|it| match it {
                        Lit::Int(n) if n >= 0 => Ok(n as u64),
                        other => Err(err(format!(
                            "time steps must be non-negative integers, found {other:?}"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => {
                return Err(err(
                    "the time steps (fourth element) must be 'all' or a list of integers".into(),
                ))
            }
        };
        jobs.push(Job {
            line,
            grouping,
            product,
            freq,
            steps,
        });
    }
    Ok(JobsFile { jobs, one_d })
}

/// The 1D collection a `'1D'` job names: its grouping (id or `filename`) at a frequency
/// V4r4 publishes it at, with steps `'all'`.
fn one_d_dataset(
    id: GroupingRef,
    freq: &str,
    steps: Lit,
    m: &MetadataSet,
) -> Result<crate::oned::OneD, String> {
    use crate::oned::{OneD, DATASETS};
    if m.release.version != "V4r4" {
        return Err(format!(
            "the 1D collections are made for V4r4 only (the metadata set {} is {})",
            m.origin, m.release.version
        ));
    }
    let names = crate::oned::grouping_names().map_err(|e| e.to_string())?;
    let grouping = match id {
        GroupingRef::Id(i) => usize::try_from(i)
            .ok()
            .filter(|&g| g < names.len())
            .ok_or_else(|| {
                format!(
                    "1D grouping id {i} is out of range: the 1D groupings are numbered 0 to {} ({})",
                    names.len().saturating_sub(1),
                    names.join(", ")
                )
            })?,
        GroupingRef::Name(name) => names.iter().position(|n| *n == name).ok_or_else(|| {
            format!(
                "no 1D grouping is named '{name}' (the 1D groupings: {})",
                names.join(", ")
            )
        })?,
    };
    let offered = || {
        DATASETS
            .iter()
            .filter(|d| d.grouping == grouping)
            .map(|d| d.freq.job_name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let f = Frequency::parse(freq).ok_or_else(|| {
        format!(
            "unknown frequency '{freq}' (1D grouping {grouping} is published at {})",
            offered()
        )
    })?;
    let dataset = OneD::find(grouping, f).map_err(|_| {
        format!(
            "1D grouping {grouping} ({}) is not published at {} (V4r4 publishes it at {})",
            names[grouping],
            f.job_name(),
            offered()
        )
    })?;
    match steps {
        Lit::Str(s) if s.eq_ignore_ascii_case("all") => Ok(dataset),
        _ => Err(format!(
            "a 1D granule holds the whole record of {}: its time steps (fourth element) must be 'all'",
            names[grouping]
        )),
    }
}

fn read_text(path: &Path) -> Result<String, JobsError> {
    std::fs::read_to_string(path).map_err(|e| JobsError {
        path: path.to_path_buf(),
        line: 0,
        what: format!("cannot read the jobs file: {e}"),
    })
}

/// Reads and parses a jobs file (no `'1D'` jobs; see [`read_jobs_file`]).
pub fn read_jobs(path: &Path, m: &MetadataSet) -> Result<Vec<Job>, JobsError> {
    parse_jobs(path, &read_text(path)?, m)
}

/// Reads and parses a jobs file, with its 1D jobs.
pub fn read_jobs_file(path: &Path, m: &MetadataSet) -> Result<JobsFile, JobsError> {
    parse_jobs_file(path, &read_text(path)?, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Job>, JobsError> {
        let m = MetadataSet::embedded().unwrap();
        parse_jobs(Path::new("jobs.txt"), text, &m)
    }

    #[test]
    fn valid_variants() {
        let jobs = parse(
            "# comment\n\n[0, 'native', 'AVG_MON', 'all']\n(15,\"native\",\"avg_day\",[12, 36,60]) # trailing\n  [6,'latlon','AVG_MON','ALL',]\n[0,'native','SNAP',[12]]\n",
        )
        .unwrap();
        assert_eq!(jobs.len(), 4);
        assert_eq!(jobs[0].line, 3);
        assert_eq!(jobs[0].steps, Steps::All);
        assert_eq!(jobs[1].grouping, 15);
        assert_eq!(jobs[1].freq, Frequency::AvgDay);
        assert_eq!(jobs[1].steps, Steps::List(vec![12, 36, 60]));
        assert_eq!(jobs[2].product, Product::Latlon);
        assert_eq!(jobs[3].freq, Frequency::Snap);
    }

    #[test]
    fn time_invariant_jobs_by_id_and_name() {
        let m = MetadataSet::embedded().unwrap();
        let jobs = parse(
            "[20, 'native', 'TI', 'all']\n['OCEAN_3D_MIXING_COEFFS', 'latlon', 'TI', 'all']\n['GEOMETRY', 'native', 'TI', 'all']\n['GRID_GEOMETRY', 'latlon', 'TI', 'all']\n",
        )
        .unwrap();
        let names: Vec<&str> = jobs
            .iter()
            .map(|j| {
                assert_eq!(j.freq, Frequency::Ti);
                m.grouping(j.product, j.grouping).unwrap().filename.as_str()
            })
            .collect();
        assert_eq!(
            names,
            [
                "OCEAN_3D_MIXING_COEFFS",
                "OCEAN_3D_MIXING_COEFFS",
                "GRID_GEOMETRY",
                "GRID_GEOMETRY"
            ]
        );
        // Derived groupings are numbered after the groupings file's.
        assert!(jobs[1].grouping >= m.groupings_latlon.len());
    }

    #[test]
    fn one_d_jobs_by_id_and_name() {
        let m = MetadataSet::embedded().unwrap();
        let text = "[0, 'native', 'AVG_MON', 'all']\n[0, '1D', 'SNAP', 'all']\n\
                    ['GLOBAL_MEAN_SEA_LEVEL', '1D', 'avg_day', 'ALL']\n(1, \"1D\", \"AVG_MON\", \"all\")\n\
                    ['SBO_CORE_PRODUCTS', '1D', 'SNAP', 'all']\n";
        let file = parse_jobs_file(Path::new("jobs.txt"), text, &m).unwrap();
        assert_eq!(file.jobs.len(), 1);
        let got: Vec<(usize, String)> = file
            .one_d
            .iter()
            .map(|j| (j.line, j.dataset.file_name().unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    2,
                    "GLOBAL_MEAN_ATM_SURFACE_PRES_snap_ECCO_V4r4_1D.nc".to_string()
                ),
                (
                    3,
                    "GLOBAL_MEAN_SEA_LEVEL_day_mean_ECCO_V4r4_1D.nc".to_string()
                ),
                (
                    4,
                    "GLOBAL_MEAN_SEA_LEVEL_mon_mean_ECCO_V4r4_1D.nc".to_string()
                ),
                (5, "SBO_CORE_PRODUCTS_snap_ECCO_V4r4_1D.nc".to_string()),
            ]
        );
        // The grid-only reader says where a 1D job is.
        let e = parse_jobs(Path::new("jobs.txt"), text, &m).unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn every_error_names_its_line() {
        let cases = [
            ("[0, 'native', 'AVG_MON'", "expected ','"),
            ("[0, 'native', 'AVG_MON']", "expected 4 elements"),
            ("[[0], 'native', 'AVG_MON', 'all']", "must be an integer"),
            (
                "['NO_SUCH', 'native', 'AVG_MON', 'all']",
                "no native grouping is named",
            ),
            ("[20, 'native', 'AVG_MON', 'all']", "not offered at AVG_MON"),
            (
                "['GEOMETRY', 'native', 'SNAP', 'all']",
                "not offered at SNAP",
            ),
            ("[0, 'raw', 'AVG_MON', 'all']", "unknown product type 'raw'"),
            (
                "[0, '1D', 'AVG_MON', 'all']",
                "1D grouping 0 (GLOBAL_MEAN_ATM_SURFACE_PRES) is not published at AVG_MON (V4r4 publishes it at SNAP)",
            ),
            ("[3, '1D', 'SNAP', 'all']", "numbered 0 to 2"),
            ("['GMSL', '1D', 'AVG_DAY', 'all']", "no 1D grouping is named 'GMSL'"),
            ("[2, '1D', 'SNAP', [12]]", "must be 'all'"),
            ("[0, '1d', 'SNAP', 'all']", "unknown product type '1d'"),
            (
                "[0, 'native', 'HOURLY', 'all']",
                "unknown frequency 'HOURLY'",
            ),
            // The time-invariant ids (native 21, lat-lon 13 and 14) exist, at TI only.
            (
                "[21, 'native', 'AVG_MON', 'all']",
                "not offered at AVG_MON for native (offered: TI)",
            ),
            ("[13, 'latlon', 'AVG_MON', 'all']", "not offered at AVG_MON"),
            ("[22, 'native', 'AVG_MON', 'all']", "out of range"),
            ("[15, 'latlon', 'AVG_MON', 'all']", "out of range"),
            ("[2, 'native', 'SNAP', 'all']", "not offered at SNAP"),
            (
                "[0, 'native', 'AVG_MON', 'some']",
                "must be 'all' or a list",
            ),
            ("[0, 'native', 'AVG_MON', [12, -5]]", "non-negative"),
            ("[0, 'native', 'AVG_MON', 'all'] extra", "unexpected text"),
            ("[0, 'native, 'AVG_MON', 'all']", "expected"),
        ];
        for (line, want) in cases {
            let text = format!("# header\n[0, 'native', 'AVG_MON', 'all']\n{line}\n");
            let e = parse(&text).unwrap_err();
            assert_eq!(e.line, 3, "{line}");
            let msg = e.to_string();
            assert!(msg.starts_with("jobs.txt:3: "), "{msg}");
            assert!(msg.contains(want), "{line}: {msg} should contain {want}");
        }
    }
}
