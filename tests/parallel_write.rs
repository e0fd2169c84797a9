//! One granule written by a group of ranks, by each group writer of the build:
//! `gather` (compressed chunks sent to the group's first rank; every build) and
//! `collective` (parallel HDF5; the `parallel-hdf5` build:
//! `scripts/cargo-par test --release --test parallel_write`). `edp run` under real
//! `mpirun -np 2` and `-np 3` with `--ranks-per-granule`, each granule compared with the
//! one a single rank writes (same values bit for bit, same attributes, same chunking and
//! compression; for `gather` also the same compressed chunk bytes), and a failure
//! injected on one rank of a group leaves no file under the final name (nor a temporary
//! one), fails only that task, and its record carries the failing rank's message.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{files_under, Sample};
use edp::ncio::{AttrValue, NcReader};
use edp::run::journal::Status;
use edp::run::manifest::Manifest;
use edp::storage;
use edp::tasks::{self, Task};

const EDP: &str = env!("CARGO_BIN_EXE_edp");
const VELOCITY: &str = "OCEAN_VELOCITY";

/// The group writers this build has.
fn writers() -> Vec<&'static str> {
    let mut w = vec!["gather"];
    if cfg!(feature = "parallel-hdf5") {
        w.push("collective");
    }
    w
}
const SSH: &str = "SEA_SURFACE_HEIGHT";

/// Global attributes that differ between any two runs (creation time, identifiers).
const PER_RUN: &[&str] = &[
    "date_created",
    "date_issued",
    "date_metadata_modified",
    "date_modified",
    "uuid",
];

/// A 3D (three velocity fields, 12 levels) and a 2D granule on a small LLC grid, as a
/// task list with granules under `dest`.
fn task_list(s: &Sample, dest: &Path) -> (PathBuf, Vec<Task>) {
    let mut list = Vec::new();
    for g in [VELOCITY, SSH] {
        list.extend(s.tasks(g));
    }
    let out = s.out().to_string_lossy().into_owned();
    for t in &mut list {
        t.granule = t.granule.replace(&out, &dest.to_string_lossy());
    }
    let file = dest.with_extension("tasks.json");
    tasks::write_task_list(&file, &list).unwrap();
    (file, list)
}

fn edp(np: usize, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = if np == 0 {
        Command::new(EDP)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["--oversubscribe", "-np", &np.to_string(), EDP]);
        c
    };
    c.args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env_remove("EDP_MPI")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run edp / mpirun")
}

/// `edp run` of the task list `list` under `mpirun -np NP`, every 3D granule by a group
/// of all NP ranks writing by `writer`.
fn run_group(np: usize, writer: &str, list: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let g = np.to_string();
    let args = [
        "run",
        "--tasks",
        list.to_str().unwrap(),
        "--ranks-per-granule",
        &g,
        "--group-writer",
        writer,
    ];
    edp(np, &[&args[..], extra].concat(), env)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Everything in a granule but the per-run attributes: dimensions, and per variable its
/// type, dimensions, attributes, storage and values (as bit patterns).
fn contents(path: &Path) -> BTreeMap<String, String> {
    let r = NcReader::open(path).unwrap();
    let mut out = BTreeMap::new();
    out.insert("/dims".into(), format!("{:?}", r.dims()));
    let globals: Vec<(String, AttrValue)> = r
        .global_attrs()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !PER_RUN.contains(&k.as_str()))
        .collect();
    out.insert("/globals".into(), format!("{globals:?}"));
    for v in r.var_names() {
        let t = r.var_type(&v).unwrap();
        let bits = common::value_bits(&r, &v);
        out.insert(
            v.clone(),
            format!(
                "{t:?} {:?} {:?} {:?} {bits:?}",
                r.var_dims(&v).unwrap(),
                r.var_attrs(&v).unwrap(),
                r.var_storage(&v).unwrap()
            ),
        );
    }
    out
}

