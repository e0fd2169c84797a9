//! edp on two Slurm nodes for real: `scripts/slurm-up.sh --nodes 2` runs two slurmd,
//! each in its own network and UTS namespace (hosts edp-n1 and edp-n2 on a bridge), and
//! `slurm/edp-multinode.sbatch` starts one rank on each with `srun --mpi=pmix` (Open
//! MPI over TCP between the namespaces). On a 30-granule set (SSH daily and monthly,
//! stress, T/S, velocity; native and lat-lon):
//! - two nodes make the same granules as one node, bit for bit (values, attributes,
//!   storage; only the creation dates and uuid differ from run to run);
//! - the same inside the Charliecloud image of scripts/container-build.sh (EDP_IMAGE);
//! - a node lost mid-run ends the job with nothing partial, and the resubmitted job
//!   makes only what is missing;
//! - Open MPI's mpirun inside a two-node allocation starts a rank on each node.
//!
//! Without root (or apt) the cluster cannot be started and the tests say SKIPPED and
//! pass; with EDP_REQUIRE_SLURM=1 (CI) that is a failure instead. The image test needs
//! EDP_TEST_IMAGE (an image built by scripts/container-build.sh; .ci/run builds one),
//! and fails without it when EDP_REQUIRE_IMAGE=1.

mod cluster;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cluster::*;

fn two_nodes(test: &str) -> bool {
    slurm_up_with(test, &["--nodes", "2"])
}

/// Submits slurm/edp-multinode.sbatch from `dir` for the 30-granule set into `dest`,
/// with `shape` (sbatch options) and `env`; the inputs go as EDP_* variables (or
/// EDP_TASKS in `env` instead of the jobs file). Returns the job id.
fn submit(dir: &Path, dest: &Path, shape: &[&str], env: &[(&str, &str)]) -> String {
    let data = dataset30();
    let mut cmd = sbatch(dir);
    cmd.env("EDP_SBATCH", repo().join("slurm/edp.sbatch"))
        .env("EDP_DEST", dest)
        .env("EDP_GRID", data.join("grid"))
        .env_remove("EDP_IMAGE")
        .env_remove("EDP_LAUNCHER")
        .env_remove("EDP_DEBUG_TASK_DELAY_MS");
    if env.iter().any(|(k, _)| *k == "EDP_TASKS") {
        cmd.env_remove("EDP_JOBS").env_remove("EDP_SOURCE");
    } else {
        cmd.env("EDP_JOBS", data.join("jobs.txt"))
            .env("EDP_SOURCE", data)
            .env_remove("EDP_TASKS");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // --no-requeue: after a node failure Slurm would requeue the job by itself (its
    // default); here the resubmission is the test's.
    cmd.args([
        "--parsable",
        "--no-requeue",
        "--cpus-per-task=1",
        "--mem-per-cpu=1G",
        "--time=30",
    ])
    .args(shape)
    .arg(repo().join("slurm/edp-multinode.sbatch"));
    let out = run(&mut cmd);
    assert!(out.status.success(), "sbatch: {}", text(&out));
    submitted_id(&out.stdout)
}

/// Submits, waits for the end and checks the job completed; returns the job's log.
fn run_job(dir: &Path, dest: &Path, shape: &[&str], env: &[(&str, &str)]) -> String {
    let id = submit(dir, dest, shape, env);
    let (state, code) = wait_job(&id, Duration::from_secs(600));
    let log = std::fs::read_to_string(dir.join(format!("edp-multi-{id}.log"))).unwrap_or_default();
    assert_eq!((state.as_str(), code), ("COMPLETED", 0), "job {id}:\n{log}");
    log
}

/// All 30 granules under `dest`, agreeing with the manifest, no temporary file left.
fn check_complete30(dest: &Path) {
    assert_eq!(
        check_consistent(dest),
        TASKS30,
        "granules done in {}",
        dest.display()
    );
    let m = manifest(dest);
    assert_eq!(last_run(&m, "failed"), 0);
    assert_eq!(last_run(&m, "interrupted"), false);
}

/// The one-node run (one rank, sbatch -N 1) the others are compared with; made once.
fn reference() -> &'static Path {
    static REF: OnceLock<PathBuf> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = workdir("multinode-reference");
        let dest = dir.join("out");
        run_job(&dir, &dest, &["--nodes=1", "--ntasks-per-node=1"], &[]);
        check_complete30(&dest);
        dest
    })
}

