//! `ncio` + `storage` end to end: an ECCO-native-shaped granule written through the
//! generic writer and read back (values, layout, attribute order and types, storage
//! filters, `ncdump` view), and the atomicity promises: failed or killed writes never
//! leave a file under the final name, nor a temporary file after an orderly failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edp::ncio::{
    write_atomic, AttrValue, Compression, DType, DatasetDef, NcError, NcReader, SlabProducer,
    VarData, VarDef, VarStorage,
};
use edp::storage;

const FILL: f32 = 9.969_21e36;
const N: usize = 90;
const NT: usize = 13;
const NK: usize = 50;

/// Env var that turns [`helper_slow_write_for_kill_test`] into the slow writer the kill
/// test runs in a child process; its value is the final path to write.
const SLOW_WRITE_ENV: &str = "EDP_NCIO_TEST_SLOW_WRITE";
/// Env var naming the file the slow writer creates once it is writing slabs.
const SLOW_MARKER_ENV: &str = "EDP_NCIO_TEST_SLOW_MARKER";

/// Deterministic THETA-like value, with "land" cells at the fill value.
fn theta(k: usize, t: usize, j: usize, i: usize) -> f32 {
    if (i + 2 * j + 3 * t) % 17 == 0 {
        FILL
    } else {
        k as f32 * 0.5 + t as f32 + j as f32 * 0.01 + i as f32 * 1e-4
    }
}

fn theta_level(k: usize, out: &mut [f32]) {
    for t in 0..NT {
        for j in 0..N {
            for i in 0..N {
                out[(t * N + j) * N + i] = theta(k, t, j, i);
            }
        }
    }
}

fn s(x: &str) -> AttrValue {
    AttrValue::Str(x.to_string())
}

fn attrs(list: &[(&str, AttrValue)]) -> Vec<(String, AttrValue)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect()
}

fn int_coord(name: &str, len: usize, extra: &[(&str, AttrValue)]) -> VarDef {
    let mut v = VarDef::new(name, &[name], VarData::I32((0..len as i32).collect()));
    v.attrs = attrs(extra);
    v
}

fn theta_attrs() -> Vec<(String, AttrValue)> {
    attrs(&[
        ("long_name", s("Potential temperature")),
        ("units", s("degree_C")),
        ("valid_min", AttrValue::F32(-2.5)),
        ("valid_max", AttrValue::F32(36.25)),
        ("coverage_content_type", s("modelResult")),
        ("comment", s("")),
        ("coordinates", s("Z time XC YC")),
    ])
}

fn global_attrs() -> Vec<(String, AttrValue)> {
    attrs(&[
        ("acknowledgement", s("synthetic test granule")),
        ("Conventions", s("CF-1.8, ACDD-1.3")),
        ("geospatial_lat_min", AttrValue::F64(-90.0)),
        ("product_version", s("Version 4, Release 4")),
        ("tile_count", AttrValue::I32(13)),
        ("coordinates", s("time_bnds Z_bnds")),
    ])
}