fn granules(dest: &Path) -> Vec<String> {
    files_under(dest)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "nc"))
        .map(|p| p.strip_prefix(dest).unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The stored (compressed) bytes of every chunk of `var`, by chunk offset.
fn stored_chunk_bytes(path: &Path, var: &str, rank: usize) -> BTreeMap<Vec<u64>, Vec<u8>> {
    let chunks = edp::ncio::stored_chunks(path, &[(var, rank)]).unwrap();
    let file = std::fs::read(path).unwrap();
    chunks[0]
        .chunks
        .iter()
        .map(|c| {
            let at = c.addr as usize;
            (c.offset.clone(), file[at..at + c.size as usize].to_vec())
        })
        .collect()
}

#[cfg(feature = "parallel-hdf5")]
#[test]
fn version_names_the_parallel_build() {
    let o = edp(0, &["--version"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(v.contains("parallel-hdf5"), "{v}");
}

#[test]
fn a_group_of_2_or_3_ranks_writes_the_granule_one_rank_writes() {
    let s = Sample::new(24, 12, 1, &["UVEL", "VVEL", "WVELMASS", "SSH"]);
    let single = s.dir.path().join("single");
    let (list, tasks) = task_list(&s, &single);
    assert_eq!(tasks.len(), 2, "one 3D and one 2D granule");
    let o = edp(0, &["run", "--tasks", list.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let expected = granules(&single);
    assert_eq!(expected.len(), 2, "{expected:?}");

    for (writer, np) in writers().into_iter().flat_map(|w| [(w, 2usize), (w, 3)]) {
        let dest = s.dir.path().join(format!("{writer}{np}"));
        let (list, _) = task_list(&s, &dest);
        let o = run_group(np, writer, &list, &[], &[]);
        assert!(o.status.success(), "{}", text(&o));
        let log = String::from_utf8_lossy(&o.stderr);
        assert!(
            log.contains(&format!("(1 by groups of {np})")),
            "the 3D granule went to a group of {np}:\n{log}"
        );
        assert_eq!(granules(&dest), expected);
        for name in &expected {
            let (a, b) = (contents(&single.join(name)), contents(&dest.join(name)));
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
            for (k, va) in &a {
                assert!(
                    va == &b[k],
                    "{name} by {writer} at -np {np}: `{k}` differs from one rank's:\n{va}\n{}",
                    b[k]
                );
            }
        }
        // Gathering sends the chunks the single-rank writer's own compressor made.
        let vel = expected.iter().find(|g| g.contains(VELOCITY)).unwrap();
        if writer == "gather" {
            for var in ["UVEL", "VVEL", "WVEL"] {
                let one = stored_chunk_bytes(&single.join(vel), var, 5);
                assert!(one.len() >= 12, "{var}: at least a chunk per level");
                assert!(
                    one == stored_chunk_bytes(&dest.join(vel), var, 5),
                    "{var}: the compressed chunks differ from one rank's"
                );
            }
        }
        // netCDF-C's own reader takes it too, and sees the compression.
        let dump = Command::new("ncdump")
            .arg("-hs")
            .arg(dest.join(vel))
            .output()
            .expect("run ncdump");
        assert!(dump.status.success(), "ncdump -hs: {}", text(&dump));
        let dump = String::from_utf8_lossy(&dump.stdout);
        assert!(dump.contains("UVEL:_DeflateLevel = 5"), "{dump}");
        // The group's first rank recorded the granule once.
        let m = Manifest::read(&dest.join("edp-manifest.json")).unwrap();
        let done: Vec<_> = m
            .granules
            .iter()
            .filter(|r| r.status == Status::Done)
            .collect();
        assert_eq!(done.len(), 2, "{:?}", m.granules);
    }
}

#[test]
fn a_failure_on_one_rank_of_the_group_leaves_no_file_and_fails_only_that_task() {
    let s = Sample::new(24, 12, 1, &["UVEL", "VVEL", "WVELMASS", "SSH"]);
    let cases = writers()
        .into_iter()
        .flat_map(|w| [(w, 2usize, 1usize), (w, 3, 2), (w, 2, 0)]);
    for (writer, np, failing) in cases {
        let dest = s.dir.path().join(format!("fail-{writer}{np}-{failing}"));
        let (list, _) = task_list(&s, &dest);
        let inject = format!("{VELOCITY}@{failing}");
        let o = run_group(np, writer, &list, &[], &[("EDP_DEBUG_FAIL_WRITE", &inject)]);
        assert_eq!(o.status.code(), Some(1), "some task failed: {}", text(&o));
        let log = String::from_utf8_lossy(&o.stderr);
        assert!(
            log.contains("failure injected"),
            "the failing rank says why:\n{log}"
        );
        let left = granules(&dest);
        assert!(
            left.iter().all(|g| !g.contains(VELOCITY)),
            "no file under the final name: {left:?}"
        );
        assert!(
            left.iter().any(|g| g.contains(SSH)),
            "the other task was written: {left:?}"
        );
        let temps: Vec<_> = files_under(&dest)
            .into_iter()
            .filter(|p| storage::is_temp_name(p))
            .collect();
        assert!(temps.is_empty(), "temporary files left: {temps:?}");
        let m = Manifest::read(&dest.join("edp-manifest.json")).unwrap();
        let failed: Vec<_> = m
            .granules
            .iter()
            .filter(|r| r.status == Status::Failed)
            .collect();
        assert_eq!(failed.len(), 1, "{writer}: {failed:?}");
        assert!(failed[0].granule.contains(VELOCITY), "{failed:?}");
        // The group's first rank recorded the failing rank's own message.
        let error = failed[0].error.as_deref().unwrap_or_default();
        assert!(
            error.contains("failure injected by EDP_DEBUG_FAIL_WRITE"),
            "{writer} -np {np}, rank {failing} failing: the record says {error:?}"
        );
        if failing > 0 {
            assert!(
                error.contains(&format!("rank {failing} of the group")),
                "{error:?}"
            );
        }
    }
}

#[cfg(not(feature = "parallel-hdf5"))]
#[test]
fn the_collective_writer_is_refused_by_the_serial_build() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("tasks.json");
    tasks::write_task_list(&list, &[]).unwrap();
    let o = edp(
        0,
        &[
            "run",
            "--tasks",
            list.to_str().unwrap(),
            "--group-writer",
            "collective",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("parallel-HDF5 build"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_group_fills_and_counts_non_finite_values_as_one_rank_does() {
    let s = Sample::new(24, 12, 1, &["UVEL", "VVEL", "WVELMASS", "SSH"]);
    let single = s.dir.path().join("single");
    let (list, tasks) = task_list(&s, &single);
    // Every value of UVEL +Inf (big-endian float32): every level of every rank's share
    // has some in wet cells.
    let vel = tasks.iter().find(|t| t.granule.contains(VELOCITY)).unwrap();
    let data = PathBuf::from(&vel.variables["UVEL"][0][0]);
    let len = std::fs::metadata(&data).unwrap().len() as usize;
    std::fs::write(&data, f32::INFINITY.to_be_bytes().repeat(len / 4)).unwrap();
    let filled = |dest: &Path| -> Option<u64> {
        let m = Manifest::read(&dest.join("edp-manifest.json")).unwrap();
        let r = m.granules.iter().find(|r| r.granule.contains(VELOCITY));
        r.and_then(|r| r.nonfinite_filled)
    };
    let fill = ["--nonfinite", "fill"];
    let o = edp(
        0,
        &[&["run", "--tasks", list.to_str().unwrap()][..], &fill].concat(),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let one = filled(&single);
    assert!(one.is_some_and(|n| n > 0), "{one:?}");
    let vel_name = granules(&single)
        .into_iter()
        .find(|g| g.contains(VELOCITY))
        .unwrap();
    for (writer, np) in writers().into_iter().flat_map(|w| [(w, 2usize), (w, 3)]) {
        let dest = s.dir.path().join(format!("{writer}{np}"));
        let (list, _) = task_list(&s, &dest);
        let o = run_group(np, writer, &list, &fill, &[]);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(filled(&dest), one, "{writer} at -np {np}");
        assert_eq!(
            contents(&dest.join(&vel_name))["UVEL"],
            contents(&single.join(&vel_name))["UVEL"],
            "{writer} at -np {np}"
        );
        // Without `fill`, the task fails with the field's whole count.
        let dest = s.dir.path().join(format!("{writer}{np}-fail"));
        let (list, _) = task_list(&s, &dest);
        let o = run_group(np, writer, &list, &[], &[]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let m = Manifest::read(&dest.join("edp-manifest.json")).unwrap();
        let failed = m
            .granules
            .iter()
            .find(|r| r.granule.contains(VELOCITY))
            .unwrap();
        let error = failed.error.as_deref().unwrap_or_default();
        let want = format!("{} non-finite value(s) of UVEL", one.unwrap());
        assert!(error.contains(&want), "{writer} at -np {np}: {error}");
    }
}