/// The hosts the summary names, by rank (`rank R on HOST`).
fn summary_hosts(dest: &Path) -> Vec<String> {
    read(&dest.join("edp-summary.txt"))
        .lines()
        .filter_map(|l| l.strip_prefix("rank ")?.split_once(" on "))
        .map(|(_, host)| host.to_string())
        .collect()
}

/// A two-rank run on two nodes: one rank on each, both made granules, the summary says
/// where each ran.
fn check_one_rank_per_node(dest: &Path, log: &str) {
    let m = manifest(dest);
    assert_eq!(last_run(&m, "ranks"), 2, "{log}");
    assert_eq!(
        summary_hosts(dest),
        ["edp-n1", "edp-n2"],
        "hosts of the ranks in the summary:\n{}",
        read(&dest.join("edp-summary.txt"))
    );
    assert_eq!(
        last_run(&m, "hosts"),
        serde_json::json!(["edp-n1", "edp-n2"])
    );
    let ranks: BTreeSet<_> = done(&m)
        .values()
        .map(|r| r["rank"].as_u64().unwrap())
        .collect();
    assert_eq!(ranks, BTreeSet::from([0, 1]), "ranks that made granules");
    assert!(
        log.contains("job ") && log.contains("on edp-n[1-2]"),
        "{log}"
    );
}

fn seconds(dest: &Path) -> f64 {
    last_run(&manifest(dest), "seconds").as_f64().unwrap()
}

#[test]
fn two_nodes_one_rank_each_make_what_one_node_makes() {
    let _one = serial();
    if !two_nodes("two_nodes_one_rank_each_make_what_one_node_makes") {
        return;
    }
    let srun = run(Command::new("srun").args(["-N", "2", "hostname"]));
    let names: BTreeSet<_> = String::from_utf8_lossy(&srun.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["edp-n1".to_string(), "edp-n2".to_string()]),
        "{}",
        text(&srun)
    );

    let one = reference();
    let dir = workdir("multinode-two");
    let dest = dir.join("out");
    let log = run_job(&dir, &dest, &["--nodes=2", "--ntasks-per-node=1"], &[]);
    check_complete30(&dest);
    check_one_rank_per_node(&dest, &log);
    assert!(
        log.contains("srun --ntasks=2 --cpus-per-task=1 --label --mpi=pmix"),
        "{log}"
    );
    assert_same_granules(one, &dest, "two nodes vs one");
    eprintln!(
        "30 granules: one node x 1 rank {:.2} s, two nodes x 1 rank {:.2} s",
        seconds(one),
        seconds(&dest)
    );
}

#[test]
fn two_nodes_inside_the_image_make_what_one_node_makes() {
    let _one = serial();
    let image = match std::env::var("EDP_TEST_IMAGE") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            assert!(
                !required("EDP_REQUIRE_IMAGE"),
                "EDP_REQUIRE_IMAGE=1 but EDP_TEST_IMAGE is not set (scripts/container-build.sh DIR makes DIR/edp.sqfs)"
            );
            eprintln!("SKIPPED two_nodes_inside_the_image: EDP_TEST_IMAGE not set");
            return;
        }
    };
    if !two_nodes("two_nodes_inside_the_image_make_what_one_node_makes") {
        return;
    }
    // The image's edp is this build's.
    let inside = run(Command::new("ch-run")
        .arg(&image)
        .args(["--", "edp", "--version"])
        .env("USER", "root"));
    let host = run(Command::new(edp()).arg("--version"));
    assert!(inside.status.success(), "ch-run: {}", text(&inside));
    assert_eq!(
        inside.stdout, host.stdout,
        "edp --version in and out of the image"
    );

    let one = reference();
    let dir = workdir("multinode-image");
    let dest = dir.join("out");
    let image = image.to_string_lossy().into_owned();
    let log = run_job(
        &dir,
        &dest,
        &["--nodes=2", "--ntasks-per-node=1"],
        &[("EDP_IMAGE", &image), ("EDP_BIN", "/nonexistent/edp")],
    );
    assert!(log.contains("ch-run -b "), "{log}");
    assert!(log.contains(&format!("{image} -- edp run")), "{log}");
    check_complete30(&dest);
    check_one_rank_per_node(&dest, &log);
    assert_same_granules(one, &dest, "two nodes in the image vs one node");
    eprintln!(
        "30 granules: one node {:.2} s, two nodes in the image {:.2} s",
        seconds(one),
        seconds(&dest)
    );
}

