//! Opt-in lossy quantization: BitRound (Klöwer et al. 2021, as netCDF-C 4.9 implements
//! it) of chosen float32 variables before compression, so that deflate finds long runs
//! of zero bits. Off unless `--significant-bits VAR=N` names a variable.
//!
//! Each quantized variable carries `_QuantizeBitRoundNumberOfSignificantBits = N`, the
//! attribute netCDF-C writes, so readers know the values hold N significant mantissa
//! bits; a value's relative error is at most 2^-(N+1). Fill values and non-finite
//! values are left alone, and `valid_min`/`valid_max` are rounded the same way so the
//! range still holds every value (the rounding is monotonic).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::ncio::{AttrValue, DatasetDef, VarData};

/// The attribute netCDF-C 4.9 writes on a BitRound-quantized variable.
pub const ATTR: &str = "_QuantizeBitRoundNumberOfSignificantBits";

/// Explicit mantissa bits of an IEEE float32.
const MANTISSA_BITS: u8 = 23;

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{origin}: '{item}': {what}")]
    Bad {
        origin: String,
        item: String,
        what: String,
    },
    #[error(transparent)]
    Io(#[from] crate::error::FileError),
}

/// Variable → significant mantissa bits to keep (1–23).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BitRoundTable(BTreeMap<String, u8>);

impl BitRoundTable {
    /// Parses `VAR=N` items (`origin` names where they came from, for errors).
    pub fn parse_items<'a>(
        items: impl IntoIterator<Item = &'a str>,
        origin: &str,
    ) -> Result<BitRoundTable, TableError> {
        let mut table = BTreeMap::new();
        for item in items {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let bad = |what: &str| TableError::Bad {
                origin: origin.to_string(),
                item: item.to_string(),
                what: what.to_string(),
            };
            let (var, bits) = item
                .split_once('=')
                .or_else(|| item.split_once(char::is_whitespace))
                .ok_or_else(|| bad("expected VAR=N"))?;
            let (var, bits) = (var.trim(), bits.trim());
            if var.is_empty() {
                return Err(bad("the variable name is empty"));
            }
            let n: u8 = bits
                .parse()
                .ok()
                .filter(|n| (1..=MANTISSA_BITS).contains(n))
                .ok_or_else(|| bad("N must be an integer from 1 to 23 (float32 mantissa bits)"))?;
            table.insert(var.to_string(), n);
        }
        Ok(BitRoundTable(table))
    }

    /// Reads a table file: one `VAR N` or `VAR=N` per line, `#` comments, blank lines.
    pub fn from_file(path: &Path) -> Result<BitRoundTable, TableError> {
        let text = std::fs::read_to_string(path).map_err(crate::error::FileError::at(
            path,
            "read the significant-bits table",
        ))?;
        let mut table = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            let origin = format!("{}:{}", path.display(), i + 1);
            table.extend(Self::parse_items([line], &origin)?.0);
        }
        Ok(BitRoundTable(table))
    }

    /// Adds `other`'s entries (they win).
    pub fn extend(&mut self, other: BitRoundTable) {
        self.0.extend(other.0);
    }

    pub fn get(&self, var: &str) -> Option<u8> {
        self.0.get(var).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn entries(&self) -> &BTreeMap<String, u8> {
        &self.0
    }
}

/// Rounds one value to `nsb` significant mantissa bits (ties away from zero, as
/// netCDF-C does: add half of the last kept bit's unit, then clear the bits below it).
pub fn bitround_value(x: f32, nsb: u8) -> f32 {
    if !x.is_finite() || nsb >= MANTISSA_BITS {
        return x;
    }
    let drop = u32::from(MANTISSA_BITS - nsb);
    let keep_mask = u32::MAX << drop;
    let half = 1u32 << (drop - 1);
    f32::from_bits((x.to_bits() + half) & keep_mask)
}

/// Rounds every value but `fill` in place.
pub fn bitround(values: &mut [f32], nsb: u8, fill: Option<f32>) {
    for v in values {
        if Some(*v) != fill {
            *v = bitround_value(*v, nsb);
        }
    }
}

