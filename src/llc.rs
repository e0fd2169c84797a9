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

/// A level in tile order (13·N² values) as an array `(tile, j, i)`, without copying;
/// an error if `level` is not 13·N² long.
pub fn level_view<T>(
    n: usize,
    level: &[T],
) -> Result<ndarray::ArrayView3<'_, T>, ndarray::ShapeError> {
    ndarray::ArrayView3::from_shape((NTILES, n, n), level)
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
    reorder(n, compact, out, true);
}

/// Inverse of [`compact_to_tiles`]: 13 tiles back to MITgcm's compact level.
pub fn tiles_to_compact<T: Copy>(n: usize, tiles: &[T], out: &mut [T]) {
    reorder(n, tiles, out, false);
}

/// Copies a level between the compact and the tile order (`to_tiles`: compact → tiles).
fn reorder<T: Copy>(n: usize, from: &[T], out: &mut [T], to_tiles: bool) {
    assert_eq!(from.len(), NTILES * n * n, "level size");
    assert_eq!(out.len(), NTILES * n * n, "level size");
    // Tiles 0–6 are already contiguous and in order.
    out[..7 * n * n].copy_from_slice(&from[..7 * n * n]);
    for (c, t) in rotated_rows(n) {
        let (src, dst) = if to_tiles { (c, t) } else { (t, c) };
        out[dst..dst + n].copy_from_slice(&from[src..src + n]);
    }
}

/// Where each row of tiles 7–12 starts in the compact level and in tile order (the
/// rows of tiles 0–6 are in the same place in both).
fn rotated_rows(n: usize) -> impl Iterator<Item = (usize, usize)> {
    (7..NTILES).flat_map(move |t| (0..n).map(move |j| (compact_index(n, t, j, 0), (t * n + j) * n)))
}

// ---------------------------------------------------------------------------
// Tile connectivity
//
// Vector interpolation and corner (G-point) look-ups need to step across tile
// edges. The table below is the ECCO LLC topology: faces 1, 2, 4, 5 run
// eastward around the globe and the cap sits on top. Tiles 0–5 have x east,
// y north; tiles 7–12 have x (i) pointing south and y (j) pointing east, with
// tiles 7 and 10 touching the cap; the cap's i = 0 side touches face 1, its
// j = 0 side face 2, its i = n−1 side face 4 and its j = n−1 side face 5.
// Every tile is right-handed seen from outside the sphere, which fixes all
// orientations; `connectivity_tests` checks the table against a 3-D box model.
// ---------------------------------------------------------------------------

/// A side of a tile, named in the tile's own index space (not geographically).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Edge {
    /// The `i = 0` side.
    West,
    /// The `i = n−1` side.
    East,
    /// The `j = 0` side.
    South,
    /// The `j = n−1` side.
    North,
}

impl Edge {
    /// All four edges, in a fixed order.
    pub const ALL: [Edge; 4] = [Edge::West, Edge::East, Edge::South, Edge::North];

    /// Outward normal of this edge in the tile's own (x, y) frame.
    fn outward(self) -> (i8, i8) {
        match self {
            Edge::West => (-1, 0),
            Edge::East => (1, 0),
            Edge::South => (0, -1),
            Edge::North => (0, 1),
        }
    }

    /// Direction of increasing position along this edge (j for West/East,
    /// i for South/North) in the tile's own (x, y) frame.
    fn tangent(self) -> (i8, i8) {
        match self {
            Edge::West | Edge::East => (0, 1),
            Edge::South | Edge::North => (1, 0),
        }
    }
}

/// The tile and edge on the other side of a tile edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EdgeLink {
    /// Neighbouring tile.
    pub tile: usize,
    /// The neighbour's edge that touches ours.
    pub edge: Edge,
    /// Whether the position along the edge runs the other way in the
    /// neighbour: cell position `p` on our edge is `n−1−p` on theirs.
    pub reversed: bool,
}

