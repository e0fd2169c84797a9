//! MDS reading/writing and the compact ↔ 13-tile layout, checked against
//! MITgcm's own `.meta` text, against an independent statement of the layout,
//! and (when Python has it) against xmitgcm, the reader EDP itself uses.

use std::path::{Path, PathBuf};
use std::process::Command;

use edp::llc::{self, NTILES};
use edp::mds::{write_vector_f64, MdsError, MdsFile, MdsMeta, MdsWriter, Precision};

/// `.meta` exactly as MITgcm (checkpoint 66g, ECCO V4r4 diagnostics) writes it.
const SSH_META: &str = " nDims = [   2 ];
 dimList = [
    90,    1,   90,
  1170,    1, 1170
 ];
 dataprec = [ 'float32' ];
 nrecords = [     1 ];
 timeStepNumber = [        732 ];
 timeInterval = [  0.000000000000E+00  2.635200000000E+06 ];
 missingValue = [ -9.99000000000000E+02 ];
 nFlds = [    1 ];
 fldList = {
 'SSH     '
 };
";

/// A 1-D vertical grid file as MITgcm writes RC.meta.
const RC_META: &str = " nDims = [   3 ];
 dimList = [
     1,    1,    1,
     1,    1,    1,
    50,    1,   50
 ];
 dataprec = [ 'float64' ];
 nrecords = [     1 ];
 timeStepNumber = [          0 ];
";

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn be_f32(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_be_bytes).collect()
}

/// Asserts an error's message names the file and contains every `needle`.
fn assert_msg(err: MdsError, file: &Path, needles: &[&str]) {
    let msg = err.to_string();
    let name = file.display().to_string();
    assert!(msg.contains(&name), "message {msg:?} does not name {name}");
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} lacks {n:?}");
    }
}

// ---------------------------------------------------------------------------
// .meta parsing
// ---------------------------------------------------------------------------

#[test]
fn errors_stay_small() {
    // Other modules wrap MdsError; keeping it small keeps their errors under
    // clippy's result_large_err limit (128 bytes).
    assert!(
        std::mem::size_of::<MdsError>() <= 88,
        "{}",
        std::mem::size_of::<MdsError>()
    );
}

#[test]
fn parses_mitgcm_meta() {
    let m = MdsMeta::parse_str(SSH_META, "SSH_mon_mean.0000000732.meta").unwrap();
    assert_eq!(m.ndims, 2);
    assert_eq!(m.dims, vec![90, 1170]);
    assert_eq!(m.precision, Precision::F32);
    assert_eq!(m.nrecords, 1);
    assert_eq!(m.time_step, Some(732));
    assert_eq!(m.fields, vec!["SSH".to_string()]);
    assert_eq!(m.path, p("SSH_mon_mean.0000000732.meta"));
}

