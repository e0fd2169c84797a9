//! The `.meta` side of an MDS pair: a tolerant parser for MITgcm's
//! `key = [ … ];` text and the exact text MITgcm's `MDS_WRITE_META` writes.
//!
//! Files in the wild come from several MITgcm versions and from hand-written
//! scripts, so the parser accepts any spacing and line breaks, optional `;`,
//! `/* … */`, `//` and `#` comments, and unknown keys; it is strict about the
//! keys that decide how the `.data` is read.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{MdsError, Precision};

/// What a `.meta` file says about its `.data` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdsMeta {
    /// The `.meta` file this was read from (used in error messages).
    pub path: PathBuf,
    /// `nDims`.
    pub ndims: usize,
    /// Extent of each dimension in Fortran order (x, y, [z]): `end − start + 1`
    /// of each `dimList` triple, which is the global size for global files.
    pub dims: Vec<usize>,
    /// `dataprec`.
    pub precision: Precision,
    /// `nrecords`.
    pub nrecords: usize,
    /// `timeStepNumber`, when present.
    pub time_step: Option<u64>,
    /// `fldList` names with their padding trimmed; empty without a `fldList`.
    pub fields: Vec<String>,
}

/// One `key = value` item as written in the file.
struct Entry {
    line: usize,
    items: Vec<String>,
}

impl MdsMeta {
    /// Reads and parses a `.meta` file.
    pub fn parse(path: impl AsRef<Path>) -> Result<MdsMeta, MdsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(crate::error::FileError::at(path, "read the .meta file"))?;
        MdsMeta::parse_str(&text, path)
    }

    /// Parses `.meta` text; `path` only names the file in errors.
    pub fn parse_str(text: &str, path: impl AsRef<Path>) -> Result<MdsMeta, MdsError> {
        let path = path.as_ref();
        let entries = scan(text, path)?;
        let get = |key: &'static str| -> Result<&Entry, MdsError> {
            entries
                .get(&key.to_ascii_lowercase())
                .ok_or_else(|| MdsError::MissingKey {
                    path: path.to_path_buf(),
                    key,
                })
        };

        let ndims = single_uint(get("nDims")?, "nDims", path)?;
        if !(1..=3).contains(&ndims) {
            return Err(MdsError::UnsupportedDims {
                path: path.to_path_buf(),
                ndims,
            });
        }

        let dim_entry = get("dimList")?;
        if dim_entry.items.len() != 3 * ndims {
            return Err(MdsError::DimListMismatch {
                path: path.to_path_buf(),
                ndims,
                values: dim_entry.items.len(),
            });
        }
        let mut dims = Vec::with_capacity(ndims);
        for (d, triple) in dim_entry.items.chunks(3).enumerate() {
            let mut v = [0usize; 3];
            for (slot, item) in v.iter_mut().zip(triple) {
                *slot = parse_uint(item, "dimList", dim_entry.line, path)?;
            }
            let [size, start, end] = v;
            if size == 0 || start == 0 || start > end || end > size {
                return Err(MdsError::BadDimTriple {
                    path: path.to_path_buf(),
                    dim: d,
                    size,
                    start,
                    end,
                });
            }
            dims.push(end - start + 1);
        }

        let prec_entry = get("dataprec")?;
        let prec_text = single(prec_entry, "dataprec", path)?;
        let precision = match prec_text.trim().to_ascii_lowercase().as_str() {
            "float32" | "real*4" => Precision::F32,
            "float64" | "real*8" => Precision::F64,
            _ => {
                return Err(MdsError::UnknownPrecision {
                    path: path.to_path_buf(),
                    found: prec_text.to_string(),
                })
            }
        };

        let nrecords = single_uint(get("nrecords")?, "nrecords", path)?;
        if nrecords == 0 {
            return Err(MdsError::BadValue {
                path: path.to_path_buf(),
                key: "nrecords",
                line: get("nrecords")?.line,
                found: "0".into(),
                expected: "at least one record",
            });
        }

        let time_step = match entries.get("timestepnumber") {
            Some(e) => Some(single_uint(e, "timeStepNumber", path)? as u64),
            None => None,
        };

        let fields: Vec<String> = match entries.get("fldlist") {
            Some(e) => e.items.iter().map(|s| s.trim().to_string()).collect(),
            None => Vec::new(),
        };
        if !fields.is_empty() && fields.len() != nrecords {
            return Err(MdsError::FieldCountMismatch {
                path: path.to_path_buf(),
                nrecords,
                fields: fields.len(),
            });
        }

        Ok(MdsMeta {
            path: path.to_path_buf(),
            ndims,
            dims,
            precision,
            nrecords,
            time_step,
            fields,
        })
    }

    /// Values in one record: the product of all dimensions.
    /// Saturates instead of overflowing on absurd dims, which then fail the
    /// data-size check.
    pub fn record_len(&self) -> usize {
        self.dims.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }

    /// The `.meta` text in MITgcm's `MDS_WRITE_META` layout (as in ECCO V4
    /// output: `nrecords` as `I5`, `timeStepNumber` as `I10`, `dimList` as
    /// `I5` or, for sizes ≥ 10000, `I10` columns, eight-character padded
    /// `fldList` names, twenty per line). Every dimension is written as a
    /// global `[size, 1, size]` triple. xmitgcm depends on this layout (it
    /// splits `dimList` on `",\n"`).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        // `write!` into a String cannot fail.
        let _ = writeln!(s, " nDims = [ {:>3} ];", self.dims.len());
        let _ = writeln!(s, " dimList = [");
        let w = if self.dims.iter().all(|&d| d < 10000) {
            5
        } else {
            10
        };
        for (k, d) in self.dims.iter().enumerate() {
            let sep = if k + 1 < self.dims.len() { "," } else { "" };
            let _ = writeln!(s, " {d:>w$},{:>w$},{d:>w$}{sep}", 1);
        }
        let _ = writeln!(s, " ];");
        let _ = writeln!(s, " dataprec = [ '{}' ];", self.precision.meta_name());
        let _ = writeln!(s, " nrecords = [ {:>5} ];", self.nrecords);
        if let Some(t) = self.time_step {
            let _ = writeln!(s, " timeStepNumber = [ {t:>10} ];");
        }
        if !self.fields.is_empty() {
            let _ = writeln!(s, " nFlds = [ {:>4} ];", self.fields.len());
            let _ = writeln!(s, " fldList = {{");
            for chunk in self.fields.chunks(20) {
                for f in chunk {
                    let _ = write!(s, " '{f:<8}'");
                }
                s.push('\n');
            }
            let _ = writeln!(s, " }};");
        }
        s
    }
}

