//! The jobs file: EDP's compact description of what to produce, one job per line,
//! `[<grouping id>, <'native'|'latlon'>, <'SNAP'|'AVG_DAY'|'AVG_MON'|'TI'>, <'all'|[steps]>]`.
//!
//! The grouping may also be named by its `filename` (`'OCEAN_3D_MIXING_COEFFS'`);
//! names reach the time-invariant groupings the groupings files lack: the geometry
//! datasets (`'GRID_GEOMETRY'`, alias `'GEOMETRY'`) and the lat-lon mixing
//! coefficients.
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

/// Parses and validates a jobs file's text against the metadata's groupings.
pub fn parse_jobs(path: &Path, text: &str, m: &MetadataSet) -> Result<Vec<Job>, JobsError> {
    let mut jobs = Vec::new();
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
                return Err(err(
                    "product '1D' is not produced by edp (EDP builds such tasks but cannot generate them)".into(),
                ))
            }
            other => return Err(err(format!("unknown product type '{other}' (expected 'native' or 'latlon')"))),
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
    Ok(jobs)
}

/// Reads and parses a jobs file.
pub fn read_jobs(path: &Path, m: &MetadataSet) -> Result<Vec<Job>, JobsError> {
    let text = std::fs::read_to_string(path).map_err(|e| JobsError {
        path: path.to_path_buf(),
        line: 0,
        what: format!("cannot read the jobs file: {e}"),
    })?;
    parse_jobs(path, &text, m)
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
            ("[0, '1D', 'AVG_MON', 'all']", "'1D'"),
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