#[test]
fn writes_mitgcm_meta_text() {
    let m = MdsMeta::parse_str(SSH_META, "x.meta").unwrap();
    // MITgcm's text minus the keys we do not keep (timeInterval, missingValue).
    let expected: String = SSH_META
        .lines()
        .filter(|l| !l.contains("timeInterval") && !l.contains("missingValue"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(m.to_text(), expected);
    // Sizes of 10000 and more switch dimList to I10 columns (LLC1080: 14040 rows).
    let mut big = m.clone();
    big.dims = vec![1080, 14040];
    assert!(big.to_text().contains(
        " dimList = [\n       1080,         1,      1080,\n      14040,         1,     14040\n ];\n"
    ));
    // More than twenty fldList names wrap like Fortran's 20(A2,A8,A1) format,
    // and whatever we write parses back to the same description.
    let mut many = m.clone();
    many.nrecords = 21;
    many.fields = (0..21).map(|k| format!("FLD{k}")).collect();
    let text = many.to_text();
    assert!(text.contains(" 'FLD19   '\n 'FLD20   '\n };\n"), "{text}");
    assert_eq!(MdsMeta::parse_str(&text, &many.path).unwrap(), many);
    assert_eq!(MdsMeta::parse_str(&big.to_text(), &big.path).unwrap(), big);
    let rc = MdsMeta::parse_str(RC_META, "RC.meta").unwrap();
    assert_eq!(rc.to_text(), RC_META);
}

#[test]
fn parses_format_variants() {
    // One line, no spaces, no `;`, comments, tabs, unknown keys.
    let a =
        "nDims=[3]\ndimList=[90,1,90,1170,1,1170,50,1,50]\ndataprec=['float64']\nnrecords=[1]\n";
    let m = MdsMeta::parse_str(a, "a.meta").unwrap();
    assert_eq!(
        (m.dims.clone(), m.precision, m.time_step),
        (vec![90, 1170, 50], Precision::F64, None)
    );
    assert!(m.fields.is_empty());

    let b = "/* written by hand */\n simulation = { 'ECCO V4r4; test' };\n# comment line\n\
             \tnDims = [ 2 ] ; // trailing comment\n dimList = [ 5 1 5\n   65 1 65 ];\n\
             dataprec = [ \"real*8\" ];\n nrecords = [\n 3\n ];\n map2glob = [ 0, 1 ];\n\
             timeStepNumber = 12;\n nFlds = [ 3 ];\n fldList = {\n 'UVEL    ' 'VVEL    '\n\n  'WVEL    '\n };\n\
             timeStepDate (YYYYMMDDTHHmmss) = [ '19920101T120000' ];\n";
    let m = MdsMeta::parse_str(b, "b.meta").unwrap();
    assert_eq!(m.dims, vec![5, 65]);
    assert_eq!(m.precision, Precision::F64);
    assert_eq!(m.nrecords, 3);
    assert_eq!(m.time_step, Some(12));
    assert_eq!(m.fields, vec!["UVEL", "VVEL", "WVEL"]);

    for (prec, want) in [
        ("real*4", Precision::F32),
        ("REAL*8", Precision::F64),
        ("float32", Precision::F32),
    ] {
        let t = format!(" nDims = [ 1 ];\n dimList = [ 4, 1, 4 ];\n dataprec = [ '{prec}' ];\n nrecords = [ 1 ];\n");
        assert_eq!(MdsMeta::parse_str(&t, "c.meta").unwrap().precision, want);
    }

    // A tile file: dims are the extent start..=end of each triple.
    let t = " nDims = [ 2 ];\n dimList = [\n 90, 31, 60,\n 1170, 1, 1170\n ];\n dataprec = [ 'float32' ];\n nrecords = [ 1 ];\n";
    assert_eq!(
        MdsMeta::parse_str(t, "d.meta").unwrap().dims,
        vec![30, 1170]
    );
}

#[test]
fn meta_errors_name_the_file() {
    let f = p("/data/V4r4/SSH_mon_mean.0000000732.meta");
    let cases: &[(&str, &[&str])] = &[
        (
            &SSH_META.replace("float32", "float16"),
            &["float16", "float32"],
        ),
        (
            &SSH_META.replace(" dataprec = [ 'float32' ];\n", ""),
            &["dataprec"],
        ),
        (
            &SSH_META.replace(" nrecords = [     1 ];\n", ""),
            &["nrecords"],
        ),
        (
            &SSH_META.replace("[   2 ]", "[   3 ]"),
            &["nDims = 3", "9 dimList values", "found 6"],
        ),
        (
            &SSH_META.replace("  1170,    1, 1170", "  1170,    1, 1170,\n 50, 1, 50"),
            &["nDims = 2", "found 9"],
        ),
        (
            &SSH_META.replace("nrecords = [     1 ]", "nrecords = [     2 ]"),
            &["nrecords = 2", "fldList has 1"],
        ),
        (&SSH_META.replace("[   2 ]", "[   4 ]"), &["nDims = 4"]),
        (
            &SSH_META.replace("    90,    1,   90,", "    90,    1,   91,"),
            &["[90, 1, 91]"],
        ),
        (
            &SSH_META.replace("nrecords = [     1 ]", "nrecords = [ one ]"),
            &["nrecords", "\"one\""],
        ),
        (
            &SSH_META.replace(" dataprec = ", " dataprec "),
            &["expected `=`"],
        ),
        (
            &SSH_META.replace("'SSH     '", "'SSH     "),
            &["unterminated"],
        ),
        (
            &SSH_META.replace(" ];\n dataprec", " \n dataprec"),
            &["dimList"],
        ),
    ];
    for (text, needles) in cases {
        let err = MdsMeta::parse_str(text, &f).expect_err(text);
        assert_msg(err, &f, needles);
    }
    let missing = p("/nonexistent/dir/X.meta");
    assert_msg(
        MdsMeta::parse(&missing).unwrap_err(),
        &missing,
        &["cannot read"],
    );
}

// ---------------------------------------------------------------------------
// .data reading
// ---------------------------------------------------------------------------

/// Writes `NAME.meta` and `NAME.data` in `dir`.
fn pair(dir: &Path, name: &str, meta: &str, data: &[u8]) -> (PathBuf, PathBuf) {
    let d = dir.join(format!("{name}.data"));
    let m = dir.join(format!("{name}.meta"));
    write(&m, meta);
    std::fs::write(&d, data).unwrap();
    (d, m)
}

fn llc_meta(n: usize, nz: Option<usize>, prec: &str, fields: &[&str]) -> String {
    let mut s = format!(
        " nDims = [   {} ];\n dimList = [\n {n:>5},    1,{n:>5},\n {:>5},    1,{:>5}{}\n",
        if nz.is_some() { 3 } else { 2 },
        13 * n,
        13 * n,
        if nz.is_some() { "," } else { "" }
    );
    if let Some(z) = nz {
        s += &format!(" {z:>5},    1,{z:>5}\n");
    }
    s += &format!(
        " ];\n dataprec = [ '{prec}' ];\n nrecords = [ {:>5} ];\n",
        fields.len().max(1)
    );
    if !fields.is_empty() {
        s += &format!(" nFlds = [ {:>4} ];\n fldList = {{\n", fields.len());
        for f in fields {
            s += &format!(" '{f:<8}'");
        }
        s += "\n };\n";
    }
    s
}

#[test]
fn multi_record_file_reads_each_field_and_level() {
    let dir = tempfile::tempdir().unwrap();
    let (n, nz) = (2, 3);
    let level = 13 * n * n;
    let fields = ["THETA", "SALT", "UVEL"];
    // value = record·1000 + level·100 + position in the level
    let values = (0..3).flat_map(|r| {
        (0..nz).flat_map(move |k| (0..level).map(move |x| (r * 1000 + k * 100 + x) as f32))
    });
    let (d, m) = pair(
        dir.path(),
        "state_3d_set1.0000000732",
        &llc_meta(n, Some(nz), "float32", &fields),
        &be_f32(values),
    );
    let f = MdsFile::open(&d, &m).unwrap();
    assert_eq!((f.nx(), f.ny(), f.nz(), f.nrecords()), (2, 26, 3, 3));
    assert_eq!(f.record_index("SALT").unwrap(), 1);
    assert_eq!(f.record_index("UVEL    ").unwrap(), 2);
    let mut out = vec![0f32; level];
    f.read_level(2, 1, &mut out).unwrap();
    assert_eq!(out[0], 2100.0);
    assert_eq!(out[level - 1], 2100.0 + (level - 1) as f32);
    let mut out64 = vec![0f64; level];
    f.read_level(1, 2, &mut out64).unwrap();
    assert_eq!(out64[5], 1205.0);

    assert_msg(
        f.record_index("VVEL").unwrap_err(),
        &d,
        &["VVEL", "THETA", "SALT"],
    );
    assert_msg(
        f.read_level(0, 3, &mut out).unwrap_err(),
        &d,
        &["level 3", "3 levels"],
    );
    assert_msg(
        f.read_level(3, 0, &mut out).unwrap_err(),
        &d,
        &["record 3", "3 records"],
    );
    assert_msg(
        f.read_level(0, 0, &mut out[1..]).unwrap_err(),
        &d,
        &["51", "52"],
    );
}

#[test]
fn file_without_fldlist_is_named_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let n = 1;
    let (d, m) = pair(
        dir.path(),
        "SSH_mon_mean.0000000732",
        &llc_meta(n, None, "float64", &[]),
        &[0u8; 13 * 8],
    );
    let f = MdsFile::open(&d, &m).unwrap();
    assert_eq!(f.prefix(), "SSH_mon_mean");
    assert_eq!(f.record_index("SSH_mon_mean").unwrap(), 0);
    assert_msg(
        f.record_index("SSH").unwrap_err(),
        &d,
        &["\"SSH\"", "SSH_mon_mean"],
    );
    // open_base finds the same pair.
    let g = MdsFile::open_base(&dir.path().join("SSH_mon_mean.0000000732")).unwrap();
    assert_eq!(g.meta().dims, vec![1, 13]);
}

#[test]
fn data_size_mismatch_names_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let n = 3;
    let full = be_f32((0..13 * n * n).map(|v| v as f32));
    // Truncated by one value.
    let (d, m) = pair(
        dir.path(),
        "ETAN.0000000001",
        &llc_meta(n, None, "float32", &["ETAN"]),
        &full[..full.len() - 4],
    );
    let err = MdsFile::open(&d, &m).unwrap_err();
    assert!(
        matches!(&err, MdsError::DataSize(d) if d.expected == 468 && d.found == 464),
        "{err:?}"
    );
    assert_msg(err, &d, &["464 bytes", "468 bytes", "ETAN.0000000001.meta"]);
    // The .meta says float64 but the data are float32-sized.
    let (d, m) = pair(
        dir.path(),
        "ETAN.0000000002",
        &llc_meta(n, None, "float64", &["ETAN"]),
        &full,
    );
    assert_msg(
        MdsFile::open(&d, &m).unwrap_err(),
        &d,
        &["468 bytes", "936 bytes"],
    );
    // Absurd dims overflow nothing; they just do not match the file.
    let huge = " nDims = [ 3 ];\n dimList = [ 4000000000, 1, 4000000000, 4000000000, 1, 4000000000, 4000000000, 1, 4000000000 ];\n dataprec = [ 'float64' ];\n nrecords = [ 1 ];\n";
    let (d, m) = pair(dir.path(), "HUGE", huge, &full);
    assert_msg(MdsFile::open(&d, &m).unwrap_err(), &d, &["468 bytes"]);
    // Missing .data.
    let missing = dir.path().join("nothing.data");
    assert_msg(
        MdsFile::open(&missing, &m).unwrap_err(),
        &missing,
        &["cannot open"],
    );
}

