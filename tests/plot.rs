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
use edp::plot::{colormap, png::crc32, LAND, LATLON_AXIS, MARGIN, TITLE_BAND};
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
    assert_eq!(w, 720 + 2 * MARGIN + LATLON_AXIS);
    assert!(h > TITLE_BAND + 360 && h < TITLE_BAND + 360 + 100, "{h}");
    let values = NcReader::open(&salt).unwrap().read_f32("SALT").unwrap();
    let level = &values[2 * 360 * 720..3 * 360 * 720];
    let ocean: Vec<f32> = level.iter().copied().filter(|v| *v != FILL_F32).collect();
    let (lo, hi) = ocean
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    assert!(lo > 0.0, "salinity is one-signed: viridis");
    let at = |j: usize, i: usize| {
        px(
            &rgb,
            w,
            MARGIN + LATLON_AXIS + i,
            MARGIN + TITLE_BAND + 359 - j,
        )
    };
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

    // Lat-lon 2D SSH is an anomaly (its long name says so): the diverging map, 0 in its
    // middle.
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
    let c = px(
        &rgb2,
        w2,
        MARGIN + LATLON_AXIS + i,
        MARGIN + TITLE_BAND + 359 - j,
    );
    let want = ((v + m) / (2.0 * m) * 255.0).round() as i64;
    let got = map_index(&colormap::BALANCE, c).expect("a balance colour") as i64;
    assert!((got - want).abs() <= 1, "SSH {v}: index {got}, want {want}");

    // Native, 2D and a level of 3D: 13 tiles in a 4 × 4 panel grid; the land pixels are
    // exactly the land cells (each drawn as a square of the same size).
    for (grouping, var, level, k) in [
        ("SEA_SURFACE_HEIGHT", "SSH", None, 0usize),
        ("OCEAN_TEMPERATURE_SALINITY", "THETA", Some("3"), 3),
    ] {
        let nc = g("native", grouping, "llc0090");
        let png = sample.dir.path().join(format!("{var}_native.png"));
        let level = level.map(|l| vec!["--level", l]).unwrap_or_default();
        plot(&nc, &png, &[&["--var", var][..], &level].concat());
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

/// Whether the glyphs of `label` are drawn at its place in the decoded image: every
/// font pixel set is black, every one clear is not.
fn drawn(rgb: &[u8], w: usize, label: &edp::plot::Label) -> bool {
    use font8x8::UnicodeFonts;
    label.text.chars().enumerate().all(|(n, ch)| {
        let glyph = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
        (0..8).all(|row| {
            (0..8).all(|col| {
                let (x, y) = (
                    label.x + (8 * n + col) * label.scale,
                    label.y + row * label.scale,
                );
                let black = px(rgb, w, x, y) == [0, 0, 0];
                black == (glyph[row] & (1 << col) != 0)
            })
        })
    })
}

/// The plot as the binary writes it, and as the library lays it out (its labels).
fn plot_both(granule: &Path, out: &Path, extra: &[&str]) -> (edp::plot::Image, Vec<u8>) {
    plot(granule, out, extra);
    let (w, h, rgb) = decode(out);
    let mut opts = edp::plot::PlotOptions::default();
    let mut it = extra.iter();
    while let Some(a) = it.next() {
        match *a {
            "--var" => opts.var = it.next().map(|s| s.to_string()),
            "--level" => opts.level = it.next().map(|s| s.parse().unwrap()),
            _ => {}
        }
    }
    let img = edp::plot::quicklook(granule, &opts).unwrap();
    assert_eq!((img.width, img.height), (w, h));
    assert_eq!(img.rgb, rgb, "the binary draws what the library lays out");
    for l in &img.labels {
        assert!(drawn(&rgb, w, l), "{l:?} is not drawn");
    }
    (img, rgb)
}

/// The colour-bar value labels (the row below the bar).
fn bar_labels(img: &edp::plot::Image) -> Vec<String> {
    let y = img.labels.iter().map(|l| l.y).max().unwrap();
    img.labels
        .iter()
        .filter(|l| l.y == y)
        .map(|l| l.text.clone())
        .collect()
}

/// Issue 23, "Plots a scientist trusts": sequential maps for one-signed-ish fields,
/// ticks, whole words, units, `level K (D m)`, rounded colour-bar labels, land grey in
/// `Depth`, `--level` on a 2D field refused, the image in the current directory.
#[test]
fn plots_a_scientist_trusts() {
    let sample = Sample::new(18, 6, 1, &["SSH", "THETA", "SALT"]);
    let out = sample.out();
    let jobs = "[0, 'native', 'AVG_MON', 'all']\n[9, 'latlon', 'AVG_MON', 'all']\n\
                [21, 'native', 'TI', 'all']\n";
    assert_eq!(sample.run_jobs(jobs, &out, &[]), Some(0));
    let dir = sample.dir.path();
    let ts = out.join(
        "V4r4/latlon/mon_mean/OCEAN_TEMPERATURE_SALINITY/\
         OCEAN_TEMPERATURE_SALINITY_mon_mean_1992-01_ECCO_V4r4_latlon_0p50deg.nc",
    );
    let ssh = out.join(
        "V4r4/native/mon_mean/SEA_SURFACE_HEIGHT/\
         SEA_SURFACE_HEIGHT_mon_mean_1992-01_ECCO_V4r4_native_llc0090.nc",
    );
    let geometry =
        out.join("V4r4/native/TI/GRID_GEOMETRY/GRID_GEOMETRY_ECCO_V4r4_native_llc0090.nc");

    // THETA below 0 in a few cells only: viridis over its range, not balance around 0.
    let (img, rgb) = plot_both(&ts, &dir.join("theta.png"), &["--var", "THETA"]);
    let nc = NcReader::open(&ts).unwrap();
    let theta = nc.read_f32("THETA").unwrap();
    let surface: Vec<f32> = theta[..360 * 720]
        .iter()
        .copied()
        .filter(|v| *v != FILL_F32)
        .collect();
    let (lo, hi) = surface
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
    assert!(
        lo < 0.0 && hi > 3.0 * -lo,
        "THETA {lo}..{hi}: a little below 0"
    );
    assert!(!img.scale.diverging);
    assert_eq!((img.scale.lo, img.scale.hi), (lo, hi));
    let (x0, y0, _, map_h) = img.map;
    let w = img.width;
    let coldest = theta[..360 * 720].iter().position(|v| *v == lo).unwrap();
    let (j, i) = (coldest / 720, coldest % 720);
    assert_eq!(
        px(&rgb, w, x0 + i, y0 + 359 - j),
        colormap::VIRIDIS[0],
        "the coldest cell is the sequential map's first colour"
    );
    // Ticks: longitude 0 falls between the cells either side of it, latitude 0 likewise.
    let lon = nc.read_f32("longitude").unwrap();
    let lat = nc.read_f32("latitude").unwrap();
    let east = lon.iter().position(|l| *l > 0.0).unwrap();
    let north = lat.iter().position(|l| *l > 0.0).unwrap();
    assert_eq!(px(&rgb, w, x0 + east, y0 + map_h), [0, 0, 0], "tick at 0°E");
    assert_eq!(
        px(&rgb, w, x0 - 2, y0 + 360 - north),
        [0, 0, 0],
        "tick at the equator"
    );
    let texts: Vec<&str> = img.labels.iter().map(|l| l.text.as_str()).collect();
    for t in [
        "120W", "60W", "0", "60E", "120E", "60S", "30S", "EQ", "30N", "60N",
    ] {
        assert!(texts.contains(&t), "tick label {t}: {texts:?}");
    }
    let zero = img.labels.iter().find(|l| l.text == "0").unwrap();
    assert!(zero.y > y0 + map_h && zero.x + 4 == x0 + east, "{zero:?}");
    // Title: the whole long name and the units.
    assert!(
        texts.contains(&"Potential temperature [degree_C]"),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"degree_C"),
        "units beside the colour bar: {texts:?}"
    );
    // Colour bar: values rounded to the scale's span, yet within half a step of the truth.
    let bars = bar_labels(&img);
    assert_eq!(bars.len(), 3);
    for (label, want) in bars.iter().zip([lo, (lo + hi) / 2.0, hi]) {
        let got: f64 = label.parse().unwrap();
        let decimals = label.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(
            decimals <= 2,
            "{label}: {decimals} decimals for a span of {}",
            hi - lo
        );
        assert!(
            (got - f64::from(want)).abs() <= 0.5 * 10f64.powi(-(decimals as i32)) + 1e-9,
            "{label} for {want}"
        );
    }

    // `level 2 (D m)`, D the depth of its Z (not `Z = 2`, read as metres).
    let (img, _) = plot_both(
        &ts,
        &dir.join("salt.png"),
        &["--var", "SALT", "--level", "2"],
    );
    let z = nc.read_f32("Z").unwrap()[2];
    let depth = format!("{:.1}", -f64::from(z));
    let depth = depth.strip_suffix(".0").unwrap_or(&depth);
    let line = format!("SALT  level 2 ({depth} m)");
    assert!(
        img.labels.iter().any(|l| l.text.starts_with(&line)),
        "{line}: {:?}",
        img.labels
    );

    // GRID_GEOMETRY Depth has no fill value: land is grey by maskC, exactly its dry cells.
    let g = NcReader::open(&geometry).unwrap();
    assert!(
        !g.var_attrs("Depth")
            .unwrap()
            .iter()
            .any(|(k, _)| k == "_FillValue"),
        "Depth has no fill value"
    );
    let mask = g.read_as_f32("maskC").unwrap();
    let dry = mask[..13 * 18 * 18].iter().filter(|m| **m == 0.0).count();
    assert!(dry > 0);
    let (img, rgb) = plot_both(&geometry, &dir.join("depth.png"), &["--var", "Depth"]);
    let (x0, y0, map_w, map_h) = img.map;
    assert_eq!((map_w, map_h), (4 * 180, 4 * 180));
    let mut grey = 0;
    for y in y0..y0 + map_h {
        for x in x0..x0 + map_w {
            grey += usize::from(px(&rgb, img.width, x, y) == LAND);
        }
    }
    let s = 180usize.div_ceil(18);
    assert_eq!(grey, dry * s * s, "grey pixels = dry cells");
    // Its long title is whole words of the long name, and the units.
    let long = g
        .var_attrs("Depth")
        .unwrap()
        .into_iter()
        .find_map(|(k, v)| match (k.as_str(), v) {
            ("long_name", edp::ncio::AttrValue::Str(s)) => Some(s),
            _ => None,
        })
        .unwrap();
    let title = img
        .labels
        .iter()
        .take_while(|l| l.y < y0 - 20)
        .map(|l| l.text.clone());
    let title: Vec<String> = title.collect();
    let words: Vec<&str> = long.split_whitespace().chain(["[m]", "..."]).collect();
    for w in title.join(" ").split_whitespace() {
        assert!(
            words.contains(&w),
            "{w:?} is not a word of {long:?}: {title:?}"
        );
    }
    assert!(title.join(" ").ends_with("[m]"), "{title:?}");

    // --level on a 2D field: exit 2 naming the option, no image.
    let png = dir.join("ssh3.png");
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .arg("plot")
        .arg(&ssh)
        .args(["--level", "3", "-o"])
        .arg(&png)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--level does not apply") && err.contains("SSH"),
        "{err}"
    );
    assert!(!png.exists());

    // Without -o: the granule's name with .png in the current directory, not beside it.
    let cwd = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_edp"))
        .current_dir(cwd.path())
        .arg("plot")
        .arg(&ssh)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let name = ssh.with_extension("png");
    let name = name.file_name().unwrap();
    assert!(cwd.path().join(name).is_file());
    assert!(
        !ssh.with_extension("png").exists(),
        "nothing written into the granule tree"
    );
}