/// An ECCO-native-shaped dataset; THETA is produced slab by slab by `produce`.
fn native_granule(produce: SlabProducer) -> DatasetDef {
    let mut vars = vec![
        int_coord(
            "i",
            N,
            &[
                ("axis", s("X")),
                ("long_name", s("grid index in x")),
                ("c_grid_axis_shift", AttrValue::F64s(vec![-0.5, 0.5])),
            ],
        ),
        int_coord("j", N, &[("axis", s("Y"))]),
        int_coord("k", NK, &[("axis", s("Z"))]),
        int_coord("tile", NT, &[("long_name", s("lat-lon-cap tile index"))]),
    ];
    let mut time = VarDef::new("time", &["time"], VarData::I32(vec![372]));
    time.attrs = attrs(&[
        ("bounds", s("time_bnds")),
        ("units", s("hours since 1992-01-01T12:00:00")),
        ("calendar", s("proleptic_gregorian")),
    ]);
    vars.push(time);
    let mut z = VarDef::new(
        "Z",
        &["k"],
        VarData::F32((0..NK).map(|k| -5.0 - 10.0 * k as f32).collect()),
    );
    z.attrs = attrs(&[("units", s("m")), ("positive", s("up"))]);
    vars.push(z);
    let mut zb = VarDef::new(
        "Z_bnds",
        &["k", "nv"],
        VarData::F64((0..2 * NK).map(|x| -(x as f64) * 5.0).collect()),
    );
    zb.attrs = attrs(&[("units", s("m"))]);
    vars.push(zb);
    let mut xc = VarDef::new(
        "XC",
        &["tile", "j", "i"],
        VarData::F32((0..NT * N * N).map(|x| (x % 360) as f32 - 180.0).collect()),
    );
    xc.attrs = attrs(&[("units", s("degrees_east"))]);
    vars.push(xc);
    vars.push(VarDef::new(
        "time_bnds",
        &["time", "nv"],
        VarData::I32(vec![0, 744]),
    ));
    vars.push(VarDef {
        name: "THETA".into(),
        dtype: DType::F32,
        dims: ["time", "k", "tile", "j", "i"].map(String::from).to_vec(),
        attrs: theta_attrs(),
        fill: Some(AttrValue::F32(FILL)),
        compression: Some(Compression {
            deflate_level: 5,
            shuffle: true,
        }),
        chunks: Some(vec![1, 1, NT, N, N]),
        valid_range: false,
        data: VarData::SlabsF32 {
            slab_dim: 1,
            produce,
        },
    });
    DatasetDef {
        dims: vec![
            ("i".into(), N),
            ("j".into(), N),
            ("k".into(), NK),
            ("tile".into(), NT),
            ("time".into(), 1),
            ("nv".into(), 2),
        ],
        vars,
        global_attrs: global_attrs(),
    }
}

fn good_producer() -> SlabProducer {
    Arc::new(|k, out| {
        theta_level(k, out);
        Ok(())
    })
}

/// A producer that fails at level `fail_at` with a recognisable message.
fn failing_producer(fail_at: usize) -> SlabProducer {
    Arc::new(move |k, out| {
        if k == fail_at {
            return Err(format!("synthetic MDS read failure at level {k}").into());
        }
        theta_level(k, out);
        Ok(())
    })
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        parts.push(c.to_string());
        cur = c.source();
    }
    parts.join(": ")
}