#[test]
fn llc_shape_must_match_the_grid() {
    let dir = tempfile::tempdir().unwrap();
    let n = 3;
    let (d, m) = pair(
        dir.path(),
        "T",
        &llc_meta(n, None, "float32", &[]),
        &be_f32((0..13 * n * n).map(|v| v as f32)),
    );
    let f = MdsFile::open(&d, &m).unwrap();
    let mut tiles = vec![0f32; 13 * 4 * 4];
    let err = f.read_level_tiles(0, 0, 4, &mut tiles).unwrap_err();
    assert_msg(err, &d, &["3 x 39", "LLC4", "4 x 52"]);
    let mut tiles = vec![0f32; 13 * 9];
    f.read_level_tiles(0, 0, 3, &mut tiles).unwrap();
    assert_msg(
        f.read_level_tiles(0, 0, 3, &mut tiles[1..]).unwrap_err(),
        &d,
        &["tiled level"],
    );
}

#[test]
fn vertical_grid_files() {
    let dir = tempfile::tempdir().unwrap();
    let rc: Vec<f64> = (0..50).map(|k| -5.0 - 10.0 * k as f64).collect();
    let data: Vec<u8> = rc.iter().flat_map(|v| v.to_be_bytes()).collect();
    let (d, m) = pair(dir.path(), "RC", RC_META, &data);
    let f = MdsFile::open(&d, &m).unwrap();
    assert_eq!((f.nx(), f.ny(), f.nz()), (1, 1, 50));
    assert_eq!(f.read_all_f64(0).unwrap(), rc);
    assert_eq!(f.record_index("RC").unwrap(), 0);
    let mut one = [0f32; 1];
    f.read_level(0, 49, &mut one).unwrap();
    assert_eq!(one[0], -495.0);

    // Our writer produces the same layout.
    let drf: Vec<f64> = (0..7).map(|k| 10.0 + k as f64 * 0.125).collect();
    write_vector_f64(&dir.path().join("DRF"), &drf, "DRF").unwrap();
    let g = MdsFile::open_base(&dir.path().join("DRF")).unwrap();
    assert_eq!(g.meta().ndims, 3);
    assert_eq!(g.meta().dims, vec![1, 1, 7]);
    assert_eq!(g.precision(), Precision::F64);
    assert_eq!(g.read_all_f64(g.record_index("DRF").unwrap()).unwrap(), drf);
}

