//! Input discovery: which time steps exist for which model fields under a source root
//! in EDP's layout, `<root>/<diags_monthly|diags_daily|diags_inst>/<VAR>_<period>/
//! <VAR>_<period>.<10-digit step>.{data,meta}`.
//!
//! One directory listing per variable and frequency, cached, never one `stat` per
//! file: discovering 10⁵ steps takes a listing, not 10⁵ system calls. A step counts
//! only when both its `.data` and `.meta` exist (EDP pairs them by sort order and
//! silently mis-pairs when one is missing).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::time::Frequency;

/// Steps found per (variable, frequency), listed lazily.
#[derive(Debug)]
pub struct Inventory {
    root: PathBuf,
    release: String,
    listed: HashMap<(String, Frequency), Listing>,
}

/// One variable directory's complete steps.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The directory the files are in (for task paths).
    pub dir: PathBuf,
    pub steps: BTreeSet<u64>,
    /// Steps with a `.data` but no `.meta` or the reverse.
    pub unpaired: BTreeSet<u64>,
}

impl Inventory {
    /// `root` is the source root; when it has no `diags_*` directories of its own but
    /// `<root>/<release>/` does (EDP's convention of a root above the release), that
    /// is used instead.
    pub fn new(root: &Path, release: &str) -> Inventory {
        Inventory {
            root: root.to_path_buf(),
            release: release.to_string(),
            listed: HashMap::new(),
        }
    }

    fn freq_dir(&self, freq: Frequency) -> PathBuf {
        let direct = self.root.join(freq.input_dir());
        if direct.is_dir() {
            return direct;
        }
        let nested = self.root.join(&self.release).join(freq.input_dir());
        if nested.is_dir() {
            nested
        } else {
            direct
        }
    }

    /// The steps of `var` at `freq` (listing its directory the first time).
    pub fn listing(&mut self, var: &str, freq: Frequency) -> &Listing {
        let key = (var.to_string(), freq);
        if !self.listed.contains_key(&key) {
            let dir = self
                .freq_dir(freq)
                .join(format!("{var}_{}", freq.input_token()));
            let listing = list_dir(&dir, var, freq);
            self.listed.insert(key.clone(), listing);
        }
        &self.listed[&key]
    }

    /// Input pair of `var` at `step` (whether or not it exists).
    pub fn pair(&mut self, var: &str, freq: Frequency, step: u64) -> [String; 2] {
        let dir = self.listing(var, freq).dir.clone();
        let base = format!("{var}_{}.{step:010}", freq.input_token());
        [
            dir.join(format!("{base}.data"))
                .to_string_lossy()
                .into_owned(),
            dir.join(format!("{base}.meta"))
                .to_string_lossy()
                .into_owned(),
        ]
    }
}

/// Parses `<var>_<token>.<10 digits>.<data|meta>`; anything else is ignored.
fn parse_name(name: &str, prefix: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix(prefix)?;
    let (digits, ext) = rest.split_once('.')?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = digits.parse().ok()?;
    match ext {
        "data" => Some((step, true)),
        "meta" => Some((step, false)),
        _ => None,
    }
}

fn list_dir(dir: &Path, var: &str, freq: Frequency) -> Listing {
    let prefix = format!("{var}_{}.", freq.input_token());
    let (mut data, mut meta) = (BTreeSet::new(), BTreeSet::new());
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Some((step, is_data)) =
                e.file_name().to_str().and_then(|n| parse_name(n, &prefix))
            {
                if is_data {
                    data.insert(step);
                } else {
                    meta.insert(step);
                }
            }
        }
    }
    let steps = data.intersection(&meta).copied().collect();
    let unpaired = data.symmetric_difference(&meta).copied().collect();
    Listing {
        dir: dir.to_path_buf(),
        steps,
        unpaired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_strictly() {
        assert_eq!(
            parse_name("SSH_mon_mean.0000000732.data", "SSH_mon_mean."),
            Some((732, true))
        );
        assert_eq!(
            parse_name("SSH_mon_mean.0000000732.meta", "SSH_mon_mean."),
            Some((732, false))
        );
        assert_eq!(parse_name("SSH_mon_mean.732.data", "SSH_mon_mean."), None);
        assert_eq!(
            parse_name("SSH_mon_mean.0000000732.data.bak", "SSH_mon_mean."),
            None
        );
        // A variable whose name ends with the requested one does not match (EDP's regex would).
        assert_eq!(
            parse_name("oceTAUX_mon_mean.0000000732.data", "TAUX_mon_mean."),
            None
        );
    }

    #[test]
    fn pairs_only_complete_steps() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("diags_monthly/SSH_mon_mean");
        std::fs::create_dir_all(&d).unwrap();
        for f in [
            "SSH_mon_mean.0000000732.data",
            "SSH_mon_mean.0000000732.meta",
            "SSH_mon_mean.0000001428.data",
            "SSH_mon_mean.0000002172.meta",
            "README",
        ] {
            std::fs::write(d.join(f), b"").unwrap();
        }
        let mut inv = Inventory::new(dir.path(), "V4r4");
        let l = inv.listing("SSH", Frequency::AvgMon);
        assert_eq!(l.steps.iter().copied().collect::<Vec<_>>(), vec![732]);
        assert_eq!(
            l.unpaired.iter().copied().collect::<Vec<_>>(),
            vec![1428, 2172]
        );
        assert!(inv.listing("SSH", Frequency::AvgDay).steps.is_empty());
    }
}
