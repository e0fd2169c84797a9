//! The ECCO grid from an MDS grid directory and from a GRID_GEOMETRY file.

mod common;

use std::sync::Arc;

use common::Sample;
use edp::granule::{Context, Encoding};
use edp::grid::{Grid, GridVar};
use edp::llc::{PointType, NTILES};
use edp::metadata::MetadataSet;
use edp::ncio::NcReader;
use edp::synth;

fn great_circle_deg(a: (f32, f32), b: (f32, f32)) -> f64 {
    let (l1, p1) = ((a.0 as f64).to_radians(), (a.1 as f64).to_radians());
    let (l2, p2) = ((b.0 as f64).to_radians(), (b.1 as f64).to_radians());
    let c = p1.sin() * p2.sin() + p1.cos() * p2.cos() * (l1 - l2).cos();
    c.clamp(-1.0, 1.0).acos().to_degrees()
}

#[test]
fn mds_grid_matches_the_synthetic_geometry() {
    let (n, nz) = (10, 5);
    let sample = Sample::new(n, nz, 1, &["SSH"]);
    let grid = Grid::open(&sample.grid_dir()).unwrap();
    let want = synth::llc_geometry(n, nz);
    assert_eq!((grid.n, grid.nz), (n, nz));
    let close = |a: &[f32], b: &[f64], what: &str| {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (*x as f64 - y).abs() <= 1e-4 * y.abs().max(1.0),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    };
    close(grid.horizontal(GridVar::Xc).unwrap(), &want.xc, "XC");
    close(grid.horizontal(GridVar::Yc).unwrap(), &want.yc, "YC");
    close(
        grid.horizontal(GridVar::Xg).unwrap(),
        &want.metrics.xg,
        "XG",
    );
    close(
        grid.horizontal(GridVar::AngleCs).unwrap(),
        &want.angle_cs,
        "AngleCS",
    );
    close(
        grid.horizontal(GridVar::RAc).unwrap(),
        &want.metrics.rac,
        "RAC",
    );
    assert_eq!(grid.drf, want.drf);
    assert_eq!(grid.rf, want.rf);
    let len = grid.level_len();
    let mut h = vec![0f32; len];
    for k in 0..nz {
        grid.hfac_level(PointType::C, k, &mut h).unwrap();
        close(&h, &want.hfac_c[k], "hFacC");
        grid.hfac_level(PointType::U, k, &mut h).unwrap();
        close(&h, &want.hfac_w[k], "hFacW");
    }
}

#[test]
fn wet_masks_are_the_cells_with_a_positive_hfac_kept_or_not() {
    // Against the synthetic geometry's own hFac (float64, as generated), every level of
    // every point type, asked twice (the second answer comes from the kept masks);
    // G points have no hFac and are all wet.
    let (n, nz) = (10, 5);
    let sample = Sample::new(n, nz, 1, &["SSH"]);
    let want = synth::llc_geometry(n, nz);
    let grid = Grid::open(&sample.grid_dir()).unwrap();
    let mut dry = 0;
    for _ in 0..2 {
        for (p, hfac) in [
            (PointType::C, &want.hfac_c),
            (PointType::U, &want.hfac_w),
            (PointType::V, &want.hfac_s),
        ] {
            assert_eq!(hfac.len(), nz);
            for (k, level) in hfac.iter().enumerate() {
                let wet = grid.wet_level(p, k).unwrap();
                let expected: Vec<u8> = level.iter().map(|&h| u8::from(h > 0.0)).collect();
                assert_eq!(&wet[..], &expected[..], "{p:?} level {k}");
                dry += expected.iter().filter(|&&w| w == 0).count();
            }
        }
        let g = grid.wet_level(PointType::G, 0).unwrap();
        assert!(g.iter().all(|&w| w == 1) && g.len() == grid.level_len());
    }
    assert!(dry > 0, "the synthetic grid has dry cells to tell apart");
}