// ---------------------------------------------------------------------------
// Layout: an independent expectation and the writer → reader round trip
// ---------------------------------------------------------------------------

/// Tile value expected at (tile, j, i) of a level whose compact array is
/// `compact`, stated the way xmitgcm reads it (not via `llc::compact_index`):
/// the file is five facets of 3N, 3N, N, 3N, 3N rows of N; facets 1–3 are
/// C-ordered (rows, cols) and cut into N-row faces; facets 4 and 5 are read as
/// (3N, N) arrays in Fortran order, cut into N-row pieces and transposed.
fn xmitgcm_style_tile(n: usize, compact: &[f32], tile: usize, j: usize, i: usize) -> f32 {
    let facet_start_rows = [0, 3 * n, 6 * n, 7 * n, 10 * n];
    let (facet, offset) = match tile {
        0..=2 => (0, tile),
        3..=5 => (1, tile - 3),
        6 => (2, 0),
        7..=9 => (3, tile - 7),
        _ => (4, tile - 10),
    };
    let facet_base = facet_start_rows[facet] * n;
    if facet < 3 {
        // C order (rows, n): element (r, c) at r·n + c.
        compact[facet_base + (offset * n + j) * n + i]
    } else {
        // Fortran order (3n, n): element (r, c) at r + c·3n; the face is rows
        // offset·n.. of that array, transposed, so tile[j][i] = face[i][j].
        let (r, c) = (offset * n + i, j);
        compact[facet_base + r + c * 3 * n]
    }
}

