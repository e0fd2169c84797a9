//! `edp verify --content` on a real run: a clean tree passes; a granule rewritten by
//! netCDF4-python to hold a NaN, a value beyond valid_max, or a time that disagrees with
//! its file name fails, naming the granule and what is wrong.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{files_under, Sample};

/// A run of the SSH (2D native) and THETA/SALT (3D lat-lon) monthly groupings.
fn run() -> (Sample, PathBuf) {
    let sample = Sample::new(
        18,
        6,
        1,
        &["SSH", "SSHIBC", "SSHNOIBC", "ETAN", "THETA", "SALT"],
    );
    let out = sample.out();
    let jobs = "[0, 'native', 'AVG_MON', 'all']\n[9, 'latlon', 'AVG_MON', 'all']\n";
    assert_eq!(sample.run_jobs(jobs, &out, &[]), Some(0));
    (sample, out)
}

fn granule(out: &Path, product: &str) -> PathBuf {
    files_under(out)
        .into_iter()
        .find(|p| {
            let s = p.to_string_lossy();
            s.ends_with(".nc") && s.contains(&format!("_{product}_"))
        })
        .unwrap_or_else(|| panic!("no {product} granule under {out:?}"))
}

fn verify(out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_edp"))
        .args(["verify", "--content"])
        .arg(out)
        .output()
        .expect("edp verify")
}

/// Runs python3 with netCDF4 on `path` (bound to `ds`, opened for writing, no masking).
fn rewrite(path: &Path, code: &str) {
    let script = format!(
        "import netCDF4, numpy as np, sys\nds = netCDF4.Dataset(sys.argv[1], 'a')\n\
         ds.set_auto_mask(False)\n{code}\nds.close()\n"
    );
    let st = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .status()
        .expect("python3 (scripts/setup.sh installs netCDF4)");
    assert!(st.success(), "python3 netCDF4 rewrite failed");
}

/// Lines of stdout that report a content problem.
fn content_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("CONTENT"))
        .map(str::to_string)
        .collect()
}

/// Runs `edp verify --content`, which must exit 1 with a CONTENT line naming granule `g`
/// and holding every one of `needles`; returns the CONTENT lines.
fn fails_naming(out: &Path, g: &Path, needles: &[&str]) -> Vec<String> {
    let o = verify(out);
    assert_eq!(o.status.code(), Some(1));
    let lines = content_lines(&o);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&name(g)) && needles.iter().all(|n| l.contains(n))),
        "{lines:?}"
    );
    lines
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn clean_run_passes_content_check() {
    let (_s, out) = run();
    assert_eq!(
        files_under(&out)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "nc"))
            .count(),
        2
    );
    let o = verify(&out);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("content") && text.contains("OK"), "{text}");
}

#[test]
fn nan_in_data_fails_naming_granule_and_variable() {
    let (_s, out) = run();
    let g = granule(&out, "native");
    rewrite(&g, "ds['SSH'][0, 3, 5, 5] = np.nan");
    let lines = fails_naming(&out, &g, &["SSH", "NaN"]);
    // The other granule is untouched and not blamed.
    assert!(lines.iter().all(|l| l.contains(&name(&g))), "{lines:?}");
}

#[test]
fn value_beyond_valid_max_fails() {
    let (_s, out) = run();
    let g = granule(&out, "latlon");
    rewrite(
        &g,
        "v = ds['THETA']\nv[0, 0, 10, 10] = float(v.valid_max) + 50.0",
    );
    fails_naming(&out, &g, &["THETA", "outside valid_min"]);
}

#[test]
fn time_disagreeing_with_file_name_fails() {
    let (_s, out) = run();
    let g = granule(&out, "native");
    // Forty days later, bounds and centre shifted together: self-consistent, but the
    // month is no longer the one in the file name.
    rewrite(
        &g,
        "ds['time'][:] = ds['time'][:] + 960\nds['time_bnds'][:] = ds['time_bnds'][:] + 960",
    );
    fails_naming(&out, &g, &["does not match the mon_mean date 1992-01"]);
}

#[test]
fn missing_grouping_variable_is_reported() {
    let (_s, out) = run();
    let g = granule(&out, "native");
    rewrite(&g, "ds.renameVariable('SSH', 'SSH_renamed')");
    fails_naming(&out, &g, &["variable SSH of grouping"]);
}
