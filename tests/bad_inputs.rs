//! Bad inputs as users bring them, through the real `edp` binary: each case asserts the
//! exact exit status, a message naming the file and the cause, that every other granule
//! of the run is still written, and that no partial or temporary file remains.
//!
//! Exit codes are the README's contract: 1 when some task failed (the others are
//! written), 2 for a usage or configuration error found before any work (nothing is
//! written).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::Sample;
use edp::grid::Grid;
use edp::llc::PointType;
use edp::metadata::Product;
use edp::run::journal::Status;
use edp::run::manifest::Manifest;
use edp::tasks::Task;

const EDP: &str = env!("CARGO_BIN_EXE_edp");

/// A synthetic LLC12 × 5-level tree, two months, and the native monthly tasks of
/// sea surface height and temperature/salinity (4 granules) in a task list.
struct Fixture {
    s: Sample,
    dest: PathBuf,
    tasks_file: PathBuf,
    list: Vec<Task>,
}

fn fixture() -> Fixture {
    let s = Sample::new(
        12,
        5,
        2,
        &["SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT"],
    );
    let dest = s.dir.path().join("out");
    let (tasks_file, list) = task_list(&s, &dest, "tasks.json");
    assert_eq!(list.len(), 4);
    Fixture {
        s,
        dest,
        tasks_file,
        list,
    }
}

fn task_list(s: &Sample, dest: &Path, name: &str) -> (PathBuf, Vec<Task>) {
    task_list_of(s, dest, name, Product::Native)
}

fn task_list_of(s: &Sample, dest: &Path, name: &str, product: Product) -> (PathBuf, Vec<Task>) {
    let groupings = [
        (product, "SEA_SURFACE_HEIGHT"),
        (product, "OCEAN_TEMPERATURE_SALINITY"),
    ];
    s.task_list_at(&s.dir.path().join(name), dest, &groupings)
}

impl Fixture {
    /// The first month's THETA input, and the task that reads it.
    fn theta(&self) -> (PathBuf, PathBuf, usize) {
        let (i, t) = self
            .list
            .iter()
            .enumerate()
            .find(|(_, t)| t.variables.contains_key("THETA"))
            .unwrap();
        let pair = &t.variables["THETA"][0];
        (PathBuf::from(&pair[0]), PathBuf::from(&pair[1]), i)
    }

    fn run(&self, extra: &[&str]) -> Output {
        let mut c = Command::new(EDP);
        c.arg("run").arg("--tasks").arg(&self.tasks_file);
        c.args(extra);
        edp(c)
    }
}

fn edp(mut c: Command) -> Output {
    c.env_remove("EDP_MPI")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdin(Stdio::null());
    c.output().expect("run edp")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file under `dir` (absolute paths).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Temporary or partial files: ours (`.<name>.tmp-<pid>-<random>`) and anything
/// else that is not a granule or a state file under its final name.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            edp::storage::is_temp_name(p) || name.contains(".tmp") || name.ends_with(".part")
        })
        .collect()
}

/// Asserts: exit `code`, every needle in the output, the granules of all tasks but
/// `failed` written (and those not), no temporary file.
fn assert_outcome(f: &Fixture, out: &Output, code: i32, needles: &[&str], failed: &[usize]) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(code), "exit status:\n{t}");
    for n in needles {
        assert!(t.contains(n), "the output does not name `{n}`:\n{t}");
    }
    for (i, task) in f.list.iter().enumerate() {
        let exists = Path::new(&task.granule).is_file();
        assert_eq!(
            exists,
            !failed.contains(&i),
            "granule of task {i} ({}) {}",
            task.granule,
            if exists { "written" } else { "missing" }
        );
    }
    assert!(leftovers(&f.dest).is_empty(), "{:?}", leftovers(&f.dest));
    if code == 1 {
        let m = Manifest::read(&f.dest.join("edp-manifest.json")).unwrap();
        let bad: Vec<_> = m
            .granules
            .iter()
            .filter(|r| r.status == Status::Failed)
            .collect();
        assert_eq!(bad.len(), failed.len(), "failed records");
    }
}