#[test]
fn compact_to_tiles_matches_independent_statement() {
    for n in [7, 90] {
        let compact: Vec<f32> = (0..13 * n * n).map(|v| v as f32).collect();
        let mut tiles = vec![0f32; compact.len()];
        llc::compact_to_tiles(n, &compact, &mut tiles);
        for t in 0..NTILES {
            for j in 0..n {
                for i in 0..n {
                    assert_eq!(
                        tiles[(t * n + j) * n + i],
                        xmitgcm_style_tile(n, &compact, t, j, i),
                        "n={n} tile {t} ({j},{i})"
                    );
                }
            }
        }
    }
}

/// A value that identifies (field, level, tile, j, i) exactly in f32.
fn known(field: usize, k: usize, t: usize, j: usize, i: usize, n: usize) -> f32 {
    ((((field * 4 + k) * NTILES + t) * n + j) * n + i) as f32 * 0.5 - 1000.0
}

fn tiles_of(field: usize, k: usize, n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(NTILES * n * n);
    for t in 0..NTILES {
        for j in 0..n {
            for i in 0..n {
                v.push(known(field, k, t, j, i, n));
            }
        }
    }
    v
}

fn write_known(
    base: &Path,
    field: usize,
    name: &str,
    n: usize,
    nz: Option<usize>,
    prec: Precision,
) {
    let mut w = MdsWriter::create(base, n, nz, prec, name, Some(732)).unwrap();
    for k in 0..nz.unwrap_or(1) {
        w.write_level_tiles(&tiles_of(field, k, n)).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn writer_reader_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for (n, nz, prec) in [
        (7, Some(3), Precision::F32),
        (7, None, Precision::F64),
        (90, Some(2), Precision::F32),
    ] {
        let base = dir.path().join(format!("UVEL_mon_mean.{n}.0000000732"));
        write_known(&base, 1, "UVEL", n, nz, prec);
        // The f64 entry point writes the same file.
        let base64 = dir.path().join(format!("UVEL64.{n}.0000000732"));
        let mut w = MdsWriter::create(&base64, n, nz, prec, "UVEL", Some(732)).unwrap();
        for k in 0..nz.unwrap_or(1) {
            let t: Vec<f64> = tiles_of(1, k, n).into_iter().map(f64::from).collect();
            w.write_level_tiles_f64(&t).unwrap();
        }
        w.finish().unwrap();
        let read = |b: &Path, ext: &str| std::fs::read(format!("{}{ext}", b.display())).unwrap();
        assert_eq!(read(&base, ".data"), read(&base64, ".data"));
        assert_eq!(read(&base, ".meta"), read(&base64, ".meta"));
        let f = MdsFile::open_base(&base).unwrap();
        assert_eq!(f.meta().time_step, Some(732));
        assert_eq!(f.meta().fields, vec!["UVEL"]);
        assert_eq!(f.meta().ndims, if nz.is_some() { 3 } else { 2 });
        assert_eq!(f.precision(), prec);
        let rec = f.record_index("UVEL").unwrap();
        let mut tiles = vec![0f32; NTILES * n * n];
        let mut compact = vec![0f32; NTILES * n * n];
        for k in 0..f.nz() {
            f.read_level_tiles(rec, k, n, &mut tiles).unwrap();
            assert_eq!(tiles, tiles_of(1, k, n), "n={n} level {k}");
            // The raw compact level agrees with the independent statement.
            f.read_level(rec, k, &mut compact).unwrap();
            for t in 0..NTILES {
                for j in 0..n {
                    for i in 0..n {
                        assert_eq!(
                            xmitgcm_style_tile(n, &compact, t, j, i),
                            known(1, k, t, j, i, n)
                        );
                    }
                }
            }
            let mut t64 = vec![0f64; NTILES * n * n];
            f.read_level_tiles(rec, k, n, &mut t64).unwrap();
            assert!(t64.iter().zip(&tiles).all(|(a, &b)| *a == f64::from(b)));
        }
    }
}

fn w2_overflow(base: &Path) -> MdsError {
    let mut w = MdsWriter::create(base, 2, None, Precision::F64, "X", None).unwrap();
    w.write_level_tiles_f64(&[0.25; 52]).unwrap();
    w.write_level_tiles_f64(&[0.25; 52]).unwrap_err()
}

#[test]
fn writer_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("X");
    let mut w = MdsWriter::create(&base, 2, Some(2), Precision::F32, "X", None).unwrap();
    assert_msg(
        w.write_level_tiles(&[0.0; 51]).unwrap_err(),
        &dir.path().join("X.data"),
        &["52", "51"],
    );
    w.write_level_tiles(&[0.0; 52]).unwrap();
    let err = w.finish().unwrap_err();
    assert_msg(err, &dir.path().join("X.data"), &["1 of 2 levels"]);
    assert!(
        !dir.path().join("X.meta").exists(),
        "no .meta for an unfinished file"
    );
    assert_msg(
        w2_overflow(&base),
        &dir.path().join("X.data"),
        &["all 1 levels already written"],
    );
    assert!(MdsWriter::create(&base, 0, None, Precision::F32, "X", None).is_err());
    assert!(MdsWriter::create(&base, 2, None, Precision::F32, "", None).is_err());
}

