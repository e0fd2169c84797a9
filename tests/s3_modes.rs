//! The three modes end to end with the `edp` binary against a real S3-compatible server
//! on 127.0.0.1: inputs and a grid tarball on S3 with local output (local/remote);
//! local inputs with output on S3; everything on S3 including the task list (remote);
//! an injected server error on one upload, the re-run that finishes it and the re-run
//! that uploads nothing; `edp sync` of a finished local tree.

mod s3_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use edp::ncio::NcReader;
use edp::storage::S3Url;
use s3_support::{edp, Proxy};

/// A synthetic LLC90 SSH dataset (2 months), its grid as a tarball, the jobs file, and
/// the granules made from it all locally: the reference every mode must reproduce.
struct Fixture {
    dir: tempfile::TempDir,
    local_granules: Vec<PathBuf>,
}

/// A temporary directory with synthetic LLC`n` inputs of the sea-surface-height
/// grouping only.
fn synth_ssh(n: usize, nz: usize, months: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cfg = edp::synth::SynthConfig {
        n,
        nz,
        months,
        variables: Some(vec![
            "SSH".into(),
            "SSHIBC".into(),
            "SSHNOIBC".into(),
            "ETAN".into(),
        ]),
        ..Default::default()
    };
    edp::synth::generate(&cfg, dir.path()).unwrap();
    dir
}

impl Fixture {
    fn new() -> Fixture {
        let dir = synth_ssh(90, 8, 2);
        std::fs::write(
            dir.path().join("jobs.txt"),
            "[0, 'native', 'AVG_MON', 'all']\n",
        )
        .unwrap();
        // The grid as EDP's local/remote example keeps it: one zipped tarball.
        let tgz = dir.path().join("ECCO_grid.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&tgz).unwrap(),
            flate2::Compression::fast(),
        );
        let mut t = tar::Builder::new(gz);
        t.append_dir_all("ECCO_grid", dir.path().join("grid"))
            .unwrap();
        t.into_inner().unwrap().finish().unwrap();

        let mut f = Fixture {
            dir,
            local_granules: vec![],
        };
        let out = f.path("local-out");
        let tasks = f.path("local-tasks.json");
        let o = f.edp_local(&[
            "tasks",
            "--jobs",
            &f.s("jobs.txt"),
            "--source",
            &f.s("V4r4"),
            "--dest",
            &out.to_string_lossy(),
            "--grid",
            &f.s("grid"),
            "-o",
            &tasks.to_string_lossy(),
        ]);
        ok(&o, "local tasks");
        ok(
            &f.edp_local(&["run", "--tasks", &tasks.to_string_lossy()]),
            "local run",
        );
        f.local_granules = nc_files(&out);
        assert_eq!(f.local_granules.len(), 2, "{:?}", f.local_granules);
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn s(&self, rel: &str) -> String {
        self.path(rel).to_string_lossy().into_owned()
    }

    fn edp_local(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_edp"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// Puts the model output, the grid tarball and the jobs' metadata on S3.
    fn upload_inputs(&self, bucket: &str) {
        s3_support::upload_tree(&self.path("V4r4"), bucket, "ecco/V4r4");
        s3_support::s3()
            .upload_file(
                &self.path("ECCO_grid.tar.gz"),
                &url(bucket, "ecco/grid/ECCO_grid.tar.gz"),
            )
            .unwrap();
    }
}

fn url(bucket: &str, key: &str) -> S3Url {
    S3Url {
        bucket: bucket.into(),
        key: key.into(),
    }
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn nc_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "nc") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The data variables of two granules are identical.
fn assert_same_data(a: &Path, b: &Path) {
    let (ra, rb) = (NcReader::open(a).unwrap(), NcReader::open(b).unwrap());
    for v in ["SSH", "SSHIBC", "SSHNOIBC", "ETAN", "XC", "YC", "Z"] {
        let (x, y) = match v {
            "Z" => (
                ra.read_f32(v).map(|x| x.len() as f32).unwrap_or(0.0),
                rb.read_f32(v).map(|x| x.len() as f32).unwrap_or(0.0),
            ),
            _ => {
                let (x, y) = (ra.read_f32(v).unwrap(), rb.read_f32(v).unwrap());
                assert!(!x.is_empty());
                assert!(
                    x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()) && x.len() == y.len(),
                    "{v} differs between {} and {}",
                    a.display(),
                    b.display()
                );
                continue;
            }
        };
        assert_eq!(x, y);
    }
}

/// The scratch directory holds nothing of ended processes.
fn assert_scratch_clean(scratch: &Path) {
    let left: Vec<String> = std::fs::read_dir(scratch)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("proc-") || n.starts_with("node-"))
        .collect();
    assert!(left.is_empty(), "scratch not cleaned at exit: {left:?}");
}

