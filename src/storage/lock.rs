//! Node-wide lock files: one process does a shared job (fetch and unpack a grid,
//! build mapping factors) while the other ranks on the node wait, then all use the
//! result. A lock records `<host> <pid>`; a lock whose process is gone (same host) or
//! that has sat untouched for hours is taken as abandoned and removed.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long a lock may sit untouched before it is taken as abandoned.
const STALE_LOCK: Duration = Duration::from_secs(6 * 3600);

/// This node's host name (lock ownership, run records).
pub fn host() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

/// Whether process `pid` of this host is running. A zombie (killed, not yet reaped:
/// containers often have no init to reap orphans) counts as gone.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")) {
        // `pid (comm) state ...`: the comm may hold spaces, so look after the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// A held lock file, removed on drop.
#[derive(Debug)]
pub struct NodeLock(PathBuf);

impl NodeLock {
    fn is_stale(path: &Path, host: &str) -> bool {
        let Ok(meta) = fs::metadata(path) else {
            return false;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > STALE_LOCK);
        let text = fs::read_to_string(path).unwrap_or_default();
        let mut parts = text.split_whitespace();
        let dead = match (parts.next(), parts.next().and_then(|p| p.parse().ok())) {
            (Some(h), Some(pid)) if h == host => !pid_alive(pid),
            _ => false,
        };
        old || dead
    }

    /// Takes the lock at `path`, waiting while a live process holds it; `what` names
    /// the wait in the log (empty: wait silently).
    pub fn acquire(path: &Path, what: &str) -> io::Result<NodeLock> {
        let host = host();
        let mut noted = false;
        loop {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{host} {}", std::process::id());
                    return Ok(NodeLock(path.to_path_buf()));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if NodeLock::is_stale(path, &host) {
                        log::warn!("removing abandoned lock {}", path.display());
                        let _ = fs::remove_file(path);
                        continue;
                    }
                    if !noted && !what.is_empty() {
                        log::info!("waiting for another process on this node to {what}");
                        noted = true;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_local_lock_is_stale_and_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("x.lock");
        let me = host();
        fs::write(&lock, format!("{me} {}\n", std::process::id())).unwrap();
        assert!(!NodeLock::is_stale(&lock, &me));
        // PIDs are below 2^22 on Linux.
        fs::write(&lock, format!("{me} 99999999\n")).unwrap();
        assert!(NodeLock::is_stale(&lock, &me));
        fs::write(&lock, "elsewhere 1\n").unwrap();
        assert!(!NodeLock::is_stale(&lock, &me));
    }

    #[test]
    fn abandoned_locks_are_taken_over_and_held_locks_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        // A lock of a process that no longer exists on this host.
        fs::write(&path, format!("{} 4294967294\n", host())).unwrap();
        let held = NodeLock::acquire(&path, "").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), format!("{} {}", host(), std::process::id()));
        drop(held);
        assert!(!path.exists());
    }
}