// ---------------------------------------------------------------------------
// xmitgcm reference
// ---------------------------------------------------------------------------

fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/llc_reference.py")
}

/// Whether python3 with xmitgcm is available; says why not on stderr.
/// Whether the xmitgcm reference can run. CI sets `EDP_REQUIRE_REFERENCES=1` so a
/// missing reference fails there instead of silently skipping.
fn python_reference_available() -> bool {
    let available = python_reference_probe();
    if !available && std::env::var("EDP_REQUIRE_REFERENCES").is_ok_and(|v| v == "1") {
        panic!("EDP_REQUIRE_REFERENCES is set but the xmitgcm reference cannot run (scripts/setup.sh installs it)");
    }
    available
}

fn python_reference_probe() -> bool {
    match Command::new("python3")
        .arg(reference_script())
        .arg("--check")
        .output()
    {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "SKIPPED xmitgcm reference: {} (pip install xmitgcm)",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("SKIPPED xmitgcm reference: cannot run python3: {e}");
            false
        }
    }
}

fn run_reference(n: Option<usize>, bases: &[PathBuf]) -> Vec<String> {
    let mut cmd = Command::new("python3");
    cmd.arg(reference_script());
    if let Some(n) = n {
        cmd.arg("--n").arg(n.to_string());
    }
    let out = cmd.args(bases).output().expect("run python3");
    assert!(
        out.status.success(),
        "reference failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn prec_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "float32",
        Precision::F64 => "float64",
    }
}

