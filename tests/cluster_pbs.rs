//! pbs/edp.pbs run as a PBS server would run it, without one (Debian packages no PBS
//! server): the job script is started with the environment PBS sets in a job
//! (PBS_JOBID, PBS_O_WORKDIR, PBS_NODEFILE, ...), against this machine's Open MPI
//! `mpiexec`, with stand-ins for `qstat` (the job's walltime and select) and `qsub`
//! (records the resubmission). Torque and PBS Pro conventions are both covered, and the
//! drain before the walltime, driven by the script's own clock.

mod cluster;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cluster::*;

/// Fails the test without Open MPI's mpiexec: these tests need no PBS server, only
/// mpiexec (scripts/setup.sh installs it), so they run everywhere and never skip.
fn have_mpiexec(test: &str) -> bool {
    let ok = Command::new("mpiexec")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{test}: no mpiexec on PATH (scripts/setup.sh installs Open MPI)"
    );
    ok
}

/// `bin/qstat` and `bin/qsub` stand-ins in `dir`. qstat -f answers with the given
/// walltime and select (or fails, as on a machine without PBS, when `walltime` is
/// None); qsub writes its arguments, one a line, to `<dir>/qsub.args`.
fn stand_ins(dir: &Path, walltime: Option<&str>, select: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let qstat = match walltime {
        Some(w) => format!(
            "#!/bin/sh\n[ \"$1\" = -f ] || exit 1\necho \"Job Id: $2\"\n\
             echo \"    Resource_List.select = {select}\"\n\
             echo \"    Resource_List.walltime = {w}\"\n"
        ),
        None => "#!/bin/sh\necho 'qstat: cannot connect to server' >&2\nexit 1\n".to_string(),
    };
    let qsub = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\necho 9999.pbs-test\n",
        dir.join("qsub.args").display()
    );
    for (name, body) in [("qstat", qstat), ("qsub", qsub)] {
        let p = bin.join(name);
        std::fs::write(&p, body).unwrap();
        let _ = Command::new("chmod").arg("+x").arg(&p).status();
    }
    bin
}