#[test]
fn cell_corners_surround_their_centres() {
    // Computed from XG/YG and the tile connectivity (no GRID_GEOMETRY file here).
    let sample = Sample::new(12, 3, 1, &["SSH"]);
    let grid = Grid::from_mds_dir(&sample.grid_dir()).unwrap();
    let n = grid.n;
    for t in 0..NTILES {
        for j in 0..n {
            for i in 0..n {
                let c = (t * n + j) * n + i;
                let centre = (
                    grid.horizontal(GridVar::Xc).unwrap()[c],
                    grid.horizontal(GridVar::Yc).unwrap()[c],
                );
                // The sw corner is the stored G point.
                assert_eq!(
                    grid.bounds().unwrap().0[4 * c],
                    grid.horizontal(GridVar::Xg).unwrap()[c]
                );
                assert_eq!(
                    grid.bounds().unwrap().1[4 * c],
                    grid.horizontal(GridVar::Yg).unwrap()[c]
                );
                let corners: Vec<(f32, f32)> = (0..4)
                    .map(|k| {
                        (
                            grid.bounds().unwrap().0[4 * c + k],
                            grid.bounds().unwrap().1[4 * c + k],
                        )
                    })
                    .collect();
                let d: Vec<f64> = corners
                    .iter()
                    .map(|p| great_circle_deg(centre, *p))
                    .collect();
                let (lo, hi) = d
                    .iter()
                    .fold((f64::MAX, 0f64), |(a, b), x| (a.min(*x), b.max(*x)));
                // All four corners are about half a diagonal away, none missing or far off.
                assert!(
                    lo > 0.0,
                    "tile {t} ({j},{i}): a corner coincides with the centre"
                );
                assert!(
                    hi < 3.0 * lo + 1.0,
                    "tile {t} ({j},{i}): corners {d:?} around {centre:?}"
                );
            }
        }
    }
}

#[test]
fn geometry_file_round_trip_gives_the_same_granule_values() {
    let sample = Sample::new(10, 4, 1, &["THETA", "SALT"]);
    let mds = Grid::from_mds_dir(&sample.grid_dir()).unwrap();
    let nc_path = sample
        .dir
        .path()
        .join("GRID_GEOMETRY_ECCO_V4r4_native_llc0010.nc");
    mds.write_geometry_nc(&nc_path).unwrap();
    let nc = Grid::open(&nc_path).unwrap();
    assert_eq!((nc.n, nc.nz), (mds.n, mds.nz));
    same_horizontal(&nc, &mds);
    assert_eq!(nc.rf, mds.rf);
    let len = mds.level_len();
    let (mut a, mut b) = (vec![0f32; len], vec![0f32; len]);
    for p in [PointType::C, PointType::U, PointType::V] {
        for k in 0..mds.nz {
            mds.hfac_level(p, k, &mut a).unwrap();
            nc.hfac_level(p, k, &mut b).unwrap();
            assert_eq!(a, b, "{p:?} level {k}");
        }
    }
    // The same task through either grid gives the same data.
    let task = &sample.tasks("OCEAN_TEMPERATURE_SALINITY")[0];
    let meta = Arc::new(MetadataSet::embedded().unwrap());
    let mut values = Vec::new();
    for (grid, sub) in [(mds, "a"), (nc, "b")] {
        let mut t = task.clone();
        t.granule = t.granule.replace("/out/", &format!("/out-{sub}/"));
        let ctx = Context {
            metadata: Arc::clone(&meta),
            grid: Arc::new(grid),
            encoding: Encoding::default(),
            nonfinite: Default::default(),
            factors: None,
            coords: Default::default(),
        };
        let p = edp::run::produce(
            &t,
            &ctx,
            Default::default(),
            &edp::storage::Storage::new(&Default::default()),
        )
        .unwrap();
        let r = NcReader::open(&p.path).unwrap();
        values.push((
            r.read_f32("THETA").unwrap(),
            r.read_f32("XC_bnds").unwrap(),
            r.read_f32("Z").unwrap(),
        ));
    }
    assert_eq!(values[0], values[1]);
}

#[test]
fn a_directory_without_a_grid_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Grid::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains(&dir.path().display().to_string()) && e.contains("XC.meta"),
        "{e}"
    );
}

