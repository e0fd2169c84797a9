//! The PO.DAAC dataset table (CSV): short name, long name, file pattern and DOI suffix
//! of every dataset.

use std::path::Path;

use super::{MetadataError, PodaacRow};

/// Minimal RFC 4180 reader (quoted fields with commas, doubled quotes, newlines).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

pub(super) fn parse_podaac(path: &Path, text: &str) -> Result<Vec<PodaacRow>, MetadataError> {
    let rows = parse_csv(text);
    let Some(header) = rows.first() else {
        return Ok(Vec::new());
    };
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| MetadataError::Format {
                path: path.to_path_buf(),
                what: format!("PO.DAAC table has no column '{name}'"),
            })
    };
    let (sn, ln, f, pid) = (
        col("DATASET.SHORT_NAME")?,
        col("DATASET.LONG_NAME")?,
        col("DATASET.FILENAME")?,
        col("DATASET.PERSISTENT_ID")?,
    );
    Ok(rows[1..]
        .iter()
        .filter(|r| r.len() > sn.max(ln).max(f).max(pid))
        .map(|r| PodaacRow {
            short_name: r[sn].trim().to_string(),
            long_name: r[ln].trim().to_string(),
            filename: r[f].trim().to_string(),
            persistent_id: r[pid].trim().to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes() {
        let rows = parse_csv("a,b\n\"x, y\",\"he said \"\"hi\"\"\nline\"\n");
        assert_eq!(rows[1], ["x, y", "he said \"hi\"\nline"]);
    }
}