/// Quantizes the float32 variables of `def` that `table` names; returns what it did.
pub fn apply(def: &mut DatasetDef, table: &BitRoundTable) -> BTreeMap<String, u8> {
    let mut done = BTreeMap::new();
    for v in &mut def.vars {
        let Some(nsb) = table.get(&v.name) else {
            continue;
        };
        let fill = match v.fill {
            Some(AttrValue::F32(f)) => Some(f),
            _ => None,
        };
        match &mut v.data {
            VarData::F32(values) => bitround(values, nsb, fill),
            VarData::SlabsF32 { produce, .. } => {
                let inner = std::mem::replace(produce, Arc::new(|_, _| Ok(())));
                *produce = Arc::new(move |s, out| {
                    inner(s, out)?;
                    bitround(out, nsb, fill);
                    Ok(())
                });
            }
            // Only float32 is quantized (ECCO's data variables all are).
            _ => {
                log::warn!(
                    "--significant-bits {}: not a float32 variable; left exact",
                    v.name
                );
                continue;
            }
        }
        for (k, a) in &mut v.attrs {
            if let ("valid_min" | "valid_max", AttrValue::F32(x)) = (k.as_str(), a) {
                *x = bitround_value(*x, nsb);
            }
        }
        v.attrs.push((ATTR.into(), AttrValue::I32(i32::from(nsb))));
        done.insert(v.name.clone(), nsb);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_within_the_bound() {
        // A spread of magnitudes and signs, deterministic.
        let mut x = 0x2545_f491_u32;
        let values: Vec<f32> = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let m = (x as f64 / u32::MAX as f64) * 2.0 - 1.0;
                (m * 10f64.powi((x % 17) as i32 - 8)) as f32
            })
            .collect();
        for nsb in 1..=23u8 {
            let bound = 2f64.powi(-(i32::from(nsb) + 1));
            let mut q = values.clone();
            bitround(&mut q, nsb, None);
            for (a, b) in values.iter().zip(&q) {
                if *a == 0.0 {
                    assert_eq!(*b, 0.0);
                    continue;
                }
                let rel = ((*b as f64) - (*a as f64)).abs() / (*a as f64).abs();
                assert!(rel <= bound, "nsb {nsb}: {a} -> {b} ({rel} > {bound})");
                // The dropped bits are zero.
                if nsb < 23 {
                    assert_eq!(b.to_bits() & ((1 << (23 - nsb)) - 1), 0, "{a} -> {b}");
                }
            }
        }
        // Exactly 1.5 (mantissa 0b1) keeps at 1 bit; 1.75 rounds up to 2.0.
        assert_eq!(bitround_value(1.5, 1), 1.5);
        assert_eq!(bitround_value(1.75, 1), 2.0);
        assert_eq!(bitround_value(-1.75, 1), -2.0);
    }

    #[test]
    fn fill_and_non_finite_are_kept() {
        let fill = crate::granule::FILL_F32;
        let mut v = vec![fill, f32::NAN, f32::INFINITY, 2.8];
        bitround(&mut v, 4, Some(fill));
        assert_eq!(v[0], fill);
        assert!(v[1].is_nan());
        assert_eq!(v[2], f32::INFINITY);
        assert_eq!(v[3], 2.75);
    }

    #[test]
    fn tables_parse_and_name_bad_items() {
        let t = BitRoundTable::parse_items("THETA=10, SSH = 7".split(','), "--significant-bits")
            .unwrap();
        assert_eq!(t.get("THETA"), Some(10));
        assert_eq!(t.get("SSH"), Some(7));
        assert_eq!(t.get("SALT"), None);
        for (item, want) in [
            ("THETA", "VAR=N"),
            ("THETA=0", "1 to 23"),
            ("X=24", "1 to 23"),
            ("=3", "empty"),
        ] {
            let e = BitRoundTable::parse_items([item], "--significant-bits").unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(want) && msg.contains(item), "{msg}");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bits.txt");
        std::fs::write(&p, "# ECCO\nTHETA 12\n\nSALT=9 # salinity\nSSH x\n").unwrap();
        let e = BitRoundTable::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("bits.txt:5"), "{e}");
        std::fs::write(&p, "# ECCO\nTHETA 12\n\nSALT=9 # salinity\n").unwrap();
        let t = BitRoundTable::from_file(&p).unwrap();
        assert_eq!(t.entries().len(), 2);
        assert_eq!(t.get("SALT"), Some(9));
    }
}