/// CDL of a GRID_GEOMETRY file with every variable in double precision, as MITgcm's
/// grid files and xmitgcm/xarray keep them, for `ncgen` (netCDF-C) to write: the file
/// is made by another tool than edp's writer. Horizontal values are `grid`'s (f32, so
/// exactly representable); the vertical ones get an offset no f32 can hold, so that a
/// lossy read shows.
fn float64_geometry_cdl(grid: &Grid) -> String {
    use std::fmt::Write;
    let (n, nz) = (grid.n, grid.nz);
    let mut s = format!(
        "netcdf grid {{\ndimensions:\n\ti = {n} ;\n\ti_g = {n} ;\n\tj = {n} ;\n\tj_g = {n} ;\n\
         \tk = {nz} ;\n\tk_p1 = {} ;\n\ttile = 13 ;\n\tnb = 4 ;\nvariables:\n",
        nz + 1
    );
    let horizontal = [
        ("XC", "tile, j, i"),
        ("YC", "tile, j, i"),
        ("XG", "tile, j_g, i_g"),
        ("YG", "tile, j_g, i_g"),
        ("XC_bnds", "tile, j, i, nb"),
        ("YC_bnds", "tile, j, i, nb"),
        ("CS", "tile, j, i"),
        ("SN", "tile, j, i"),
        ("rA", "tile, j, i"),
        ("Depth", "tile, j, i"),
        ("Z", "k"),
        ("Zp1", "k_p1"),
        ("drF", "k"),
        ("hFacC", "k, tile, j, i"),
        ("hFacW", "k, tile, j, i_g"),
        ("hFacS", "k, tile, j_g, i"),
    ];
    for (name, dims) in horizontal {
        writeln!(s, "\tdouble {name}({dims}) ;").unwrap();
    }
    s.push_str("data:\n");
    let mut put = |name: &str, v: &[f64]| {
        let text: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
        writeln!(s, " {name} = {} ;", text.join(", ")).unwrap();
    };
    let wide = |v: &[f32]| -> Vec<f64> { v.iter().map(|&x| x as f64).collect() };
    put("XC", &wide(grid.horizontal(GridVar::Xc).unwrap()));
    put("YC", &wide(grid.horizontal(GridVar::Yc).unwrap()));
    put("XG", &wide(grid.horizontal(GridVar::Xg).unwrap()));
    put("YG", &wide(grid.horizontal(GridVar::Yg).unwrap()));
    put("XC_bnds", &wide(grid.bounds().unwrap().0));
    put("YC_bnds", &wide(grid.bounds().unwrap().1));
    put("CS", &wide(grid.horizontal(GridVar::AngleCs).unwrap()));
    put("SN", &wide(grid.horizontal(GridVar::AngleSn).unwrap()));
    put("rA", &wide(grid.horizontal(GridVar::RAc).unwrap()));
    put("Depth", &wide(grid.horizontal(GridVar::Depth).unwrap()));
    let fine = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x + 1e-9).collect() };
    put("Z", &fine(&grid.rc));
    put("Zp1", &fine(&grid.rf));
    put("drF", &fine(&grid.drf));
    let len = grid.level_len();
    for (name, p) in [
        ("hFacC", PointType::C),
        ("hFacW", PointType::U),
        ("hFacS", PointType::V),
    ] {
        let mut all = Vec::new();
        let mut level = vec![0f32; len];
        for k in 0..nz {
            grid.hfac_level(p, k, &mut level).unwrap();
            all.extend(wide(&level));
        }
        put(name, &all);
    }
    s.push_str("}\n");
    s
}