/// Asserts a configuration error: exit 2, the needles, and nothing written at all.
fn assert_config_error(out: &Output, dest: &Path, needles: &[&str]) {
    let t = text(out);
    assert_eq!(out.status.code(), Some(2), "exit status:\n{t}");
    for n in needles {
        assert!(t.contains(n), "the output does not name `{n}`:\n{t}");
    }
    let nc: Vec<_> = files(dest)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "nc"))
        .collect();
    assert!(nc.is_empty(), "granules written: {nc:?}");
    assert!(leftovers(dest).is_empty(), "{:?}", leftovers(dest));
}

fn edit(path: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.contains(from), "{} lacks {from:?}:\n{s}", path.display());
    std::fs::write(path, s.replacen(from, to, 1)).unwrap();
}

fn ps(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn data_shorter_than_its_meta_fails_that_granule_only() {
    let f = fixture();
    let (data, meta, victim) = f.theta();
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len - 4)
        .unwrap();
    let out = f.run(&[]);
    let found = format!(
        "{} bytes, but {} describes {len} bytes",
        len - 4,
        meta.display()
    );
    assert_outcome(&f, &out, 1, &[&ps(&data), &found], &[victim]);
}

#[test]
fn data_longer_than_its_meta_fails_that_granule_only() {
    let f = fixture();
    let (data, meta, victim) = f.theta();
    let len = std::fs::metadata(&data).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(len + 8)
        .unwrap();
    let out = f.run(&[]);
    let found = format!(
        "{} bytes, but {} describes {len} bytes",
        len + 8,
        meta.display()
    );
    assert_outcome(&f, &out, 1, &[&ps(&data), &found], &[victim]);
}

#[test]
fn meta_with_a_syntax_error_fails_that_granule_only() {
    let f = fixture();
    let (_, meta, victim) = f.theta();
    edit(&meta, "nDims = [   3 ];", "nDims = [   3 ;");
    let out = f.run(&[]);
    assert_outcome(&f, &out, 1, &[&ps(&meta), "malformed .meta"], &[victim]);
}

#[test]
fn meta_missing_a_key_fails_that_granule_only() {
    let f = fixture();
    let (_, meta, victim) = f.theta();
    edit(&meta, " dataprec = [ 'float32' ];", "");
    let out = f.run(&[]);
    assert_outcome(&f, &out, 1, &[&ps(&meta), "no `dataprec`"], &[victim]);
}

#[test]
fn meta_with_a_wrong_dimlist_fails_that_granule_only() {
    let f = fixture();
    let (_, meta, victim) = f.theta();
    // The first dimension claims 13 columns where the grid has 12: the sizes no longer
    // match the .data file.
    edit(&meta, "    12,    1,   12,", "    13,    1,   13,");
    let out = f.run(&[]);
    assert_outcome(&f, &out, 1, &[&ps(&meta), "describes"], &[victim]);
}

#[test]
fn meta_with_an_unknown_dataprec_fails_that_granule_only() {
    let f = fixture();
    let (_, meta, victim) = f.theta();
    edit(&meta, "'float32'", "'float16'");
    let out = f.run(&[]);
    assert_outcome(
        &f,
        &out,
        1,
        &[&ps(&meta), "unknown dataprec \"float16\""],
        &[victim],
    );
}

#[test]
fn a_field_missing_at_one_step_fails_that_granule_only() {
    let f = fixture();
    let (data, _, victim) = f.theta();
    std::fs::remove_file(&data).unwrap();
    let out = f.run(&[]);
    assert_outcome(
        &f,
        &out,
        1,
        &[&ps(&data), "No such file or directory"],
        &[victim],
    );
}

