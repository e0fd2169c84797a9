//! A static 3-D k-d tree over unit vectors, for the neighbour searches of factor
//! creation.
//!
//! Written here rather than taken from a crate because the searches needed are
//! narrow (k nearest within a radius, the nearest within a radius), must break
//! distance ties the same way on every machine (by point index) so factor files are
//! reproducible, and the whole tree is ~150 lines. Points are kept in tree order
//! (an implicit balanced tree over one array: the node of a slice is its middle
//! element), so a query touches contiguous memory.

/// A balanced k-d tree over 3-D points (built once, queried from many threads).
#[derive(Debug, Clone)]
pub struct KdTree {
    /// Points in tree order.
    pts: Vec<[f64; 3]>,
    /// Original index of each point in tree order.
    ids: Vec<u32>,
    /// Split axis of the node at each position (unused in leaves).
    axis: Vec<u8>,
}

/// Slices at most this long are scanned linearly.
const LEAF: usize = 8;

/// Orders candidates by distance, then by original index (deterministic ties).
#[inline]
fn closer(a: (f64, u32), b: (f64, u32)) -> bool {
    a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)
}

#[inline]
fn dist2(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    let (x, y, z) = (a[0] - b[0], a[1] - b[1], a[2] - b[2]);
    x * x + y * y + z * z
}

impl KdTree {
    /// Builds the tree; point `i` of `points` is reported as index `i`.
    ///
    /// Panics if there are more than `u32::MAX` points (LLC4320 has 2.4·10⁸).
    pub fn new(points: &[[f64; 3]]) -> KdTree {
        assert!(points.len() <= u32::MAX as usize, "too many points");
        let mut order: Vec<u32> = (0..points.len() as u32).collect();
        let mut axis = vec![0u8; points.len()];
        build(points, &mut order, &mut axis, 0);
        KdTree {
            pts: order.iter().map(|&i| points[i as usize]).collect(),
            ids: order,
            axis,
        }
    }

    pub fn len(&self) -> usize {
        self.pts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pts.is_empty()
    }

    /// The nearest point within Euclidean distance `max_dist` (inclusive), as
    /// `(index, distance)`.
    pub fn nearest_within(&self, q: &[f64; 3], max_dist: f64) -> Option<(u32, f64)> {
        let mut best = (max_dist * max_dist, u32::MAX);
        self.nearest_rec(q, 0, self.pts.len(), &mut best);
        (best.1 != u32::MAX).then(|| (best.1, best.0.sqrt()))
    }

    /// The offset of `q` from the splitting plane at `mid` and the two halves of
    /// `lo..hi`, the side of `q` first.
    #[allow(clippy::type_complexity)]
    fn split(
        &self,
        q: &[f64; 3],
        lo: usize,
        mid: usize,
        hi: usize,
    ) -> (f64, (usize, usize), (usize, usize)) {
        let a = self.axis[mid] as usize;
        let d = q[a] - self.pts[mid][a];
        if d < 0.0 {
            (d, (lo, mid), (mid + 1, hi))
        } else {
            (d, (mid + 1, hi), (lo, mid))
        }
    }

    fn nearest_rec(&self, q: &[f64; 3], lo: usize, hi: usize, best: &mut (f64, u32)) {
        if hi - lo <= LEAF {
            for p in lo..hi {
                let c = (dist2(q, &self.pts[p]), self.ids[p]);
                if c.0 <= best.0 && (best.1 == u32::MAX || closer(c, *best)) {
                    *best = c;
                }
            }
            return;
        }
        let mid = (lo + hi) / 2;
        let c = (dist2(q, &self.pts[mid]), self.ids[mid]);
        if c.0 <= best.0 && (best.1 == u32::MAX || closer(c, *best)) {
            *best = c;
        }
        let (d, near, far) = self.split(q, lo, mid, hi);
        self.nearest_rec(q, near.0, near.1, best);
        if d * d <= best.0 {
            self.nearest_rec(q, far.0, far.1, best);
        }
    }

    /// Up to `k` nearest points within `max_dist` (inclusive), closest first, as
    /// `(distance, index)` in `out` (cleared first).
    pub fn k_nearest_within(
        &self,
        q: &[f64; 3],
        k: usize,
        max_dist: f64,
        out: &mut Vec<(f64, u32)>,
    ) {
        out.clear();
        if k == 0 {
            return;
        }
        // Squared distances while searching.
        self.knn_rec(q, k, max_dist * max_dist, 0, self.pts.len(), out);
        for c in out.iter_mut() {
            c.0 = c.0.sqrt();
        }
    }

    /// The current pruning bound: the k-th distance once `out` is full.
    #[inline]
    fn bound(out: &[(f64, u32)], k: usize, max2: f64) -> f64 {
        if out.len() == k {
            out[k - 1].0
        } else {
            max2
        }
    }

