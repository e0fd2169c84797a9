//! The storage layer against a real S3-compatible server on 127.0.0.1: uploads (single
//! and multipart) with their sha256, ranged downloads, listings past one page, 'all'
//! discovery from such a listing, the bounded scratch cache, and grids given as an S3
//! tarball or prefix.

mod s3_support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use edp::storage::cache::{CacheError, Scratch};
use edp::storage::{S3Url, Storage};
use edp::tasks::discovery::Inventory;
use edp::time::Frequency;

fn url(bucket: &str, key: &str) -> S3Url {
    S3Url {
        bucket: bucket.into(),
        key: key.into(),
    }
}

#[test]
fn multipart_upload_and_ranged_download_round_trip_with_sha256() {
    let Some(ep) = s3_support::server("multipart_upload_and_ranged_download") else {
        return;
    };
    let b = s3_support::bucket(&ep, "edp-mp");
    let dir = tempfile::tempdir().unwrap();
    // Above the 16 MiB part size: two parts up, two ranges down.
    let n = (17 << 20) + 12345;
    let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
    let src = dir.path().join("big.nc");
    std::fs::write(&src, &data).unwrap();
    let u = url(&b, "out/V4r4/big.nc");
    let up = s3_support::s3().upload_file(&src, &u).unwrap();
    assert_eq!(up.parts, 2);
    assert_eq!(up.size, n as u64);
    assert_eq!(up.sha256, edp::storage::sha256_file(&src).unwrap());
    let (info, sha) = s3_support::s3().head(&u).unwrap().expect("object exists");
    assert_eq!(info.size, n as u64);
    assert_eq!(sha.as_deref(), Some(up.sha256.as_str()));
    assert_eq!(info.etag, up.etag);

    let back = dir.path().join("back/big.nc");
    let got = s3_support::s3().download(&u, &back).unwrap();
    assert_eq!(got.size, n as u64);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "downloaded bytes differ"
    );
    // No temporary file is left beside the download.
    let names: Vec<_> = std::fs::read_dir(back.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // A small file goes in one PUT; missing objects are None, not errors.
    let small = dir.path().join("small.txt");
    std::fs::write(&small, b"hello").unwrap();
    assert_eq!(
        s3_support::s3()
            .upload_file(&small, &url(&b, "s.txt"))
            .unwrap()
            .parts,
        1
    );
    assert_eq!(
        s3_support::s3().get_bytes(&url(&b, "s.txt")).unwrap(),
        b"hello"
    );
    assert!(s3_support::s3()
        .head(&url(&b, "missing"))
        .unwrap()
        .is_none());
    let err = s3_support::s3()
        .download(&url(&b, "missing"), &dir.path().join("m"))
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("s3://{b}/missing")),
        "{err}"
    );
    assert!(!dir.path().join("m").exists());
}

/// Puts `keys` (tiny objects) with a few threads.
fn put_many(bucket: &str, keys: &[String]) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(k) = keys.get(i) else { break };
                s3_support::s3()
                    .put_bytes(&url(bucket, k), b"x".to_vec())
                    .unwrap();
            });
        }
    });
}

#[test]
fn all_discovery_lists_past_one_page() {
    let Some(ep) = s3_support::server("all_discovery_lists_past_one_page") else {
        return;
    };
    let b = s3_support::bucket(&ep, "edp-list");
    // 560 daily steps → 1120 keys in one prefix: more than the 1000 keys of one page.
    let steps: Vec<u64> = (1..=560).map(|d| d * 24).collect();
    let dir = "V4r4/diags_daily/SSH_day_mean";
    let mut keys: Vec<String> = steps
        .iter()
        .flat_map(|s| ["data", "meta"].map(|e| format!("{dir}/SSH_day_mean.{s:010}.{e}")))
        .collect();
    // A .data without .meta, and a look-alike variable, must not count.
    keys.push(format!("{dir}/SSH_day_mean.{:010}.data", 999_999));
    keys.push("V4r4/diags_daily/SSHX_day_mean/SSHX_day_mean.0000000024.data".into());
    put_many(&b, &keys);
    assert!(s3_support::s3().list(&url(&b, dir)).unwrap().len() > 1000);

    // The root above the release, as EDP allows.
    let s3 = s3_support::s3();
    let mut inv = Inventory::new(Path::new(&format!("s3://{b}")), "V4r4", Some(&s3));
    let l = inv.listing("SSH", Frequency::AvgDay).clone();
    assert!(inv.errors().is_empty(), "{:?}", inv.errors());
    assert_eq!(l.steps.len(), 560);
    assert_eq!(l.steps.iter().copied().collect::<Vec<_>>(), steps);
    assert_eq!(
        l.unpaired.iter().copied().collect::<Vec<_>>(),
        vec![999_999]
    );
    let pair = inv.pair("SSH", Frequency::AvgDay, 13440);
    assert_eq!(
        pair[0],
        format!("s3://{b}/{dir}/SSH_day_mean.0000013440.data")
    );
    assert_eq!(
        pair[1],
        format!("s3://{b}/{dir}/SSH_day_mean.0000013440.meta")
    );

    // A bucket that does not exist is an error, not an empty listing.
    let mut bad = Inventory::new(
        Path::new("s3://edp-no-such-bucket-here/V4r4"),
        "V4r4",
        Some(&s3),
    );
    assert!(bad.listing("SSH", Frequency::AvgDay).steps.is_empty());
    assert_eq!(bad.errors().len(), 1, "{:?}", bad.errors());
    assert!(
        bad.errors()[0].contains("edp-no-such-bucket-here"),
        "{:?}",
        bad.errors()
    );
}