fn read_ref(base: &Path) -> Vec<f64> {
    let bytes = std::fs::read(format!("{}.ref.bin", base.display())).unwrap();
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn xmitgcm_reads_what_we_write_and_we_read_what_it_reads() {
    if !python_reference_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // C, U, V and G point fields (the file layout is the same for all four).
    let cases = [
        ("SSH", 0, None, Precision::F32),
        ("UVELMASS", 1, Some(3), Precision::F32),
        ("VVELMASS", 2, Some(2), Precision::F64),
        ("XG", 3, None, Precision::F64),
    ];
    for n in [5, 90] {
        let mut bases = Vec::new();
        for (name, field, nz, prec) in cases {
            let base = dir.path().join(format!("{name}_n{n}.0000000732"));
            write_known(&base, field, name, n, nz, prec);
            bases.push(base);
        }
        let lines = run_reference(Some(n), &bases);
        assert_eq!(lines.len(), bases.len(), "{lines:?}");
        for (((name, field, nz, prec), base), info) in cases.iter().zip(&bases).zip(&lines) {
            assert!(
                info.contains(&format!("\"fields\": [\"{name}\"]")),
                "{info}"
            );
            assert!(info.contains(prec_name(*prec)), "{info}");
            let reference = read_ref(base);
            let levels = nz.unwrap_or(1);
            assert_eq!(reference.len(), levels * NTILES * n * n, "{info}");
            let f = MdsFile::open_base(base).unwrap();
            let mut ours = vec![0f64; NTILES * n * n];
            for k in 0..levels {
                f.read_level_tiles(f.record_index(name).unwrap(), k, n, &mut ours)
                    .unwrap();
                let theirs = &reference[k * ours.len()..(k + 1) * ours.len()];
                for (x, (a, b)) in ours.iter().zip(theirs).enumerate() {
                    let (t, j, i) = (x / (n * n), x / n % n, x % n);
                    assert_eq!(a, b, "{name} n={n} level {k} tile {t} ({j},{i})");
                    assert_eq!(*b, f64::from(known(*field, k, t, j, i, n)));
                }
            }
        }
    }

    // A 1-D vertical file written by write_vector_f64.
    let rf: Vec<f64> = (0..51).map(|k| -(k as f64) * 10.5).collect();
    let base = dir.path().join("RF");
    write_vector_f64(&base, &rf, "RF").unwrap();
    let lines = run_reference(None, std::slice::from_ref(&base));
    assert!(lines[0].contains("\"shape\": [1, 51, 1, 1]"), "{lines:?}");
    assert_eq!(read_ref(&base), rf);
}
