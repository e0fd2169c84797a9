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
        value_parser = clap::builder::PossibleValuesParser::new(["auto", "on", "off"])
    )]
    pub mpi: Option<String>,
    /// Scratch cache root (S3 inputs, staged granules); default: a per-user directory
    /// in the temporary directory.
    #[arg(long, global = true, env = "EDP_SCRATCH_DIR", value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,
    /// Scratch cache size limit (bytes, or with K/M/G/T).
    #[arg(long, global = true, env = "EDP_SCRATCH_LIMIT", value_name = "SIZE",
          value_parser = size("--scratch-limit", "EDP_SCRATCH_LIMIT"))]
    pub scratch_limit: Option<String>,
    /// Local state of runs writing to S3 (journals, manifest copy, built factors);
    /// default: ./edp-state.
    #[arg(long, global = true, env = "EDP_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Part size of multipart uploads and ranged downloads (bytes).
    #[arg(long, global = true, env = "EDP_S3_PART_SIZE", value_name = "BYTES",
          value_parser = count("--s3-part-size", "EDP_S3_PART_SIZE", 1))]
    pub s3_part_size: Option<u64>,
    /// Parts of one object in flight at once.
    #[arg(long, global = true, env = "EDP_S3_CONCURRENCY", value_name = "N",
          value_parser = count("--s3-concurrency", "EDP_S3_CONCURRENCY", 1))]
    pub s3_concurrency: Option<u64>,
    /// Retries of a failed S3 request.
    #[arg(long, global = true, env = "EDP_S3_RETRIES", value_name = "N",
          value_parser = count("--s3-retries", "EDP_S3_RETRIES", 0))]
    pub s3_retries: Option<u64>,
    /// Seconds after which a request is not retried any more.
    #[arg(long, global = true, env = "EDP_S3_RETRY_TIMEOUT", value_name = "SECONDS",
          value_parser = seconds_arg("--s3-retry-timeout", "EDP_S3_RETRY_TIMEOUT"))]
    pub s3_retry_timeout: Option<f64>,
    /// Seconds to wait for an S3 connection.
    #[arg(long, global = true, env = "EDP_S3_CONNECT_TIMEOUT", value_name = "SECONDS",
          value_parser = seconds_arg("--s3-connect-timeout", "EDP_S3_CONNECT_TIMEOUT"))]
    pub s3_connect_timeout: Option<f64>,
    /// Seconds an S3 request may take.
    #[arg(long, global = true, env = "EDP_S3_TIMEOUT", value_name = "SECONDS",
          value_parser = seconds_arg("--s3-timeout", "EDP_S3_TIMEOUT"))]
    pub s3_timeout: Option<f64>,
    /// Testing: a task whose granule name contains this panics (a panic on one rank
    /// must abort the whole job).
    #[arg(long, global = true, env = "EDP_DEBUG_PANIC_GRANULE", hide = true)]
    pub debug_panic_granule: Option<String>,
    /// Testing: milliseconds each rank waits before each task, so that a test can
    /// signal a run mid-way whatever the machine's speed.
    #[arg(long, global = true, env = "EDP_DEBUG_TASK_DELAY_MS", hide = true)]
    pub debug_task_delay_ms: Option<u64>,
    /// Testing: `SUBSTRING@RANK` makes rank RANK of the group writing a granule whose
    /// path contains SUBSTRING fail producing its first slab (both group writers).
    #[arg(long, global = true, env = "EDP_DEBUG_FAIL_WRITE", hide = true)]
    pub debug_fail_write: Option<String>,
    /// Only this rank waits the task delay (a slow rank, for tests of the schedule).
    #[arg(long, global = true, env = "EDP_DEBUG_SLOW_RANK", hide = true)]
    pub debug_slow_rank: Option<usize>,
    /// Benchmarks: every granule's header is defined in full by netCDF-C, none is
    /// made from its definition's template (the same-run reference of the template).
    #[arg(long, global = true, env = "EDP_DEBUG_NO_HEADER_TEMPLATE", hide = true,
          value_parser = clap::builder::FalseyValueParser::new())]
    pub debug_no_header_template: bool,
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

/// A value parser whose error names the option and its environment variable, since
/// either may have given the value.
fn named<T: Clone + Send + Sync + 'static>(
    option: &'static str,
    var: &'static str,
    expected: &'static str,
    parse: impl Fn(&str) -> Option<T> + Clone + Send + Sync + 'static,
) -> impl clap::builder::TypedValueParser<Value = T> {
    move |s: &str| {
        parse(s).ok_or_else(|| format!("{option} (or {var}) expects {expected}, not '{s}'"))
    }
}

fn size(
    option: &'static str,
    var: &'static str,
) -> impl clap::builder::TypedValueParser<Value = String> {
    named(
        option,
        var,
        "bytes, or a number with K, M, G or T (e.g. 20G)",
        |s| crate::storage::cache::parse_size(s).map(|_| s.to_string()),
    )
}

fn count(
    option: &'static str,
    var: &'static str,
    min: u64,
) -> impl clap::builder::TypedValueParser<Value = u64> {
    let expected = if min == 0 {
        "a whole number"
    } else {
        "a whole number of at least 1"
    };
    named(option, var, expected, move |s| {
        s.trim().parse::<u64>().ok().filter(|n| *n >= min)
    })
}

fn seconds_arg(
    option: &'static str,
    var: &'static str,
) -> impl clap::builder::TypedValueParser<Value = f64> {
    named(option, var, "a number of seconds (0 or more)", |s| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    })
}

/// `--threads`: at least one (0 would run nothing).
pub fn threads(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("--threads expects a whole number of at least 1, not '{s}'"))
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
