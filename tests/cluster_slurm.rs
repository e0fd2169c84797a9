//! slurm/edp.sbatch and slurm/edp-multinode.sbatch run for real, on a single-node Slurm
//! (Debian's slurm-wlm 22.05 with munge and PMIx) that `scripts/slurm-up.sh` installs
//! and starts: two MPI ranks under srun on the demo data, the warning signal mid-run
//! with the drained state and the resubmitted job that finishes it, and the multi-node
//! script with Open MPI's mpirun as launcher.
//!
//! Without root (or apt) Slurm cannot be started and the tests say SKIPPED and pass;
//! with EDP_REQUIRE_SLURM=1 (CI) that is a failure instead.

mod cluster;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster::*;

#[test]
fn sbatch_wait_two_ranks_from_a_jobs_file() {
    let _one = serial();
    if !slurm_up("sbatch_wait_two_ranks_from_a_jobs_file") {
        return;
    }
    let data = dataset();
    let dir = workdir("slurm-jobs");
    let jobs = jobs_file(&dir);
    let dest = dir.join("out");
    // The script's own #SBATCH lines ask for 4 x 2 cores; this node has 2.
    let out = run(sbatch(&dir)
        .args([
            "--wait",
            "--parsable",
            "--ntasks=2",
            "--cpus-per-task=1",
            "--time=30",
        ])
        .arg(repo().join("slurm/edp.sbatch"))
        .arg("--jobs")
        .arg(&jobs)
        .arg("--source")
        .arg(data)
        .arg("--dest")
        .arg("out")
        .arg("--grid")
        .arg(data.join("grid"))
        .args(["--release", "V4r4"]));
    let id = submitted_id(&out.stdout);
    let log = dir.join(format!("edp-{id}.log"));
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(0),
        "sbatch --wait: {}\n--- job log\n{log_text}",
        text(&out)
    );
    assert_eq!(job_state(&id), ("COMPLETED".to_string(), 0));

    // The task list the job made from the jobs file, kept by job id.
    let tasks: serde_json::Value =
        serde_json::from_str(&read(&dir.join(format!("edp-{id}.tasks.json")))).unwrap();
    assert_eq!(tasks.as_array().map(|a| a.len()), Some(TASKS));
    check_complete(&dest);
    let m = manifest(&dest);
    assert_eq!(
        last_run(&m, "ranks"),
        2,
        "one MPI world of the two srun tasks"
    );
    assert_eq!(last_run(&m, "threads_per_rank"), 1);
    // Both ranks made granules, and logged into the job's log with their labels.
    let ranks: std::collections::BTreeSet<_> = done(&m)
        .values()
        .map(|r| r["rank"].as_u64().unwrap())
        .collect();
    assert_eq!(ranks.into_iter().collect::<Vec<_>>(), vec![0, 1]);
    for label in ["0: ", "1: "] {
        assert!(
            log_text.lines().any(|l| l.starts_with(label)),
            "no line of rank {label:?} in {}:\n{log_text}",
            log.display()
        );
    }
    assert!(log_text.contains("srun --ntasks=2 --cpus-per-task=1 --label --mpi=pmix"));
}

