//! The PO.DAAC dataset table (CSV, read with the `csv` crate): short name, long name,
//! file pattern and DOI suffix of every dataset.

use std::path::Path;

use super::{MetadataError, PodaacRow};

/// The release a PO.DAAC table describes: the most frequent value of its
/// `DATASET_CITATION.VERSION` column (`V4r5`), if it has one.
pub(super) fn table_version(text: &str) -> Option<String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let col = reader
        .headers()
        .ok()?
        .iter()
        .position(|h| h.trim() == "DATASET_CITATION.VERSION")?;
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for r in reader.records().flatten() {
        if let Some(v) = r.get(col).map(str::trim).filter(|v| v.starts_with('V')) {
            *counts.entry(v.to_string()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(v, n)| (*n, v.clone()))
        .map(|(v, _)| v)
}

pub(super) fn parse_podaac(path: &Path, text: &str) -> Result<Vec<PodaacRow>, MetadataError> {
    let bad = |what: String| MetadataError::Format {
        path: path.to_path_buf(),
        what,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(bad(format!("PO.DAAC table header: {e}"))),
    };
    if header.is_empty() {
        return Ok(Vec::new());
    }
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| bad(format!("PO.DAAC table has no column '{name}'")))
    };
    let (sn, ln, f, pid) = (
        col("DATASET.SHORT_NAME")?,
        col("DATASET.LONG_NAME")?,
        col("DATASET.FILENAME")?,
        col("DATASET.PERSISTENT_ID")?,
    );
    let mut rows = Vec::new();
    for record in reader.records() {
        let r = record.map_err(|e| bad(format!("PO.DAAC table: {e}")))?;
        // Short rows (a trailing blank line, a truncated row) describe no dataset.
        let (Some(sn), Some(ln), Some(f), Some(pid)) = (r.get(sn), r.get(ln), r.get(f), r.get(pid))
        else {
            continue;
        };
        rows.push(PodaacRow {
            short_name: sn.trim().to_string(),
            long_name: ln.trim().to_string(),
            filename: f.trim().to_string(),
            persistent_id: pid.trim().to_string(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_with_commas_quotes_and_newlines() {
        let text = "DATASET.SHORT_NAME,DATASET.LONG_NAME,DATASET.FILENAME,DATASET.PERSISTENT_ID\n\
                    A,\"x, y\",\"he said \"\"hi\"\"\nline\",P-1\nshort\n";
        let rows = parse_podaac(Path::new("t.csv"), text).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].long_name, "x, y");
        assert_eq!(rows[0].filename, "he said \"hi\"\nline");
        assert_eq!(rows[0].persistent_id, "P-1");
    }

    #[test]
    fn missing_column_is_named() {
        let err = parse_podaac(Path::new("t.csv"), "DATASET.SHORT_NAME\nA\n").unwrap_err();
        assert!(err.to_string().contains("DATASET.LONG_NAME"), "{err}");
    }
}