#[test]
fn scratch_cache_stays_within_its_limit_and_keeps_pinned_inputs() {
    let Some(ep) = s3_support::server("scratch_cache_limit") else {
        return;
    };
    let b = s3_support::bucket(&ep, "edp-cache");
    for (k, n) in [("a", 1000), ("b", 1000), ("c", 1000), ("big", 3000)] {
        s3_support::s3()
            .put_bytes(&url(&b, k), vec![1u8; n])
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let s3 = s3_support::s3();
    let scratch = std::sync::Arc::new(Scratch::open(dir.path(), 2500).unwrap());
    let a = scratch.fetch_input(&s3, &url(&b, "a")).unwrap();
    let a_path = a.path.clone();
    assert_eq!(std::fs::read(&a_path).unwrap().len(), 1000);
    drop(a);
    let pinned_b = scratch.fetch_input(&s3, &url(&b, "b")).unwrap();
    // a (unpinned, oldest) goes to make room for c; b is pinned and stays.
    let c = scratch.fetch_input(&s3, &url(&b, "c")).unwrap();
    assert!(scratch.held_bytes() <= 2500, "{}", scratch.held_bytes());
    assert!(
        !a_path.exists(),
        "the least recently used input was evicted"
    );
    assert!(pinned_b.path.exists() && c.path.exists());
    // Nothing unpinned is left to evict: an input larger than the room is refused.
    let err = scratch.fetch_input(&s3, &url(&b, "big")).unwrap_err();
    assert!(matches!(err, CacheError::Full { .. }), "{err}");
    assert!(err.to_string().contains("EDP_SCRATCH_LIMIT"), "{err}");
    // Fetching a held input again reuses the file.
    let again = scratch.fetch_input(&s3, &url(&b, "c")).unwrap();
    assert_eq!(again.path, c.path);
    drop((pinned_b, c, again));
    scratch.leave();
    assert!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with("proc-")),
        "the process's files are removed at exit"
    );
}

#[test]
fn grid_from_an_s3_tarball_or_prefix_equals_the_local_grid() {
    let Some(ep) = s3_support::server("grid_from_s3") else {
        return;
    };
    let b = s3_support::bucket(&ep, "edp-grid");
    let dir = tempfile::tempdir().unwrap();
    let cfg = edp::synth::SynthConfig {
        n: 12,
        nz: 5,
        months: 1,
        variables: Some(vec!["SSH".into()]),
        ..Default::default()
    };
    edp::synth::generate(&cfg, dir.path()).unwrap();
    let grid_dir = dir.path().join("grid");
    let local = edp::grid::Grid::open(&grid_dir).unwrap();

    // A zipped tarball with a top-level folder, as EDP's example keeps it.
    let tgz = dir.path().join("ECCO_grid.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&tgz).unwrap(),
            flate2::Compression::fast(),
        );
        let mut t = tar::Builder::new(gz);
        t.append_dir_all("ECCO-GRID", &grid_dir).unwrap();
        t.into_inner().unwrap().finish().unwrap();
    }
    s3_support::s3()
        .upload_file(&tgz, &url(&b, "grids/ECCO_grid.tar.gz"))
        .unwrap();
    let storage = Storage::new(&edp::settings::Settings::from_env());
    let open = |loc: &str| {
        storage
            .grid_path(Path::new(loc))
            .map(|p| edp::grid::Grid::open(&p))
    };
    let from_tgz = open(&format!("s3://{b}/grids/ECCO_grid.tar.gz"))
        .unwrap()
        .unwrap();
    // The prefix holding only the tarball (EDP's convention) gives the same grid.
    let from_prefix = open(&format!("s3://{b}/grids")).unwrap().unwrap();
    // And a prefix of the grid files themselves.
    s3_support::upload_tree(&grid_dir, &b, "mds-grid");
    let from_files = open(&format!("s3://{b}/mds-grid")).unwrap().unwrap();
    for g in [&from_tgz, &from_prefix, &from_files] {
        assert_eq!((g.n, g.nz), (local.n, local.nz));
        assert_eq!(
            g.horizontal(edp::grid::GridVar::Xc).unwrap(),
            local.horizontal(edp::grid::GridVar::Xc).unwrap()
        );
        assert_eq!(g.drf, local.drf);
        let mut h1 = vec![0f32; local.level_len()];
        let mut h2 = h1.clone();
        local
            .hfac_level(edp::llc::PointType::C, 2, &mut h1)
            .unwrap();
        g.hfac_level(edp::llc::PointType::C, 2, &mut h2).unwrap();
        assert_eq!(h1, h2);
    }
    // The tarball was unpacked once: both opens share one directory.
    assert_eq!(from_tgz.source, from_prefix.source);

    let missing = open(&format!("s3://{b}/nothing-here")).unwrap_err();
    assert!(missing.to_string().contains("nothing-here"), "{missing}");
}

#[test]
fn remote_objects_are_keyed_relative_to_the_prefix() {
    let Some(ep) = s3_support::server("remote_objects") else {
        return;
    };
    let b = s3_support::bucket(&ep, "edp-rel");
    s3_support::s3()
        .put_bytes(&url(&b, "out/V4r4/a.nc"), b"abc".to_vec())
        .unwrap();
    s3_support::s3()
        .put_bytes(&url(&b, "outside.nc"), b"x".to_vec())
        .unwrap();
    let m = s3_support::s3().objects_under(&url(&b, "out")).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m["V4r4/a.nc"].size, 3);
}
