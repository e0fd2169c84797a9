//! Vector fields: model-axis components at U/V points → cell centres → east/north.
//!
//! As EDP (xgcm's `interp_2d_vector` on the 13-tile LLC connections, then ecco_v4_py's
//! rotation): `u_c(i) = (u(i) + u(i+1)) / 2` and `v_c(j) = (v(j) + v(j+1)) / 2`, where
//! the face beyond a tile's east or north edge is the neighbour tile's west or south
//! face — on the rotated faces and the cap that face carries the neighbour's *other*
//! component, turned into our axes with the frame change the join implies
//! ([`crate::llc::edge_rotation`]). Faces beyond the open southern boundary count
//! as 0 (xgcm's `boundary='fill'`). Then `east = u·CS − v·SN`, `north = u·SN + v·CS`.

use ndarray::ArrayView3;
use rayon::prelude::*;

use super::RegridError;
use crate::llc::{self, Edge, PointType, NTILES};

/// The component of a vector normal to `edge` of `tile`, in `tile`'s axes, read from
/// the neighbour's face beyond that edge (`pos` = cell position along the edge) of the
/// levels `u`, `v` `(tile, j, i)`. `None` beyond the open boundary.
fn face_beyond(
    tile: usize,
    edge: Edge,
    pos: usize,
    u: &ArrayView3<f32>,
    v: &ArrayView3<f32>,
) -> Option<f64> {
    let link = llc::neighbour(tile, edge)?;
    let rot = llc::edge_rotation(tile, edge)?.inverse();
    let n = u.dim().1;
    let q = if link.reversed { n - 1 - pos } else { pos };
    // The neighbour's face on the shared edge, as a vector in its own axes.
    let theirs = match link.edge {
        Edge::West => (f64::from(u[[link.tile, q, 0]]), 0.0),
        Edge::South => (0.0, f64::from(v[[link.tile, 0, q]])),
        // East/north edges only ever join west/south ones (the faces there are stored
        // by the neighbour); anything else would be a table error.
        Edge::East | Edge::North => return None,
    };
    let (x, y) = rot.apply(theirs.0, theirs.1);
    Some(match edge {
        Edge::East | Edge::West => x,
        Edge::South | Edge::North => y,
    })
}

/// Moves the components `(u, v)` of one level (tile order) to cell centres.
///
/// Both at C points: copied. `u` at U and `v` at V points: averaged across the cell
/// as described above. Any other pairing is refused.
pub fn to_centres(
    n: usize,
    (pu, u): (PointType, &[f32]),
    (pv, v): (PointType, &[f32]),
    uc: &mut [f32],
    vc: &mut [f32],
) -> Result<(), RegridError> {
    let len = NTILES * n * n;
    if [u.len(), v.len(), uc.len(), vc.len()]
        .iter()
        .any(|&l| l != len)
    {
        return Err(RegridError::Shape(format!(
            "vector level of LLC{n} needs {len} values per component"
        )));
    }
    match (pu, pv) {
        (PointType::C, PointType::C) => {
            uc.copy_from_slice(u);
            vc.copy_from_slice(v);
            return Ok(());
        }
        (PointType::U, PointType::V) => {}
        _ => {
            return Err(RegridError::Config(format!(
                "vector components at {pu:?} and {pv:?} points: expected C and C, or U and V"
            )))
        }
    }
    let view = |level| llc::level_view(n, level).map_err(|e| RegridError::Shape(e.to_string()));
    let (uv, vv) = (view(u)?, view(v)?);
    // Interior cells read whole rows of the tile-order levels (contiguous, so the
    // loop vectorises); only the east and north edges look across to a neighbour.
    uc.par_chunks_mut(n)
        .zip(vc.par_chunks_mut(n))
        .enumerate()
        .for_each(|(row, (urow, vrow))| {
            let (t, j) = (row / n, row % n);
            let u_row = &u[row * n..(row + 1) * n];
            let v_row = &v[row * n..(row + 1) * n];
            for i in 0..n - 1 {
                urow[i] = (0.5 * (f64::from(u_row[i]) + f64::from(u_row[i + 1]))) as f32;
            }
            let east = face_beyond(t, Edge::East, j, &uv, &vv).unwrap_or(0.0);
            urow[n - 1] = (0.5 * (f64::from(u_row[n - 1]) + east)) as f32;
            if j + 1 < n {
                let v_next = &v[(row + 1) * n..(row + 2) * n];
                for i in 0..n {
                    vrow[i] = (0.5 * (f64::from(v_row[i]) + f64::from(v_next[i]))) as f32;
                }
            } else {
                for i in 0..n {
                    let north = face_beyond(t, Edge::North, i, &uv, &vv).unwrap_or(0.0);
                    vrow[i] = (0.5 * (f64::from(v_row[i]) + north)) as f32;
                }
            }
        });
    Ok(())
}

