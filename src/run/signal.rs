//! Graceful interruption: SIGTERM, SIGUSR1 (Slurm's warning before the time limit, and
//! the signal OpenMPI's mpirun forwards to every rank) and SIGINT set a flag; the run
//! finishes the granule in hand, writes its journals and manifest, and exits 3.
//!
//! A second SIGINT ends the process at once (an impatient Ctrl-C still works).
//! Note that OpenMPI's mpirun answers SIGTERM by killing the ranks itself shortly after;
//! send SIGUSR1 to mpirun for a graceful stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

#[derive(Debug, thiserror::Error)]
#[error("cannot install the handler of signal {signal}")]
pub struct SignalError {
    signal: i32,
    source: std::io::Error,
}

/// Set when a stop was asked for.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// A flag raised by SIGTERM, SIGUSR1 and SIGINT.
    pub fn install() -> Result<StopFlag, SignalError> {
        let flag = StopFlag::default();
        // A second SIGINT while the flag is already set exits immediately (code 130).
        signal_hook::flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&flag.0))
            .map_err(|source| SignalError {
                signal: SIGINT,
                source,
            })?;
        for signal in [SIGTERM, SIGUSR1, SIGINT] {
            signal_hook::flag::register(signal, Arc::clone(&flag.0))
                .map_err(|source| SignalError { signal, source })?;
        }
        Ok(flag)
    }

    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigusr1_raises_the_flag() {
        let flag = StopFlag::install().unwrap();
        assert!(!flag.is_set());
        signal_hook::low_level::raise(SIGUSR1).unwrap();
        assert!(flag.is_set());
    }
}