/// The job script with the environment of a PBS job `id` in `dir`, its node file
/// listing this host `slots` times.
fn pbs_job(dir: &Path, id: &str, slots: usize, bin: &Path) -> Command {
    let nodefile = dir.join(format!("nodes-{id}"));
    std::fs::write(&nodefile, format!("{}\n", hostname()).repeat(slots)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("timeout");
    cmd.arg("600")
        .arg("bash")
        .arg(repo().join("pbs/edp.pbs"))
        .current_dir("/")
        .env("PATH", path)
        .env("PBS_JOBID", id)
        .env("PBS_JOBNAME", "edp")
        .env("PBS_O_WORKDIR", dir)
        .env("PBS_O_HOST", hostname())
        .env("PBS_NODEFILE", &nodefile)
        .env("PBS_ENVIRONMENT", "PBS_BATCH")
        .env("PBS_QUEUE", "workq")
        .env("TMPDIR", dir);
    for v in [
        "PBS_NUM_PPN",
        "PBS_NP",
        "NCPUS",
        "OMP_NUM_THREADS",
        "EDP_THREADS",
    ] {
        cmd.env_remove(v);
    }
    mpi_env(&mut cmd);
    cmd
}

#[test]
fn torque_job_from_a_jobs_file_with_two_ranks() {
    let _one = serial();
    if !have_mpiexec("torque_job_from_a_jobs_file_with_two_ranks") {
        return;
    }
    let data = dataset();
    let dir = workdir("pbs-torque");
    let dest = dir.join("out");
    let bin = stand_ins(&dir, None, "");
    // Torque: nodes=1:ppn=2 lists the host once per core and sets PBS_NUM_PPN.
    let out = run(pbs_job(&dir, "101.pbs-test", 2, &bin)
        .env("PBS_NUM_PPN", "2")
        .env("PBS_NP", "2")
        .env("EDP_JOBS", jobs_file(&dir))
        .env("EDP_SOURCE", data)
        .env("EDP_DEST", "out")
        .env("EDP_GRID", data.join("grid"))
        .env("EDP_RELEASE", "V4r4")
        .env("EDP_WALLTIME", "01:00:00"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Relative paths are relative to PBS_O_WORKDIR, as qsub users expect.
    check_complete(&dest);
    let m = manifest(&dest);
    assert_eq!(last_run(&m, "ranks"), 2);
    assert_eq!(last_run(&m, "threads_per_rank"), 1);
    assert!(stdout.contains("2 rank(s) x 1 thread(s)"), "{stdout}");
    // Open MPI got a hostfile with the host's rank slots.
    assert_eq!(
        std::fs::read_to_string(dir.join("edp-101.pbs-test.hosts")).unwrap(),
        format!("{} slots=2\n", hostname())
    );
    // The live log per job id holds what the job printed.
    let log = std::fs::read_to_string(dir.join("edp-101.pbs-test.log")).unwrap();
    assert!(log.contains("edp run exited with 0"), "{log}");
    let tasks = std::fs::read_to_string(dir.join("edp-101.pbs-test.tasks.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&tasks)
            .unwrap()
            .as_array()
            .map(|a| a.len()),
        Some(TASKS)
    );
    assert!(
        !dir.join("qsub.args").exists(),
        "a complete run resubmits nothing"
    );
}

#[test]
fn pbs_pro_job_drains_before_the_walltime_and_its_resubmission_finishes() {
    let _one = serial();
    if !have_mpiexec("pbs_pro_job_drains_before_the_walltime_and_its_resubmission_finishes") {
        return;
    }
    let dir = workdir("pbs-pro-drain");
    let dest = dir.join("out");
    let tasks = task_list(&dir, &dest);
    // select=1:ncpus=2:mpiprocs=2:ompthreads=1: the node file lists the host once per
    // mpiproc; OMP_NUM_THREADS is ompthreads. Walltime 12 s and a 9 s lead: the
    // script's clock asks for the drain 3 s in. The run uses the netCDF-only writer
    // (one thread compresses) at deflate 9, which takes several seconds here; the
    // default direct writer at level 5 finishes all 12 granules in about 1.5 s,
    // before any drain.
    let select = "1:ncpus=2:mpiprocs=2:ompthreads=1";
    let bin = stand_ins(&dir, Some("00:00:12"), select);
    let script = repo().join("pbs/edp.pbs");
    let out = run(pbs_job(&dir, "202.pbs-test", 2, &bin)
        .env("NCPUS", "2")
        .env("OMP_NUM_THREADS", "1")
        .env("EDP_TASKS", &tasks)
        .env("EDP_DEST", &dest)
        .env("EDP_DRAIN_SECONDS", "9")
        .env("EDP_RUN_ARGS", "--writer netcdf --deflate 9")
        .env("EDP_RESUBMITS", "2")
        .env("EDP_SCRIPT", &script));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit 3 = drained: {}",
        text(&out)
    );
    assert!(
        stdout.contains("walltime 00:00:12: the drain starts in 3 s"),
        "{stdout}"
    );
    assert!(stdout.contains("got SIGUSR1"), "{stdout}");
    let k = check_consistent(&dest);
    let m = manifest(&dest);
    assert!(k < TASKS, "{k} of {TASKS} done before the drain");
    assert_eq!(last_run(&m, "interrupted"), true);
    assert_eq!(last_run(&m, "done"), k);
    assert_eq!(last_run(&m, "not_run"), TASKS - k);
    eprintln!("drained with {k} of {TASKS} granules done");

    // The resubmission: after this job, same task list, same resources, one fewer left.
    let args: Vec<String> = std::fs::read_to_string(dir.join("qsub.args"))
        .expect("qsub was called")
        .lines()
        .map(String::from)
        .collect();
    let pos = |a: &str| args.iter().position(|x| x == a);
    let after = |a: &str| pos(a).map(|i| args[i + 1].clone());
    assert_eq!(after("-W").as_deref(), Some("depend=afterany:202.pbs-test"));
    let ls: Vec<_> = args
        .iter()
        .enumerate()
        .filter(|(_, a)| *a == "-l")
        .map(|(i, _)| args[i + 1].clone())
        .collect();
    assert_eq!(
        ls,
        vec![format!("select={select}"), "walltime=00:00:12".to_string()]
    );
    assert_eq!(args.last(), Some(&script.to_string_lossy().into_owned()));
    let vars: BTreeMap<String, String> = after("-v")
        .expect("-v")
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(vars["EDP_RESUBMITS"], "1");
    assert_eq!(Path::new(&vars["EDP_TASKS"]), tasks);
    assert_eq!(Path::new(&vars["EDP_DEST"]), dest);

    // Run that job as PBS would: its -v variables, a fresh walltime.
    let bin = stand_ins(&dir, Some("01:00:00"), select);
    std::fs::remove_file(dir.join("qsub.args")).unwrap();
    let mut job = pbs_job(&dir, "9999.pbs-test", 2, &bin);
    job.env("NCPUS", "2").env("OMP_NUM_THREADS", "1");
    for (k, v) in &vars {
        job.env(k, v);
    }
    let out = run(&mut job);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    check_complete(&dest);
    let m = manifest(&dest);
    assert_eq!(
        last_run(&m, "skipped"),
        k,
        "the drained job's granules are kept"
    );
    assert_eq!(last_run(&m, "done"), TASKS - k);
    assert!(
        !dir.join("qsub.args").exists(),
        "a complete run resubmits nothing"
    );
}

#[test]
fn job_script_refuses_to_run_outside_pbs() {
    let out = run(Command::new("bash")
        .arg(repo().join("pbs/edp.pbs"))
        .env_remove("PBS_JOBID"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not inside a PBS job"));
}
