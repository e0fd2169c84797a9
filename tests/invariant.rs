//! Time-invariant granules (geometry and mixing coefficients, native and lat-lon) made
//! by the real binary from a jobs file with `TI` lines, checked against ECCO's geometry
//! metadata JSON, the PO.DAAC rows of the issue and the synthetic inputs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, Sample};
use edp::mds::MdsFile;
use edp::ncio::{AttrValue, NcReader};
use serde_json::Value;

const META: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/metadata/V4r4");

fn records(file: &str) -> Vec<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(Path::new(META).join(file)).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect()
}

fn text(attrs: &[(String, AttrValue)], key: &str) -> Option<String> {
    attrs.iter().find(|(k, _)| k == key).map(|(_, v)| match v {
        AttrValue::Str(s) => s.clone(),
        other => format!("{other:?}"),
    })
}

/// Every record key that ECCO turns into an attribute is there with its value;
/// comments_1/2 become `comment`.
fn check_record(r: &NcReader, rec: &serde_json::Map<String, Value>, file: &str) {
    let name = rec["name"].as_str().unwrap();
    let attrs = r
        .var_attrs(name)
        .unwrap_or_else(|e| panic!("{file}: {name}: {e}"));
    for key in [
        "long_name",
        "units",
        "standard_name",
        "coverage_content_type",
    ] {
        if let Some(Value::String(want)) = rec.get(key) {
            assert_eq!(
                text(&attrs, key).as_deref(),
                Some(want.as_str()),
                "{file}: {name}:{key}"
            );
        }
    }
    let c1 = rec.get("comments_1").and_then(Value::as_str).unwrap_or("");
    if !c1.is_empty() {
        let comment = text(&attrs, "comment").unwrap_or_default();
        assert!(
            comment.starts_with(c1),
            "{file}: {name}: comment {comment:?}"
        );
        let c2 = rec.get("comments_2").and_then(Value::as_str).unwrap_or("");
        assert!(comment.ends_with(c2), "{file}: {name}: comment {comment:?}");
    }
}

/// (file, short name, DOI code, start of the Info text's description): the issue's
/// table of the PO.DAAC rows.
const EXPECTED: [(&str, &str, &str, &str); 4] = [
    (
        "V4r4/native/TI/GRID_GEOMETRY/GRID_GEOMETRY_ECCO_V4r4_native_llc0090.nc",
        "ECCO_L4_GEOMETRY_LLC0090GRID_V4R4",
        "ECL5A-GRD44",
        "This dataset provides geometric parameters for the lat-lon-cap 90 (llc90) native model grid",
    ),
    (
        "V4r4/latlon/TI/GRID_GEOMETRY/GRID_GEOMETRY_ECCO_V4r4_latlon_0p50deg.nc",
        "ECCO_L4_GEOMETRY_05DEG_V4R4",
        "ECG5A-GRD44",
        "This dataset provides geometric parameters for the regular 0.5-degree lat-lon grid",
    ),
    (
        "V4r4/native/TI/OCEAN_3D_MIXING_COEFFS/OCEAN_3D_MIXING_COEFFS_ECCO_V4r4_native_llc0090.nc",
        "ECCO_L4_OCEAN_3D_MIX_COEFFS_LLC0090GRID_V4R4",
        "ECL5A-MIX44",
        "This dataset provides 3D coefficients for the Gent-McWilliams and Redi parameterizations and background vertical diffusivity on the lat-lon-cap 90",
    ),
    (
        "V4r4/latlon/TI/OCEAN_3D_MIXING_COEFFS/OCEAN_3D_MIXING_COEFFS_ECCO_V4r4_latlon_0p50deg.nc",
        "ECCO_L4_OCEAN_3D_MIX_COEFFS_05DEG_V4R4",
        "ECG5A-MIX44",
        "This dataset provides 3D coefficients for the Gent-McWilliams and Redi parameterizations and background vertical diffusivity interpolated to a regular 0.5-degree grid",
    ),
];