/// The neighbour across `edge` of `tile`, or `None` at the open southern
/// boundary (south sides of tiles 0 and 3, `i = n−1` sides of tiles 9 and 12)
/// or for a tile number ≥ 13.
pub fn neighbour(tile: usize, edge: Edge) -> Option<EdgeLink> {
    use Edge::{East, North, South, West};
    let link = |tile, edge, reversed| {
        Some(EdgeLink {
            tile,
            edge,
            reversed,
        })
    };
    match (tile, edge) {
        // Face 1 (tiles 0–2, south to north).
        (0..=2, West) => link(12 - tile, North, true), // face 5's east side: 0↔12, 2↔10
        (0..=2, East) => link(tile + 3, West, false),
        (0, South) | (3, South) => None,
        (1..=2, South) | (4..=5, South) => link(tile - 1, North, false),
        (0..=1, North) | (3..=4, North) => link(tile + 1, South, false),
        (2, North) => link(6, West, true),
        // Face 2 (tiles 3–5).
        (3..=5, West) => link(tile - 3, East, false),
        (3..=5, East) => link(12 - tile, South, true), // face 4's west side: 5↔7, 3↔9
        (5, North) => link(6, South, false),
        // The Arctic cap.
        (6, West) => link(2, North, true),
        (6, East) => link(7, West, false),
        (6, South) => link(5, North, false),
        (6, North) => link(10, West, true),
        // Faces 4 (tiles 7–9) and 5 (tiles 10–12), north to south along i.
        (7, West) => link(6, East, false),
        (10, West) => link(6, North, true),
        (8..=9, West) | (11..=12, West) => link(tile - 1, East, false),
        (7..=8, East) | (10..=11, East) => link(tile + 1, West, false),
        (9, East) | (12, East) => None,
        (7..=9, South) => link(12 - tile, East, true),
        (7..=9, North) => link(tile + 3, South, false),
        (10..=12, South) => link(tile - 3, North, false),
        (10..=12, North) => link(12 - tile, West, true), // face 1's west side: 10↔2, 12↔0
        _ => None,
    }
}

/// Maps a C-cell index of `tile` to the tile that holds it.
///
/// Indices inside the tile map to themselves; an index one step outside one
/// side (`j` or `i` equal to −1 or `n`, not both) maps to the adjacent cell
/// of the neighbouring tile. Returns `None` beyond an open boundary, for
/// diagonal or farther steps, and for a tile number ≥ 13.
pub fn neighbour_cell(n: usize, tile: usize, j: isize, i: isize) -> Option<(usize, usize, usize)> {
    let ni = isize::try_from(n).ok()?;
    let inside = |v: isize| (0..ni).contains(&v);
    if tile >= NTILES {
        return None;
    }
    let (edge, p) = match (inside(j), inside(i)) {
        (true, true) => return Some((tile, j as usize, i as usize)),
        (false, true) if j == -1 => (Edge::South, i),
        (false, true) if j == ni => (Edge::North, i),
        (true, false) if i == -1 => (Edge::West, j),
        (true, false) if i == ni => (Edge::East, j),
        _ => return None,
    };
    let link = neighbour(tile, edge)?;
    let p = p as usize;
    let q = if link.reversed { n - 1 - p } else { p };
    Some(match link.edge {
        Edge::West => (link.tile, q, 0),
        Edge::East => (link.tile, q, n - 1),
        Edge::South => (link.tile, 0, q),
        Edge::North => (link.tile, n - 1, q),
    })
}

/// How vector components change when moving from one tile's (x, y) frame
/// into an edge-adjacent tile's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rotation {
    /// Same axes: `(u, v) → (u, v)`.
    Identity,
    /// The neighbour's axes are ours turned a quarter counter-clockwise
    /// (its x is our y): `(u, v) → (v, −u)`.
    QuarterCcw,
    /// The neighbour's axes are ours turned a quarter clockwise
    /// (its x is our −y): `(u, v) → (−v, u)`.
    QuarterCw,
    /// Half turn: `(u, v) → (−u, −v)`.
    Half,
}

impl Rotation {
    /// Components `(u, v)` of a vector in the source frame, expressed in the
    /// destination frame.
    #[inline]
    pub fn apply(self, u: f64, v: f64) -> (f64, f64) {
        match self {
            Rotation::Identity => (u, v),
            Rotation::QuarterCcw => (v, -u),
            Rotation::QuarterCw => (-v, u),
            Rotation::Half => (-u, -v),
        }
    }

