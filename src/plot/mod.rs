//! Quick-look images of granules (`edp plot`, `edp run --quicklook`): one field, one
//! level, one time, drawn without Python or system fonts. Native granules are drawn as
//! the 13 LLC tiles in the world layout (faces side by side by longitude, each tile
//! turned north-up, the Arctic cap turned to meet the face below it), lat-lon granules
//! as a map. Perceptually uniform colour maps (viridis; cmocean balance, centred on 0,
//! for fields of both signs), land and fill in grey, a title with long name, units and
//! time, and a colour bar with values. Text uses the public-domain 8×8 font of the
//! `font8x8` crate, compiled in; PNG is encoded by [`png`].

pub mod colormap;
pub mod png;

use std::path::{Path, PathBuf};

use font8x8::UnicodeFonts;

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

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error(transparent)]
    Read(#[from] NcError),
    #[error("{path}: {what}")]
    Granule { path: PathBuf, what: String },
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
    /// Vertical level index (default 0).
    pub level: usize,
    /// Time index (default 0).
    pub time: usize,
}

/// An RGB image, rows top to bottom.
#[derive(Debug, Clone)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl Image {
    fn new(width: usize, height: usize) -> Image {
        let mut rgb = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            rgb.extend_from_slice(&BACKGROUND);
        }
        Image { width, height, rgb }
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
    fn of(values: &[f32], fill: Option<f32>) -> Option<Scale> {
        let (lo, hi) = values
            .iter()
            .filter(|v| v.is_finite() && Some(**v) != fill)
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if lo > hi {
            return None;
        }
        Some(if lo < 0.0 && hi > 0.0 {
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
    fill: Option<f32>,
    long_name: String,
    units: String,
    /// `k = 3 (Z = -25 m)` or empty for 2D.
    level_label: String,
}

fn text_attr(attrs: &[(String, AttrValue)], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| match v {
            AttrValue::Str(s) => Some(s.clone()),
            _ => None,
        })
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
    let per: usize = dims[dims.len() - nh..]
        .iter()
        .map(|d| lens.get(d).copied().unwrap_or(1))
        .product();
    // Index of the wanted (time, level) slab among the outer dimensions.
    let mut slab = 0;
    let mut level_label = String::new();
    for d in outer {
        let len = lens.get(d).copied().unwrap_or(1);
        let want = if d == "time" { opts.time } else { opts.level };
        if want >= len {
            return Err(bad(format!("{d} index {want} is out of range (0..{len})")));
        }
        slab = slab * len + want;
        if d != "time" {
            let coord = match d.as_str() {
                "k" | "Z" => "Z",
                "k_u" => "Zu",
                "k_l" => "Zl",
                "k_p1" => "Zp1",
                _ => "",
            };
            level_label = match r.read_as_f32(coord).ok().and_then(|z| z.get(want).copied()) {
                Some(z) => format!("{d} = {want} (depth {} m)", -z),
                None => format!("{d} = {want}"),
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
        _ => None,
    });
    Ok(Field {
        dims: dims[dims.len() - nh..]
            .iter()
            .map(|d| (d.clone(), lens.get(d).copied().unwrap_or(1)))
            .collect(),
        long_name: text_attr(&attrs, "long_name").unwrap_or_else(|| name.clone()),
        units: text_attr(&attrs, "units").unwrap_or_default(),
        name,
        values,
        fill,
        level_label,
    })
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

fn format_value(v: f32) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.to_string()
        }
    }
}