#[test]
fn an_unreadable_input_directory_fails_its_granules_only() {
    let f = fixture();
    let (data, _, _) = f.theta();
    // (Tests run as root, for whom permissions do not stop a read: the directory is
    // replaced by a file, which no open can go through.)
    let dir = data.parent().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::write(dir, b"not a directory").unwrap();
    let failed: Vec<usize> = f
        .list
        .iter()
        .enumerate()
        .filter(|(_, t)| t.variables.contains_key("THETA"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed.len(), 2);
    let out = f.run(&[]);
    assert_outcome(&f, &out, 1, &[&ps(dir), "Not a directory"], &failed);
}

/// The first wet cell of level `k` in (tile, j, i) order and the number of wet cells.
fn wet_cells(grid: &Grid, k: usize) -> ([usize; 4], u64) {
    let n = grid.n;
    let mut h = vec![0f32; grid.level_len()];
    grid.hfac_level(PointType::C, k, &mut h).unwrap();
    let first = h.iter().position(|&x| x > 0.0).unwrap();
    let count = h.iter().filter(|&&x| x > 0.0).count() as u64;
    ([first / (n * n), (first / n) % n, first % n, k], count)
}

/// Sets every value of level `k` of a float32 MDS file to `value`.
fn poison_level(data: &Path, n: usize, k: usize, value: f32) {
    let mut bytes = std::fs::read(data).unwrap();
    let level = 13 * n * n * 4;
    for c in bytes[k * level..(k + 1) * level].chunks_exact_mut(4) {
        c.copy_from_slice(&value.to_be_bytes());
    }
    std::fs::write(data, bytes).unwrap();
}

/// Poisons level 2 of the first month's THETA with NaN and checks that the run fails
/// that granule only, naming the file, the field's whole count and the first wet cell;
/// returns the task and the count.
fn fails_on_non_finite(f: &Fixture) -> (usize, u64) {
    let (data, _, victim) = f.theta();
    poison_level(&data, 12, 2, f32::NAN);
    let grid = Grid::open(&f.s.grid_dir()).unwrap();
    let ([t, j, i, k], count) = wet_cells(&grid, 2);
    assert!(count > 0);
    let out = f.run(&[]);
    let what = format!("{count} non-finite value(s) of THETA in wet cells");
    let at = format!("tile {t}, j {j}, i {i}, k {k}");
    assert_outcome(f, &out, 1, &[&ps(&data), &what, &at], &[victim]);
    (victim, count)
}

/// Runs with `--nonfinite fill` and checks that every granule is made, the warning
/// names THETA's input and `count`, and only task `victim`'s record counts them.
fn fills_non_finite(f: &Fixture, victim: usize, count: u64) {
    let (data, _, _) = f.theta();
    let out = f.run(&["--nonfinite", "fill"]);
    let what = format!("{count} non-finite value(s) of THETA in wet cells written as fill");
    assert_outcome(f, &out, 0, &[&ps(&data), &what], &[]);
    let m = Manifest::read(&f.dest.join("edp-manifest.json")).unwrap();
    let key = Path::new(&f.list[victim].granule)
        .strip_prefix(&f.dest)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for r in &m.granules {
        let want = if r.granule == key { Some(count) } else { None };
        assert_eq!(r.nonfinite_filled, want, "{}", r.granule);
    }
}

#[test]
fn non_finite_wet_values_fail_the_granule_by_default() {
    fails_on_non_finite(&fixture());
}

/// The fixture's tasks on the lat-lon grid (mapping factors built by the run).
fn latlon_fixture() -> Fixture {
    let s = Sample::new(
        12,
        5,
        2,
        &["SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT"],
    );
    let dest = s.dir.path().join("out");
    let (tasks_file, list) = task_list_of(&s, &dest, "tasks.json", Product::Latlon);
    assert_eq!(list.len(), 4);
    Fixture {
        s,
        dest,
        tasks_file,
        list,
    }
}

#[test]
fn non_finite_wet_values_fail_a_latlon_granule_and_are_filled_with_nonfinite_fill() {
    // Each input level is read once, as the granule streams to the writer: the check
    // happens on the way and still counts the whole field.
    let f = latlon_fixture();
    let (victim, count) = fails_on_non_finite(&f);
    fills_non_finite(&f, victim, count);
}

#[test]
fn non_finite_wet_values_with_nonfinite_fill_are_filled_counted_and_warned() {
    let f = fixture();
    let (data, _, victim) = f.theta();
    poison_level(&data, 12, 1, f32::INFINITY);
    let grid = Grid::open(&f.s.grid_dir()).unwrap();
    let (_, count) = wet_cells(&grid, 1);
    fills_non_finite(&f, victim, count);
    // Level 1 of THETA is all fill; level 0 is not.
    let r = edp::ncio::NcReader::open(Path::new(&f.list[victim].granule)).unwrap();
    let theta = r.read_f32("THETA").unwrap();
    let len = grid.level_len();
    assert!(theta[len..2 * len].iter().all(|&x| x == 9.969_21e36));
    assert!(theta[..len].iter().any(|&x| x != 9.969_21e36));
}

#[test]
fn task_list_errors_are_configuration_errors_naming_the_task() {
    let f = fixture();
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&f.tasks_file).unwrap()).unwrap();
    let write = |name: &str, v: &serde_json::Value| -> PathBuf {
        let p = f.s.dir.path().join(name);
        std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
        p
    };
    let run = |file: &Path| {
        let mut c = Command::new(EDP);
        c.arg("run")
            .arg("--tasks")
            .arg(file)
            .arg("--dest")
            .arg(&f.dest);
        edp(c)
    };
    let file_name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();

    // A wrong type: `variables` is a number.
    let mut v = base.clone();
    v[1]["variables"] = serde_json::json!(5);
    let p = write("types.json", &v);
    assert_config_error(
        &run(&p),
        &f.dest,
        &[&file_name(&p), "invalid type: integer `5`"],
    );

    // Two tasks writing the same granule.
    let mut v = base.clone();
    let first = v[0].clone();
    v.as_array_mut().unwrap().push(first);
    let p = write("dup.json", &v);
    let g = f.list[0].granule.clone();
    assert_config_error(&run(&p), &f.dest, &["tasks 0 and 4 both write", &g]);

    // A granule outside --dest through `..`, and through an absolute path.
    let name = Path::new(&g)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for (label, path) in [
        (
            "dotdot",
            format!("{}/V4r4/../../escape/{name}", f.dest.display()),
        ),
        (
            "absolute",
            format!("{}/elsewhere/{name}", f.s.dir.path().display()),
        ),
    ] {
        let mut v = base.clone();
        v[2]["granule"] = serde_json::json!(path);
        let p = write(&format!("{label}.json"), &v);
        assert_config_error(
            &run(&p),
            &f.dest,
            &[&format!(
                "task 2: granule {path} is not under the destination"
            )],
        );
    }
    assert!(!f.s.dir.path().join("escape").exists());
    assert!(!f.s.dir.path().join("elsewhere").exists());

    // Not JSON at all.
    let p = f.s.dir.path().join("broken.json");
    std::fs::write(&p, "[{\"granule\": ").unwrap();
    assert_config_error(&run(&p), &f.dest, &[&file_name(&p), "EOF while parsing"]);
}

