//! `edp plot`: quick-looks of native and lat-lon granules, 2D and one level of 3D,
//! decoded back from the PNG (chunk CRCs checked, rows inflated with flate2) and
//! checked: image size, land (fill) cells grey, an ocean cell's colour within one step
//! of the colour map at its value.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::Sample;
use edp::granule::FILL_F32;
use edp::ncio::NcReader;
use edp::plot::{colormap, png::crc32, LAND, MARGIN, TITLE_BAND};
use edp::run::manifest::Manifest;

/// Decodes an 8-bit RGB, unfiltered PNG: (width, height, rgb).
fn decode(path: &Path) -> (usize, usize, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let mut p = 8;
    let (mut w, mut h, mut idat) = (0, 0, Vec::new());
    while p < bytes.len() {
        let len = u32::from_be_bytes(bytes[p..p + 4].try_into().unwrap()) as usize;
        let kind = &bytes[p + 4..p + 8];
        let data = &bytes[p + 8..p + 8 + len];
        let crc = u32::from_be_bytes(bytes[p + 8 + len..p + 12 + len].try_into().unwrap());
        assert_eq!(crc, crc32(&bytes[p + 4..p + 8 + len]), "chunk CRC");
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                h = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                assert_eq!(&data[8..10], &[8, 2], "8-bit RGB");
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        p += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(raw.len(), h * (1 + 3 * w));
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in raw.chunks(1 + 3 * w) {
        assert_eq!(row[0], 0, "filter type");
        rgb.extend_from_slice(&row[1..]);
    }
    (w, h, rgb)
}

fn plot(granule: &Path, out: &Path, extra: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .arg("plot")
        .arg(granule)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn px(rgb: &[u8], w: usize, x: usize, y: usize) -> [u8; 3] {
    let p = (y * w + x) * 3;
    [rgb[p], rgb[p + 1], rgb[p + 2]]
}

/// Index of `c` in a colour map, if it is one of its colours.
fn map_index(table: &[[u8; 3]; 256], c: [u8; 3]) -> Option<usize> {
    table.iter().position(|t| *t == c)
}

#[test]
fn quicklooks_of_native_and_latlon_granules() {
    let sample = Sample::new(18, 6, 1, &["SSH", "THETA", "SALT"]);
    let out = sample.out();
    let jobs = "[0, 'native', 'AVG_MON', 'all']\n[15, 'native', 'AVG_MON', 'all']\n\
                [0, 'latlon', 'AVG_MON', 'all']\n[9, 'latlon', 'AVG_MON', 'all']\n";
    assert_eq!(sample.run_jobs(jobs, &out, &[]), Some(0));
    let g = |product: &str, grouping: &str, label: &str| {
        out.join(format!(
            "V4r4/{product}/mon_mean/{grouping}/{grouping}_mon_mean_1992-01_ECCO_V4r4_{product}_{label}.nc"
        ))
    };

    // Lat-lon, one level of 3D: a 720 × 360 map, one pixel per cell, north up.
    let salt = g("latlon", "OCEAN_TEMPERATURE_SALINITY", "0p50deg");
    let png = sample.dir.path().join("salt.png");
    plot(&salt, &png, &["--var", "SALT", "--level", "2"]);
    let (w, h, rgb) = decode(&png);
    assert_eq!(w, 720 + 2 * MARGIN);
    assert!(h > TITLE_BAND + 360 && h < TITLE_BAND + 360 + 100, "{h}");
    let values = NcReader::open(&salt).unwrap().read_f32("SALT").unwrap();
    let level = &values[2 * 360 * 720..3 * 360 * 720];
    let ocean: Vec<f32> = level.iter().copied().filter(|v| *v != FILL_F32).collect();
    let (lo, hi) = ocean
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    assert!(lo > 0.0, "salinity is one-signed: viridis");
    let at = |j: usize, i: usize| px(&rgb, w, MARGIN + i, MARGIN + TITLE_BAND + 359 - j);
    let mut land = 0;
    let mut checked = 0;
    for j in (0..360).step_by(7) {
        for i in (0..720).step_by(11) {
            let v = level[j * 720 + i];
            let c = at(j, i);
            if v == FILL_F32 {
                assert_eq!(c, LAND, "land cell ({j}, {i}) grey");
                land += 1;
            } else {
                let want = ((v - lo) / (hi - lo) * 255.0).round() as i64;
                let got = map_index(&colormap::VIRIDIS, c).unwrap_or_else(|| {
                    panic!("ocean cell ({j}, {i}): {c:?} is not a viridis colour")
                }) as i64;
                assert!(
                    (got - want).abs() <= 1,
                    "({j}, {i}) value {v}: index {got}, want {want}"
                );
                checked += 1;
            }
        }
    }
    assert!(land > 100 && checked > 1000, "{land} {checked}");

    // Lat-lon 2D SSH has both signs: the diverging map, 0 in its middle.
    let png = sample.dir.path().join("ssh_ll.png");
    plot(&g("latlon", "SEA_SURFACE_HEIGHT", "0p50deg"), &png, &[]);
    let (w2, _, rgb2) = decode(&png);
    let ssh = NcReader::open(&g("latlon", "SEA_SURFACE_HEIGHT", "0p50deg"))
        .unwrap()
        .read_f32("SSH")
        .unwrap();
    let m = ssh
        .iter()
        .filter(|v| **v != FILL_F32)
        .fold(0f32, |a, v| a.max(v.abs()));
    let (j, i) = (180, 300);
    let v = ssh[j * 720 + i];
    assert_ne!(v, FILL_F32, "pick an ocean cell");
    let c = px(&rgb2, w2, MARGIN + i, MARGIN + TITLE_BAND + 359 - j);
    let want = ((v + m) / (2.0 * m) * 255.0).round() as i64;
    let got = map_index(&colormap::BALANCE, c).expect("a balance colour") as i64;
    assert!((got - want).abs() <= 1, "SSH {v}: index {got}, want {want}");

    // Native, 2D and a level of 3D: 13 tiles in a 4 × 4 panel grid; the land pixels are
    // exactly the land cells (each drawn as a square of the same size).
    for (grouping, var, level, k) in [
        ("SEA_SURFACE_HEIGHT", "SSH", "0", 0usize),
        ("OCEAN_TEMPERATURE_SALINITY", "THETA", "3", 3),
    ] {
        let nc = g("native", grouping, "llc0090");
        let png = sample.dir.path().join(format!("{var}_native.png"));
        plot(&nc, &png, &["--var", var, "--level", level]);
        let (w, h, rgb) = decode(&png);
        let s = 180usize.div_ceil(18);
        let panel = 18 * s;
        assert_eq!(w, 4 * panel + 2 * MARGIN);
        assert!(h > TITLE_BAND + 4 * panel, "{h}");
        let values = NcReader::open(&nc).unwrap().read_f32(var).unwrap();
        let len = 13 * 18 * 18;
        let level = &values[k * len..(k + 1) * len];
        let land_cells = level.iter().filter(|v| **v == FILL_F32).count();
        let mut grey = 0;
        for y in MARGIN + TITLE_BAND..MARGIN + TITLE_BAND + 4 * panel {
            for x in MARGIN..MARGIN + 4 * panel {
                grey += usize::from(px(&rgb, w, x, y) == LAND);
            }
        }
        assert!(land_cells > 0);
        assert_eq!(grey, land_cells * s * s, "{var}: grey pixels = land cells");
        // Three empty panels of the 4 × 4 grid stay white.
        let white = (MARGIN + TITLE_BAND..MARGIN + TITLE_BAND + panel)
            .flat_map(|y| (MARGIN..MARGIN + 4 * panel).map(move |x| (x, y)))
            .filter(|(x, y)| px(&rgb, w, *x, *y) == [255, 255, 255])
            .count();
        assert_eq!(
            white,
            3 * panel * panel,
            "{var}: one cap panel in the top row"
        );
    }
}

#[test]
fn run_quicklook_writes_a_png_beside_each_granule_and_records_it() {
    let sample = Sample::new(18, 6, 1, &["SSH", "THETA", "SALT"]);
    let jobs = "[0, 'native', 'AVG_MON', 'all']\n[9, 'latlon', 'AVG_MON', 'all']\n";
    let run = |dest: &Path, extra: &[&str]| {
        assert_eq!(sample.run_jobs(jobs, dest, extra), Some(0));
        Manifest::read(&dest.join("edp-manifest.json")).unwrap()
    };
    let plain = sample.dir.path().join("plain");
    let m = run(&plain, &[]);
    assert_eq!(m.granules.len(), 2);
    for r in &m.granules {
        assert_eq!(r.quicklook, None, "off by default");
        assert!(!plain.join(&r.granule).with_extension("png").exists());
    }
    let with = sample.dir.path().join("with");
    let m = run(&with, &["--quicklook"]);
    assert_eq!(m.granules.len(), 2);
    for r in &m.granules {
        let nc = with.join(&r.granule);
        let png = nc.with_extension("png");
        assert_eq!(
            r.quicklook.as_deref(),
            png.file_name().and_then(|n| n.to_str())
        );
        let (w, h, _) = decode(&png);
        assert!(w > 700 && h > 400, "{}: {w}x{h}", png.display());
    }
}