/// `ncdump <args> <path>`; a missing ncdump fails the test (scripts/setup.sh installs it).
fn ncdump(args: &[&str], path: &Path) -> String {
    let out = Command::new("ncdump")
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ncdump (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "ncdump {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Index of the line equal (after trimming) to `line` in `text`, panicking if absent.
fn line_pos(text: &str, line: &str) -> usize {
    text.lines()
        .position(|l| l.trim() == line)
        .unwrap_or_else(|| panic!("ncdump output lacks line `{line}`:\n{text}"))
}

#[test]
fn native_granule_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir
        .path()
        .join("THETA/THETA_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc");
    let report = write_atomic(native_granule(good_producer()), &final_path).unwrap();
    eprintln!(
        "wrote {} bytes ({} uncompressed) in {:?}: {:.1} MB/s of data",
        report.bytes,
        report.data_bytes,
        report.elapsed,
        report.data_mb_per_s()
    );
    assert_eq!(report.bytes, fs::metadata(&final_path).unwrap().len());
    let expected_data =
        // i, j, k, tile, time, Z, XC, time_bnds, THETA as 4-byte values; Z_bnds as 8.
        4 * (2 * N + NK + NT + 1 + NK + NT * N * N + 2 + NK * NT * N * N) + 8 * (2 * NK);
    assert_eq!(report.data_bytes, expected_data as u64);
    // Only the granule: no temporary left beside it.
    assert_eq!(
        dir_entries(final_path.parent().unwrap()),
        vec![final_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()]
    );

    let r = NcReader::open(&final_path).unwrap();
    let dims: Vec<(String, usize)> = r.dims();
    assert_eq!(
        dims,
        [
            ("i", N),
            ("j", N),
            ("k", NK),
            ("tile", NT),
            ("time", 1),
            ("nv", 2)
        ]
        .map(|(n, l)| (n.to_string(), l))
        .to_vec()
    );
    assert_eq!(
        r.var_names(),
        [
            "i",
            "j",
            "k",
            "tile",
            "time",
            "Z",
            "Z_bnds",
            "XC",
            "time_bnds",
            "THETA"
        ]
        .map(String::from)
        .to_vec()
    );
    assert_eq!(
        r.var_dims("THETA").unwrap(),
        ["time", "k", "tile", "j", "i"]
    );
    assert_eq!(r.var_type("THETA").unwrap(), DType::F32);
    assert_eq!(r.var_type("Z_bnds").unwrap(), DType::F64);
    assert_eq!(r.var_type("time").unwrap(), DType::I32);

    // Attributes: exact order and types, `_FillValue` first.
    let mut expected = attrs(&[("_FillValue", AttrValue::F32(FILL))]);
    expected.extend(theta_attrs());
    assert_eq!(r.var_attrs("THETA").unwrap(), expected);
    assert_eq!(
        r.var_attrs("i").unwrap(),
        attrs(&[
            ("axis", s("X")),
            ("long_name", s("grid index in x")),
            ("c_grid_axis_shift", AttrValue::F64s(vec![-0.5, 0.5])),
        ])
    );
    assert_eq!(
        r.var_attrs("Z").unwrap(),
        attrs(&[("units", s("m")), ("positive", s("up"))])
    );
    assert_eq!(r.var_attrs("time_bnds").unwrap(), vec![]);
    assert_eq!(r.global_attrs().unwrap(), global_attrs());

    // Values.
    assert_eq!(r.read_i32("k").unwrap(), (0..NK as i32).collect::<Vec<_>>());
    assert_eq!(r.read_i32("time").unwrap(), vec![372]);
    assert_eq!(r.read_i32("time_bnds").unwrap(), vec![0, 744]);
    assert_eq!(r.read_f32("Z").unwrap()[1], -15.0);
    assert_eq!(r.read_f64("Z_bnds").unwrap()[3], -15.0);
    assert_eq!(r.read_f32("XC").unwrap()[361], -179.0);
    let values = r.read_f32("THETA").unwrap();
    assert_eq!(values.len(), NK * NT * N * N);
    let mut level = vec![0f32; NT * N * N];
    for k in 0..NK {
        theta_level(k, &mut level);
        assert!(
            values[k * level.len()..(k + 1) * level.len()] == level[..],
            "THETA level {k} differs"
        );
    }
    // Reading with the wrong type is refused, not converted.
    assert!(matches!(r.read_f64("THETA"), Err(NcError::Type { .. })));
    assert!(matches!(r.read_f32("nope"), Err(NcError::Missing { .. })));

    // Storage.
    assert_eq!(
        r.var_storage("THETA").unwrap(),
        VarStorage {
            chunking: Some(vec![1, 1, NT, N, N]),
            deflate: Some(5),
            shuffle: true
        }
    );
    assert_eq!(
        r.var_storage("XC").unwrap(),
        VarStorage {
            chunking: None,
            deflate: None,
            shuffle: false
        }
    );

    // The ncdump view.
    let h = ncdump(&["-h"], &final_path);
    let fill_line = line_pos(&h, "THETA:_FillValue = 9.96921e+36f ;");
    assert_eq!(
        line_pos(&h, "float THETA(time, k, tile, j, i) ;") + 1,
        fill_line
    );
    let mut prev = fill_line;
    for line in [
        "THETA:long_name = \"Potential temperature\" ;",
        "THETA:units = \"degree_C\" ;",
        "THETA:valid_min = -2.5f ;",
        "THETA:valid_max = 36.25f ;",
        "THETA:coverage_content_type = \"modelResult\" ;",
        "THETA:comment = \"\" ;",
        "THETA:coordinates = \"Z time XC YC\" ;",
    ] {
        let pos = line_pos(&h, line);
        assert_eq!(pos, prev + 1, "`{line}` out of order:\n{h}");
        prev = pos;
    }
    for line in [
        "int time(time) ;",
        "time:units = \"hours since 1992-01-01T12:00:00\" ;",
        "i:c_grid_axis_shift = -0.5, 0.5 ;",
        "double Z_bnds(k, nv) ;",
        ":geospatial_lat_min = -90. ;",
        ":tile_count = 13 ;",
        ":coordinates = \"time_bnds Z_bnds\" ;",
    ] {
        line_pos(&h, line);
    }
    assert!(
        line_pos(&h, ":acknowledgement = \"synthetic test granule\" ;")
            < line_pos(&h, ":Conventions = \"CF-1.8, ACDD-1.3\" ;")
    );
    assert!(
        !h.contains("XC:_FillValue") && !h.contains("Z:_FillValue"),
        "{h}"
    );

    let hs = ncdump(&["-hs"], &final_path);
    eprintln!("{hs}");
    for line in [
        "THETA:_Storage = \"chunked\" ;",
        "THETA:_ChunkSizes = 1, 1, 13, 90, 90 ;",
        "THETA:_DeflateLevel = 5 ;",
        "THETA:_Shuffle = \"true\" ;",
        "XC:_Storage = \"contiguous\" ;",
        ":_Format = \"netCDF-4\" ;",
    ] {
        line_pos(&hs, line);
    }
    assert!(!hs.contains("XC:_DeflateLevel"), "{hs}");
}

#[test]
fn slab_error_leaves_no_file_and_keeps_message() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("a/b");
    let final_path = out_dir.join("THETA_1992-01.nc");
    let err = write_atomic(native_granule(failing_producer(7)), &final_path).unwrap_err();
    assert!(
        matches!(err, NcError::Slab { slab: 7, ref var, .. } if var == "THETA"),
        "{err:?}"
    );
    let chain = error_chain(&err);
    assert!(
        chain.contains("synthetic MDS read failure at level 7"),
        "{chain}"
    );
    assert!(chain.contains("THETA_1992-01.nc"), "{chain}");
    assert!(!final_path.exists());
    assert_eq!(dir_entries(&out_dir), Vec::<String>::new());
}