/// A lat-lon file written by xarray (1°, longitudes 0 to 360, float64 coordinates, NaN
/// for land, an `_FillValue` of float64): drawn with ticks from its own coordinates,
/// sequentially, land grey.
#[test]
fn a_map_written_by_xarray_gets_its_own_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let nc = dir.path().join("t2.nc");
    let script = "import numpy as np, xarray as xr, sys\n\
        lat = np.arange(-89.5, 90, 1.0); lon = np.arange(0.5, 360, 1.0)\n\
        t = 10 + 20 * np.cos(np.deg2rad(lat))[:, None] + 0 * lon[None, :] - 12\n\
        t[100:110, 200:230] = np.nan\n\
        da = xr.DataArray(t, dims=('latitude', 'longitude'),\n\
            coords={'latitude': lat, 'longitude': lon},\n\
            attrs={'long_name': 'air temperature at two metres', 'units': 'degC'})\n\
        xr.Dataset({'T2': da}).to_netcdf(sys.argv[1])\n";
    let st = Command::new("python3")
        .args(["-c", script])
        .arg(&nc)
        .status()
        .expect("python3 (scripts/setup.sh installs xarray)");
    assert!(st.success());
    let (img, rgb) = plot_both(&nc, &dir.path().join("t2.png"), &[]);
    assert!(!img.scale.diverging, "-2 to 18: sequential");
    let (x0, y0, map_w, map_h) = img.map;
    assert_eq!((map_w, map_h), (720, 360), "1° cells drawn 2 × 2");
    let texts: Vec<&str> = img.labels.iter().map(|l| l.text.as_str()).collect();
    for t in ["0", "60E", "120E", "180", "120W", "60W", "EQ", "60S", "60N"] {
        assert!(texts.contains(&t), "{t}: {texts:?}");
    }
    // 180 is half-way across a map starting at 0°E.
    let x180 = img.labels.iter().find(|l| l.text == "180").unwrap();
    assert_eq!(x180.x + 12, x0 + 360, "{x180:?}");
    // NaN cells grey: latitude index 105 (15.5°N), longitude index 210 (210.5°E).
    assert_eq!(
        px(&rgb, img.width, x0 + 2 * 210, y0 + 2 * (179 - 105)),
        LAND
    );
    assert!(
        texts.contains(&"air temperature at two metres [degC]"),
        "{texts:?}"
    );
}