/// Once job `id` has put more than `before` granules in place, sends it what
/// `--signal=B:USR1@300` sends before the time limit (scancel delivers it at once; the
/// time-limit path is late by up to a minute), waits for the end and checks the drained
/// state: exit 3, the finished granules complete and recorded, the rest not started,
/// no partial file. Returns the granules done and the job's log.
fn drain_mid_run(dir: &Path, dest: &Path, id: &str, before: usize) -> (usize, String) {
    let log = dir.join(format!("edp-{id}.log"));
    let t = Instant::now();
    while granules_on_disk(dest).len() <= before {
        let (state, _) = job_state(id);
        assert!(
            !finished(&state),
            "job {id} ended ({state}) before making a granule:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "no granule in 180 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sig = run(Command::new("scancel").args(["--signal=USR1", "--batch", id]));
    assert!(sig.status.success(), "scancel: {}", text(&sig));
    let (state, code) = wait_job(id, Duration::from_secs(180));
    let log_text = read(&log);
    assert_eq!(
        (state.as_str(), code),
        ("FAILED", 3),
        "exit 3 = drained:\n{log_text}"
    );
    assert!(log_text.contains("got SIGUSR1"), "{log_text}");
    let k = check_consistent(dest);
    let m = manifest(dest);
    assert!(
        (before + 1..TASKS).contains(&k),
        "{k} of {TASKS} done at the drain"
    );
    assert_eq!(last_run(&m, "interrupted"), true);
    assert_eq!(last_run(&m, "skipped"), before);
    assert_eq!(last_run(&m, "done"), k - before);
    assert_eq!(last_run(&m, "not_run"), TASKS - k);
    (k, log_text)
}

#[test]
fn warning_signal_drains_and_the_resubmitted_job_finishes() {
    let _one = serial();
    if !slurm_up("warning_signal_drains_and_the_resubmitted_job_finishes") {
        return;
    }
    let dir = workdir("slurm-signal");
    let dest = dir.join("out");
    let tasks = task_list(&dir, &dest);
    // Each task starts 0.7 s late, so the runs last long enough for the signal to
    // come mid-run however fast the granules are made (the resubmitted job inherits it).
    let out = run(sbatch(&dir)
        .env("EDP_RESUBMITS", "1")
        .env("EDP_DEBUG_TASK_DELAY_MS", "700")
        .args(["--parsable", "--ntasks=2", "--cpus-per-task=1", "--time=30"])
        // On the two-node cluster (CI), one rank on each: the drain and the
        // resubmission (which keeps the node count) span both nodes.
        .args(if nodes() >= 2 {
            &["--nodes=2"][..]
        } else {
            &[]
        })
        .arg(repo().join("slurm/edp.sbatch"))
        .arg("--tasks")
        .arg(&tasks)
        .arg("--dest")
        .arg(&dest));
    assert!(out.status.success(), "sbatch: {}", text(&out));
    let first = submitted_id(&out.stdout);
    let (k1, log1) = drain_mid_run(&dir, &dest, &first, 0);
    let made_first = done(&manifest(&dest));

    // It resubmitted itself, queued behind itself, with one resubmission fewer left.
    let second = log1
        .lines()
        .find_map(|l| l.strip_prefix("Submitted batch job "))
        .unwrap_or_else(|| panic!("no resubmission in the log:\n{log1}"))
        .trim()
        .to_string();
    assert!(
        log1.contains(&format!("--dependency=afterany:{first}")),
        "{log1}"
    );
    assert!(log1.contains("EDP_RESUBMITS=0"), "{log1}");

    // Drain the resubmitted job too: with none left it prints the command that resumes.
    let (k2, log2) = drain_mid_run(&dir, &dest, &second, k1);
    assert!(!log2.contains("resubmitting"), "{log2}");
    let resume = log2
        .lines()
        .find_map(|l| {
            l.split_once("to resume where it stopped, run: ")
                .map(|x| x.1)
        })
        .unwrap_or_else(|| panic!("no resume command in the log:\n{log2}"))
        .to_string();
    assert!(resume.starts_with("sbatch "), "{resume}");

    // That command, as a user would paste it, from the submit directory.
    let out = run(mpi_env(
        Command::new("bash")
            .arg("-c")
            .arg(&resume)
            .current_dir(&dir)
            .env_remove("EDP_RESUBMITS"),
    ));
    assert!(out.status.success(), "{resume}: {}", text(&out));
    let third = String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("Submitted batch job ")
        .unwrap_or_else(|| panic!("{}", text(&out)))
        .to_string();
    let (state, code) = wait_job(&third, Duration::from_secs(300));
    let log3 = read(&dir.join(format!("edp-{third}.log")));
    assert_eq!((state.as_str(), code), ("COMPLETED", 0), "{log3}");
    check_complete(&dest);
    let m = manifest(&dest);
    assert_eq!(
        last_run(&m, "skipped"),
        k2,
        "the drained runs' granules are kept"
    );
    assert_eq!(last_run(&m, "done"), TASKS - k2);
    let after = done(&m);
    for (g, r) in &made_first {
        assert_eq!(
            after[g]["run_id"], r["run_id"],
            "{g} was made again by a resumed run"
        );
    }
}

#[test]
fn multinode_script_with_mpirun_inside_the_allocation() {
    let _one = serial();
    if !slurm_up("multinode_script_with_mpirun_inside_the_allocation") {
        return;
    }
    let dir = workdir("slurm-multinode");
    let dest = dir.join("out");
    let tasks = task_list(&dir, &dest);
    // One node here: the command line overrides the script's 4 x 16 x 2 shape. The
    // time limit must exceed the script's 600 s warning, or the warning comes at once.
    let out = run(sbatch(&dir)
        .env("EDP_LAUNCHER", "mpirun")
        .env("EDP_SBATCH", repo().join("slurm/edp.sbatch"))
        .args([
            "--parsable",
            "--nodes=1",
            "--ntasks-per-node=2",
            "--cpus-per-task=1",
            "--mem-per-cpu=1G",
            "--time=30",
        ])
        .arg(repo().join("slurm/edp-multinode.sbatch"))
        .arg("--tasks")
        .arg(&tasks)
        .arg("--dest")
        .arg(&dest));
    assert!(out.status.success(), "sbatch: {}", text(&out));
    let id = submitted_id(&out.stdout);
    let (state, code) = wait_job(&id, Duration::from_secs(300));
    // %x-%j: the multi-node script's job name.
    let log_text = read(&dir.join(format!("edp-multi-{id}.log")));
    assert_eq!((state.as_str(), code), ("COMPLETED", 0), "{log_text}");
    assert!(
        log_text.contains("mpirun -np 2 --bind-to none"),
        "{log_text}"
    );
    check_complete(&dest);
    assert_eq!(last_run(&manifest(&dest), "ranks"), 2);
}

#[test]
fn job_script_refuses_to_run_outside_slurm_and_bad_arguments() {
    // No Slurm needed: the checks before any work.
    let script = repo().join("slurm/edp.sbatch");
    let out = run(Command::new("bash")
        .arg(&script)
        .args(["--tasks", "x.json"])
        .env_remove("SLURM_JOB_ID"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not inside a Slurm job"));
    let out = run(Command::new("bash")
        .arg(&script)
        .arg("--frobnicate")
        .env("SLURM_JOB_ID", "1"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument --frobnicate"));
    let out = run(Command::new("bash")
        .arg(&script)
        .env("SLURM_JOB_ID", "1")
        .env("SLURM_SUBMIT_DIR", env!("CARGO_TARGET_TMPDIR"))
        .env("EDP_BIN", edp())
        .env_remove("EDP_TASKS")
        .env_remove("EDP_JOBS"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --tasks FILE"));
}
