//! `edp status`: where a destination stands, while a run is going or after, read from
//! its run state alone (the record store, the journals of a run in progress and the
//! last plan's keys), streaming, without touching the granules.
//!
//! Every task of the last plan is done, failed or not run by its granule's latest
//! record (a journal's record is newer than the store's). Without a recorded plan (a
//! destination of an earlier `edp`), the tasks are the granules that have a record.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use super::dest_lock::Holder;
use super::journal::{self, Record, Status};
use super::manifest::{self, Counts, ManifestError, Tally};
use super::store::{self, key_hash, KeyHash, Store};

/// Failures listed by `edp status`.
pub const LAST_FAILURES: usize = 10;

/// What `edp status` reports.
#[derive(Debug, Default)]
pub struct StatusReport {
    /// Per grouping x product x frequency, and overall.
    pub tally: Tally,
    /// The last failures recorded that are still failures, oldest first.
    pub last_failures: Vec<String>,
    /// The last concluded run's figures.
    pub last_run: Option<manifest::RunInfo>,
    /// A run in progress (its lock's holder) and the records its journals hold so far.
    pub running: Option<(Holder, usize)>,
    /// Granules per second of the run in progress, from its journals.
    pub running_rate: Option<f64>,
    /// Whether the tasks are the last plan's (else: the granules with a record).
    pub from_plan: bool,
}

impl StatusReport {
    pub fn counts(&self) -> Counts {
        self.tally.all
    }

    /// The report as `edp status` prints it; its last line is
    /// `<N> tasks: <D> done, <F> failed, <R> not run`.
    pub fn text(&self, dest: &str) -> String {
        let mut s = format!("edp status of {dest}\n");
        match &self.running {
            Some((h, n)) => {
                s.push_str(&format!("a run is going: {h}; {n} task(s) recorded so far"));
                if let Some(r) = self.running_rate {
                    s.push_str(&format!(", {r:.2} granules/s"));
                }
                s.push('\n');
            }
            None => s.push_str("no run is going\n"),
        }
        if let Some(r) = &self.last_run {
            let rate = if r.seconds > 0.0 {
                r.done as f64 / r.seconds
            } else {
                0.0
            };
            s.push_str(&format!(
                "last run {} (finished {}): {} tasks, {} done, {} failed, {} skipped, {} not run \
                 in {:.1} s on {} rank(s): {rate:.2} granules/s\n",
                r.run_id,
                r.finished,
                r.tasks,
                r.done,
                r.failed,
                r.skipped,
                r.not_run,
                r.seconds,
                r.ranks
            ));
        }
        if !self.from_plan {
            s.push_str("no plan recorded: counting the granules that have a record\n");
        }
        s.push_str(&self.tally.table());
        if !self.last_failures.is_empty() {
            s.push_str(&format!("last {} failure(s):\n", self.last_failures.len()));
            for f in &self.last_failures {
                s.push_str(f);
                s.push('\n');
            }
        }
        let c = self.counts();
        s.push_str(&format!(
            "{} tasks: {} done, {} failed, {} not run\n",
            c.total(),
            c.done,
            c.failed,
            c.not_run
        ));
        s
    }
}

/// The status of the destination whose run state is in `state`.
pub fn status(state: &Path) -> Result<StatusReport, ManifestError> {
    let st = Store::at(state);
    let old_json = manifest::manifest_path(state);
    let journals = journal::journal_files(state).unwrap_or_default();
    if !st.exists() && !old_json.exists() && journals.is_empty() {
        return Err(ManifestError::NoState(state.to_path_buf()));
    }
    let mut report = StatusReport::default();
    // Latest status per granule, and the last failures in the order recorded.
    let mut latest: HashMap<KeyHash, Status> = HashMap::new();
    let mut failures: VecDeque<(KeyHash, String)> = VecDeque::new();
    // Without a plan: the granule of each key, to group it.
    let plan_exists = journal::state_dir(state).join(store::PLAN_NAME).exists();
    let mut names: HashMap<KeyHash, String> = HashMap::new();
    let mut see = |r: &Record| {
        let h = key_hash(&r.granule);
        latest.insert(h, r.status);
        if r.status == Status::Failed {
            failures.push_back((h, manifest::failure_line(r)));
            if failures.len() > 4 * LAST_FAILURES {
                failures.pop_front();
            }
        }
        if !plan_exists {
            names.entry(h).or_insert_with(|| r.granule.clone());
        }
    };
    if st.exists() {
        let idx = st.index()?;
        report.last_run = idx.last_run;
        st.for_each(|r| see(&r))?;
    } else if old_json.exists() {
        report.last_run = manifest::stream_json(&old_json, &mut |r| {
            see(&r);
            Ok(())
        })?;
    }
    let mut in_journals = 0;
    let mut first_started: Option<i64> = None;
    for j in &journals {
        // A journal being appended to may end in a torn line: it is skipped.
        in_journals += journal::for_each_record(j, |_, r| {
            if let Ok(t) = crate::time::Instant::parse(&r.started) {
                first_started = Some(first_started.map_or(t.0, |f: i64| f.min(t.0)));
            }
            see(&r)
        })
        .map_err(|e| ManifestError::Read {
            path: j.clone(),
            source: std::io::Error::other(crate::error::chain(&e)),
        })?;
    }
    let lock = super::dest_lock::lock_path(&journal::state_dir(state));
    if let Some(h) = std::fs::read(&lock)
        .ok()
        .and_then(|b| serde_json::from_slice::<Holder>(&b).ok())
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let since = crate::time::Instant::parse(&h.started)
            .map(|t| t.0)
            .ok()
            .or(first_started);
        report.running_rate = since
            .map(|t| (now - t).max(1) as f64)
            .map(|secs| in_journals as f64 / secs);
        report.running = Some((h, in_journals));
    }
    report.from_plan = plan_exists;
    if plan_exists {
        store::for_each_plan_key(state, |k| {
            report.tally.add(k, latest.get(&key_hash(k)).copied());
        })?;
    } else {
        for (h, g) in &names {
            report.tally.add(g, latest.get(h).copied());
        }
    }
    report.last_failures = failures
        .into_iter()
        .filter(|(h, _)| latest.get(h) == Some(&Status::Failed))
        .map(|(_, l)| l)
        .collect();
    // The same granule may have failed more than once: keep its last line only.
    let mut seen = std::collections::HashSet::new();
    let mut last: Vec<String> = report
        .last_failures
        .iter()
        .rev()
        .filter(|l| seen.insert(l.split(": ").next().unwrap_or(l).to_string()))
        .take(LAST_FAILURES)
        .cloned()
        .collect();
    last.reverse();
    report.last_failures = last;
    Ok(report)
}
