//! Quick-look images of granules (`edp plot`, `edp run --quicklook`): one field, one
//! level, one time, drawn without Python or system fonts. Native granules are drawn as
//! the 13 LLC tiles in the world layout (faces side by side by longitude, each tile
//! turned north-up, the Arctic cap turned to meet the face below it), lat-lon granules
//! as a map with latitude and longitude ticks. Perceptually uniform colour maps:
//! viridis, or cmocean balance centred on 0 for anomaly-like fields only (named so by
//! their metadata, or of both signs in comparable amounts: a temperature from −1.5 to
//! 30 °C is sequential); land and fill in grey (cells a wet mask of the granule marks
//! dry when the field has no fill value, as `Depth`); a title with long name and units
//! wrapped at word boundaries, level and depth, time; a colour bar with rounded values
//! and the units. Text uses the public-domain 8×8 font of the `font8x8` crate, compiled
//! in; PNG is encoded by [`png`].

pub mod colormap;
pub mod png;

use std::path::{Path, PathBuf};

use font8x8::UnicodeFonts;

use crate::granule::attrs::get_text;
use crate::ncio::{AttrValue, NcError, NcReader};

/// Grey of land and fill cells.
pub const LAND: [u8; 3] = [128, 128, 128];
const BACKGROUND: [u8; 3] = [255, 255, 255];
const TEXT: [u8; 3] = [0, 0, 0];
/// Outer margin, title band and colour-bar band (pixels).
pub const MARGIN: usize = 10;
pub const TITLE_BAND: usize = 40;
pub const BAR_BAND: usize = 50;
/// Side of a native tile's panel: the tile scaled by a whole factor to at least this.
pub const PANEL: usize = 180;
/// Lat-lon maps: width of the latitude labels left of the map, and height of the
/// longitude labels below it (pixels).
pub const LATLON_AXIS: usize = 40;
pub const LON_LABELS: usize = 16;
/// A two-signed field is drawn with the diverging map when its smaller extreme is at
/// least this fraction of the larger one (a velocity, a flux); below it, sequentially.
pub const SYMMETRY: f32 = 1.0 / 3.0;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error(transparent)]
    Read(#[from] NcError),
    #[error("{path}: {what}")]
    Granule { path: PathBuf, what: String },
    /// An option that does not apply to the field (`--level` on a 2D field).
    #[error("{path}: {what}")]
    Option { path: PathBuf, what: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to draw.
#[derive(Debug, Clone, Default)]
pub struct PlotOptions {
    /// Data variable (default: the first one with horizontal dimensions).
    pub var: Option<String>,
    /// Vertical level index (default 0); given for a field without levels, an error.
    pub level: Option<usize>,
    /// Time index (default 0); given for a field without time, an error.
    pub time: Option<usize>,
}

/// A string drawn on an image: where (top-left), how large (font pixel size) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub x: usize,
    pub y: usize,
    pub scale: usize,
    pub text: String,
}

/// An RGB image, rows top to bottom.
#[derive(Debug, Clone)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
    /// Every string drawn, in order (title, level, colour-bar values, ticks).
    pub labels: Vec<Label>,
    /// Where the map is: left, top, width, height (pixels).
    pub map: (usize, usize, usize, usize),
    /// The colour scale used.
    pub scale: Scale,
}

impl Image {
    fn new(width: usize, height: usize) -> Image {
        let mut rgb = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            rgb.extend_from_slice(&BACKGROUND);
        }
        Image {
            width,
            height,
            rgb,
            labels: Vec::new(),
            map: (0, 0, 0, 0),
            scale: Scale {
                lo: 0.0,
                hi: 1.0,
                diverging: false,
            },
        }
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let p = (y * self.width + x) * 3;
        [self.rgb[p], self.rgb[p + 1], self.rgb[p + 2]]
    }

    fn put(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.width && y < self.height {
            let p = (y * self.width + x) * 3;
            self.rgb[p..p + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx, yy, c);
            }
        }
    }

    /// Draws `text` with its top-left at (x, y), each font pixel `scale` pixels wide;
    /// characters without a glyph are drawn as '?'. Returns the width drawn.
    fn text(&mut self, x: usize, y: usize, text: &str, scale: usize) -> usize {
        self.labels.push(Label {
            x,
            y,
            scale,
            text: text.to_string(),
        });
        let mut cx = x;
        for ch in text.chars() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::LATIN_FONTS.get(ch))
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.rect(cx + col * scale, y + row * scale, scale, scale, TEXT);
                    }
                }
            }
            cx += 8 * scale;
        }
        cx - x
    }

    /// Encodes the image as PNG and writes it.
    pub fn write_png(&self, path: &Path) -> Result<(), PlotError> {
        let err = |source| PlotError::Write {
            path: path.to_path_buf(),
            source,
        };
        let bytes = png::encode(self.width, self.height, &self.rgb).map_err(err)?;
        std::fs::write(path, bytes).map_err(err)
    }
}