#[test]
fn time_invariant_granules_from_ti_job_lines() {
    // LLC90 (the PO.DAAC file names say llc0090), all 50 levels, one month of SSH only.
    let sample = Sample::new(90, 50, 1, &["SSH"]);
    edp::synth::invariant::write_mixing(90, 50, &sample.report.release_dir).unwrap();
    let out = sample.out();
    let jobs = "# the four time-invariant datasets\n\
         [20, 'native', 'TI', 'all']\n\
         ['OCEAN_3D_MIXING_COEFFS', 'latlon', 'TI', 'all']\n\
         ['GEOMETRY', 'native', 'TI', 'all']\n\
         ['GEOMETRY', 'latlon', 'TI', 'all']\n";
    assert_eq!(sample.run_jobs(jobs, &out, &[]), Some(0));

    let geometry_native = records("ECCOv4r4_geometry_metadata_for_native_datasets.json");
    let geometry_latlon = records("ECCOv4r4_geometry_metadata_for_latlon_datasets.json");
    let variables = records("ECCOv4r4_variable_metadata.json");
    let mixing: Vec<_> = variables
        .iter()
        .filter(|r| ["DIFFKR", "KAPGM", "KAPREDI"].contains(&r["name"].as_str().unwrap()))
        .cloned()
        .collect();
    assert_eq!(mixing.len(), 3);

    for (i, (rel, short, doi, summary)) in EXPECTED.iter().enumerate() {
        let path: PathBuf = out.join(rel);
        let r = NcReader::open(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let dims: Vec<String> = r.dims().into_iter().map(|(d, _)| d).collect();
        assert!(!dims.iter().any(|d| d == "time"), "{rel}: dims {dims:?}");
        let names = r.var_names();
        assert!(
            !names.iter().any(|v| v == "time" || v == "time_bnds"),
            "{rel}"
        );
        let recs = match i {
            0 => &geometry_native,
            1 => &geometry_latlon,
            _ => &mixing,
        };
        for rec in recs {
            check_record(&r, rec, rel);
        }
        let g = r.global_attrs().unwrap();
        assert_eq!(text(&g, "id").as_deref(), Some(*short), "{rel}");
        assert_eq!(
            text(&g, "identifier_product_doi"),
            Some(format!("10.5067/{doi}")),
            "{rel}"
        );
        let s = text(&g, "summary").unwrap();
        assert!(s.starts_with(summary), "{rel}: summary {s:?}");
        assert!(text(&g, "time_coverage_duration").is_none(), "{rel}");
        assert_eq!(
            text(&g, "time_coverage_start").as_deref(),
            Some("1992-01-01T12:00:00"),
            "{rel}"
        );
        if have("ncdump") {
            let o = Command::new("ncdump")
                .arg("-h")
                .arg(&path)
                .output()
                .unwrap();
            assert!(o.status.success(), "ncdump -h {rel}");
        }
    }

    // Values. Native mixing: the MDS input on wet cells, the fill on dry ones.
    let grid = edp::grid::Grid::from_mds_dir(&sample.grid_dir()).unwrap();
    let len = grid.level_len();
    let r = NcReader::open(&out.join(EXPECTED[2].0)).unwrap();
    let diffkr = r.read_f32("DIFFKR").unwrap();
    assert_eq!(r.var_dims("DIFFKR").unwrap(), ["k", "tile", "j", "i"]);
    let input = MdsFile::open_base(&edp::synth::invariant::invariant_base(
        &sample.report.release_dir,
        "DIFFKR",
    ))
    .unwrap();
    let mut hfac = vec![0f32; len];
    let mut level = vec![0f32; len];
    for k in [0, 20, 49] {
        input.read_level_tiles(0, k, 90, &mut level).unwrap();
        grid.hfac_level(edp::llc::PointType::C, k, &mut hfac)
            .unwrap();
        for p in (0..len).step_by(97) {
            let got = diffkr[k * len + p];
            if hfac[p] > 0.0 {
                assert_eq!(got, level[p], "DIFFKR k={k} p={p}");
                assert!(got > 1e-6 && got < 1e-4, "{got}");
            } else {
                assert_eq!(got, edp::granule::FILL_F32);
            }
        }
    }

    // Native geometry: hFacC is the grid's, maskC is where it is positive, Depth the grid's.
    // The masks are bytes marked as booleans, as ECCO's GEOMETRY granules (written by
    // xarray from boolean masks) hold them.
    let r = NcReader::open(&out.join(EXPECTED[0].0)).unwrap();
    for mask in ["maskC", "maskW", "maskS"] {
        assert_eq!(r.var_type(mask).unwrap(), edp::ncio::DType::I8, "{mask}");
        let attrs = r.var_attrs(mask).unwrap();
        assert!(
            attrs.contains(&(
                "dtype".to_string(),
                edp::ncio::AttrValue::Str("bool".into())
            )),
            "{mask}: {attrs:?}"
        );
    }
    if have("python3") {
        let o = Command::new("python3")
            .args([
                "-c",
                "import sys, xarray as xr\n\
                 ds = xr.open_dataset(sys.argv[1])\n\
                 print(' '.join(str(ds[m].dtype) for m in ('maskC', 'maskW', 'maskS')))",
            ])
            .arg(out.join(EXPECTED[0].0))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "bool bool bool");
    }
    let hfac_c = r.read_f32("hFacC").unwrap();
    let mask_c = r.read_i8("maskC").unwrap();
    for k in [0, 30] {
        grid.hfac_level(edp::llc::PointType::C, k, &mut hfac)
            .unwrap();
        assert_eq!(&hfac_c[k * len..(k + 1) * len], &hfac[..]);
    }
    assert!(hfac_c
        .iter()
        .zip(&mask_c)
        .all(|(h, m)| (*m == 1) == (*h > 0.0)));
    assert_eq!(
        r.read_f32("Depth").unwrap(),
        grid.horizontal(edp::grid::GridVar::Depth).unwrap()
    );
    assert_eq!(r.var_dims("rAz").unwrap(), ["tile", "j_g", "i_g"]);
    assert_eq!(r.var_dims("drC").unwrap(), ["k_p1"]);
    assert_eq!(r.read_f32("drF").unwrap().len(), 50);

    // Lat-lon geometry: maskC follows the lat-lon land mask, hFacC in (0, 1] on it and
    // 0 off it, the cell areas cover the sphere.
    let r = NcReader::open(&out.join(EXPECTED[1].0)).unwrap();
    assert_eq!(r.var_type("maskC").unwrap(), edp::ncio::DType::I8);
    let (h, m) = (r.read_f32("hFacC").unwrap(), r.read_i8("maskC").unwrap());
    assert_eq!(h.len(), 50 * 360 * 720);
    let wet_top = m[..360 * 720].iter().filter(|x| **x == 1).count();
    let wet_deep = m[40 * 360 * 720..41 * 360 * 720]
        .iter()
        .filter(|x| **x == 1)
        .count();
    assert!(
        wet_top > 360 * 720 / 3 && wet_deep < wet_top,
        "{wet_top} {wet_deep}"
    );
    for (hv, mv) in h.iter().zip(&m) {
        assert!(
            if *mv == 1 {
                *hv > 0.0 && *hv <= 1.0
            } else {
                *hv == 0.0
            },
            "{hv} {mv}"
        );
    }
    let depth = r.read_f32("Depth").unwrap();
    assert!(depth
        .iter()
        .zip(&m[..360 * 720])
        .all(|(d, mv)| (*mv == 1) == (*d > 0.0)));
    let area: f64 = r.read_f32("area").unwrap().iter().map(|a| *a as f64).sum();
    let sphere = 4.0 * std::f64::consts::PI * 6_371_000f64.powi(2);
    assert!((area / sphere - 1.0).abs() < 0.01, "{area} vs {sphere}");

    // Lat-lon mixing: on the lat-lon grid, positive on ocean.
    let r = NcReader::open(&out.join(EXPECTED[3].0)).unwrap();
    assert_eq!(r.var_dims("KAPGM").unwrap(), ["Z", "latitude", "longitude"]);
    let kapgm = r.read_f32("KAPGM").unwrap();
    let ocean: Vec<f32> = kapgm
        .iter()
        .copied()
        .filter(|x| *x != edp::granule::FILL_F32)
        .collect();
    assert!(!ocean.is_empty() && ocean.iter().all(|x| *x > 300.0 && *x < 3000.0));
}
