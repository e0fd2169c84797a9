//! `edp run` without --factors builds the mapping factors once, in --factors-cache
//! when given, and reuses them.

mod common;

use std::process::Command;

use common::{files_under, Sample};
use edp::metadata::{MetadataSet, Product};
use edp::tasks::{self, Locations};
use edp::time::{DailyDate, Frequency};

#[test]
fn factors_are_built_once_into_the_cache_directory() {
    let sample = Sample::new(8, 3, 2, &["SSH", "SSHIBC", "SSHNOIBC"]);
    let m = MetadataSet::embedded().unwrap();
    let g = m
        .grouping_by_filename(Product::Latlon, "SEA_SURFACE_HEIGHT")
        .unwrap();
    let loc = Locations {
        dest_root: sample.out().to_string_lossy().into_owned(),
        grid: Some(sample.grid_dir().to_string_lossy().into_owned()),
        ..Locations::default()
    };
    let list = tasks::tasks_for_steps(
        g,
        Frequency::AvgMon,
        &sample.report.monthly_steps,
        &sample.source(),
        &m.release,
        DailyDate::default(),
        &loc,
    );
    assert_eq!(list.len(), 2);
    let task_file = sample.dir.path().join("tasks.json");
    tasks::write_task_list(&task_file, &list).unwrap();
    let cache = sample.dir.path().join("factor-cache");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_edp"))
            .args(["run", "--tasks"])
            .arg(&task_file)
            .arg("--factors-cache")
            .arg(&cache)
            .env("EDP_MPI", "off")
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cached: Vec<_> = files_under(&cache)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    assert_eq!(cached.len(), 1, "one factor file in the cache: {cached:?}");
    assert!(
        !sample.out().join("edp_factors").exists(),
        "nothing is cached beside the output when --factors-cache is given"
    );
    let built = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    // Remove the granules so the second run has work; it must reuse the cached factors.
    for t in &list {
        std::fs::remove_file(&t.granule).unwrap();
    }
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(list
        .iter()
        .all(|t| std::path::Path::new(&t.granule).exists()));
    assert_eq!(
        std::fs::metadata(&cached[0]).unwrap().modified().unwrap(),
        built,
        "factors reused, not rebuilt"
    );
}