/// Rotates centre components in model axes to east/north with AngleCS/AngleSN.
///
/// In blocks of [`ROTATE_BLOCK`] points, each a plain loop the compiler vectorises: one
/// rayon item per point cost ten times the arithmetic (6% of a velocity lat-lon
/// granule's time).
pub fn rotate(cs: &[f32], sn: &[f32], uc: &[f32], vc: &[f32], east: &mut [f32], north: &mut [f32]) {
    east.par_chunks_mut(ROTATE_BLOCK)
        .zip(north.par_chunks_mut(ROTATE_BLOCK))
        .enumerate()
        .for_each(|(b, (e, nn))| {
            let at = b * ROTATE_BLOCK..b * ROTATE_BLOCK + e.len();
            let inputs = cs[at.clone()]
                .iter()
                .zip(&sn[at.clone()])
                .zip(uc[at.clone()].iter().zip(&vc[at]));
            for ((e, nn), ((&c, &s), (&x, &y))) in e.iter_mut().zip(nn.iter_mut()).zip(inputs) {
                let (c, s) = (f64::from(c), f64::from(s));
                let (x, y) = (f64::from(x), f64::from(y));
                *e = (x * c - y * s) as f32;
                *nn = (x * s + y * c) as f32;
            }
        });
}

/// Points a parallel item of [`rotate`] turns.
const ROTATE_BLOCK: usize = 8192;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_inverts_the_synthetic_one() {
        // to_model_xy is the inverse of EDP's rotation.
        let (cs, sn) = (0.6f32, 0.8f32);
        let (x, y) = crate::synth::analytic::to_model_xy(1.0, -2.0, cs as f64, sn as f64);
        let (mut e, mut n) = ([0f32], [0f32]);
        rotate(&[cs], &[sn], &[x as f32], &[y as f32], &mut e, &mut n);
        assert!((e[0] - 1.0).abs() < 1e-6 && (n[0] + 2.0).abs() < 1e-6);
    }

    #[test]
    fn interior_is_the_two_face_mean_and_open_edges_fill_zero() {
        let n = 3;
        let len = NTILES * n * n;
        let u: Vec<f32> = (0..len).map(|p| p as f32).collect();
        let v: Vec<f32> = (0..len).map(|p| 1000.0 + p as f32).collect();
        let (mut uc, mut vc) = (vec![0f32; len], vec![0f32; len]);
        to_centres(n, (PointType::U, &u), (PointType::V, &v), &mut uc, &mut vc).unwrap();
        let at = |t: usize, j: usize, i: usize| (t * n + j) * n + i;
        assert_eq!(uc[at(4, 1, 0)], 0.5 * (u[at(4, 1, 0)] + u[at(4, 1, 1)]));
        assert_eq!(vc[at(8, 0, 2)], 0.5 * (v[at(8, 0, 2)] + v[at(8, 1, 2)]));
        // Tile 0's east edge joins tile 3's west edge with no rotation.
        assert_eq!(uc[at(0, 2, 2)], 0.5 * (u[at(0, 2, 2)] + u[at(3, 2, 0)]));
        // Tile 9's i = n−1 side is open: the face beyond counts as 0.
        assert_eq!(uc[at(9, 1, 2)], 0.5 * u[at(9, 1, 2)]);
        // The views index the same values as the flat arithmetic.
        let view = llc::level_view(n, &uc).unwrap();
        assert_eq!(view[[9, 1, 2]], uc[at(9, 1, 2)]);
        // C-point components are used as they are.
        to_centres(n, (PointType::C, &u), (PointType::C, &v), &mut uc, &mut vc).unwrap();
        assert_eq!((uc.as_slice(), vc.as_slice()), (u.as_slice(), v.as_slice()));
        assert!(to_centres(n, (PointType::U, &u), (PointType::C, &v), &mut uc, &mut vc).is_err());
    }
}
