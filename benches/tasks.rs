//! Benchmark: build a task list of ≥ 50,000 tasks from a synthesised source tree.
//!
//! Prints the time to discover inputs and build the tasks (target: under 5 s on one
//! core). The tree holds empty `.data`/`.meta` pairs: discovery reads names only.
//! Run with `cargo bench --bench tasks`.

use std::path::Path;
use std::time::Instant;

use edp::jobs::{Job, Steps};
use edp::metadata::{MetadataSet, Product};
use edp::tasks::{self, plan::input_fields, Locations};
use edp::time::{DailyDate, Frequency};

fn touch(root: &Path, freq: Frequency, var: &str, steps: &[u64]) {
    let dir = root
        .join(freq.input_dir())
        .join(format!("{var}_{}", freq.input_token()));
    std::fs::create_dir_all(&dir).expect("create input dir");
    for s in steps {
        for ext in ["data", "meta"] {
            std::fs::write(
                dir.join(format!("{var}_{}.{s:010}.{ext}", freq.input_token())),
                b"",
            )
            .expect("create input file");
        }
    }
}

fn main() {
    let m = MetadataSet::embedded().expect("embedded metadata");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // 12,500 daily steps (about 34 years) for four jobs: 50,000 tasks.
    let steps: Vec<u64> = (0..12_500u64).map(|d| 12 + 24 * d).collect();
    let specs = [
        (Product::Native, 0usize, Frequency::AvgDay), // SEA_SURFACE_HEIGHT
        (Product::Native, 0, Frequency::Snap),        // SEA_SURFACE_HEIGHT snapshots
        (Product::Native, 15, Frequency::AvgDay),     // OCEAN_TEMPERATURE_SALINITY
        (Product::Latlon, 6, Frequency::AvgDay),      // OCEAN_AND_ICE_SURFACE_STRESS (vectors)
    ];
    let t = Instant::now();
    let mut files = 0;
    let mut jobs = Vec::new();
    for (line, &(product, gi, freq)) in specs.iter().enumerate() {
        let g = &m.groupings(product)[gi];
        let mut vars: Vec<String> = g.fields.iter().flat_map(|f| input_fields(g, f)).collect();
        vars.sort();
        vars.dedup();
        for v in &vars {
            if !root
                .join(freq.input_dir())
                .join(format!("{v}_{}", freq.input_token()))
                .exists()
            {
                touch(root, freq, v, &steps);
                files += 2 * steps.len();
            }
        }
        jobs.push(Job {
            line: line + 1,
            grouping: gi,
            product,
            freq,
            steps: Steps::All,
        });
    }
    println!(
        "synthesised tree: {files} files in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // One core, as the target says.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let loc = Locations {
        dest_root: "/dest".into(),
        ..Locations::default()
    };
    for round in 1..=3 {
        let t = Instant::now();
        let plan = pool
            .install(|| tasks::build_from_jobs(&jobs, &m, root, &loc, DailyDate::default(), None));
        let built = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let json = serde_json::to_vec(&plan.tasks).expect("serialise");
        let ser = t.elapsed().as_secs_f64();
        println!(
            "round {round}: {} tasks built in {built:.2} s ({:.0} tasks/s); JSON {:.1} MB serialised in {ser:.2} s",
            plan.tasks.len(),
            plan.tasks.len() as f64 / built,
            json.len() as f64 / 1e6
        );
    }
}