/// The colour scale of a field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub lo: f32,
    pub hi: f32,
    /// Fields with both signs use the diverging map, centred on 0.
    pub diverging: bool,
}

impl Scale {
    /// The scale of the values that are not fill (`drawn` false): diverging, centred on
    /// 0, when the field is an anomaly (`anomaly`, from its metadata) or has both signs
    /// in comparable amounts ([`SYMMETRY`]); else sequential over its range.
    pub fn of(values: &[f32], drawn: impl Fn(usize) -> bool, anomaly: bool) -> Option<Scale> {
        let (lo, hi) = values
            .iter()
            .enumerate()
            .filter(|(p, v)| v.is_finite() && drawn(*p))
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), (_, &v)| {
                (a.min(v), b.max(v))
            });
        if lo > hi {
            return None;
        }
        let symmetric = lo < 0.0 && hi > 0.0 && lo.abs().min(hi) >= SYMMETRY * lo.abs().max(hi);
        Some(if (anomaly && (lo < 0.0 || hi > 0.0)) || symmetric {
            let m = lo.abs().max(hi);
            Scale {
                lo: -m,
                hi: m,
                diverging: true,
            }
        } else {
            Scale {
                lo,
                hi,
                diverging: false,
            }
        })
    }

    /// The colour map index (0–255) of a value.
    pub fn index(&self, v: f32) -> usize {
        let span = self.hi - self.lo;
        let t = if span > 0.0 {
            (v - self.lo) / span
        } else {
            0.5
        };
        (t.clamp(0.0, 1.0) * 255.0).round() as usize
    }

    pub fn table(&self) -> &'static [[u8; 3]; 256] {
        if self.diverging {
            &colormap::BALANCE
        } else {
            &colormap::VIRIDIS
        }
    }

    pub fn colour(&self, v: f32) -> [u8; 3] {
        self.table()[self.index(v)]
    }
}

/// The field drawn: values of one level in the granule's horizontal layout.
struct Field {
    name: String,
    /// Horizontal dimensions and their lengths (tile, j, i) or (latitude, longitude).
    dims: Vec<(String, usize)>,
    values: Vec<f32>,
    /// Cells drawn as land: fill values, or dry by the granule's wet mask.
    land: Vec<bool>,
    long_name: String,
    units: String,
    /// Its metadata calls it an anomaly (long or standard name).
    anomaly: bool,
    /// `level 30 (1205.5 m)`, or empty for 2D.
    level_label: String,
}

/// The vertical coordinate of a vertical dimension (depths are its negatives).
fn vertical_coordinate(dim: &str) -> Option<&'static str> {
    match dim {
        "k" | "Z" => Some("Z"),
        "k_u" => Some("Zu"),
        "k_l" => Some("Zl"),
        "k_p1" => Some("Zp1"),
        _ => None,
    }
}

/// The wet mask (1 wet, 0 dry) of a field without fill values, at the field's level:
/// `maskC`, or `maskW`/`maskS` for fields on cell faces, when the granule has it on the
/// same horizontal dimensions.
fn wet_mask(r: &NcReader, horizontal: &[String], level: usize) -> Option<Vec<f32>> {
    let name = if horizontal.iter().any(|d| d == "i_g") {
        "maskW"
    } else if horizontal.iter().any(|d| d == "j_g") {
        "maskS"
    } else {
        "maskC"
    };
    let dims = r.var_dims(name).ok()?;
    if !dims.ends_with(horizontal) || dims.len() > horizontal.len() + 1 {
        return None;
    }
    let lens: std::collections::HashMap<String, usize> = r.dims().into_iter().collect();
    let per: usize = horizontal
        .iter()
        .map(|d| lens.get(d).copied().unwrap_or(1))
        .product();
    let all = r.read_as_f32(name).ok()?;
    let levels = all.len() / per.max(1);
    let k = level.min(levels.saturating_sub(1));
    all.get(k * per..(k + 1) * per).map(<[f32]>::to_vec)
}