    /// The rotation taking the destination frame back to the source frame.
    pub fn inverse(self) -> Rotation {
        match self {
            Rotation::QuarterCcw => Rotation::QuarterCw,
            Rotation::QuarterCw => Rotation::QuarterCcw,
            other => other,
        }
    }
}

/// The frame change across `edge` of `tile`, or `None` where there is no
/// neighbour.
pub fn edge_rotation(tile: usize, edge: Edge) -> Option<Rotation> {
    let link = neighbour(tile, edge)?;
    // Unfolding the two tiles flat across the shared edge: our outward normal
    // becomes their inward normal and the along-edge direction is kept (up to
    // `reversed`). The map M with M·n_ours = n_theirs and M·t_ours = t_theirs
    // is M = n' nᵀ + t' tᵀ because (n, t) is orthonormal.
    let (nx, ny) = edge.outward();
    let (tx, ty) = edge.tangent();
    let (ox, oy) = link.edge.outward();
    let (nx2, ny2) = (-ox, -oy);
    let s = if link.reversed { -1 } else { 1 };
    let (tx2, ty2) = {
        let (a, b) = link.edge.tangent();
        (s * a, s * b)
    };
    let m = [
        [nx2 * nx + tx2 * tx, nx2 * ny + tx2 * ty],
        [ny2 * nx + ty2 * tx, ny2 * ny + ty2 * ty],
    ];
    Some(match m {
        [[1, 0], [0, 1]] => Rotation::Identity,
        [[0, 1], [-1, 0]] => Rotation::QuarterCcw,
        [[0, -1], [1, 0]] => Rotation::QuarterCw,
        [[-1, 0], [0, -1]] => Rotation::Half,
        // Every tile is right-handed, so a link can never be a reflection;
        // `connectivity_tests::every_link_is_a_rotation` checks the table.
        _ => unreachable!("LLC link {tile}/{edge:?} is not a rotation"),
    })
}

/// The frame change from `tile_from` to `tile_to`: `Identity` for the same
/// tile, the rotation across the shared edge for edge neighbours, `None` for
/// tiles that do not share an edge (a frame change between those would depend
/// on the path taken around a cube corner).
pub fn rotation(tile_from: usize, tile_to: usize) -> Option<Rotation> {
    if tile_from >= NTILES || tile_to >= NTILES {
        return None;
    }
    if tile_from == tile_to {
        return Some(Rotation::Identity);
    }
    Edge::ALL
        .iter()
        .find(|&&e| neighbour(tile_from, e).is_some_and(|l| l.tile == tile_to))
        .and_then(|&e| edge_rotation(tile_from, e))
}

/// The G-point (south-west corner) value at corner index `(jg, ig)` of
/// `tile`, with `jg, ig` in `0..=n`.
///
/// `g(tile, j, i)` reads the stored G value (`j, i < n`). Corners on the
/// north (`jg == n`) or east (`ig == n`) side are looked up in neighbouring
/// tiles, following up to two hops (the diagonal tile at a four-tile
/// corner). Returns `None` where no tile stores that corner: the open
/// southern ends of faces 4 and 5 and the cube vertex where faces 1, 5 and
/// the cap meet; also for out-of-range arguments.
pub fn corner<T>(
    n: usize,
    tile: usize,
    jg: usize,
    ig: usize,
    g: impl Fn(usize, usize, usize) -> T,
) -> Option<T> {
    if tile >= NTILES || jg > n || ig > n || n == 0 {
        return None;
    }
    // Breadth-first over the names of the same physical corner in the tiles
    // around it; at most four tiles share a corner, so two hops reach all.
    let mut frontier = vec![(tile, jg, ig)];
    let mut seen = frontier.clone();
    for hop in 0..3 {
        if let Some(&(t, j, i)) = frontier.iter().find(|&&(_, j, i)| j < n && i < n) {
            return Some(g(t, j, i));
        }
        if hop == 2 {
            break;
        }
        let mut next = Vec::new();
        for &(t, j, i) in &frontier {
            for edge in Edge::ALL {
                if let Some(c) = corner_across(n, t, j, i, edge) {
                    if !seen.contains(&c) {
                        seen.push(c);
                        next.push(c);
                    }
                }
            }
        }
        frontier = next;
    }
    None
}