#[test]
fn failed_rewrite_keeps_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("g.nc");
    write_atomic(native_granule(good_producer()), &final_path).unwrap();
    let before = fs::read(&final_path).unwrap();

    let err = write_atomic(native_granule(failing_producer(NK - 1)), &final_path).unwrap_err();
    assert!(matches!(err, NcError::Slab { .. }), "{err:?}");
    assert!(
        fs::read(&final_path).unwrap() == before,
        "existing granule changed"
    );
    assert_eq!(dir_entries(dir.path()), vec!["g.nc".to_string()]);

    // A successful rewrite replaces it.
    let mut def = native_granule(good_producer());
    def.global_attrs.push(("history".into(), s("rewritten")));
    write_atomic(def, &final_path).unwrap();
    let r = NcReader::open(&final_path).unwrap();
    assert_eq!(
        r.global_attrs().unwrap().last(),
        Some(&("history".to_string(), s("rewritten")))
    );
    assert_eq!(dir_entries(dir.path()), vec!["g.nc".to_string()]);
}

#[test]
fn panicking_producer_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("p.nc");
    let producer: SlabProducer = Arc::new(|k, out| {
        if k == 3 {
            panic!("producer bug");
        }
        theta_level(k, out);
        Ok(())
    });
    let def = native_granule(producer);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        write_atomic(def, &final_path)
    }));
    assert!(result.is_err());
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn invalid_definitions_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("new_dir/x.nc");
    let cases: Vec<DatasetDef> = vec![
        // Wrong number of values.
        DatasetDef {
            dims: vec![("i".into(), 3)],
            vars: vec![VarDef::new("i", &["i"], VarData::I32(vec![1, 2]))],
            ..Default::default()
        },
        // Undefined dimension.
        DatasetDef {
            dims: vec![("i".into(), 2)],
            vars: vec![VarDef::new("v", &["j"], VarData::I32(vec![1, 2]))],
            ..Default::default()
        },
        // Fill of the wrong type.
        DatasetDef {
            dims: vec![("i".into(), 2)],
            vars: vec![VarDef {
                fill: Some(AttrValue::F64(1.0)),
                ..VarDef::new("v", &["i"], VarData::F32(vec![1.0, 2.0]))
            }],
            ..Default::default()
        },
        // Chunk larger than the dimension.
        DatasetDef {
            dims: vec![("i".into(), 2)],
            vars: vec![VarDef {
                chunks: Some(vec![3]),
                ..VarDef::new("v", &["i"], VarData::F32(vec![1.0, 2.0]))
            }],
            ..Default::default()
        },
        // Zero-length dimension (would silently become unlimited).
        DatasetDef {
            dims: vec![("i".into(), 0)],
            ..Default::default()
        },
    ];
    for def in cases {
        let err = write_atomic(def, &final_path).unwrap_err();
        assert!(matches!(err, NcError::Invalid { .. }), "{err:?}");
    }
    assert!(!final_path.parent().unwrap().exists());
}