    #[inline]
    fn offer(out: &mut Vec<(f64, u32)>, k: usize, max2: f64, c: (f64, u32)) {
        if c.0 > max2 {
            return;
        }
        if out.len() == k && !closer(c, out[k - 1]) {
            return;
        }
        let pos = out.partition_point(|&e| closer(e, c));
        out.insert(pos, c);
        out.truncate(k);
    }

    fn knn_rec(
        &self,
        q: &[f64; 3],
        k: usize,
        max2: f64,
        lo: usize,
        hi: usize,
        out: &mut Vec<(f64, u32)>,
    ) {
        if hi - lo <= LEAF {
            for p in lo..hi {
                Self::offer(out, k, max2, (dist2(q, &self.pts[p]), self.ids[p]));
            }
            return;
        }
        let mid = (lo + hi) / 2;
        Self::offer(out, k, max2, (dist2(q, &self.pts[mid]), self.ids[mid]));
        let (d, near, far) = self.split(q, lo, mid, hi);
        self.knn_rec(q, k, max2, near.0, near.1, out);
        if d * d <= Self::bound(out, k, max2) {
            self.knn_rec(q, k, max2, far.0, far.1, out);
        }
    }
}

/// Arranges `order` so the middle of every slice is the median of its widest axis.
fn build(points: &[[f64; 3]], order: &mut [u32], axis: &mut [u8], depth: usize) {
    let n = order.len();
    if n <= LEAF {
        return;
    }
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for &i in order.iter() {
        let p = &points[i as usize];
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    let a = (0..3)
        .max_by(|&x, &y| (hi[x] - lo[x]).total_cmp(&(hi[y] - lo[y])))
        .unwrap_or(depth % 3);
    let mid = n / 2;
    order.select_nth_unstable_by(mid, |&x, &y| {
        points[x as usize][a]
            .total_cmp(&points[y as usize][a])
            .then(x.cmp(&y))
    });
    axis[mid] = a as u8;
    let (left, rest) = order.split_at_mut(mid);
    let (left_axis, rest_axis) = axis.split_at_mut(mid);
    let (right, right_axis) = (&mut rest[1..], &mut rest_axis[1..]);
    if n > 4096 {
        rayon::join(
            || build(points, left, left_axis, depth + 1),
            || build(points, right, right_axis, depth + 1),
        );
    } else {
        build(points, left, left_axis, depth + 1);
        build(points, right, right_axis, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic scatter of points on the unit sphere (with duplicates).
    fn points(n: usize) -> Vec<[f64; 3]> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut v: Vec<[f64; 3]> = (0..n)
            .map(|_| {
                let z = 2.0 * next() - 1.0;
                let phi = 2.0 * std::f64::consts::PI * next();
                let r = (1.0 - z * z).sqrt();
                [r * phi.cos(), r * phi.sin(), z]
            })
            .collect();
        // Exact duplicates exercise the tie-break.
        for i in 0..n / 50 {
            v[i * 7 % n] = v[i * 13 % n];
        }
        v
    }

    fn brute(pts: &[[f64; 3]], q: &[f64; 3], k: usize, max: f64) -> Vec<(f64, u32)> {
        let mut all: Vec<(f64, u32)> = pts
            .iter()
            .enumerate()
            .map(|(i, p)| (dist2(q, p), i as u32))
            .filter(|c| c.0 <= max * max)
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        all.truncate(k);
        all.into_iter().map(|(d, i)| (d.sqrt(), i)).collect()
    }

    #[test]
    fn agrees_with_brute_force() {
        let pts = points(3000);
        let tree = KdTree::new(&pts);
        assert_eq!(tree.len(), 3000);
        let queries = points(200);
        let mut out = Vec::new();
        for (qi, q) in queries.iter().enumerate() {
            for (k, max) in [(1, 0.05), (5, 0.08), (30, 0.2), (3, 3.0)] {
                tree.k_nearest_within(q, k, max, &mut out);
                assert_eq!(out, brute(&pts, q, k, max), "query {qi}, k {k}, max {max}");
            }
            let nn = tree.nearest_within(q, 0.06);
            let b = brute(&pts, q, 1, 0.06);
            assert_eq!(nn.map(|(i, _)| i), b.first().map(|c| c.1), "query {qi}");
        }
        // A query sitting on a duplicated point returns the lower index.
        let dup = pts[13];
        let (i, d) = tree.nearest_within(&dup, 1e-9).unwrap();
        assert_eq!(d, 0.0);
        assert_eq!(i, pts.iter().position(|p| *p == dup).unwrap() as u32);
    }

    #[test]
    fn empty_and_tiny_trees() {
        let tree = KdTree::new(&[]);
        assert!(tree.is_empty());
        assert_eq!(tree.nearest_within(&[1.0, 0.0, 0.0], 10.0), None);
        let tree = KdTree::new(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
        assert_eq!(
            tree.nearest_within(&[0.9, 0.1, 0.0], 0.5).map(|c| c.0),
            Some(0)
        );
        assert_eq!(tree.nearest_within(&[0.0, 0.0, 1.0], 0.5), None);
    }
}
