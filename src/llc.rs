//! The lat-lon-cap (LLC) layout: MITgcm's compact file order ↔ ECCO's 13 tiles.
//!
//! MITgcm writes an LLC-N horizontal field as 13N rows × N columns ("compact"):
//! faces 1 and 2 are N×3N lat-lon blocks (tiles 0–2 and 3–5, stacked in j),
//! face 3 is the N×N Arctic cap (tile 6), and faces 4 and 5 are stored rotated:
//! each 3N×N block is, read row-major, an N×3N array whose column blocks are
//! tiles 7–9 and 10–12. ECCO's tile order `(tile, j, i)` keeps every tile in the
//! model's own orientation (no flips), exactly as xmitgcm and ecco_v4_py do, and
//! the same mapping serves C, U, V and G points: the point type only names the
//! dimensions.
//!
//! All functions here work on one horizontal level at a time so callers can
//! stream 3D fields level by level.

/// Number of tiles of the ECCO LLC layout.
pub const NTILES: usize = 13;

/// Horizontal location of a field on the Arakawa C grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PointType {
    /// Tracer point, dims `(j, i)`.
    C,
    /// West face ('u'), dims `(j, i_g)`.
    U,
    /// South face ('v'), dims `(j_g, i)`.
    V,
    /// South-west corner ('g'), dims `(j_g, i_g)`.
    G,
}

impl PointType {
    /// Names of the (j, i) dimensions in an ECCO native granule.
    pub fn dim_names(self) -> (&'static str, &'static str) {
        match self {
            PointType::C => ("j", "i"),
            PointType::U => ("j", "i_g"),
            PointType::V => ("j_g", "i"),
            PointType::G => ("j_g", "i_g"),
        }
    }
}

/// Offset (in values) into the compact level of element (j, i) of tile `t`,
/// for an LLC grid of tile size `n`.
#[inline]
pub fn compact_index(n: usize, t: usize, j: usize, i: usize) -> usize {
    debug_assert!(t < NTILES && j < n && i < n);
    match t {
        // Faces 1, 2 and the cap: tiles are consecutive N-row blocks.
        0..=6 => (t * n + j) * n + i,
        // Faces 4 and 5: an N×3N row-major block; tiles are column blocks.
        _ => {
            let (face_start, o) = if t < 10 { (7, t - 7) } else { (10, t - 10) };
            face_start * n * n + j * 3 * n + o * n + i
        }
    }
}

/// Reorders one compact level (13N×N values) into 13 tiles `(tile, j, i)`.
///
/// `out` must hold 13·N² values.
pub fn compact_to_tiles<T: Copy>(n: usize, compact: &[T], out: &mut [T]) {
    assert_eq!(compact.len(), NTILES * n * n, "compact level size");
    assert_eq!(out.len(), NTILES * n * n, "tiled level size");
    // Tiles 0–6 are already contiguous and in order.
    out[..7 * n * n].copy_from_slice(&compact[..7 * n * n]);
    for t in 7..NTILES {
        for j in 0..n {
            let src = compact_index(n, t, j, 0);
            let dst = (t * n + j) * n;
            out[dst..dst + n].copy_from_slice(&compact[src..src + n]);
        }
    }
}

/// Inverse of [`compact_to_tiles`]: 13 tiles back to MITgcm's compact level.
pub fn tiles_to_compact<T: Copy>(n: usize, tiles: &[T], out: &mut [T]) {
    assert_eq!(tiles.len(), NTILES * n * n, "tiled level size");
    assert_eq!(out.len(), NTILES * n * n, "compact level size");
    out[..7 * n * n].copy_from_slice(&tiles[..7 * n * n]);
    for t in 7..NTILES {
        for j in 0..n {
            let dst = compact_index(n, t, j, 0);
            let src = (t * n + j) * n;
            out[dst..dst + n].copy_from_slice(&tiles[src..src + n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_identity() {
        for n in [1, 2, 5, 90] {
            let compact: Vec<u32> = (0..(NTILES * n * n) as u32).collect();
            let mut tiles = vec![0; compact.len()];
            compact_to_tiles(n, &compact, &mut tiles);
            let mut back = vec![0; compact.len()];
            tiles_to_compact(n, &tiles, &mut back);
            assert_eq!(back, compact);
        }
    }

    #[test]
    fn rotated_faces_are_column_blocks() {
        // Independent statement of the layout: face 4 occupies compact rows
        // 7N..10N; flattened, its element (a, b) of the N×3N view is at a*3N+b.
        let n = 3;
        let compact: Vec<usize> = (0..NTILES * n * n).collect();
        let mut tiles = vec![0; compact.len()];
        compact_to_tiles(n, &compact, &mut tiles);
        let tile = |t: usize, j: usize, i: usize| tiles[(t * n + j) * n + i];
        // tile 8 = face 4, column block 1
        assert_eq!(tile(8, 2, 1), 7 * n * n + 2 * 3 * n + n + 1);
        // tile 12 = face 5, column block 2
        assert_eq!(tile(12, 0, 0), 10 * n * n + 2 * n);
        // tile 6 = cap, rows 6N..7N
        assert_eq!(tile(6, 1, 2), (6 * n + 1) * n + 2);
    }
}
