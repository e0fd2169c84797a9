//! Settings, parsed once: the command line, then the `EDP_*` environment variables
//! (clap's `env`), then defaults. The CLI parses them with its arguments and hands them
//! down; library users (tests, benchmarks) get the same values from
//! [`Settings::from_env`].
//!
//! This is also the only module that reads the process environment: what is not ours to
//! configure (the MPI launcher's, the batch system's and AWS's variables) goes through
//! [`env_var`]. To add a setting, add a field here with its `env = "EDP_..."` name.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};

/// Run-wide settings that are not specific to one subcommand.
#[derive(Args, Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Endpoint of an S3-compatible store (path-style), e.g. http://127.0.0.1:9000;
    /// default: AWS_ENDPOINT_URL, else the AWS profile's endpoint_url, else AWS itself.
    #[arg(long, global = true, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// MPI: `auto` (on when an MPI launcher started the process), `on` or `off`.
    #[arg(
        long,
        global = true,
        env = "EDP_MPI",
        value_name = "auto|on|off",
        hide = true
    )]
    pub mpi: Option<String>,
    /// Scratch cache root (S3 inputs, staged granules); default: a per-user directory
    /// in the temporary directory.
    #[arg(long, global = true, env = "EDP_SCRATCH_DIR", hide = true)]
    pub scratch_dir: Option<PathBuf>,
    /// Scratch cache size limit (bytes, or with K/M/G/T).
    #[arg(long, global = true, env = "EDP_SCRATCH_LIMIT", hide = true)]
    pub scratch_limit: Option<String>,
    /// Local state of runs writing to S3 (journals, manifest copy, built factors);
    /// default: ./edp-state.
    #[arg(long, global = true, env = "EDP_STATE_DIR", hide = true)]
    pub state_dir: Option<PathBuf>,
    /// Part size of multipart uploads and ranged downloads (bytes).
    #[arg(long, global = true, env = "EDP_S3_PART_SIZE", hide = true)]
    pub s3_part_size: Option<u64>,
    /// Parts of one object in flight at once.
    #[arg(long, global = true, env = "EDP_S3_CONCURRENCY", hide = true)]
    pub s3_concurrency: Option<u64>,
    /// Retries of a failed S3 request.
    #[arg(long, global = true, env = "EDP_S3_RETRIES", hide = true)]
    pub s3_retries: Option<u64>,
    /// Seconds after which a request is not retried any more.
    #[arg(long, global = true, env = "EDP_S3_RETRY_TIMEOUT", hide = true)]
    pub s3_retry_timeout: Option<f64>,
    /// Seconds to wait for an S3 connection.
    #[arg(long, global = true, env = "EDP_S3_CONNECT_TIMEOUT", hide = true)]
    pub s3_connect_timeout: Option<f64>,
    /// Seconds an S3 request may take.
    #[arg(long, global = true, env = "EDP_S3_TIMEOUT", hide = true)]
    pub s3_timeout: Option<f64>,
    /// Testing: a task whose granule name contains this panics (a panic on one rank
    /// must abort the whole job).
    #[arg(long, global = true, env = "EDP_DEBUG_PANIC_GRANULE", hide = true)]
    pub debug_panic_granule: Option<String>,
    /// Testing: milliseconds each rank waits before each task, so that a test can
    /// signal a run mid-way whatever the machine's speed.
    #[arg(long, global = true, env = "EDP_DEBUG_TASK_DELAY_MS", hide = true)]
    pub debug_task_delay_ms: Option<u64>,
}

#[derive(Parser)]
struct EnvOnly {
    #[command(flatten)]
    settings: Settings,
}

impl Settings {
    /// The settings of the environment and the defaults, without a command line.
    pub fn from_env() -> Settings {
        match EnvOnly::try_parse_from(["edp"]) {
            Ok(e) => e.settings,
            Err(e) => {
                log::warn!("ignoring the EDP_* settings: {e}");
                Settings::default()
            }
        }
    }

    /// Seconds after which an S3 request is not retried (default 180).
    pub fn s3_retry_timeout(&self) -> Duration {
        seconds(self.s3_retry_timeout, 180.0)
    }

    /// Seconds to wait for an S3 connection (default 10).
    pub fn s3_connect_timeout(&self) -> Duration {
        seconds(self.s3_connect_timeout, 10.0)
    }

    /// Seconds an S3 request may take (default 300).
    pub fn s3_timeout(&self) -> Duration {
        seconds(self.s3_timeout, 300.0)
    }
}

fn seconds(value: Option<f64>, default: f64) -> Duration {
    Duration::from_secs_f64(
        value
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(default),
    )
}

/// A variable of the process environment that is not ours (launcher, batch system,
/// AWS): the one door to the environment besides clap's `env`.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// True if `name` is set in the environment (to anything).
pub fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn command_line_before_defaults() {
        let s = Cli::try_parse_from(["edp", "--state-dir", "/x", "--s3-retries", "3"])
            .unwrap()
            .settings;
        assert_eq!(s.state_dir, Some(PathBuf::from("/x")));
        assert_eq!(s.s3_retries, Some(3));
        assert_eq!(s.s3_retry_timeout(), Duration::from_secs(180));
        assert!(Cli::try_parse_from(["edp", "--s3-retries", "many"]).is_err());
    }
}
