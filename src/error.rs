//! How an error is shown: its own message, then each cause once (`a: b: c`).
//!
//! Error types name what failed and where, and keep their cause as `source` without
//! printing it in their own message; whoever shows an error to a person (a log line, a
//! task's failure record, the exit message) shows the whole chain with [`chain`].

use std::error::Error;

/// An error with its causes, `a: b: c`; a cause whose text is already in the message
/// (some external errors repeat their own cause) is left out.
pub fn chain(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

/// A file operation the OS refused: the path, what was being done, and the OS's error.
/// Shared by the modules that read and write their own files (MDS, factors, synthetic
/// inputs) as their `Io` variant.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot {action}", path.display())]
pub struct FileError {
    pub path: std::path::PathBuf,
    pub action: &'static str,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    /// The error maker for an operation on `path`: `.map_err(FileError::at(p, "open"))`.
    pub fn at(path: &std::path::Path, action: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| FileError {
            path,
            action,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read task list t.json")]
    struct Outer {
        source: std::io::Error,
    }

    #[test]
    fn each_cause_once() {
        let e = Outer {
            source: std::io::Error::other("EOF at line 1"),
        };
        assert_eq!(chain(&e), "cannot read task list t.json: EOF at line 1");
    }
}