/// The same corner named in the tile across `edge`, if the corner lies on
/// that edge and the edge has a neighbour.
fn corner_across(
    n: usize,
    t: usize,
    j: usize,
    i: usize,
    edge: Edge,
) -> Option<(usize, usize, usize)> {
    let q = match edge {
        Edge::West if i == 0 => j,
        Edge::East if i == n => j,
        Edge::South if j == 0 => i,
        Edge::North if j == n => i,
        _ => return None,
    };
    let link = neighbour(t, edge)?;
    // Corner positions run 0..=n, so reversing maps q to n − q.
    let q = if link.reversed { n - q } else { q };
    Some(match link.edge {
        Edge::West => (link.tile, q, 0),
        Edge::East => (link.tile, q, n),
        Edge::South => (link.tile, 0, q),
        Edge::North => (link.tile, n, q),
    })
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
        let tile = level_view(n, &tiles).unwrap();
        // tile 8 = face 4, column block 1
        assert_eq!(tile[[8, 2, 1]], 7 * n * n + 2 * 3 * n + n + 1);
        // tile 12 = face 5, column block 2
        assert_eq!(tile[[12, 0, 0]], 10 * n * n + 2 * n);
        // tile 6 = cap, rows 6N..7N
        assert_eq!(tile[[6, 1, 2]], (6 * n + 1) * n + 2);
        assert!(level_view(n, &tiles[1..]).is_err());
    }
}

#[cfg(test)]
mod connectivity_tests {
    use super::*;

    #[test]
    fn every_link_is_symmetric() {
        let mut open = Vec::new();
        for t in 0..NTILES {
            for e in Edge::ALL {
                match neighbour(t, e) {
                    Some(l) => {
                        let back = neighbour(l.tile, l.edge).expect("link has a way back");
                        assert_eq!(
                            back,
                            EdgeLink {
                                tile: t,
                                edge: e,
                                reversed: l.reversed
                            },
                            "tile {t} {e:?} → {l:?}"
                        );
                    }
                    None => open.push((t, e)),
                }
            }
        }
        assert_eq!(
            open,
            vec![
                (0, Edge::South),
                (3, Edge::South),
                (9, Edge::East),
                (12, Edge::East)
            ]
        );
        assert_eq!(neighbour(13, Edge::West), None);
    }

    #[test]
    fn every_link_is_a_rotation_and_inverts() {
        for t in 0..NTILES {
            for e in Edge::ALL {
                if let Some(l) = neighbour(t, e) {
                    let r = edge_rotation(t, e).expect("rotation for a link");
                    assert_eq!(edge_rotation(l.tile, l.edge), Some(r.inverse()));
                    assert_eq!(rotation(t, l.tile), Some(r));
                }
            }
        }
        assert_eq!(rotation(3, 3), Some(Rotation::Identity));
        assert_eq!(rotation(0, 7), None);
    }

    #[test]
    fn brief_examples() {
        let n = 6;
        // tile 2 (n, i) → cap (n−1−i, 0)
        assert_eq!(neighbour_cell(n, 2, 6, 1), Some((6, 4, 0)));
        // tile 5 (n, i) → cap (0, i)
        assert_eq!(neighbour_cell(n, 5, 6, 1), Some((6, 0, 1)));
        // cap (j, n) → tile 7 (j, 0)
        assert_eq!(neighbour_cell(n, 6, 2, 6), Some((7, 2, 0)));
        // cap (n, i) → tile 10 (n−1−i, 0)
        assert_eq!(neighbour_cell(n, 6, 6, 1), Some((10, 4, 0)));
        // tile 5 (j, n) → tile 7 (0, n−1−j); 4 → 8, 3 → 9
        assert_eq!(neighbour_cell(n, 5, 1, 6), Some((7, 0, 4)));
        assert_eq!(neighbour_cell(n, 3, 1, 6), Some((9, 0, 4)));
        // tile 7 (j, n) … face 4 east side → face 5 same i
        assert_eq!(neighbour_cell(n, 8, 6, 3), Some((11, 0, 3)));
        // tile 10 (n, i) → tile 2 (n−1−i, 0); 12 → 0
        assert_eq!(neighbour_cell(n, 10, 6, 1), Some((2, 4, 0)));
        assert_eq!(neighbour_cell(n, 12, 6, 0), Some((0, 5, 0)));
        // open boundaries, diagonals, in-tile
        assert_eq!(neighbour_cell(n, 0, -1, 2), None);
        assert_eq!(neighbour_cell(n, 9, 2, 6), None);
        assert_eq!(neighbour_cell(n, 4, -1, -1), None);
        assert_eq!(neighbour_cell(n, 4, 2, 3), Some((4, 2, 3)));
        assert_eq!(neighbour_cell(n, 4, 2, 8), None);
        // Face 1 → cap turns the frame: tile 2's north (y) is the cap's +x.
        assert_eq!(rotation(2, 6).map(|r| r.apply(0.0, 1.0)), Some((1.0, 0.0)));
        assert_eq!(rotation(5, 6), Some(Rotation::Identity));
        assert_eq!(rotation(6, 7), Some(Rotation::Identity));
        assert_eq!(rotation(7, 10), Some(Rotation::Identity));
        assert_eq!(rotation(0, 3), Some(Rotation::Identity));
    }