#[test]
fn jobs_file_errors_are_configuration_errors_naming_the_line() {
    let f = fixture();
    let jobs = f.s.dir.path().join("jobs.txt");
    let run = || {
        let mut c = Command::new(EDP);
        c.arg("run")
            .arg("--jobs")
            .arg(&jobs)
            .arg("--source")
            .arg(f.s.source())
            .arg("--dest")
            .arg(&f.dest)
            .arg("--grid")
            .arg(f.s.grid_dir());
        edp(c)
    };
    let j = ps(&jobs);
    for (body, needles) in [
        // A wrong type: the grouping id is a string.
        (
            "# comment\n[0, 'native', 'AVG_MON', 'all']\n['zero', 'native', 'AVG_MON', 'all']\n",
            vec![format!("{j}:3")],
        ),
        // An unknown grouping.
        (
            "[99, 'native', 'AVG_MON', 'all']\n",
            vec![format!("{j}:1"), "99".to_string()],
        ),
        // An unknown frequency.
        (
            "[0, 'native', 'AVG_YEAR', 'all']\n",
            vec![format!("{j}:1"), "AVG_YEAR".to_string()],
        ),
    ] {
        std::fs::write(&jobs, body).unwrap();
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_config_error(&run(), &f.dest, &needles);
    }
    // A source that is not there.
    std::fs::write(&jobs, "[0, 'native', 'AVG_MON', 'all']\n").unwrap();
    let mut c = Command::new(EDP);
    let missing = f.s.dir.path().join("no-such-source");
    c.arg("run")
        .arg("--jobs")
        .arg(&jobs)
        .arg("--source")
        .arg(&missing)
        .arg("--dest")
        .arg(&f.dest);
    assert_config_error(&edp(c), &f.dest, &[&ps(&missing), "not a directory"]);
}