fn single<'a>(e: &'a Entry, key: &'static str, path: &Path) -> Result<&'a str, MdsError> {
    match e.items.as_slice() {
        [one] => Ok(one),
        other => Err(MdsError::BadValue {
            path: path.to_path_buf(),
            key,
            line: e.line,
            found: format!("{} values", other.len()).into(),
            expected: "exactly one value",
        }),
    }
}

fn single_uint(e: &Entry, key: &'static str, path: &Path) -> Result<usize, MdsError> {
    parse_uint(single(e, key, path)?, key, e.line, path)
}

fn parse_uint(text: &str, key: &'static str, line: usize, path: &Path) -> Result<usize, MdsError> {
    text.trim()
        .parse::<usize>()
        .map_err(|_| MdsError::BadValue {
            path: path.to_path_buf(),
            key,
            line,
            found: text.into(),
            expected: "a non-negative integer",
        })
}

/// Splits the text into `key → items`, keys lower-cased (a later duplicate
/// wins, as with xmitgcm's dict).
fn scan(text: &str, path: &Path) -> Result<HashMap<String, Entry>, MdsError> {
    let mut sc = Scanner {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        path,
    };
    let mut out = HashMap::new();
    loop {
        sc.skip_trivia(true)?;
        let Some(c) = sc.peek() else { break };
        if !(c.is_ascii_alphabetic() || c == '_') {
            return Err(sc.error(format!("expected a key, found {c:?}")));
        }
        let line = sc.line;
        // Keys are words; MITgcm once wrote `timeStepDate (YYYYMMDDTHHmmss)`,
        // so anything up to `=` on the same line is taken as the key.
        let mut key = String::new();
        while let Some(c) = sc.peek() {
            if c == '=' || c == '\n' || c == ';' {
                break;
            }
            key.push(c);
            sc.bump();
        }
        if sc.peek() != Some('=') {
            return Err(sc.error(format!("expected `=` after key `{}`", key.trim())));
        }
        sc.bump();
        sc.skip_trivia(false)?;
        let items = match sc.peek() {
            Some(open @ ('[' | '{')) => {
                sc.bump();
                sc.list(if open == '[' { ']' } else { '}' })?
            }
            Some(_) => vec![sc.bare()?],
            None => return Err(sc.error(format!("missing value for `{}`", key.trim()))),
        };
        let key = key.trim().to_ascii_lowercase();
        out.insert(key, Entry { line, items });
    }
    Ok(out)
}