/// The tasks built from S3 inputs by `edp tasks`, written to `tasks.json`.
fn s3_tasks(f: &Fixture, bucket: &str, dest: &str, scratch: &Path, ep: &str) -> PathBuf {
    let tasks = f.path(&format!("tasks-{bucket}.json"));
    let o = edp(ep, scratch)
        .args(["tasks", "--jobs", &f.s("jobs.txt")])
        .args(["--source", &format!("s3://{bucket}/ecco")])
        .args(["--dest", dest])
        .args([
            "--grid",
            &format!("s3://{bucket}/ecco/grid/ECCO_grid.tar.gz"),
        ])
        .arg("-o")
        .arg(&tasks)
        .output()
        .unwrap();
    ok(&o, "edp tasks from S3");
    tasks
}

#[test]
fn local_remote_inputs_and_grid_tarball_on_s3_output_local() {
    let Some(ep) = s3_support::server("local_remote_inputs_on_s3") else {
        return;
    };
    let f = Fixture::new();
    let b = s3_support::bucket(&ep, "edp-in");
    f.upload_inputs(&b);
    let scratch = f.path("scratch");
    let out = f.path("out-from-s3");
    let tasks = s3_tasks(&f, &b, &out.to_string_lossy(), &scratch, &ep);
    let list = edp::tasks::read_task_list(&tasks).unwrap();
    assert_eq!(list.len(), 2);
    // EDP's convention: S3 inputs stay s3:// URLs in the task list.
    assert!(list[0].variables["SSH"][0][0]
        .starts_with(&format!("s3://{b}/ecco/V4r4/diags_monthly/SSH_mon_mean/")));

    let o = edp(&ep, &scratch)
        .args(["run", "--tasks"])
        .arg(&tasks)
        .output()
        .unwrap();
    ok(&o, "edp run with S3 inputs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    // The tarball was fetched and unpacked once for the whole run.
    let unpacks = stderr.lines().filter(|l| l.contains("] unpacked ")).count();
    assert_eq!(unpacks, 1, "{stderr}");
    let got = nc_files(&out);
    assert_eq!(got.len(), 2);
    for (a, b) in f.local_granules.iter().zip(&got) {
        assert_eq!(a.file_name(), b.file_name());
        assert_same_data(a, b);
    }
    assert_scratch_clean(&scratch);

    // Two MPI ranks on this node, one task each: the grid is fetched and unpacked once
    // for the node (the other rank waits on the lock and reuses it).
    // mpirun is part of the suite's set-up (scripts/setup.sh): no skipping here.
    assert!(
        s3_support::have_mpirun(),
        "no mpirun on PATH for the 2-rank part (scripts/setup.sh installs Open MPI)"
    );
    let out2 = f.path("out-from-s3-mpi");
    let tasks2 = s3_tasks(&f, &b, &out2.to_string_lossy(), &scratch, &ep);
    let o = s3_support::mpirun(2, &ep, &scratch)
        .args(["run", "--tasks"])
        .arg(&tasks2)
        .output()
        .unwrap();
    ok(&o, "edp run on 2 ranks with S3 inputs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    let count = |pat: &str| stderr.lines().filter(|l| l.contains(pat)).count();
    assert_eq!(count("] unpacked "), 1, "{stderr}");
    let fetches = stderr
        .lines()
        .filter(|l| l.contains("] fetched s3://") && l.contains("ECCO_grid.tar.gz"))
        .count();
    assert_eq!(fetches, 1, "one fetch of the tarball: {stderr}");
    assert_eq!(count("wrote "), 2, "{stderr}");
    let got = nc_files(&out2);
    assert_eq!(got.len(), 2);
    for (a, b) in f.local_granules.iter().zip(&got) {
        assert_same_data(a, b);
    }
    assert_scratch_clean(&scratch);
}

#[test]
fn output_on_s3_then_everything_on_s3_with_the_task_list() {
    let Some(ep) = s3_support::server("output_on_s3") else {
        return;
    };
    let f = Fixture::new();
    let b = s3_support::bucket(&ep, "edp-out");
    let scratch = f.path("scratch");
    let state = f.path("state");

    // Local inputs, output on S3.
    let tasks = f.path("tasks-out.json");
    let o = edp(&ep, &scratch)
        .args([
            "tasks",
            "--jobs",
            &f.s("jobs.txt"),
            "--source",
            &f.s("V4r4"),
        ])
        .args([
            "--dest",
            &format!("s3://{b}/granules"),
            "--grid",
            &f.s("grid"),
            "-o",
        ])
        .arg(&tasks)
        .output()
        .unwrap();
    ok(&o, "edp tasks");
    let o = edp(&ep, &scratch)
        .env("EDP_STATE_DIR", &state)
        .args(["run", "--tasks"])
        .arg(&tasks)
        .output()
        .unwrap();
    ok(&o, "edp run to S3");
    assert!(
        !f.path("s3:").exists(),
        "no local directory named after the URL"
    );
    let dl = f.path("downloaded");
    for local in &f.local_granules {
        let rel = local
            .strip_prefix(f.path("local-out"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let u = url(&b, &format!("granules/{rel}"));
        let (info, sha) = s3_support::s3()
            .head(&u)
            .unwrap()
            .unwrap_or_else(|| panic!("{u} missing"));
        let back = dl.join(&rel);
        s3_support::s3().download(&u, &back).unwrap();
        assert_same_data(local, &back);
        assert_eq!(
            sha.as_deref(),
            Some(edp::storage::sha256_file(&back).unwrap().as_str())
        );
        // The published manifest records the upload: size, sha256 and ETag.
        let m: serde_json::Value = serde_json::from_slice(
            &s3_support::s3()
                .get_bytes(&url(&b, "granules/edp-manifest.json"))
                .unwrap(),
        )
        .unwrap();
        let rec = m["granules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["granule"] == rel.as_str())
            .unwrap_or_else(|| panic!("{rel} not in the manifest: {m}"));
        assert_eq!(rec["status"], "done");
        assert_eq!(rec["size"].as_u64(), Some(info.size));
        assert_eq!(rec["sha256"].as_str(), sha.as_deref());
        assert_eq!(rec["etag"].as_str(), info.etag.as_deref());
    }
    assert_scratch_clean(&scratch);

    // Remote mode: inputs, grid tarball, task list and output all on S3, and a fresh
    // state directory (a new container) starting from the published manifest.
    f.upload_inputs(&b);
    let tasks = s3_tasks(&f, &b, &format!("s3://{b}/remote-out"), &scratch, &ep);
    s3_support::s3()
        .upload_file(&tasks, &url(&b, "tasks/tasks.json"))
        .unwrap();
    let o = edp(&ep, &scratch)
        .env("EDP_STATE_DIR", f.path("state-remote"))
        .args(["run", "--tasks", &format!("s3://{b}/tasks/tasks.json")])
        .output()
        .unwrap();
    ok(&o, "edp run in remote mode");
    let objs = s3_support::s3()
        .objects_under(&url(&b, "remote-out"))
        .unwrap();
    let ncs: Vec<&String> = objs.keys().filter(|k| k.ends_with(".nc")).collect();
    assert_eq!(ncs.len(), 2, "{objs:?}");
    assert!(objs.contains_key("edp-manifest.json"));
    let o = edp(&ep, &scratch)
        .env("EDP_STATE_DIR", f.path("state-remote-2"))
        .args(["run", "--tasks", &format!("s3://{b}/tasks/tasks.json")])
        .output()
        .unwrap();
    ok(
        &o,
        "edp run in remote mode again, from the published manifest",
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("all 2 task(s) already done"),
        "{stdout}\n{stderr}"
    );
    assert_scratch_clean(&scratch);
}

#[test]
fn an_upload_error_fails_only_its_task_and_reruns_finish_then_upload_nothing() {
    let Some(ep) = s3_support::server("upload_error_and_reruns") else {
        return;
    };
    let f = Fixture::new();
    let b = s3_support::bucket(&ep, "edp-fault");
    let proxy = Proxy::start(&ep);
    let scratch = f.path("scratch");
    let state = f.path("state");
    let tasks = f.path("tasks-fault.json");
    let o = edp(&proxy.endpoint, &scratch)
        .args([
            "tasks",
            "--jobs",
            &f.s("jobs.txt"),
            "--source",
            &f.s("V4r4"),
        ])
        .args([
            "--dest",
            &format!("s3://{b}/out"),
            "--grid",
            &f.s("grid"),
            "-o",
        ])
        .arg(&tasks)
        .output()
        .unwrap();
    ok(&o, "edp tasks");
    let run = || {
        edp(&proxy.endpoint, &scratch)
            .env("EDP_STATE_DIR", &state)
            .args(["run", "--tasks"])
            .arg(&tasks)
            .output()
            .unwrap()
    };
    let bad = "SEA_SURFACE_HEIGHT_mon_mean_1992-02";
    let good = "SEA_SURFACE_HEIGHT_mon_mean_1992-01";
    proxy.fail(Some(bad));
    let o = run();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    // A clear message: the object, the operation, the status, the retries.
    let all = format!("{stdout}{stderr}");
    let line = all
        .lines()
        .find(|l| l.contains(bad) && l.contains("failed"))
        .unwrap_or_else(|| panic!("no failure line for {bad}:\n{all}"));
    assert!(line.contains("S3 PUT of s3://"), "{line}");
    assert!(line.contains("HTTP 500"), "{line}");
    // The client retried (EDP_S3_RETRIES=2) before giving up.
    assert_eq!(
        proxy.count("PUT", bad),
        3,
        "{:?}",
        proxy.state.lock().unwrap().log
    );
    // Only that task failed: the other granule is there, nothing under the failed key.
    let keys: Vec<String> = s3_support::s3()
        .objects_under(&url(&b, "out"))
        .unwrap()
        .into_keys()
        .collect();
    assert!(keys.iter().any(|k| k.contains(good)), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains(bad)), "{keys:?}");
    assert!(keys.iter().any(|k| k == "edp-manifest.json"), "{keys:?}");

    // The fault is gone: a re-run makes only the failed granule.
    proxy.fail(None);
    proxy.clear();
    let o = run();
    ok(&o, "re-run after the upload error");
    assert_eq!(
        proxy.count("PUT", ".nc"),
        1,
        "{:?}",
        proxy.state.lock().unwrap().log
    );
    assert_eq!(proxy.count("PUT", bad), 1);
    let keys = s3_support::s3().objects_under(&url(&b, "out")).unwrap();
    assert_eq!(keys.keys().filter(|k| k.ends_with(".nc")).count(), 2);

    // Everything is done: a second re-run uploads no granule.
    proxy.clear();
    let o = run();
    ok(&o, "second re-run");
    assert_eq!(
        proxy.count("PUT", ".nc"),
        0,
        "{:?}",
        proxy.state.lock().unwrap().log
    );
    assert_eq!(proxy.count("POST", ".nc"), 0);
    assert_scratch_clean(&scratch);
}

#[test]
fn sync_mirrors_a_finished_tree_and_skips_what_is_there() {
    let Some(ep) = s3_support::server("sync") else {
        return;
    };
    let f = Fixture::new();
    let b = s3_support::bucket(&ep, "edp-sync");
    let scratch = f.path("scratch");
    let sync = |dry: bool| {
        let mut c = edp(&ep, &scratch);
        c.arg("sync")
            .arg(f.path("local-out"))
            .arg(format!("s3://{b}/pub"));
        if dry {
            c.arg("--dry-run");
        }
        c.output().unwrap()
    };
    let o = sync(false);
    ok(&o, "sync");
    let stdout = String::from_utf8_lossy(&o.stdout);
    // Two granules, the manifest and the summary.
    assert!(stdout.contains("uploaded 4 file(s)"), "{stdout}");
    let objs = s3_support::s3().objects_under(&url(&b, "pub")).unwrap();
    assert!(objs.contains_key("edp-manifest.json"));
    assert!(!objs.keys().any(|k| k.starts_with(".edp")), "{objs:?}");
    for local in &f.local_granules {
        let rel = local
            .strip_prefix(f.path("local-out"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(objs[&rel].size, std::fs::metadata(local).unwrap().len());
    }
    let o = sync(false);
    ok(&o, "second sync");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("uploaded 0 file(s)") && stdout.contains("4 already there"),
        "{stdout}"
    );
    // A changed file of the same size is found by its checksum (the summary is not in
    // the manifest, so its sha256 is computed), and a new file is uploaded.
    let summary = f.path("local-out/edp-summary.txt");
    let mut bytes = std::fs::read(&summary).unwrap();
    bytes[0] = if bytes[0] == b'#' { b'%' } else { b'#' };
    std::fs::write(&summary, &bytes).unwrap();
    std::fs::write(f.path("local-out/README"), b"new").unwrap();
    let o = sync(true);
    ok(&o, "dry-run sync");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("edp-summary.txt") && stdout.contains("(content differs)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("README") && stdout.contains("(new)"),
        "{stdout}"
    );
    assert!(stdout.contains("would upload 2 file(s)"), "{stdout}");
}

#[test]
fn latlon_with_inputs_grid_and_factors_on_s3() {
    let Some(ep) = s3_support::server("latlon_factors_on_s3") else {
        return;
    };
    let f = Fixture::new();
    let b = s3_support::bucket(&ep, "edp-ll");
    std::fs::write(
        f.path("latlon-jobs.txt"),
        "[0, 'latlon', 'AVG_MON', 'all']\n",
    )
    .unwrap();
    let factors = f.path("factors.bin");
    let o = f.edp_local(&[
        "factors",
        "--grid",
        &f.s("grid"),
        "-o",
        &factors.to_string_lossy(),
    ]);
    ok(&o, "edp factors");

    // Reference: all local.
    let local_out = f.path("ll-local");
    let tasks = f.path("ll-local.json");
    ok(
        &f.edp_local(&[
            "tasks",
            "--jobs",
            &f.s("latlon-jobs.txt"),
            "--source",
            &f.s("V4r4"),
            "--dest",
            &local_out.to_string_lossy(),
            "--grid",
            &f.s("grid"),
            "--factors",
            &factors.to_string_lossy(),
            "-o",
            &tasks.to_string_lossy(),
        ]),
        "local lat-lon tasks",
    );
    ok(
        &f.edp_local(&["run", "--tasks", &tasks.to_string_lossy()]),
        "local lat-lon run",
    );
    let reference = nc_files(&local_out);
    assert_eq!(reference.len(), 2);

    // Inputs, grid tarball and factors on S3; output local (EDP's local/remote example).
    f.upload_inputs(&b);
    s3_support::s3()
        .upload_file(&factors, &url(&b, "ecco/factors/edp_factors.bin"))
        .unwrap();
    let scratch = f.path("scratch");
    let out = f.path("ll-from-s3");
    let tasks = f.path("ll-s3.json");
    let o = edp(&ep, &scratch)
        .args(["tasks", "--jobs", &f.s("latlon-jobs.txt")])
        .args(["--source", &format!("s3://{b}/ecco")])
        .args(["--dest", &out.to_string_lossy()])
        .args(["--grid", &format!("s3://{b}/ecco/grid/ECCO_grid.tar.gz")])
        .args([
            "--factors",
            &format!("s3://{b}/ecco/factors/edp_factors.bin"),
            "-o",
        ])
        .arg(&tasks)
        .output()
        .unwrap();
    ok(&o, "lat-lon tasks from S3");
    let o = edp(&ep, &scratch)
        .args(["run", "--tasks"])
        .arg(&tasks)
        .output()
        .unwrap();
    ok(&o, "lat-lon run with factors on S3");
    let stderr = String::from_utf8_lossy(&o.stderr);
    let fetched = stderr
        .lines()
        .filter(|l| l.contains("] fetched s3://") && l.contains("edp_factors.bin"))
        .count();
    assert_eq!(fetched, 1, "factors fetched once: {stderr}");
    assert!(!stderr.contains("building mapping factors"), "{stderr}");
    let got = nc_files(&out);
    assert_eq!(got.len(), 2);
    for (a, b) in reference.iter().zip(&got) {
        assert_eq!(a.file_name(), b.file_name());
        let (ra, rb) = (NcReader::open(a).unwrap(), NcReader::open(b).unwrap());
        for v in ["SSH", "SSHIBC", "SSHNOIBC"] {
            let (x, y) = (ra.read_f32(v).unwrap(), rb.read_f32(v).unwrap());
            assert_eq!(x.len(), 720 * 360);
            assert!(
                x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{v} differs"
            );
        }
    }
    assert_scratch_clean(&scratch);
}

/// `--factors` naming an S3 object that cannot be fetched (no such key, no such bucket)
/// is a configuration error found before any work: exit 2, the URL and the cause in the
/// message, and at the destination (local, or on S3 with its local state directory) no
/// granule, no journal, and no factors built instead.
#[test]
fn factors_on_s3_that_cannot_be_fetched_stop_the_run_before_any_work() {
    let Some(ep) = s3_support::server("unfetchable_factors_on_s3") else {
        return;
    };
    let dir = synth_ssh(12, 5, 1);
    let jobs = dir.path().join("jobs.txt");
    std::fs::write(&jobs, "[0, 'latlon', 'AVG_MON', 'all']\n").unwrap();
    let b = s3_support::bucket(&ep, "edp-nofactors");
    // A bucket name nobody made.
    let gone = format!("edp-gone-{}", uuid::Uuid::new_v4().simple());
    let missing_key = format!("s3://{b}/ecco/factors/edp_factors.bin");
    let cases = [
        (missing_key.clone(), "no such object".to_string(), None),
        (
            format!("s3://{gone}/ecco/factors/edp_factors.bin"),
            format!("no such bucket \"{gone}\""),
            None,
        ),
        (
            missing_key,
            "no such object".to_string(),
            Some(format!("s3://{b}/out")),
        ),
    ];
    for (i, (factors, cause, s3_dest)) in cases.into_iter().enumerate() {
        let case = dir.path().join(format!("case-{i}"));
        let (local_dest, state, cache) = (case.join("out"), case.join("state"), case.join("cache"));
        let dest = s3_dest
            .clone()
            .unwrap_or_else(|| local_dest.to_string_lossy().into_owned());
        let o = edp(&ep, &case.join("scratch"))
            .arg("run")
            .arg("--jobs")
            .arg(&jobs)
            .arg("--source")
            .arg(dir.path().join("V4r4"))
            .arg("--grid")
            .arg(dir.path().join("grid"))
            .args(["--dest", &dest, "--factors", &factors])
            .arg("--factors-cache")
            .arg(&cache)
            .env("EDP_STATE_DIR", &state)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "case {i}: {stderr}");
        let error = stderr
            .lines()
            .find(|l| l.starts_with("edp: error:"))
            .unwrap_or_else(|| panic!("case {i}: no error line:\n{stderr}"));
        assert!(
            error.contains("--factors") && error.contains(&factors) && error.contains(&cause),
            "case {i}: the error does not name {factors} and `{cause}`: {error}"
        );
        assert!(!stderr.contains("building mapping factors"), "{stderr}");
        assert!(!cache.exists(), "case {i}: factors were built instead");
        // Nothing at the destination: no granule, no journal (nor any other file).
        for root in [&local_dest, &state] {
            let written: Vec<_> = walkdir::WalkDir::new(root)
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
                .map(|e| e.into_path())
                .collect();
            assert!(written.is_empty(), "case {i}: written: {written:?}");
        }
        let objects = s3_support::s3().list(&url(&b, "")).unwrap();
        assert!(objects.is_empty(), "case {i}: objects written: {objects:?}");
    }
}