#[test]
fn a_node_lost_mid_run_and_the_resubmission_makes_only_what_is_missing() {
    let _one = serial();
    if !two_nodes("a_node_lost_mid_run_and_the_resubmission_makes_only_what_is_missing") {
        return;
    }
    let one = reference();
    let dir = workdir("multinode-node-lost");
    let dest = dir.join("out");
    // Each task starts 0.4 s late, so the node is lost mid-run.
    let first = submit(
        &dir,
        &dest,
        &["--nodes=2", "--ntasks-per-node=1"],
        &[("EDP_DEBUG_TASK_DELAY_MS", "400")],
    );
    let log = dir.join(format!("edp-multi-{first}.log"));
    let t = Instant::now();
    while granules_on_disk(&dest).len() < 4 {
        let (state, _) = job_state(&first);
        assert!(
            !finished(&state),
            "job {first} ended ({state}):\n{}",
            read(&log)
        );
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "no granules in 300 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let lose =
        run(Command::new(repo().join("scripts/slurm-up.sh")).args(["--lose-node", "edp-n2"]));
    assert!(lose.status.success(), "{}", text(&lose));
    let lost_at = Instant::now();
    let (state, code) = wait_job(&first, Duration::from_secs(180));
    let log1 = read(&log);
    eprintln!(
        "node lost: job {first} ended {state} (exit {code}) {:.1} s later",
        lost_at.elapsed().as_secs_f64()
    );
    assert_eq!(state, "NODE_FAIL", "{log1}");
    assert!(log1.contains("Node failure on edp-n2"), "{log1}");
    // Nothing partial under a final name: every granule there is whole.
    let left = granules_on_disk(&dest);
    assert!(
        (4..TASKS30).contains(&left.len()),
        "{} granules at the loss",
        left.len()
    );
    for g in &left {
        assert_eq!(
            contents(&dest.join(g)),
            contents(&one.join(g)),
            "{g} after the loss"
        );
    }

    // The node comes back; the job is resubmitted with the task list it made.
    assert!(two_nodes("node back"));
    let tasks = dir.join(format!("edp-multi-{first}.tasks.json"));
    let tasks = tasks.to_string_lossy().into_owned();
    let log2 = run_job(
        &dir,
        &dest,
        &["--nodes=2", "--ntasks-per-node=1"],
        &[("EDP_TASKS", &tasks)],
    );
    check_complete30(&dest);
    let m = manifest(&dest);
    let skipped = last_run(&m, "skipped").as_u64().unwrap() as usize;
    let made = last_run(&m, "done").as_u64().unwrap() as usize;
    eprintln!("resubmission: {skipped} granules kept from the lost run, {made} made");
    assert!(skipped > 0 && made > 0, "{log2}");
    assert_eq!(skipped + made, TASKS30);
    // What the first job recorded is kept, not made again.
    let this_run = last_run(&m, "run_id");
    let kept = done(&m)
        .values()
        .filter(|r| r["run_id"] != this_run)
        .count();
    assert_eq!(kept, skipped, "granules of the lost run kept");
    assert_same_granules(one, &dest, "lost node + resubmission vs one node");
}

#[test]
fn mpirun_inside_a_two_node_allocation() {
    let _one = serial();
    if !two_nodes("mpirun_inside_a_two_node_allocation") {
        return;
    }
    let dir = workdir("multinode-mpirun");
    let dest = dir.join("out");
    let tasks = task_list(&dir, &dest);
    let out = run(sbatch(&dir)
        .env("EDP_LAUNCHER", "mpirun")
        .env("EDP_SBATCH", repo().join("slurm/edp.sbatch"))
        .args([
            "--parsable",
            "--nodes=2",
            "--ntasks-per-node=1",
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
    let log = read(&dir.join(format!("edp-multi-{id}.log")));
    assert_eq!((state.as_str(), code), ("COMPLETED", 0), "{log}");
    assert!(log.contains("mpirun -np 2 --bind-to none"), "{log}");
    check_complete(&dest);
    assert_eq!(summary_hosts(&dest), ["edp-n1", "edp-n2"], "{log}");
}