/// Draws a quick-look of a granule.
pub fn quicklook(granule: &Path, opts: &PlotOptions) -> Result<Image, PlotError> {
    let r = NcReader::open(granule)?;
    let field = read_field(&r, opts)?;
    let scale = Scale::of(&field.values, field.fill).unwrap_or(Scale {
        lo: 0.0,
        hi: 1.0,
        diverging: false,
    });
    let colour = |v: f32| {
        if !v.is_finite() || Some(v) == field.fill {
            LAND
        } else {
            scale.colour(v)
        }
    };
    let (map_w, map_h, mut img);
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
        img = Image::new(map_w + 2 * MARGIN, MARGIN + TITLE_BAND + map_h + BAR_BAND);
        let (xc, yc) = (r.read_as_f32("XC")?, r.read_as_f32("YC")?);
        let layout = native_layout(&xc, &yc, n);
        let (x0, y0) = (MARGIN, MARGIN + TITLE_BAND);
        let tiles = crate::llc::level_view(n, &field.values).map_err(|e| PlotError::Granule {
            path: granule.to_path_buf(),
            what: format!("native field of 13 tiles of {n}x{n}: {e}"),
        })?;
        for (t, (col, row, turns)) in layout.into_iter().enumerate() {
            for ir in 0..n {
                for ic in 0..n {
                    let (j, i) = source_cell(turns, n, ir, ic);
                    let v = tiles[[t, j, i]];
                    img.rect(
                        x0 + col * p + ic * s,
                        y0 + row * p + ir * s,
                        s,
                        s,
                        colour(v),
                    );
                }
            }
        }
    } else {
        let (nlat, nlon) = (field.dims[0].1, field.dims[1].1);
        let s = (720 / nlon).max(1);
        (map_w, map_h) = (nlon * s, nlat * s);
        img = Image::new(map_w + 2 * MARGIN, MARGIN + TITLE_BAND + map_h + BAR_BAND);
        let (x0, y0) = (MARGIN, MARGIN + TITLE_BAND);
        for j in 0..nlat {
            for i in 0..nlon {
                let v = field.values[j * nlon + i];
                img.rect(x0 + i * s, y0 + (nlat - 1 - j) * s, s, s, colour(v));
            }
        }
    }
    // Title: long name and units; then variable, level and time.
    let globals = r.global_attrs()?;
    let time = match (
        text_attr(&globals, "time_coverage_start"),
        text_attr(&globals, "time_coverage_end"),
    ) {
        (Some(a), Some(b)) if a == b => a,
        (Some(a), Some(b)) => format!("{a} to {b}"),
        _ => String::new(),
    };
    let units = if field.units.is_empty() {
        String::new()
    } else {
        format!(" [{}]", field.units)
    };
    let max_chars = map_w / 16;
    let mut line1: String = format!("{}{units}", field.long_name);
    if line1.chars().count() > max_chars {
        line1 = line1
            .chars()
            .take(max_chars.saturating_sub(1))
            .collect::<String>()
            + "~";
    }
    img.text(MARGIN, MARGIN, &line1, 2);
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
    // Colour bar with its ends and middle labelled.
    let bar_w = map_w * 3 / 5;
    let (bx, by) = (
        MARGIN + (map_w - bar_w) / 2,
        MARGIN + TITLE_BAND + map_h + 10,
    );
    for x in 0..bar_w {
        let c = scale.table()[x * 255 / (bar_w - 1).max(1)];
        img.rect(bx + x, by, 1, 14, c);
    }
    let mid = (scale.lo + scale.hi) / 2.0;
    for (frac, v) in [(0.0, scale.lo), (0.5, mid), (1.0, scale.hi)] {
        let label = format_value(v);
        let w = 8 * label.chars().count();
        let cx = bx + (frac * (bar_w - 1) as f32) as usize;
        img.text(cx.saturating_sub(w / 2), by + 18, &label, 1);
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = Scale::of(&[-2.0, 1.0, 9.0], Some(9.0)).unwrap();
        assert!(s.diverging);
        assert_eq!((s.lo, s.hi), (-2.0, 2.0));
        assert_eq!(s.index(0.0), 128);
        let s = Scale::of(&[1.0, 3.0], None).unwrap();
        assert!(!s.diverging);
        assert_eq!((s.index(1.0), s.index(3.0)), (0, 255));
        assert_eq!(format_value(0.25), "0.25");
        assert_eq!(format_value(1.5e-6), "1.500e-6");
    }
}