fn read_field(r: &NcReader, opts: &PlotOptions) -> Result<Field, PlotError> {
    let path = r.path().to_path_buf();
    let bad = |what: String| PlotError::Granule {
        path: path.clone(),
        what,
    };
    let lens: std::collections::HashMap<String, usize> = r.dims().into_iter().collect();
    let horizontal = |dims: &[String]| {
        dims.ends_with(&["latitude".to_string(), "longitude".to_string()])
            || (dims.len() >= 3 && dims[dims.len() - 3] == "tile")
    };
    let name = match &opts.var {
        Some(v) => v.clone(),
        None => r
            .var_names()
            .into_iter()
            .find(|v| {
                r.var_dims(v).is_ok_and(|d| horizontal(&d))
                    && !["XC", "YC", "XG", "YG", "XC_bnds", "YC_bnds"].contains(&v.as_str())
            })
            .ok_or_else(|| bad("no data variable on a horizontal grid".into()))?,
    };
    let dims = r
        .var_dims(&name)
        .map_err(|_| bad(format!("no variable {name}")))?;
    if !horizontal(&dims) {
        return Err(bad(format!(
            "{name} ({}) is not on a horizontal grid",
            dims.join(", ")
        )));
    }
    let nh = if dims.last().map(String::as_str) == Some("longitude") {
        2
    } else {
        3
    };
    let outer = &dims[..dims.len() - nh];
    // An option the field has no dimension for would be silently ignored: say so.
    let not_applicable = |option: &str, what: &str| PlotError::Option {
        path: path.clone(),
        what: format!(
            "{option} does not apply: {name} ({}) has no {what}",
            dims.join(", ")
        ),
    };
    let has_time = outer.iter().any(|d| d == "time");
    let has_level = outer.iter().any(|d| d != "time");
    if opts.level.is_some() && !has_level {
        return Err(not_applicable("--level", "vertical levels (a 2D field)"));
    }
    if opts.time.is_some() && !has_time {
        return Err(not_applicable("--time", "time dimension"));
    }
    let per: usize = dims[dims.len() - nh..]
        .iter()
        .map(|d| lens.get(d).copied().unwrap_or(1))
        .product();
    // Index of the wanted (time, level) slab among the outer dimensions.
    let mut slab = 0;
    let mut level_label = String::new();
    let mut level = 0;
    for d in outer {
        let len = lens.get(d).copied().unwrap_or(1);
        let (want, option) = if d == "time" {
            (opts.time.unwrap_or(0), "--time")
        } else {
            (opts.level.unwrap_or(0), "--level")
        };
        if want >= len {
            return Err(bad(format!(
                "{option} {want} is out of range: {name} has {len} along {d} (0 to {})",
                len.saturating_sub(1)
            )));
        }
        slab = slab * len + want;
        if d != "time" {
            level = want;
            let depth = vertical_coordinate(d)
                .and_then(|c| r.read_as_f32(c).ok())
                .and_then(|z| z.get(want).copied());
            level_label = match depth {
                Some(z) => format!("level {want} ({} m)", format_depth(-z)),
                None => format!("level {want}"),
            };
        }
    }
    let all = r.read_as_f32(&name)?;
    let values = all
        .get(slab * per..(slab + 1) * per)
        .ok_or_else(|| bad(format!("{name} holds fewer values than its shape")))?
        .to_vec();
    let attrs = r.var_attrs(&name)?;
    let fill = attrs.iter().find_map(|(k, v)| match (k.as_str(), v) {
        ("_FillValue", AttrValue::F32(f)) => Some(*f),
        ("_FillValue", AttrValue::F64(f)) => Some(*f as f32),
        _ => None,
    });
    let mut land: Vec<bool> = values
        .iter()
        .map(|v| !v.is_finite() || Some(*v) == fill)
        .collect();
    if fill.is_none() {
        if let Some(mask) = wet_mask(r, &dims[dims.len() - nh..], level) {
            for (l, m) in land.iter_mut().zip(mask) {
                *l |= m == 0.0;
            }
        }
    }
    let long_name = get_text(&attrs, "long_name").unwrap_or_else(|| name.clone());
    let anomaly = [Some(long_name.clone()), get_text(&attrs, "standard_name")]
        .iter()
        .flatten()
        .any(|s| s.to_lowercase().contains("anomal"));
    Ok(Field {
        dims: dims[dims.len() - nh..]
            .iter()
            .map(|d| (d.clone(), lens.get(d).copied().unwrap_or(1)))
            .collect(),
        long_name,
        units: get_text(&attrs, "units").unwrap_or_default(),
        anomaly,
        name,
        values,
        land,
        level_label,
    })
}