/// A tmpfs of `size` mounted at `dir` (tests run as root, as CI does), unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, options: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} (these tests need root, as in CI): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn an_unwritable_destination_is_a_configuration_error() {
    let s = Sample::new(12, 5, 1, &["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]);
    let dest = s.dir.path().join("ro");
    let _ro = Tmpfs::mount(&dest, "ro,size=1m");
    let (file, _) = task_list(&s, &dest, "tasks.json");
    let mut c = Command::new(EDP);
    c.arg("run").arg("--tasks").arg(&file);
    let out = edp(c);
    assert_config_error(&out, &dest, &[&ps(&dest), "Read-only file system"]);
}

/// The full-disk case: a lat-lon 3D granule that cannot fit on a small tmpfs beside
/// native granules that can. `np` 0 runs alone, else under mpirun; `writer` is the
/// `--writer` (netCDF-C says only "NetCDF: HDF error" for the failed write: edp must
/// say the disk is full and how much is free).
/// A full disk under `edp run` on `np` ranks (0: no mpirun) with `writer`; with a
/// `group_writer`, the 3D granules (the failing one too) are written by groups of `np`.
fn full_disk(np: usize, writer: &str, group_writer: Option<&str>) {
    let s = Sample::new(
        // 50 levels: the lat-lon granule (~3 MB) cannot fit in 1.5 MB; the native ones can.
        12,
        50,
        1,
        &["SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT"],
    );
    let dest = s.dir.path().join("disk");
    let _disk = Tmpfs::mount(&dest, "size=1536k");
    let groupings = [
        (Product::Latlon, "OCEAN_TEMPERATURE_SALINITY"),
        (Product::Native, "SEA_SURFACE_HEIGHT"),
        (Product::Native, "OCEAN_TEMPERATURE_SALINITY"),
    ];
    let (file, list) = s.task_list_at(&s.dir.path().join("tasks.json"), &dest, &groupings);
    assert_eq!(list.len(), 3);
    let factors = s.dir.path().join("factors.bin");
    let mut c = Command::new(EDP);
    c.args(["factors", "--grid"])
        .arg(s.grid_dir())
        .arg("-o")
        .arg(&factors);
    assert!(edp(c).status.success());

    let mut c = if np == 0 {
        Command::new(EDP)
    } else {
        let mut c = Command::new("mpirun");
        c.args(["--oversubscribe", "-np", &np.to_string(), EDP]);
        c
    };
    c.arg("run")
        .arg("--tasks")
        .arg(&file)
        .arg("--factors")
        .arg(&factors)
        .args(["--threads", "1", "--writer", writer]);
    if let Some(g) = group_writer {
        c.args(["--ranks-per-granule", &np.to_string(), "--group-writer", g]);
    }
    let out = edp(c);
    let t = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a full disk fails its task and the run exits 1 (no crash):\n{t}"
    );
    assert!(t.contains(&list[0].granule), "{t}");
    // The failure names the file system and its free space, in the log and the summary.
    // Measured while the partial file still held its blocks: HDF5 writes until the kernel
    // refuses, leaving next to nothing, whereas once the partial file is removed the
    // room it took (far more than 64 KiB) is free again.
    let said = format!(
        "the file system of {:?} has ",
        Path::new(&list[0].granule).parent().unwrap()
    );
    let free: Vec<u64> = t
        .lines()
        .filter(|l| l.contains(&list[0].granule))
        .filter_map(|l| {
            let rest = &l[l.find(&said)? + said.len()..];
            let (n, rest) = rest.split_once(" bytes free (no space left on device): ")?;
            assert!(!rest.is_empty(), "the cause is shown: {l}");
            n.parse().ok()
        })
        .collect();
    // (Each rank of a collective group may meet the full disk itself and say so too.)
    assert!(
        free.len() == 2 || (group_writer == Some("collective") && free.len() > 2),
        "the log and the summary say it:\n{t}"
    );
    if group_writer.is_some() {
        assert!(t.contains("by groups of"), "{t}");
    }
    assert!(free.iter().all(|&n| n < 64 << 10), "{free:?}\n{t}");
    assert!(!Path::new(&list[0].granule).exists());
    for task in &list[1..] {
        assert!(
            Path::new(&task.granule).is_file(),
            "{} missing:\n{t}",
            task.granule
        );
    }
    assert!(leftovers(&dest).is_empty(), "{:?}", leftovers(&dest));
    let m = Manifest::read(&dest.join("edp-manifest.json")).unwrap();
    assert_eq!(m.granules.len(), 3);
    let failed: Vec<_> = m
        .granules
        .iter()
        .filter(|r| r.status == Status::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(list[0].granule.ends_with(&failed[0].granule));
}

#[test]
fn a_full_disk_fails_that_granule_and_the_run_exits_1_without_a_crash() {
    full_disk(0, "direct", None);
}

#[test]
fn a_full_disk_under_the_netcdf_writer_is_told_as_such_too() {
    full_disk(0, "netcdf", None);
}

#[test]
fn a_full_disk_under_mpirun_fails_that_granule_and_exits_1() {
    common::require("mpirun");
    full_disk(2, "direct", None);
}

#[test]
fn a_full_disk_under_a_gathering_group_is_told_as_such() {
    common::require("mpirun");
    full_disk(2, "direct", Some("gather"));
}

/// `scripts/cargo-par test --release --test bad_inputs full_disk` (CI runs it).
#[cfg(feature = "parallel-hdf5")]
#[test]
fn a_full_disk_under_a_collective_group_is_told_as_such() {
    common::require("mpirun");
    full_disk(2, "direct", Some("collective"));
}

#[test]
fn a_journal_that_cannot_be_appended_stops_the_run_with_exit_1() {
    let f = fixture();
    // The state directory on an almost full file system of its own: the lock can be
    // taken and the journal created (an empty file) but not appended to; the granules
    // have room.
    let state = f.dest.join(".edp");
    // Two pages: one for a filler, one for the run's lock file; none for journal records.
    let _full = Tmpfs::mount(&state, "size=8k");
    let filler = state.join("filler");
    std::fs::write(&filler, vec![0u8; 4096]).unwrap();
    let out = f.run(&["--threads", "1"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let journal = state.join("journal-0.jsonl");
    assert!(
        t.contains(&format!("cannot append to journal {journal:?}")),
        "{t}"
    );
    assert!(
        t.contains("stopped early, cannot record finished work"),
        "{t}"
    );
    // The first granule's record is the first append, made once the second granule
    // is written (its commit overlapped that one): both granules are in place and the
    // rest were not started. The record store lives in the same full state directory,
    // so the run says it could not keep their records (a re-run redoes them).
    assert!(t.contains("cannot append to the record store"), "{t}");
    assert!(t.contains("2 not run"), "{t}");
    let written: Vec<_> = f
        .list
        .iter()
        .filter(|t| Path::new(&t.granule).is_file())
        .collect();
    assert_eq!(written.len(), 2);
    assert!(leftovers(&f.dest).is_empty(), "{:?}", leftovers(&f.dest));
}

#[test]
fn a_second_run_on_the_same_destination_refuses_and_the_first_completes_untouched() {
    let s = Sample::new(
        24,
        20,
        12,
        &["THETA", "SALT", "SSH", "SSHIBC", "SSHNOIBC", "ETAN"],
    );
    let dest = s.dir.path().join("out");
    let (file, list) = task_list(&s, &dest, "tasks.json");
    assert_eq!(list.len(), 24);
    let mut first = Command::new(EDP);
    first
        .arg("run")
        .arg("--tasks")
        .arg(&file)
        .args(["--threads", "1"])
        .env_remove("EDP_MPI")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let first = first.spawn().unwrap();
    let first_pid = first.id();
    // Wait until the first run is producing (a journal record exists).
    let journal = dest.join(".edp/journal-0.jsonl");
    let t = std::time::Instant::now();
    while std::fs::read_to_string(&journal).map_or(true, |j| j.lines().count() == 0) {
        assert!(t.elapsed().as_secs() < 60, "the first run never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut c = Command::new(EDP);
    c.arg("run").arg("--tasks").arg(&file);
    let second = edp(c);
    let first = first.wait_with_output().unwrap();
    let t2 = text(&second);
    assert_eq!(second.status.code(), Some(2), "{t2}");
    let holder = format!("(pid {first_pid} on {}", edp::storage::lock::host());
    assert!(
        t2.contains("is in use by run") && t2.contains(&holder),
        "{t2}"
    );
    // The first run did everything, undisturbed.
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    for task in &list {
        assert!(Path::new(&task.granule).is_file(), "{}", task.granule);
    }
    assert!(leftovers(&dest).is_empty(), "{:?}", leftovers(&dest));
    let m = Manifest::read(&dest.join("edp-manifest.json")).unwrap();
    let run = m.last_run.unwrap();
    assert_eq!((run.done, run.failed), (24, 0), "{run:?}");
    assert!(!dest.join(".edp/run.lock").exists(), "the lock is released");
    let mut v = Command::new(EDP);
    v.arg("verify").arg(&dest);
    assert!(edp(v).status.success());
}

#[test]
fn a_stale_lock_of_a_killed_run_is_taken_over_and_only_dead_writers_temps_removed() {
    let f = fixture();
    let state = f.dest.join(".edp");
    std::fs::create_dir_all(&state).unwrap();
    // What a SIGKILLed run leaves: its lock (its pid is gone) and a temporary file.
    let host = edp::storage::lock::host();
    let dead = u32::MAX - 7;
    std::fs::write(
        state.join("run.lock"),
        format!(
            r#"{{"host":"{host}","pid":{dead},"started":"2026-01-01T00:00:00Z","run_id":"killed"}}"#
        ),
    )
    .unwrap();
    let gdir = Path::new(&f.list[0].granule)
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::create_dir_all(&gdir).unwrap();
    let dead_temp = gdir.join(format!(".x.nc.tmp-{dead}-0123456789ab"));
    std::fs::write(&dead_temp, b"partial").unwrap();
    // A temporary file of a live process (this test) is not touched.
    let live_temp = gdir.join(format!(".y.nc.tmp-{}-0123456789ab", std::process::id()));
    std::fs::write(&live_temp, b"in progress").unwrap();
    assert!(edp::storage::is_temp_name(&dead_temp) && edp::storage::is_temp_name(&live_temp));

    let out = f.run(&[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("taking over the lock") && t.contains("run killed"),
        "{t}"
    );
    assert!(t.contains(&format!("its process {dead} is gone")), "{t}");
    assert!(!dead_temp.exists());
    assert!(
        live_temp.exists(),
        "a live process's temporary file was removed"
    );
    std::fs::remove_file(&live_temp).unwrap();
    assert_outcome(&f, &out, 0, &[], &[]);
    assert!(!state.join("run.lock").exists());
}

#[test]
fn unusable_factors_are_configuration_errors_before_any_work() {
    let s = Sample::new(12, 5, 1, &["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]);
    let dest = s.dir.path().join("out");
    let groupings = [
        (Product::Latlon, "SEA_SURFACE_HEIGHT"),
        (Product::Native, "SEA_SURFACE_HEIGHT"),
    ];
    let (file, _) = s.task_list_at(&s.dir.path().join("tasks.json"), &dest, &groupings);
    let run = |factors: &Path| {
        let mut c = Command::new(EDP);
        c.arg("run")
            .arg("--tasks")
            .arg(&file)
            .arg("--factors")
            .arg(factors)
            .arg("--factors-cache")
            .arg(s.dir.path().join("cache"));
        edp(c)
    };
    let f = ps(&s.dir.path().join("missing.bin"));
    let missing = s.dir.path().join("missing.bin");
    assert_config_error(
        &run(&missing),
        &dest,
        &[&format!("--factors {f}: no such file")],
    );
    assert!(
        !s.dir.path().join("cache").exists(),
        "no factors were built instead"
    );

    let junk = s.dir.path().join("junk.bin");
    std::fs::write(&junk, b"not a factor file at all").unwrap();
    assert_config_error(&run(&junk), &dest, &[&format!("--factors {}", ps(&junk))]);

    // Factors of another grid (LLC8).
    let other = Sample::new(8, 5, 1, &["SSH"]);
    let wrong = s.dir.path().join("llc8.bin");
    let mut c = Command::new(EDP);
    c.args(["factors", "--grid"])
        .arg(other.grid_dir())
        .arg("-o")
        .arg(&wrong);
    assert!(edp(c).status.success());
    assert_config_error(
        &run(&wrong),
        &dest,
        &[&format!("--factors {}", ps(&wrong)), "are for LLC8"],
    );
    assert!(
        !s.dir.path().join("cache").exists(),
        "no factors were built instead"
    );
}