#[test]
fn a_float64_geometry_file_written_by_netcdf_c_is_read() {
    common::require("ncgen");
    let sample = Sample::new(8, 3, 1, &["THETA"]);
    let mds = Grid::from_mds_dir(&sample.grid_dir()).unwrap();
    let dir = sample.dir.path().join("grid64");
    std::fs::create_dir(&dir).unwrap();
    let cdl = dir.join("grid.cdl");
    std::fs::write(&cdl, float64_geometry_cdl(&mds)).unwrap();
    let nc_path = dir.join("GRID_GEOMETRY_ECCO_V4r4_native_llc0008.nc");
    let out = std::process::Command::new("ncgen")
        .args(["-k", "nc4", "-o"])
        .arg(&nc_path)
        .arg(&cdl)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&cdl).unwrap();
    // It really is float64 on disk.
    let r = NcReader::open(&nc_path).unwrap();
    let t = r.var_type("XC_bnds").unwrap();
    assert_eq!(format!("{t:?}"), "F64");

    let nc = Grid::open(&dir).unwrap();
    assert_eq!((nc.n, nc.nz), (mds.n, mds.nz));
    same_horizontal(&nc, &mds);
    assert_eq!(
        nc.horizontal(GridVar::AngleSn).unwrap(),
        mds.horizontal(GridVar::AngleSn).unwrap()
    );
    // f64 stays f64: no rounding through f32 on the way.
    let fine: Vec<f64> = mds.rf.iter().map(|x| x + 1e-9).collect();
    assert_eq!(nc.rf, fine);
    assert_ne!(nc.rf, mds.rf);
    let len = mds.level_len();
    let (mut a, mut b) = (vec![0f32; len], vec![0f32; len]);
    for p in [PointType::C, PointType::U, PointType::V] {
        for k in 0..mds.nz {
            mds.hfac_level(p, k, &mut a).unwrap();
            nc.hfac_level(p, k, &mut b).unwrap();
            assert_eq!(a, b, "{p:?} level {k}");
        }
    }

    // `edp factors` takes it as its grid (this is where the f64 file used to stop).
    let factors = dir.join("f.bin");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edp"))
        .args(["factors", "--grid"])
        .arg(&nc_path)
        .arg("-o")
        .arg(&factors)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(factors.metadata().unwrap().len() > 0);
}

#[test]
fn mds_grid_files_in_single_precision_are_read() {
    // MITgcm writes grid files in the model's precision: float32 as well as float64.
    let sample = Sample::new(8, 3, 1, &["SSH"]);
    let g64 = Grid::from_mds_dir(&sample.grid_dir()).unwrap();
    let dir = sample.dir.path().join("grid32");
    std::fs::create_dir(&dir).unwrap();
    let mut converted = 0;
    for e in std::fs::read_dir(sample.grid_dir()).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".meta") {
            let meta = std::fs::read_to_string(&path).unwrap();
            if !meta.contains("'float64'") {
                std::fs::copy(&path, dir.join(&name)).unwrap();
                std::fs::copy(
                    path.with_extension("data"),
                    dir.join(format!("{base}.data")),
                )
                .unwrap();
                continue;
            }
            std::fs::write(dir.join(&name), meta.replace("'float64'", "'float32'")).unwrap();
            let bytes = std::fs::read(path.with_extension("data")).unwrap();
            let narrow: Vec<u8> = bytes
                .chunks_exact(8)
                .flat_map(|c| (f64::from_be_bytes(c.try_into().unwrap()) as f32).to_be_bytes())
                .collect();
            std::fs::write(dir.join(format!("{base}.data")), narrow).unwrap();
            converted += 1;
        } else if !name.ends_with(".data") {
            std::fs::copy(&path, dir.join(&name)).unwrap();
        }
    }
    assert!(converted >= 10, "{converted} float64 grid files");
    let g32 = Grid::open(&dir).unwrap();
    assert_eq!(
        g32.horizontal(GridVar::Xc).unwrap(),
        g64.horizontal(GridVar::Xc).unwrap()
    );
    assert_eq!(
        g32.horizontal(GridVar::AngleCs).unwrap(),
        g64.horizontal(GridVar::AngleCs).unwrap()
    );
    let narrow = |v: &[f64]| -> Vec<f64> { v.iter().map(|&x| x as f32 as f64).collect() };
    assert_eq!(g32.rf, narrow(&g64.rf));
    let len = g64.level_len();
    let (mut a, mut b) = (vec![0f32; len], vec![0f32; len]);
    for k in 0..g64.nz {
        g64.hfac_level(PointType::C, k, &mut a).unwrap();
        g32.hfac_level(PointType::C, k, &mut b).unwrap();
        assert_eq!(a, b, "hFacC level {k}");
    }
}

/// The grids have the same XC, YG and cell-corner longitudes.
fn same_horizontal(a: &Grid, b: &Grid) {
    for v in [GridVar::Xc, GridVar::Yg] {
        assert_eq!(a.horizontal(v).unwrap(), b.horizontal(v).unwrap(), "{v:?}");
    }
    assert_eq!(a.bounds().unwrap().0, b.bounds().unwrap().0);
}
