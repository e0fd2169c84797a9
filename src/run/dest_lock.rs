//! The lock on a destination's run state (`<dest>/.edp/run.lock`): one `edp run` at a
//! time per destination. A second run started while the first is still working (a
//! resubmitted Slurm job while the old one drains) would otherwise clean up the first
//! one's temporary files and redo its work. The lock names its holder (host, pid, start
//! time, run id); the holder refreshes it every [`HEARTBEAT`], so a lock whose process
//! is gone (same host) or that nobody refreshed for [`STALE_AFTER`] (another host) is
//! taken over with a warning.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::storage::lock::{host, pid_alive};

/// How often the holder touches the lock.
pub const HEARTBEAT: Duration = Duration::from_secs(30);
/// A lock not touched for this long is abandoned (its host crashed or lost the mount).
pub const STALE_AFTER: Duration = Duration::from_secs(600);

/// Who holds a destination.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    pub started: String,
    pub run_id: String,
}

impl Holder {
    fn unknown() -> Holder {
        Holder {
            host: "?".into(),
            pid: 0,
            started: "?".into(),
            run_id: "?".into(),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} (pid {} on {}, started {})",
            self.run_id, self.pid, self.host, self.started
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("destination {dest} is in use by {holder}; wait for it to end, or remove {lock} if that run is gone")]
    Held {
        dest: PathBuf,
        holder: Box<Holder>,
        lock: PathBuf,
    },
    #[error("cannot take the lock {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A held destination lock: refreshed in the background, removed on drop.
#[derive(Debug)]
pub struct DestLock {
    path: PathBuf,
    holder: Holder,
    stop: Option<mpsc::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

/// `<state dir>/run.lock`.
pub fn lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join("run.lock")
}

/// Why a lock left by `holder` is abandoned, if it is.
fn abandoned(path: &Path, holder: Option<&Holder>) -> Option<String> {
    let age = fs::metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    match holder {
        Some(h) if h.host == host() && !pid_alive(h.pid) => {
            Some(format!("its process {} is gone", h.pid))
        }
        _ if age > STALE_AFTER => Some(format!("nobody refreshed it for {} s", age.as_secs())),
        None => Some("it names no holder".into()),
        _ => None,
    }
}

impl DestLock {
    /// Takes the lock of the state directory `state_dir` (of destination `dest`) for
    /// run `run_id`, or says who holds it.
    pub fn acquire(
        state_dir: &Path,
        dest: &Path,
        run_id: &str,
        started: &str,
    ) -> Result<DestLock, LockError> {
        let path = lock_path(state_dir);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let holder = Holder {
            host: host(),
            pid: std::process::id(),
            started: started.to_string(),
            run_id: run_id.to_string(),
        };
        let text = serde_json::to_string(&holder).map_err(|e| io_err(e.into()))?;
        for _ in 0..3 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(text.as_bytes()).map_err(io_err)?;
                    f.sync_all().map_err(io_err)?;
                    return Ok(DestLock::held(path, holder));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let current: Option<Holder> = fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok());
                    match abandoned(&path, current.as_ref()) {
                        Some(why) => {
                            log::warn!(
                                "taking over the lock {} of {}: {why}",
                                path.display(),
                                current
                                    .as_ref()
                                    .map_or("an unknown run".to_string(), |h| h.to_string())
                            );
                            match fs::remove_file(&path) {
                                Ok(()) => {}
                                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                                Err(e) => return Err(io_err(e)),
                            }
                        }
                        None => {
                            return Err(LockError::Held {
                                dest: dest.to_path_buf(),
                                holder: Box::new(current.unwrap_or_else(Holder::unknown)),
                                lock: path,
                            })
                        }
                    }
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        // Another run took it over between our attempts.
        let current: Option<Holder> = fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        Err(LockError::Held {
            dest: dest.to_path_buf(),
            holder: Box::new(current.unwrap_or_else(Holder::unknown)),
            lock: path,
        })
    }

    fn held(path: PathBuf, holder: Holder) -> DestLock {
        let (tx, rx) = mpsc::channel::<()>();
        let p = path.clone();
        let heartbeat = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(HEARTBEAT) {
                if let Ok(f) = fs::OpenOptions::new().write(true).open(&p) {
                    let _ = f.set_modified(SystemTime::now());
                }
            }
        });
        DestLock {
            path,
            holder,
            stop: Some(tx),
            heartbeat: Some(heartbeat),
        }
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }
}

impl Drop for DestLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        // Only our own lock: a run that took it over (we were presumed dead) keeps it.
        let ours = fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<Holder>(&t).ok())
            .is_some_and(|h| h == self.holder);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_and_a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let a = DestLock::acquire(dir.path(), dir.path(), "aaa", "t0").unwrap();
        let e = DestLock::acquire(dir.path(), dir.path(), "bbb", "t1").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("run aaa") && msg.contains(&std::process::id().to_string()),
            "{msg}"
        );
        drop(a);
        assert!(!lock_path(dir.path()).exists());
        // A lock of a process that is gone (pid beyond any live one on this host).
        let dead = Holder {
            host: host(),
            pid: u32::MAX - 1,
            started: "t".into(),
            run_id: "dead".into(),
        };
        fs::write(lock_path(dir.path()), serde_json::to_string(&dead).unwrap()).unwrap();
        let b = DestLock::acquire(dir.path(), dir.path(), "ccc", "t2").unwrap();
        assert_eq!(b.holder().run_id, "ccc");
    }
}
