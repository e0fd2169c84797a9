//! `edp verify` of a tree `edp run` wrote to S3 (the test server on 127.0.0.1): a clean
//! tree passes (exit 0) by its prefix and by its manifest's URL; an object overwritten
//! with other bytes of the same size (its stored sha256 updated with it, so only the
//! bytes tell), a truncated one, a missing one and a stray granule fail it (exit 1);
//! a prefix without a manifest is a usage error (exit 2).

mod s3_support;

use std::path::Path;
use std::process::Output;

use edp::storage::S3Url;
use s3_support::edp;

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn url(bucket: &str, key: &str) -> S3Url {
    S3Url {
        bucket: bucket.into(),
        key: key.into(),
    }
}

fn verify(ep: &str, scratch: &Path, args: &[&str]) -> (Option<i32>, String) {
    let o = edp(ep, scratch).arg("verify").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code(), text)
}

#[test]
fn verify_on_s3_passes_a_clean_tree_and_fails_a_corrupted_object() {
    let Some(ep) = s3_support::server("verify_on_s3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = edp::synth::SynthConfig {
        n: 12,
        nz: 4,
        months: 2,
        variables: Some(
            ["SSH", "SSHIBC", "SSHNOIBC", "ETAN"]
                .map(String::from)
                .to_vec(),
        ),
        ..Default::default()
    };
    edp::synth::generate(&cfg, dir.path()).unwrap();
    std::fs::write(
        dir.path().join("jobs.txt"),
        "[0, 'native', 'AVG_MON', 'all']\n",
    )
    .unwrap();
    let b = s3_support::bucket(&ep, "edp-verify");
    let dest = format!("s3://{b}/out");
    let scratch = dir.path().join("scratch");
    let tasks = dir.path().join("tasks.json");
    let o = edp(&ep, &scratch)
        .current_dir(dir.path())
        .args([
            "tasks", "--jobs", "jobs.txt", "--source", "V4r4", "--grid", "grid",
        ])
        .args(["--dest", &dest, "-o"])
        .arg(&tasks)
        .output()
        .unwrap();
    ok(&o, "edp tasks");
    let o = edp(&ep, &scratch)
        .current_dir(dir.path())
        .env("EDP_STATE_DIR", dir.path().join("state"))
        .args(["run", "--tasks"])
        .arg(&tasks)
        .output()
        .unwrap();
    ok(&o, "edp run to S3");

    let s3 = s3_support::s3();
    let objects = s3.objects_under(&url(&b, "out")).unwrap();
    let mut granules: Vec<&String> = objects.keys().filter(|k| k.ends_with(".nc")).collect();
    granules.sort();
    assert_eq!(granules.len(), 2, "{objects:?}");

    // Clean: by the prefix, with a trailing slash, by the manifest's URL, sizes only.
    for arg in [
        dest.clone(),
        format!("{dest}/"),
        format!("{dest}/edp-manifest.json"),
    ] {
        let (code, text) = verify(&ep, &scratch, &[&arg]);
        assert_eq!(code, Some(0), "{arg}: {text}");
        assert!(
            text.contains("2 granule(s)") && text.contains("OK"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{dest}/edp-manifest.json")),
            "{text}"
        );
    }
    let (code, text) = verify(&ep, &scratch, &[&dest, "--no-checksum", "--content"]);
    assert_eq!(code, Some(0), "{text}");

    // One object overwritten with other bytes of the same size: put_bytes stores the new
    // bytes' sha256 with it, so a check of the stored sha256 would pass.
    let first = url(&b, &format!("out/{}", granules[0]));
    let mut bytes = s3.get_bytes(&first).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    s3.put_bytes(&first, bytes.clone()).unwrap();
    let (code, text) = verify(&ep, &scratch, &[&dest]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("SHA256   {}", granules[0])),
        "{text}"
    );
    assert!(text.contains("1 problem(s)"), "{text}");
    // Sizes only cannot see it; the content check reads the bytes (sha256 included).
    let (code, text) = verify(&ep, &scratch, &[&dest, "--no-checksum"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = verify(&ep, &scratch, &[&dest, "--content"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("SHA256"), "{text}");

    // Truncated, missing, and a stray granule beside them.
    s3.put_bytes(&first, bytes[..mid].to_vec()).unwrap();
    let second = url(&b, &format!("out/{}", granules[1]));
    s3.delete(&second).unwrap();
    let stray = "V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/stray.nc";
    s3.put_bytes(&url(&b, &format!("out/{stray}")), b"x".to_vec())
        .unwrap();
    let (code, text) = verify(&ep, &scratch, &[&dest]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("SIZE     {}", granules[0])),
        "{text}"
    );
    assert!(
        text.contains(&format!("MISSING  {}", granules[1])),
        "{text}"
    );
    assert!(text.contains(&format!("EXTRA    {stray}")), "{text}");

    // No manifest under the prefix: a usage error naming it.
    let (code, text) = verify(&ep, &scratch, &[&format!("s3://{b}/nothing-here")]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!("s3://{b}/nothing-here/edp-manifest.json")),
        "{text}"
    );
}
