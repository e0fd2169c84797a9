//! From jobs to tasks: expand each job over its time steps, attach the inputs that
//! exist, and account for what is missing.
//!
//! As EDP does, a field missing at a step is left out of that step's task (with a
//! warning) and a step with no input at all gives no task; unlike EDP, the counts are
//! reported per job so a production engineer sees the gaps before running.

use std::collections::BTreeMap;
use std::path::Path;

use indexmap::IndexMap;
use serde_json::Value;

use super::discovery::Inventory;
use super::{build_task, InputPair, Locations, Task};
use crate::jobs::{Job, Steps};
use crate::metadata::{Grouping, MetadataSet, Release};
use crate::time::{DailyDate, Frequency};

/// What one job produced.
#[derive(Debug, Clone, Default)]
pub struct JobReport {
    /// Jobs-file line (0 when not from a jobs file).
    pub line: usize,
    pub grouping: String,
    pub product: String,
    pub freq: String,
    pub tasks: usize,
    /// Steps whose task lacks at least one field.
    pub partial_steps: usize,
    /// Field → number of steps it is missing at (within steps that have a task).
    pub missing: BTreeMap<String, usize>,
    /// Field → the time steps it is missing at (within steps that have a task).
    pub missing_steps: BTreeMap<String, Vec<u64>>,
    /// Requested steps with no input at all (explicit lists only).
    pub empty_steps: Vec<u64>,
    /// Estimated uncompressed size of the granules' data, bytes.
    pub data_bytes: u64,
}

/// A task list and its accounting.
#[derive(Debug, Default)]
pub struct Plan {
    pub tasks: Vec<Task>,
    pub jobs: Vec<JobReport>,
    /// Input listings that failed (e.g. an S3 listing after its retries): the plan is
    /// incomplete and must not be used.
    pub listing_errors: Vec<String>,
}

/// The model inputs of an output field: its vector components (x then y) or itself.
pub fn input_fields(g: &Grouping, field: &str) -> Vec<String> {
    let comps = g.field_components.as_ref().and_then(|c| c.get(field));
    match comps {
        Some(Value::Object(c)) => ["x", "y"]
            .iter()
            .filter_map(|k| c.get(*k).and_then(Value::as_str).map(str::to_string))
            .collect(),
        _ => vec![field.to_string()],
    }
}

/// Values one granule of this grouping holds per field, for volume estimates.
fn values_per_field(g: &Grouping, n: usize, nz: usize) -> u64 {
    let horizontal = match g.product {
        crate::metadata::Product::Native => 13 * n * n,
        crate::metadata::Product::Latlon => 720 * 360,
    } as u64;
    horizontal * if g.is_3d() { nz as u64 } else { 1 }
}

/// Expands one grouping at one frequency over `steps`.
#[allow(clippy::too_many_arguments)]
pub fn expand_grouping(
    g: &Grouping,
    freq: Frequency,
    steps: &Steps,
    inv: &mut Inventory,
    release: &Release,
    daily: DailyDate,
    loc: &Locations,
    report: &mut JobReport,
) -> Vec<Task> {
    if crate::metadata::is_geometry(g) {
        // The geometry datasets are made from the grid itself: no inputs to find.
        let vars = g.fields.iter().map(|f| (f.clone(), Vec::new())).collect();
        let cov = release.clock.coverage(Frequency::Ti, 0, daily);
        report.tasks += 1;
        return vec![build_task(g, freq, &cov, vars, release, loc)];
    }
    let fields: Vec<(String, Vec<String>)> = g
        .fields
        .iter()
        .map(|f| (g.output_name(f).to_string(), input_fields(g, f)))
        .collect();
    // Steps at which a field (all of its components) exists.
    let field_steps: Vec<std::collections::BTreeSet<u64>> = fields
        .iter()
        .map(|(_, inputs)| {
            let mut it = inputs.iter();
            let first = it
                .next()
                .map(|v| inv.listing(v, freq).steps.clone())
                .unwrap_or_default();
            it.fold(first, |acc, v| {
                acc.intersection(&inv.listing(v, freq).steps)
                    .copied()
                    .collect()
            })
        })
        .collect();
    let wanted: Vec<u64> = match steps {
        Steps::All => {
            let mut all: Vec<u64> = field_steps.iter().flatten().copied().collect();
            all.sort_unstable();
            all.dedup();
            all
        }
        Steps::List(list) => list.clone(),
    };
    // A time-invariant dataset is one granule: the newest step found (or asked for).
    let wanted = match (freq, wanted.iter().max()) {
        (Frequency::Ti, Some(&last)) => {
            if wanted.len() > 1 {
                log::warn!(
                    "{} {} TI: inputs at {} steps; the newest, {last}, makes the granule",
                    g.filename,
                    g.product.name(),
                    wanted.len()
                );
            }
            vec![last]
        }
        _ => wanted,
    };
    let per_field = values_per_field(g, 90, 50) * 4;
    let mut tasks = Vec::with_capacity(wanted.len());
    for step in wanted {
        let mut vars: IndexMap<String, Vec<InputPair>> = IndexMap::new();
        for ((out, inputs), have) in fields.iter().zip(&field_steps) {
            if have.contains(&step) {
                let pairs = inputs.iter().map(|v| inv.pair(v, freq, step)).collect();
                vars.insert(out.clone(), pairs);
            } else {
                *report.missing.entry(out.clone()).or_default() += 1;
                report
                    .missing_steps
                    .entry(out.clone())
                    .or_default()
                    .push(step);
            }
        }
        if vars.is_empty() {
            report.empty_steps.push(step);
            continue;
        }
        if vars.len() < fields.len() {
            report.partial_steps += 1;
        }
        report.data_bytes += per_field * vars.len() as u64;
        let cov = release.clock.coverage(freq, step, daily);
        tasks.push(build_task(g, freq, &cov, vars, release, loc));
    }
    // Fields counted missing at steps that got no task are not gaps of a granule.
    if !report.empty_steps.is_empty() {
        for ((out, _), have) in fields.iter().zip(&field_steps) {
            let at_empty = report
                .empty_steps
                .iter()
                .filter(|s| !have.contains(s))
                .count();
            if let Some(c) = report.missing.get_mut(out) {
                *c -= at_empty;
            }
        }
        report.missing.retain(|_, c| *c > 0);
        for steps in report.missing_steps.values_mut() {
            steps.retain(|s| !report.empty_steps.contains(s));
        }
        report.missing_steps.retain(|_, s| !s.is_empty());
    }
    report.tasks += tasks.len();
    tasks
}