/// A depth in metres as written in the level label: to 0.1 m, without a trailing `.0`.
fn format_depth(d: f32) -> String {
    let s = format!("{:.1}", f64::from(d));
    let s = s.strip_suffix(".0").unwrap_or(&s).to_string();
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// Rotation (quarter turns counter-clockwise) that puts a tile's north up, judged from
/// its latitudes; and its mean latitude.
fn tile_orientation(yc: &[f32], n: usize) -> (usize, f64) {
    let at = |j: usize, i: usize| f64::from(yc[j * n + i]);
    // Latitude gain per step along +j and along +i, over the tile.
    let (mut dj, mut di) = (0.0, 0.0);
    for a in 0..n - 1 {
        for b in 0..n {
            dj += at(a + 1, b) - at(a, b);
            di += at(b, a + 1) - at(b, a);
        }
    }
    let mean = yc.iter().map(|v| f64::from(*v)).sum::<f64>() / yc.len() as f64;
    // Unrotated, +j runs up the image (rows are drawn north first).
    let turns = if dj.abs() >= di.abs() {
        if dj > 0.0 {
            0
        } else {
            2
        }
    } else if di > 0.0 {
        1
    } else {
        3
    };
    (turns, mean)
}

/// Source (j, i) of image cell (row from top, col) of a tile turned by `turns`.
fn source_cell(turns: usize, n: usize, row: usize, col: usize) -> (usize, usize) {
    // Unturned: row 0 is j = n-1 (north up), col = i.
    let (r, c) = (n - 1 - row, col);
    match turns % 4 {
        0 => (r, c),
        // +i is north: image up = +i, image right = -j.
        1 => (n - 1 - c, r),
        2 => (n - 1 - r, n - 1 - c),
        _ => (c, n - 1 - r),
    }
}

/// Where each of the 13 tiles goes (column, row from the top of a 4 × 4 grid) and how
/// it is turned, from the grid's latitudes and longitudes: faces in columns by
/// longitude, each tile north-up, tiles of a face ordered north to south, and the
/// Arctic cap above the column whose top tile it joins, turned to join it.
pub fn native_layout(xc: &[f32], yc: &[f32], n: usize) -> Vec<(usize, usize, usize)> {
    let len = n * n;
    let tile = |t: usize| &yc[t * len..(t + 1) * len];
    let lon_of = |t: usize| {
        let (s, c) = xc[t * len..(t + 1) * len]
            .iter()
            .fold((0.0f64, 0.0f64), |(s, c), x| {
                let r = f64::from(*x).to_radians();
                (s + r.sin(), c + r.cos())
            });
        s.atan2(c).to_degrees()
    };
    let mut place = vec![(0, 0, 0); 13];
    // Faces: tiles 0–2, 3–5, 7–9, 10–12; columns by the faces' mean longitude from the
    // first face eastward.
    let faces: [[usize; 3]; 4] = [[0, 1, 2], [3, 4, 5], [7, 8, 9], [10, 11, 12]];
    let face_lon: Vec<f64> = faces
        .iter()
        .map(|f| f.iter().map(|t| lon_of(*t)).sum::<f64>() / 3.0)
        .collect();
    let base = face_lon[0];
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by(|a, b| {
        let ka = (face_lon[*a] - base).rem_euclid(360.0);
        let kb = (face_lon[*b] - base).rem_euclid(360.0);
        ka.total_cmp(&kb)
    });
    let mut top_of_column = [0usize; 4];
    for (col, f) in order.iter().enumerate() {
        let mut tiles: Vec<(usize, usize, f64)> = faces[*f]
            .iter()
            .map(|&t| {
                let (turns, mean) = tile_orientation(tile(t), n);
                (t, turns, mean)
            })
            .collect();
        tiles.sort_by(|a, b| b.2.total_cmp(&a.2));
        for (row, (t, turns, _)) in tiles.iter().enumerate() {
            place[*t] = (col, row + 1, *turns);
        }
        top_of_column[col] = tiles[0].0;
    }
    // The cap: the column and turn whose bottom row best meets that column's top row.
    let mut best = (f64::INFINITY, 0, 0);
    for (col, &below) in top_of_column.iter().enumerate() {
        let bturns = place[below].2;
        for turns in 0..4 {
            let mut d = 0.0;
            for c in 0..n {
                let (cj, ci) = source_cell(turns, n, n - 1, c);
                let (bj, bi) = source_cell(bturns, n, 0, c);
                let (p, q) = (6 * len + cj * n + ci, below * len + bj * n + bi);
                let dlat = f64::from(yc[p] - yc[q]);
                let dlon = (f64::from(xc[p] - xc[q]) + 540.0).rem_euclid(360.0) - 180.0;
                d += dlat.abs() + dlon.abs() * f64::from(yc[q]).to_radians().cos();
            }
            if d < best.0 {
                best = (d, col, turns);
            }
        }
    }
    place[6] = (best.1, 0, best.2);
    place
}

/// Colour-bar labels: each value to the digits the scale's span warrants (three
/// significant digits of the span), so `2665.6001` reads `2666`; scientific notation
/// for very large or very small values.
pub fn format_value(v: f32, span: f32) -> String {
    let (v, span) = (f64::from(v), f64::from(span.abs()));
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.2e}");
        // 1.50e-6 -> 1.5e-6
        return match s.split_once('e') {
            Some((m, e)) if m.contains('.') => {
                format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
            }
            _ => s,
        };
    }
    let decimals = if span > 0.0 {
        (2.0 - span.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// Splits a title into lines of at most `max` characters at spaces, never inside a
/// word; the units (`[...]`, last) are kept whole. At most `lines` lines: when it is
/// longer, words of the name are left out before the units and `...` marks where.
pub fn wrap_title(name: &str, units: &str, max: usize, lines: usize) -> Vec<String> {
    let mut words: Vec<String> = name.split_whitespace().map(str::to_string).collect();
    let units = (!units.is_empty()).then(|| format!("[{units}]"));
    let layout = |words: &[String], cut: bool| -> Vec<String> {
        let mut all: Vec<String> = words.to_vec();
        if cut {
            all.push("...".into());
        }
        all.extend(units.clone());
        let mut out: Vec<String> = Vec::new();
        for w in all {
            match out.last_mut() {
                Some(l) if l.chars().count() + 1 + w.chars().count() <= max => {
                    l.push(' ');
                    l.push_str(&w);
                }
                _ => out.push(w),
            }
        }
        out
    };
    let mut out = layout(&words, false);
    while out.len() > lines && !words.is_empty() {
        words.pop();
        out = layout(&words, true);
    }
    out
}

/// Longitude tick label: `120W`, `0`, `60E`, `180` (a grid from 0 to 360°E too).
fn lon_label(l: i32) -> String {
    match l {
        l if l > 180 => lon_label(l - 360),
        0 => "0".into(),
        180 | -180 => "180".into(),
        l if l < 0 => format!("{}W", -l),
        l => format!("{l}E"),
    }
}

/// Latitude tick label: `60S`, `EQ`, `30N`.
fn lat_label(l: i32) -> String {
    match l {
        0 => "EQ".into(),
        l if l < 0 => format!("{}S", -l),
        l => format!("{l}N"),
    }
}

/// The edges of cells centred at `centres` (even spacing assumed): first edge and step.
fn edges(centres: &[f32], lo: f64, hi: f64) -> (f64, f64) {
    match (centres.first(), centres.last()) {
        (Some(&a), Some(&b)) if centres.len() > 1 => {
            let d = (f64::from(b) - f64::from(a)) / (centres.len() - 1) as f64;
            (f64::from(a) - d / 2.0, d)
        }
        _ => (lo, (hi - lo) / centres.len().max(1) as f64),
    }
}

/// Draws a quick-look of a granule.
pub fn quicklook(granule: &Path, opts: &PlotOptions) -> Result<Image, PlotError> {
    let r = NcReader::open(granule)?;
    let field = read_field(&r, opts)?;
    let scale = Scale::of(&field.values, |p| !field.land[p], field.anomaly).unwrap_or(Scale {
        lo: 0.0,
        hi: 1.0,
        diverging: false,
    });
    let colour = |p: usize| {
        let v = field.values[p];
        if field.land[p] || !v.is_finite() {
            LAND
        } else {
            scale.colour(v)
        }
    };
    let (map_w, map_h, mut img, x0);
    let y0 = MARGIN + TITLE_BAND;
    if field.dims[0].0 == "tile" {
        let n = field.dims[1].1;
        if field.dims[0].1 != 13 || field.dims[2].1 != n {
            return Err(PlotError::Granule {
                path: granule.to_path_buf(),
                what: "native fields must be 13 square tiles".into(),
            });
        }
        let s = PANEL.div_ceil(n);
        let p = n * s;
        (map_w, map_h) = (4 * p, 4 * p);
        x0 = MARGIN;
        img = Image::new(map_w + 2 * MARGIN, y0 + map_h + BAR_BAND);
        let (xc, yc) = (r.read_as_f32("XC")?, r.read_as_f32("YC")?);
        let layout = native_layout(&xc, &yc, n);
        for (t, (col, row, turns)) in layout.into_iter().enumerate() {
            for ir in 0..n {
                for ic in 0..n {
                    let (j, i) = source_cell(turns, n, ir, ic);
                    let c = colour((t * n + j) * n + i);
                    img.rect(x0 + col * p + ic * s, y0 + row * p + ir * s, s, s, c);
                }
            }
        }
    } else {
        let (nlat, nlon) = (field.dims[0].1, field.dims[1].1);
        let s = (720 / nlon).max(1);
        (map_w, map_h) = (nlon * s, nlat * s);
        x0 = MARGIN + LATLON_AXIS;
        img = Image::new(x0 + map_w + MARGIN, y0 + map_h + LON_LABELS + BAR_BAND);
        for j in 0..nlat {
            for i in 0..nlon {
                let c = colour(j * nlon + i);
                img.rect(x0 + i * s, y0 + (nlat - 1 - j) * s, s, s, c);
            }
        }
        // Ticks every 60° of longitude and 30° of latitude, from the coordinates
        // (longitudes from -180 or from 0).
        let lon = r.read_as_f32("longitude").unwrap_or_default();
        let lat = r.read_as_f32("latitude").unwrap_or_default();
        let (lon0, dlon) = edges(&lon, -180.0, 180.0);
        let (lat0, dlat) = edges(&lat, -90.0, 90.0);
        for l in (-180..=360).step_by(60) {
            let f = (f64::from(l) - lon0) / dlon;
            if !(-0.01..=nlon as f64 + 0.01).contains(&f) {
                continue;
            }
            let x = x0 + ((f * s as f64).round() as usize).min(map_w - 1);
            img.rect(x, y0 + map_h, 1, 4, TEXT);
            let label = lon_label(l);
            let w = 8 * label.len();
            let lx = x
                .saturating_sub(w / 2)
                .clamp(x0.saturating_sub(w / 2), img.width - w);
            img.text(lx, y0 + map_h + 6, &label, 1);
        }
        for l in (-90..=90).step_by(30) {
            let f = (f64::from(l) - lat0) / dlat;
            if !(-0.01..=nlat as f64 + 0.01).contains(&f) {
                continue;
            }
            let from_top = ((nlat as f64 - f) * s as f64).round() as usize;
            let y = y0 + from_top.min(map_h - 1);
            img.rect(x0 - 4, y, 4, 1, TEXT);
            let label = lat_label(l);
            img.text(x0 - 6 - 8 * label.len(), y.saturating_sub(4), &label, 1);
        }
    }
    img.map = (x0, y0, map_w, map_h);
    img.scale = scale;
    // Title: long name and units, wrapped at word boundaries (one line at double size
    // when it fits); then variable, level and time.
    let globals = r.global_attrs()?;
    let time = match (
        get_text(&globals, "time_coverage_start"),
        get_text(&globals, "time_coverage_end"),
    ) {
        (Some(a), Some(b)) if a == b => a,
        (Some(a), Some(b)) => format!("{a} to {b}"),
        _ => String::new(),
    };
    let width = img.width - 2 * MARGIN;
    let big = wrap_title(&field.long_name, &field.units, width / 16, 1);
    let (lines, title_scale) =
        if big.len() == 1 && big[0].chars().count() <= width / 16 && !big[0].contains("...") {
            (big, 2)
        } else {
            (wrap_title(&field.long_name, &field.units, width / 8, 2), 1)
        };
    for (n, line) in lines.iter().enumerate() {
        img.text(MARGIN, MARGIN + n * 10, line, title_scale);
    }
    let line2 = [
        field.name.as_str(),
        field.level_label.as_str(),
        time.as_str(),
    ]
    .iter()
    .filter(|s| !s.is_empty())
    .copied()
    .collect::<Vec<_>>()
    .join("  ");
    img.text(MARGIN, MARGIN + 22, &line2, 1);
    // Colour bar with its ends and middle labelled, and the units on its right.
    let bar_w = map_w * 3 / 5;
    let (bx, by) = (x0 + (map_w - bar_w) / 2, img.height - BAR_BAND + 10);
    for x in 0..bar_w {
        let c = scale.table()[x * 255 / (bar_w - 1).max(1)];
        img.rect(bx + x, by, 1, 14, c);
    }
    let mid = (scale.lo + scale.hi) / 2.0;
    let span = scale.hi - scale.lo;
    for (frac, v) in [(0.0, scale.lo), (0.5, mid), (1.0, scale.hi)] {
        let label = format_value(v, span);
        let w = 8 * label.chars().count();
        let cx = bx + (frac * (bar_w - 1) as f32) as usize;
        img.text(cx.saturating_sub(w / 2), by + 18, &label, 1);
    }
    if !field.units.is_empty() {
        img.text(bx + bar_w + 8, by + 3, &field.units, 1);
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_wrap_at_words_and_keep_the_units() {
        let t = wrap_title("potential temperature of sea water", "degree_C", 20, 2);
        for line in &t {
            assert!(line.chars().count() <= 20, "{line}");
        }
        assert_eq!(t.len(), 2);
        assert!(t[1].ends_with("[degree_C]"), "{t:?}");
        assert!(t.join(" ").contains("..."), "{t:?}");
        let words = [
            "potential",
            "temperature",
            "of",
            "sea",
            "water",
            "...",
            "[degree_C]",
        ];
        for w in t.join(" ").split(' ') {
            assert!(words.contains(&w), "{w} is a cut word");
        }
    }

    #[test]
    fn turned_tiles_put_north_up() {
        // A 3 × 3 tile whose latitude grows along +i (turn 1).
        let n = 3;
        let yc: Vec<f32> = (0..n * n).map(|p| (p % n) as f32).collect();
        let (turns, _) = tile_orientation(&yc, n);
        assert_eq!(turns, 1);
        // Top image row holds the largest latitude.
        for col in 0..n {
            let (j, i) = source_cell(turns, n, 0, col);
            assert_eq!(yc[j * n + i], 2.0);
        }
    }

    #[test]
    fn scales_and_labels() {
        let all = |_| true;
        let s = Scale::of(&[-2.0, 1.0, 9.0], |p| p != 2, false).unwrap();
        assert!(s.diverging, "both signs, comparable amounts");
        assert_eq!((s.lo, s.hi), (-2.0, 2.0));
        assert_eq!(s.index(0.0), 128);
        let s = Scale::of(&[1.0, 3.0], all, false).unwrap();
        assert!(!s.diverging);
        assert_eq!((s.index(1.0), s.index(3.0)), (0, 255));
        // A temperature slightly below 0: sequential over its range.
        let s = Scale::of(&[-1.5, 12.0, 30.0], all, false).unwrap();
        assert!(!s.diverging);
        assert_eq!((s.lo, s.hi), (-1.5, 30.0));
        // An anomaly by its metadata is diverging even when lopsided.
        assert!(Scale::of(&[-0.1, 2.0], all, true).unwrap().diverging);
        assert_eq!(format_value(0.25, 1.0), "0.25");
        assert_eq!(format_value(1.5e-6, 1e-6), "1.5e-6");
        // f32 2665.6 printed to 4 decimals is the `2665.6001` of the issue.
        assert_eq!(format!("{:.4}", 2665.6f32), "2665.6001");
        assert_eq!(format_value(2665.6, 2665.6), "2666");
        assert_eq!(format_value(-1.5, 31.5), "-1.5");
        assert_eq!(format_depth(1205.5), "1205.5");
        assert_eq!(format_depth(5.0), "5");
        let lons: Vec<String> = [-180, -60, 0, 120, 180, 240, 360].map(lon_label).into();
        assert_eq!(lons, ["180", "60W", "0", "120E", "180", "120W", "0"]);
    }
}