struct Scanner<'a> {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    path: &'a Path,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek2(&self) -> Option<char> {
        self.chars.get(self.pos + 1).copied()
    }

    fn bump(&mut self) {
        if self.peek() == Some('\n') {
            self.line += 1;
        }
        self.pos += 1;
    }

    fn error(&self, message: String) -> MdsError {
        MdsError::MetaSyntax {
            path: self.path.to_path_buf(),
            line: self.line,
            message,
        }
    }

    /// Skips white space and comments; between items also `;` and `,`.
    fn skip_trivia(&mut self, separators: bool) -> Result<(), MdsError> {
        while let Some(c) = self.peek() {
            match c {
                _ if c.is_whitespace() => self.bump(),
                ';' | ',' if separators => self.bump(),
                '/' if self.peek2() == Some('*') => {
                    let start = self.line;
                    self.bump();
                    self.bump();
                    loop {
                        match self.peek() {
                            None => {
                                return Err(MdsError::MetaSyntax {
                                    path: self.path.to_path_buf(),
                                    line: start,
                                    message: "unterminated /* comment".into(),
                                })
                            }
                            Some('*') if self.peek2() == Some('/') => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            Some(_) => self.bump(),
                        }
                    }
                }
                '/' if self.peek2() == Some('/') => self.skip_line(),
                '#' => self.skip_line(),
                _ => break,
            }
        }
        Ok(())
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    /// Items up to the closing bracket: quoted strings or bare words,
    /// separated by commas and/or white space.
    fn list(&mut self, close: char) -> Result<Vec<String>, MdsError> {
        let start = self.line;
        let mut items = Vec::new();
        loop {
            self.skip_trivia(false)?;
            match self.peek() {
                None => {
                    return Err(MdsError::MetaSyntax {
                        path: self.path.to_path_buf(),
                        line: start,
                        message: format!("missing closing `{close}`"),
                    })
                }
                Some(c) if c == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(',') => self.bump(),
                Some(q @ ('\'' | '"')) => items.push(self.quoted(q)?),
                Some(_) => {
                    let mut word = String::new();
                    while let Some(c) = self.peek() {
                        if c.is_whitespace() || c == ',' || c == close || c == ';' {
                            break;
                        }
                        word.push(c);
                        self.bump();
                    }
                    if word.is_empty() {
                        return Err(self.error(format!("unexpected `;` before closing `{close}`")));
                    }
                    items.push(word);
                }
            }
        }
    }

    fn quoted(&mut self, q: char) -> Result<String, MdsError> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.peek() {
                Some(c) if c == q => {
                    self.bump();
                    return Ok(s);
                }
                Some('\n') | None => return Err(self.error("unterminated quoted string".into())),
                Some(c) => {
                    s.push(c);
                    self.bump();
                }
            }
        }
    }

    /// A value written without brackets: up to `;` or the end of the line.
    fn bare(&mut self) -> Result<String, MdsError> {
        if let Some(q @ ('\'' | '"')) = self.peek() {
            return self.quoted(q);
        }
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if c == ';' || c == '\n' {
                break;
            }
            s.push(c);
            self.bump();
        }
        Ok(s.trim().to_string())
    }
}