/// Not a test on its own: the child process of [`killed_writer_leaves_no_final_file`]
/// (which runs it with `--ignored` and [`SLOW_WRITE_ENV`] set), writing a large dataset
/// slowly. Ignored, so it never counts as a passing test.
#[test]
#[ignore = "child process of killed_writer_leaves_no_final_file, not a test"]
fn helper_slow_write_for_kill_test() {
    let final_path = std::env::var(SLOW_WRITE_ENV)
        .unwrap_or_else(|_| panic!("{SLOW_WRITE_ENV} unset: this is a child process, not a test"));
    let marker = PathBuf::from(std::env::var(SLOW_MARKER_ENV).unwrap());
    let nk = 400;
    let def = DatasetDef {
        dims: vec![
            ("time".into(), 1),
            ("k".into(), nk),
            ("tile".into(), NT),
            ("j".into(), N),
            ("i".into(), N),
        ],
        vars: vec![VarDef {
            fill: Some(AttrValue::F32(FILL)),
            compression: Some(Compression {
                deflate_level: 1,
                shuffle: true,
            }),
            chunks: Some(vec![1, 1, NT, N, N]),
            ..VarDef::new(
                "THETA",
                &["time", "k", "tile", "j", "i"],
                VarData::SlabsF32 {
                    slab_dim: 1,
                    produce: Arc::new(move |k, out| {
                        theta_level(k % NK, out);
                        if k == 2 {
                            fs::write(&marker, b"writing")?;
                        }
                        std::thread::sleep(Duration::from_millis(25));
                        Ok(())
                    }),
                },
            )
        }],
        global_attrs: vec![],
    };
    write_atomic(def, Path::new(&final_path)).unwrap();
}

#[test]
fn killed_writer_leaves_no_final_file() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let final_path = out_dir.join("big.nc");
    let marker = dir.path().join("marker");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "helper_slow_write_for_kill_test",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SLOW_WRITE_ENV, &final_path)
        .env(SLOW_MARKER_ENV, &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("slow writer exited early with {status}");
        }
        assert!(Instant::now() < deadline, "slow writer never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "slow writer finished before it could be killed"
    );
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();

    assert!(!final_path.exists(), "a killed write left a final file");
    // What is left is one recognisable temporary file, which a restart can clean up.
    let left = dir_entries(&out_dir);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(storage::is_temp_name(&out_dir.join(&left[0])), "{left:?}");
    assert!(!left[0].ends_with(".nc"));
    assert_eq!(storage::remove_stale_temps(&out_dir).unwrap(), 1);
    assert_eq!(dir_entries(&out_dir), Vec::<String>::new());
}

/// Throughput of the serial writer for one LLC90 3D field at several compression
/// settings (run with `cargo test --release --test ncio -- --ignored --nocapture`).
#[test]
#[ignore]
fn write_throughput() {
    let dir = tempfile::tempdir().unwrap();
    for compression in [
        None,
        Some((1, true)),
        Some((5, false)),
        Some((5, true)),
        Some((9, true)),
    ] {
        let mut def = native_granule(good_producer());
        let theta = def.vars.last_mut().unwrap();
        theta.compression = compression.map(|(deflate_level, shuffle)| Compression {
            deflate_level,
            shuffle,
        });
        if compression.is_none() {
            theta.chunks = None;
        }
        let r = write_atomic(def, &dir.path().join("t.nc")).unwrap();
        eprintln!(
            "compression {compression:?}: {} bytes in {:?}, {:.1} MB/s of data",
            r.bytes,
            r.elapsed,
            r.data_mb_per_s()
        );
    }
}