/// Builds the task list of a jobs file's jobs.
pub fn build_from_jobs(
    jobs: &[Job],
    m: &MetadataSet,
    source_root: &Path,
    loc: &Locations,
    daily: DailyDate,
    s3: Option<&crate::storage::S3>,
) -> Plan {
    let mut tasks = Vec::new();
    let mut plan = expand_jobs(jobs, m, source_root, loc, daily, s3, &mut |t: Vec<Task>| {
        tasks.extend(t);
        Ok(())
    })
    .unwrap_or_default();
    plan.tasks = tasks;
    plan
}

/// Plans a jobs file's jobs, handing each job's tasks to `sink` as they are made (in
/// the list's order) instead of holding the list: the returned plan has the reports
/// and no tasks. A sink error stops the planning.
pub fn expand_jobs(
    jobs: &[Job],
    m: &MetadataSet,
    source_root: &Path,
    loc: &Locations,
    daily: DailyDate,
    s3: Option<&crate::storage::S3>,
    sink: &mut dyn FnMut(Vec<Task>) -> std::io::Result<()>,
) -> std::io::Result<Plan> {
    let mut inv = Inventory::new(source_root, &m.release.version, s3);
    let mut plan = Plan::default();
    for job in jobs {
        let Some(g) = m.grouping(job.product, job.grouping) else {
            log::error!(
                "job line {}: no {} grouping {}",
                job.line,
                job.product.name(),
                job.grouping
            );
            continue;
        };
        let mut report = JobReport {
            line: job.line,
            grouping: g.filename.clone(),
            product: job.product.name().into(),
            freq: job.freq.job_name().into(),
            ..JobReport::default()
        };
        let tasks = expand_grouping(
            g,
            job.freq,
            &job.steps,
            &mut inv,
            &m.release,
            daily,
            loc,
            &mut report,
        );
        log_report(&report);
        sink(tasks)?;
        plan.jobs.push(report);
    }
    plan.listing_errors = inv.errors().to_vec();
    Ok(plan)
}

fn log_report(r: &JobReport) {
    let at = if r.line > 0 {
        format!("job line {}: ", r.line)
    } else {
        String::new()
    };
    if r.tasks == 0 {
        log::warn!(
            "{at}{} {} {}: no input found, no tasks",
            r.grouping,
            r.product,
            r.freq
        );
    }
    if r.partial_steps > 0 {
        // Named by time step (the number in the input file names), a few per field.
        let detail: Vec<String> = r
            .missing_steps
            .iter()
            .map(|(f, steps)| {
                let shown: Vec<String> = steps.iter().take(5).map(u64::to_string).collect();
                let more = steps.len().saturating_sub(5);
                format!(
                    "{f} at step{} {}{}",
                    if steps.len() == 1 { "" } else { "s" },
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                )
            })
            .collect();
        log::warn!(
            "{at}{} {} {}: {} of {} steps miss some fields ({}); their granules are written \
             without them and record them as missing_fields (`edp run --missing-fields fail` \
             fails them instead)",
            r.grouping,
            r.product,
            r.freq,
            r.partial_steps,
            r.tasks,
            detail.join(", ")
        );
    }
    if !r.empty_steps.is_empty() {
        log::warn!(
            "{at}{} {} {}: {} requested step(s) have no input: {:?}",
            r.grouping,
            r.product,
            r.freq,
            r.empty_steps.len(),
            &r.empty_steps[..r.empty_steps.len().min(10)]
        );
    }
}