    // A 3-D box model of the LLC topology, written from the geography
    // (not from the link table): faces 1, 2, 4, 5 are the sides of the box
    // [0,n]×[0,n]×[0,3n] going counter-clockwise seen from +Z (eastward), the
    // cap is the top. Each tile's (x, y) in [0, n]² maps to a point on the box.
    type P3 = [f64; 3];

    fn box_point(n: usize, tile: usize, x: f64, y: f64) -> P3 {
        let n = n as f64;
        match tile {
            // Face 1 on Y = 0: x east (+X), y up (+Z).
            0..=2 => [x, 0.0, tile as f64 * n + y],
            // Face 2 on X = n: x east (+Y), y up.
            3..=5 => [n, x, (tile - 3) as f64 * n + y],
            // Cap on Z = 3n: its x = 0 side touches face 1, y = 0 face 2.
            6 => [n - y, x, 3.0 * n],
            // Face 4 on Y = n: x south (down from the top), y east (−X).
            7..=9 => [n - y, n, 3.0 * n - ((tile - 7) as f64 * n + x)],
            // Face 5 on X = 0: x south, y east (−Y).
            _ => [0.0, n - y, 3.0 * n - ((tile - 10) as f64 * n + x)],
        }
    }

    fn sub(a: P3, b: P3) -> P3 {
        [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
    }

    /// The tile's x and y unit vectors in 3-D.
    fn basis(n: usize, tile: usize) -> (P3, P3) {
        let o = box_point(n, tile, 0.0, 0.0);
        (
            sub(box_point(n, tile, 1.0, 0.0), o),
            sub(box_point(n, tile, 0.0, 1.0), o),
        )
    }

    fn cross(a: P3, b: P3) -> P3 {
        [
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        ]
    }

    #[test]
    fn box_model_is_right_handed_outward() {
        // Sanity of the model itself: x × y points out of the box.
        let n = 4;
        let centre = [n as f64 / 2.0, n as f64 / 2.0, 1.5 * n as f64];
        for t in 0..NTILES {
            let (ex, ey) = basis(n, t);
            let out = sub(box_point(n, t, 0.5 * n as f64, 0.5 * n as f64), centre);
            let c = cross(ex, ey);
            let dot = c[0] * out[0] + c[1] * out[1] + c[2] * out[2];
            assert!(dot > 0.0, "tile {t} is not right-handed outward");
        }
    }

    #[test]
    fn neighbour_cells_share_an_edge_in_3d() {
        for n in [1, 3, 6] {
            let nf = n as isize;
            for t in 0..NTILES {
                for j in 0..nf {
                    for i in 0..nf {
                        for (dj, di) in [(0, -1), (0, 1), (-1, 0), (1, 0)] {
                            let (j2, i2) = (j + dj, i + di);
                            let Some((t2, j3, i3)) = neighbour_cell(n, t, j2, i2) else {
                                // Only the open southern boundary may be missing.
                                let on_open = (t == 0 || t == 3) && j2 == -1
                                    || (t == 9 || t == 12) && i2 == nf;
                                assert!(on_open, "n={n} tile {t} ({j2},{i2}) has no neighbour");
                                continue;
                            };
                            // Midpoint of the face shared with the stepped-to cell.
                            let (x, y) = (
                                i as f64 + 0.5 + 0.5 * di as f64,
                                j as f64 + 0.5 + 0.5 * dj as f64,
                            );
                            let m = box_point(n, t, x, y);
                            let (x3, y3) = (i3 as f64 + 0.5, j3 as f64 + 0.5);
                            let faces = [
                                (x3 - 0.5, y3),
                                (x3 + 0.5, y3),
                                (x3, y3 - 0.5),
                                (x3, y3 + 0.5),
                            ];
                            assert!(
                                faces.iter().any(|&(a, b)| box_point(n, t2, a, b) == m),
                                "n={n} tile {t} ({j},{i})+({dj},{di}) → tile {t2} ({j3},{i3}) is not adjacent"
                            );
                            // And the cell itself is not the one we came from.
                            assert_ne!((t2, j3, i3), (t, j as usize, i as usize));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rotations_match_unfolded_box() {
        let n = 3;
        for t in 0..NTILES {
            let (ex, ey) = basis(n, t);
            for e in Edge::ALL {
                let Some(l) = neighbour(t, e) else { continue };
                let r = edge_rotation(t, e).expect("rotation");
                let (ex2, ey2) = basis(n, l.tile);
                let comb = |a: f64, u: P3, b: f64, v: P3| -> P3 {
                    [
                        a * u[0] + b * v[0],
                        a * u[1] + b * v[1],
                        a * u[2] + b * v[2],
                    ]
                };
                let (ox, oy) = e.outward();
                let (tx, ty) = e.tangent();
                let out3 = comb(ox as f64, ex, oy as f64, ey);
                let tan3 = comb(tx as f64, ex, ty as f64, ey);
                // Their inward normal in 3-D.
                let (ix, iy) = l.edge.outward();
                let in3 = comb(-ix as f64, ex2, -iy as f64, ey2);
                for (u, v) in [(1.0, 0.0), (0.0, 1.0)] {
                    // Our vector split into outward and along-edge parts.
                    let w = comb(u, ex, v, ey);
                    let a = w[0] * out3[0] + w[1] * out3[1] + w[2] * out3[2];
                    let b = w[0] * tan3[0] + w[1] * tan3[1] + w[2] * tan3[2];
                    let unfolded = comb(a, in3, b, tan3);
                    let (u2, v2) = r.apply(u, v);
                    assert_eq!(comb(u2, ex2, v2, ey2), unfolded, "tile {t} {e:?} → {l:?}");
                }
            }
        }
    }

    #[test]
    fn corners_match_box_and_are_missing_only_where_no_tile_stores_them() {
        for n in [1, 2, 5] {
            let nf = n as f64;
            let mut stored = Vec::new();
            for t in 0..NTILES {
                for j in 0..n {
                    for i in 0..n {
                        stored.push(box_point(n, t, i as f64, j as f64));
                    }
                }
            }
            let mut missing = Vec::new();
            for t in 0..NTILES {
                for jg in 0..=n {
                    for ig in 0..=n {
                        let p = box_point(n, t, ig as f64, jg as f64);
                        let got = corner(n, t, jg, ig, |t2, j, i| {
                            box_point(n, t2, i as f64, j as f64)
                        });
                        match got {
                            Some(q) => assert_eq!(q, p, "n={n} tile {t} corner ({jg},{ig})"),
                            None => {
                                assert!(
                                    !stored.contains(&p),
                                    "n={n} tile {t} ({jg},{ig}) is stored"
                                );
                                missing.push(p);
                            }
                        }
                    }
                }
            }
            // The points no tile stores: the south ends of faces 4 and 5 and
            // the face 1 / face 5 / cap vertex.
            for p in missing {
                let south_end = p[2] == 0.0 && (p[1] == nf || p[0] == 0.0) && p != [0.0, 0.0, 0.0];
                assert!(
                    south_end || p == [0.0, 0.0, 3.0 * nf],
                    "n={n} unexpected missing {p:?}"
                );
            }
        }
        assert!(corner(4, 0, 5, 0, |_, _, _| ()).is_none());
        assert!(corner(4, 13, 0, 0, |_, _, _| ()).is_none());
    }
}
