//! Input discovery: which time steps exist for which model fields under a source root
//! in EDP's layout, `<root>/<diags_monthly|diags_daily|diags_inst>/<VAR>_<period>/
//! <VAR>_<period>.<10-digit step>.{data,meta}`.
//!
//! One directory listing per variable and frequency, cached, never one `stat` per
//! file: discovering 10⁵ steps takes a listing, not 10⁵ system calls. A step counts
//! only when both its `.data` and `.meta` exist (EDP pairs them by sort order and
//! silently mis-pairs when one is missing).
//!
//! A root `s3://bucket/prefix` is listed the same way: one paginated listing of the
//! variable's prefix `<root>/<freq dir>/<VAR>_<period>/` (EDP lists the same prefix), and
//! the inputs become `s3://bucket/key` strings in the tasks, as EDP writes them. A failed
//! listing is not an empty one: it is kept in [`Inventory::errors`].

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::storage::{self, S3Url, S3};
use crate::time::Frequency;

/// Steps found per (variable, frequency), listed lazily.
#[derive(Debug)]
pub struct Inventory {
    root: PathBuf,
    release: String,
    listed: HashMap<(String, Frequency), Listing>,
    /// The root when it is on S3, and the handle that lists it.
    remote: Option<(S3Url, S3)>,
    /// Sub-prefixes of the S3 root and of `<root>/<release>`, listed once.
    remote_dirs: HashMap<String, Vec<String>>,
    errors: Vec<String>,
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
    /// is used instead. An S3 root is listed through `s3` (`None`: local roots only).
    pub fn new(root: &Path, release: &str, s3: Option<&S3>) -> Inventory {
        let mut errors = Vec::new();
        let remote = match (storage::s3_url(&root.to_string_lossy()), s3) {
            (Some(Ok(u)), Some(s3)) => Some((u, s3.clone())),
            (Some(Ok(u)), None) => {
                errors.push(format!("{u}: this planner reads local source roots only"));
                None
            }
            (Some(Err(e)), _) => {
                errors.push(crate::error::chain(&e));
                None
            }
            (None, _) => None,
        };
        Inventory {
            root: root.to_path_buf(),
            release: release.to_string(),
            listed: HashMap::new(),
            remote,
            remote_dirs: HashMap::new(),
            errors,
        }
    }

    /// Listings that failed (each message names the location); empty when all worked.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Sub-prefixes (full keys) directly under `url`, listed once.
    fn remote_subdirs(&mut self, url: &S3Url) -> &[String] {
        let key = url.to_string();
        if !self.remote_dirs.contains_key(&key) && self.errors.is_empty() {
            let Some((_, s3)) = &self.remote else {
                return &[];
            };
            let dirs = match s3.list_dir(url) {
                Ok((dirs, _)) => dirs,
                Err(e) => {
                    log::error!("{}", crate::error::chain(&e));
                    self.errors.push(crate::error::chain(&e));
                    Vec::new()
                }
            };
            self.remote_dirs.insert(key.clone(), dirs);
        }
        self.remote_dirs.get(&key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The S3 prefix of a frequency's directory, with the same fallback to
    /// `<root>/<release>/` as for local roots.
    fn remote_freq_dir(&mut self, root: &S3Url, freq: Frequency) -> S3Url {
        let direct = root.join(freq.input_dir());
        if self.remote_subdirs(root).contains(&direct.key) {
            return direct;
        }
        let nested = root.join(&self.release);
        let nested_freq = nested.join(freq.input_dir());
        if self.remote_subdirs(&nested).contains(&nested_freq.key) {
            nested_freq
        } else {
            direct
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
            let sub = format!("{var}_{}", freq.input_token());
            let listing = match self.remote.clone() {
                // After a failed listing of this root, no more requests: the plan is
                // unusable anyway and the first error says why.
                Some(_) if !self.errors.is_empty() => Listing::default(),
                Some((root, s3)) => {
                    let dir = self.remote_freq_dir(&root, freq).join(&sub);
                    let listed = if self.errors.is_empty() {
                        list_remote(&s3, &dir, var, freq)
                    } else {
                        Ok(Listing::default())
                    };
                    match listed {
                        Ok(l) => l,
                        Err(e) => {
                            log::error!("{e}");
                            self.errors.push(e);
                            Listing {
                                dir: PathBuf::from(dir.to_string()),
                                ..Listing::default()
                            }
                        }
                    }
                }
                None => list_dir(&self.freq_dir(freq).join(sub), var, freq),
            };
            self.listed.insert(key.clone(), listing);
        }
        &self.listed[&key]
    }

    /// Input pair of `var` at `step` (whether or not it exists).
    pub fn pair(&mut self, var: &str, freq: Frequency, step: u64) -> [String; 2] {
        let dir = self.listing(var, freq).dir.clone();
        let base = format!("{var}_{}.{step:010}", freq.input_token());
        if self.remote.is_some() {
            // `s3://…` strings, joined with `/` whatever the platform's separator.
            let dir = dir.to_string_lossy();
            return [format!("{dir}/{base}.data"), format!("{dir}/{base}.meta")];
        }
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
    let names = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    pair_names(dir.to_path_buf(), &names, var, freq)
}

/// Lists the S3 prefix `dir` (all pages) and pairs the object names directly under it.
fn list_remote(s3: &S3, dir: &S3Url, var: &str, freq: Frequency) -> Result<Listing, String> {
    let objects = s3.list(dir).map_err(|e| crate::error::chain(&e))?;
    let base = dir.dir_prefix();
    let names: Vec<String> = objects
        .iter()
        .filter_map(|o| o.key.strip_prefix(&base))
        .filter(|n| !n.contains('/'))
        .map(str::to_string)
        .collect();
    Ok(pair_names(
        PathBuf::from(dir.to_string()),
        &names,
        var,
        freq,
    ))
}

/// The complete and unpaired steps among the file names of one variable directory.
fn pair_names(dir: PathBuf, names: &[String], var: &str, freq: Frequency) -> Listing {
    let prefix = format!("{var}_{}.", freq.input_token());
    let (mut data, mut meta) = (BTreeSet::new(), BTreeSet::new());
    for (step, is_data) in names.iter().filter_map(|n| parse_name(n, &prefix)) {
        if is_data {
            data.insert(step);
        } else {
            meta.insert(step);
        }
    }
    let steps = data.intersection(&meta).copied().collect();
    let unpaired = data.symmetric_difference(&meta).copied().collect();
    Listing {
        dir,
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
        let mut inv = Inventory::new(dir.path(), "V4r4", None);
        let l = inv.listing("SSH", Frequency::AvgMon);
        assert_eq!(l.steps.iter().copied().collect::<Vec<_>>(), vec![732]);
        assert_eq!(
            l.unpaired.iter().copied().collect::<Vec<_>>(),
            vec![1428, 2172]
        );
        assert!(inv.listing("SSH", Frequency::AvgDay).steps.is_empty());
    }
}
