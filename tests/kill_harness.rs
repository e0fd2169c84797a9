//! The kill harness (`scripts/kill-test.sh`), 3 trials: `edp run` under `mpirun -np 2`
//! SIGKILLed (whole job or one rank) at random instants and re-run; the script checks
//! verify, temporary files, data against a clean run, and that only what was missing
//! was redone. `scripts/kill-test.sh --trials 20` is the longer run.

use std::path::Path;
use std::process::Command;

#[test]
fn three_kill_trials_lose_nothing_and_redo_only_what_was_missing() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kill-test.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["--trials", "3"])
        .env("EDP", env!("CARGO_BIN_EXE_edp"))
        .output()
        .expect("run scripts/kill-test.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3/3 trials passed"), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.contains("data ok")).count(),
        3,
        "{stdout}"
    );
}
