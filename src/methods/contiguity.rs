//! Contiguity of polygons (which units are neighbours), connected components of a neighbour
//! graph, and the linking of islands to their nearest unit.
//!
//! Real boundary files have tiny gaps and overlaps where two units meet, so two units count as
//! touching where a vertex of one lies within a snapping tolerance of the other's boundary.
//! Candidate segments come from an R-tree on segment envelopes, so the work grows with the
//! number of vertices, not with the number of unit pairs.

use std::collections::BTreeMap;

use geo::{Centroid, MultiPolygon};
use rayon::prelude::*;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{AABB, RTree};

/// Which contacts make two polygons neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContiguityRule {
    /// A shared vertex or edge (the "queen" move of chess).
    Queen,
    /// A shared edge of positive length (the "rook" move); corner contacts do not count.
    Rook,
}

/// One boundary segment of a unit.
#[derive(Debug, Clone, Copy)]
struct Segment {
    unit: usize,
    a: [f64; 2],
    b: [f64; 2],
}

type Indexed = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// The squared distance from point `p` to the segment `a`–`b`.
fn point_segment_dist2(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
    qx * qx + qy * qy
}

fn dist2(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
}

/// The rings of a unit as vertex lists without the closing repeat.
fn rings(unit: &MultiPolygon<f64>) -> Vec<Vec<[f64; 2]>> {
    let mut out = Vec::new();
    for polygon in &unit.0 {
        for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
            let mut pts: Vec<[f64; 2]> = ring.0.iter().map(|c| [c.x, c.y]).collect();
            if pts.len() > 1 && pts.first() == pts.last() {
                pts.pop();
            }
            if !pts.is_empty() {
                out.push(pts);
            }
        }
    }
    out
}

struct Boundaries {
    segments: Vec<Segment>,
    tree: RTree<Indexed>,
    tolerance: f64,
}

impl Boundaries {
    fn new(unit_rings: &[Vec<Vec<[f64; 2]>>], tolerance: f64) -> Self {
        let mut segments = Vec::new();
        for (unit, rings) in unit_rings.iter().enumerate() {
            for ring in rings {
                for i in 0..ring.len() {
                    let (a, b) = (ring[i], ring[(i + 1) % ring.len()]);
                    segments.push(Segment { unit, a, b });
                }
            }
        }
        let items = segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let lo = [
                    s.a[0].min(s.b[0]) - tolerance,
                    s.a[1].min(s.b[1]) - tolerance,
                ];
                let hi = [
                    s.a[0].max(s.b[0]) + tolerance,
                    s.a[1].max(s.b[1]) + tolerance,
                ];
                GeomWithData::new(Rectangle::from_corners(lo, hi), i)
            })
            .collect();
        Self {
            segments,
            tree: RTree::bulk_load(items),
            tolerance,
        }
    }

    /// Appends to `out` the units other than `own` whose boundary lies within the tolerance of
    /// `p`, each once.
    fn units_near(&self, p: [f64; 2], own: usize, out: &mut Vec<usize>) {
        let t2 = self.tolerance * self.tolerance;
        let from = out.len();
        for g in self
            .tree
            .locate_in_envelope_intersecting(&AABB::from_point(p))
        {
            let s = &self.segments[g.data];
            if s.unit != own
                && !out[from..].contains(&s.unit)
                && point_segment_dist2(p, s.a, s.b) <= t2
            {
                out.push(s.unit);
            }
        }
    }

    /// Whether `p` lies within the tolerance of `unit`'s boundary.
    fn near_unit(&self, p: [f64; 2], unit: usize) -> bool {
        let t2 = self.tolerance * self.tolerance;
        self.tree
            .locate_in_envelope_intersecting(&AABB::from_point(p))
            .map(|g| &self.segments[g.data])
            .any(|s| s.unit == unit && point_segment_dist2(p, s.a, s.b) <= t2)
    }
}

/// Neighbour pairs `(i, j)` with `i < j`, sorted, of a set of polygons.
///
/// Two units touch where a vertex of one lies within `tolerance` of the other's boundary (a
/// vertex or any point of a segment), which makes the result robust to slivers and gaps
/// narrower than the tolerance. Under [`ContiguityRule::Rook`] they must also share a stretch of
/// boundary longer than the tolerance: two contact points more than `tolerance` apart whose
/// midpoint is on both boundaries. On a clean topology (neighbours share their vertices, as in
/// libpysal's input) the queen result equals libpysal's `Queen` weights.
///
/// # Units
/// `tolerance` is in the coordinates' units (degrees for lon/lat).
///
/// # References
/// Anselin, L. (1988). *Spatial Econometrics: Methods and Models*. Kluwer, ch. 3 (rook and
/// queen contiguity).
///
/// # Examples
/// ```
/// use geo::{MultiPolygon, polygon};
/// use pipeline::methods::contiguity::{ContiguityRule, polygon_contiguity};
/// // Three unit squares in a row and one touching the last at a corner only.
/// let sq = |x: f64, y: f64| MultiPolygon(vec![polygon![(x: x, y: y), (x: x + 1.0, y: y),
///     (x: x + 1.0, y: y + 1.0), (x: x, y: y + 1.0)]]);
/// let units = [sq(0.0, 0.0), sq(1.0, 0.0), sq(2.0, 0.0), sq(3.0, 1.0)];
/// assert_eq!(polygon_contiguity(&units, ContiguityRule::Queen, 1e-9), vec![(0, 1), (1, 2), (2, 3)]);
/// assert_eq!(polygon_contiguity(&units, ContiguityRule::Rook, 1e-9), vec![(0, 1), (1, 2)]);
/// ```
pub fn polygon_contiguity(
    units: &[MultiPolygon<f64>],
    rule: ContiguityRule,
    tolerance: f64,
) -> Vec<(usize, usize)> {
    let unit_rings: Vec<Vec<Vec<[f64; 2]>>> = units.iter().map(rings).collect();
    let boundaries = Boundaries::new(&unit_rings, tolerance.max(0.0));
    let t2 = boundaries.tolerance * boundaries.tolerance;
    // Per unit: its touching neighbours with the contact points, and for rook whether a whole
    // segment of the unit lies on the neighbour's boundary.
    type Contact = (usize, usize, bool, Vec<[f64; 2]>);
    let per_unit: Vec<Vec<Contact>> = unit_rings
        .par_iter()
        .enumerate()
        .map(|(u, rings)| {
            let mut contacts: BTreeMap<usize, (Vec<[f64; 2]>, bool)> = BTreeMap::new();
            let mut near: Vec<usize> = Vec::new();
            let mut bounds: Vec<usize> = Vec::new();
            for ring in rings {
                near.clear();
                bounds.clear();
                bounds.push(0);
                for &p in ring {
                    boundaries.units_near(p, u, &mut near);
                    bounds.push(near.len());
                }
                let near_of = |i: usize| &near[bounds[i]..bounds[i + 1]];
                for (i, p) in ring.iter().enumerate() {
                    for &w in near_of(i) {
                        contacts.entry(w).or_default().0.push(*p);
                    }
                }
                if rule == ContiguityRule::Rook {
                    // A segment of this ring whose ends and middle lie on the other boundary.
                    for i in 0..ring.len() {
                        let j = (i + 1) % ring.len();
                        if dist2(ring[i], ring[j]) <= t2 {
                            continue;
                        }
                        let mid = [
                            (ring[i][0] + ring[j][0]) / 2.0,
                            (ring[i][1] + ring[j][1]) / 2.0,
                        ];
                        for &w in near_of(i) {
                            if near_of(j).contains(&w) && boundaries.near_unit(mid, w) {
                                contacts.entry(w).or_default().1 = true;
                            }
                        }
                    }
                }
            }
            contacts
                .into_iter()
                .map(|(w, (points, shared))| (u.min(w), u.max(w), shared, points))
                .collect()
        })
        .collect();
    // Per pair: whether a whole segment is shared, and all contact points of both units.
    type PairContact = (bool, Vec<[f64; 2]>);
    let mut pairs: BTreeMap<(usize, usize), PairContact> = BTreeMap::new();
    for (a, b, shared, points) in per_unit.into_iter().flatten() {
        let entry = pairs.entry((a, b)).or_default();
        entry.0 |= shared;
        entry.1.extend(points);
    }
    if rule == ContiguityRule::Queen {
        return pairs.into_keys().collect();
    }
    pairs
        .into_iter()
        .filter(|((a, b), (shared, points))| *shared || shares_stretch(&boundaries, *a, *b, points))
        .map(|(pair, _)| pair)
        .collect()
}

/// Rook fallback when neither unit has a whole segment on the other's boundary (their
/// vertices along the common border are offset): any two contact points (vertices of either
/// unit on the other's boundary) more than the tolerance apart with the midpoint on both
/// boundaries.
fn shares_stretch(boundaries: &Boundaries, a: usize, b: usize, points: &[[f64; 2]]) -> bool {
    let t2 = boundaries.tolerance * boundaries.tolerance;
    // Many contact points and no shared segment would be an odd topology; bound the work.
    let points = &points[..points.len().min(64)];
    for i in 0..points.len() {
        for j in i + 1..points.len() {
            if dist2(points[i], points[j]) <= t2 {
                continue;
            }
            let mid = [
                (points[i][0] + points[j][0]) / 2.0,
                (points[i][1] + points[j][1]) / 2.0,
            ];
            if boundaries.near_unit(mid, a) && boundaries.near_unit(mid, b) {
                return true;
            }
        }
    }
    false
}

/// Connected components of a graph on `n` nodes.
///
/// Returns one component number per node, numbered from 0 by size (largest first), ties by the
/// smallest node index in the component.
///
/// # Units
/// Node indices in, component numbers out.
///
/// # References
/// Tarjan, R. E. (1975). Efficiency of a good but not linear set union algorithm. *Journal of
/// the ACM* 22(2): 215–225 (union–find).
///
/// # Examples
/// ```
/// use pipeline::methods::contiguity::components;
/// // 0–1, 2 alone, 3–4–5: the triple is component 0, the pair 1, the island 2.
/// assert_eq!(components(6, &[(0, 1), (3, 4), (4, 5)]), vec![1, 1, 2, 0, 0, 0]);
/// ```
pub fn components(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut uf = UnionFind::new(n);
    for &(a, b) in edges {
        uf.union(a, b);
    }
    let roots: Vec<usize> = (0..n).map(|i| uf.find(i)).collect();
    let mut size = vec![0usize; n];
    let mut first = vec![usize::MAX; n];
    for (i, &r) in roots.iter().enumerate() {
        size[r] += 1;
        first[r] = first[r].min(i);
    }
    let mut order: Vec<usize> = (0..n).filter(|&r| size[r] > 0).collect();
    order.sort_by_key(|&r| (std::cmp::Reverse(size[r]), first[r]));
    let mut number = vec![0usize; n];
    for (c, &r) in order.iter().enumerate() {
        number[r] = c;
    }
    roots.iter().map(|&r| number[r]).collect()
}

/// Union–find with path halving and union by size.
pub(crate) struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
            size: vec![1; n],
        }
    }
    pub(crate) fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }
    /// Joins the sets of `a` and `b`; false if they were already one.
    pub(crate) fn union(&mut self, a: usize, b: usize) -> bool {
        let (mut ra, mut rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        if self.size[ra] < self.size[rb] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb] = ra;
        self.size[ra] += self.size[rb];
        true
    }
}

/// The centroid of each unit, `[x, y]` (NaN for an empty geometry).
///
/// # Units
/// Coordinate units (degrees for lon/lat; planar centroids, fine for linking islands).
///
/// # References
/// Bashein, G. & Detmer, P. R. (1994). Centroid of a polygon. *Graphics Gems IV*, 3–6.
///
/// # Examples
/// ```
/// use geo::{MultiPolygon, polygon};
/// use pipeline::methods::contiguity::centroids;
/// let sq = MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: 2.0, y: 0.0), (x: 2.0, y: 2.0), (x: 0.0, y: 2.0)]]);
/// assert_eq!(centroids(&[sq]), vec![[1.0, 1.0]]);
/// ```
pub fn centroids(units: &[MultiPolygon<f64>]) -> Vec<[f64; 2]> {
    units
        .iter()
        .map(|u| {
            u.centroid()
                .map_or([f64::NAN, f64::NAN], |p| [p.x(), p.y()])
        })
        .collect()
}

/// The median over units of the diagonal of each unit's bounding box: a typical unit's size,
/// against which a snapping tolerance is checked (a tolerance as wide as a unit makes units
/// neighbours across whole units). The diagonal bounds the unit's diameter from above. Units
/// without coordinates are left out; the median of an even count is the mean of the middle two.
///
/// # Units
/// Coordinate units (degrees for lon/lat, metres for projected data).
///
/// # References
/// Anselin, L., Syabri, I. & Kho, Y. (2006). GeoDa: an introduction to spatial data analysis.
/// *Geographical Analysis* 38(1): 5–22 (contiguity from shared boundaries within a precision
/// threshold small against the units).
///
/// # Examples
/// ```
/// use geo::{MultiPolygon, polygon};
/// use pipeline::methods::contiguity::median_bbox_diagonal;
/// let sq = |s: f64| MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: s, y: 0.0), (x: s, y: s), (x: 0.0, y: s)]]);
/// // Squares of sides 3, 4 and 30: diagonals 3√2, 4√2, 30√2; the median is 4√2.
/// let m = median_bbox_diagonal(&[sq(3.0), sq(4.0), sq(30.0)]).unwrap();
/// assert!((m - 4.0 * 2f64.sqrt()).abs() < 1e-12);
/// ```
pub fn median_bbox_diagonal(units: &[MultiPolygon<f64>]) -> Option<f64> {
    use geo::BoundingRect;
    let mut diagonals: Vec<f64> = units
        .iter()
        .filter_map(BoundingRect::bounding_rect)
        .map(|r| r.width().hypot(r.height()))
        .collect();
    if diagonals.is_empty() {
        return None;
    }
    diagonals.sort_by(f64::total_cmp);
    let mid = diagonals.len() / 2;
    Some(if diagonals.len() % 2 == 1 {
        diagonals[mid]
    } else {
        f64::midpoint(diagonals[mid - 1], diagonals[mid])
    })
}

/// Edges that connect a disconnected graph: repeatedly the smallest component (ties by its
/// smallest node) is linked to the nearest node outside it, by centroid distance, until one
/// component remains. Islands (nodes without neighbours) are the usual case.
///
/// Distances are planar in the given coordinates; with `geographic` the x difference is scaled
/// by the cosine of the mean latitude of the two points, a good approximation over the short
/// distances at which islands lie off a coast.
///
/// # Units
/// Centroids in coordinate units (degrees when `geographic`).
///
/// # References
/// Assunção, R. M., Neves, M. C., Câmara, G. & da Costa Freitas, C. (2006). Efficient
/// regionalization techniques for socio-economic geographical units using minimum spanning
/// trees. *IJGIS* 20(7): 797–811 (a connected graph is required).
///
/// # Examples
/// ```
/// use pipeline::methods::contiguity::link_components;
/// // 0–1 are neighbours; 2 lies nearer to 1 than to 0.
/// let c = [[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]];
/// assert_eq!(link_components(&c, &[(0, 1)], false), vec![(1, 2)]);
/// ```
pub fn link_components(
    centroids: &[[f64; 2]],
    edges: &[(usize, usize)],
    geographic: bool,
) -> Vec<(usize, usize)> {
    let n = centroids.len();
    let mut all: Vec<(usize, usize)> = edges.to_vec();
    let mut added = Vec::new();
    let distance = |a: [f64; 2], b: [f64; 2]| {
        let scale = if geographic {
            ((a[1] + b[1]) / 2.0).to_radians().cos()
        } else {
            1.0
        };
        ((a[0] - b[0]) * scale).powi(2) + (a[1] - b[1]).powi(2)
    };
    loop {
        let comp = components(n, &all);
        let count = comp.iter().copied().max().map_or(0, |m| m + 1);
        if count <= 1 {
            break;
        }
        // Components are numbered largest first, so the last is the smallest.
        let last = count - 1;
        let mut best: Option<(f64, usize, usize)> = None;
        for i in (0..n).filter(|&i| comp[i] == last) {
            for j in (0..n).filter(|&j| comp[j] != last) {
                let d = distance(centroids[i], centroids[j]);
                let cand = (d, i.min(j), i.max(j));
                if best.is_none_or(|b| {
                    cand.0 < b.0 || (cand.0 == b.0 && (cand.1, cand.2) < (b.1, b.2))
                }) {
                    best = Some(cand);
                }
            }
        }
        let Some((_, a, b)) = best else { break };
        all.push((a, b));
        added.push((a, b));
    }
    added.sort_unstable();
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn square(x: f64, y: f64, size: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![
            polygon![(x: x, y: y), (x: x + size, y: y), (x: x + size, y: y + size), (x: x, y: y + size)],
        ])
    }

    #[test]
    fn median_bbox_diagonal_of_an_even_count_is_the_mean_of_the_middle_two() {
        // Diagonals √2·{1, 2, 4, 100}: the middle two average to 3√2 (by hand).
        let units = [
            square(0.0, 0.0, 1.0),
            square(5.0, 0.0, 2.0),
            square(9.0, 0.0, 4.0),
            square(20.0, 0.0, 100.0),
        ];
        let m = median_bbox_diagonal(&units).unwrap();
        assert!((m - 3.0 * 2f64.sqrt()).abs() < 1e-12, "{m}");
        assert_eq!(median_bbox_diagonal(&[MultiPolygon(Vec::new())]), None);
    }

    /// A 3×3 grid of unit squares, numbered row by row from the bottom left:
    /// 6 7 8 / 3 4 5 / 0 1 2. Rook: 12 edges (6 horizontal, 6 vertical); queen adds the
    /// 8 diagonals (2 per 2×2 block, 4 blocks).
    fn grid3() -> Vec<MultiPolygon<f64>> {
        (0..9)
            .map(|i| square(f64::from(i % 3), f64::from(i / 3), 1.0))
            .collect()
    }

    #[test]
    fn grid_rook_and_queen_by_hand() {
        let rook = polygon_contiguity(&grid3(), ContiguityRule::Rook, 1e-9);
        assert_eq!(
            rook,
            vec![
                (0, 1),
                (0, 3),
                (1, 2),
                (1, 4),
                (2, 5),
                (3, 4),
                (3, 6),
                (4, 5),
                (4, 7),
                (5, 8),
                (6, 7),
                (7, 8)
            ]
        );
        let queen = polygon_contiguity(&grid3(), ContiguityRule::Queen, 1e-9);
        assert_eq!(queen.len(), 20);
        for diagonal in [
            (0, 4),
            (1, 3),
            (1, 5),
            (2, 4),
            (3, 7),
            (4, 6),
            (4, 8),
            (5, 7),
        ] {
            assert!(queen.contains(&diagonal), "{diagonal:?}");
        }
    }

    #[test]
    fn tolerance_bridges_gaps_and_offset_vertices() {
        // Square 1 is 1e-4 away from square 0 and its vertices do not match 0's: the long edge
        // of 0 faces a side of 1 with offset ends. With a 1e-3 tolerance they are rook
        // neighbours; with 1e-5 they do not touch.
        let a = square(0.0, 0.0, 2.0);
        let b = MultiPolygon(vec![
            polygon![(x: 2.0001, y: 0.5), (x: 3.0, y: 0.5), (x: 3.0, y: 2.5), (x: 2.0001, y: 2.5)],
        ]);
        let units = [a, b];
        assert_eq!(
            polygon_contiguity(&units, ContiguityRule::Rook, 1e-3),
            vec![(0, 1)]
        );
        assert_eq!(
            polygon_contiguity(&units, ContiguityRule::Queen, 1e-3),
            vec![(0, 1)]
        );
        assert!(polygon_contiguity(&units, ContiguityRule::Queen, 1e-5).is_empty());
    }

    #[test]
    fn tolerance_absorbs_overlaps() {
        // Square 1 overlaps square 0 by a 1e-4 sliver: its left side runs inside 0, 1e-4 from
        // 0's right side, and its corners lie on 0's top and bottom edges.
        let a = square(0.0, 0.0, 2.0);
        let b = MultiPolygon(vec![
            polygon![(x: 1.9999, y: 0.0), (x: 3.0, y: 0.0), (x: 3.0, y: 2.0), (x: 1.9999, y: 2.0)],
        ]);
        let units = [a, b];
        assert_eq!(
            polygon_contiguity(&units, ContiguityRule::Rook, 1e-3),
            vec![(0, 1)]
        );
        // Without tolerance they still touch: 1's corners lie on 0's edges (queen), and the
        // bottom (and top) edges overlap along [1.9999, 2], a stretch of 1e-4 (rook).
        assert_eq!(
            polygon_contiguity(&units, ContiguityRule::Queen, 0.0),
            vec![(0, 1)]
        );
        assert_eq!(
            polygon_contiguity(&units, ContiguityRule::Rook, 0.0),
            vec![(0, 1)]
        );
    }

    #[test]
    fn t_junction_counts_as_rook() {
        // Square 0 (size 2) beside two unit squares stacked on its right: the vertex (2, 1)
        // of the small squares lies on 0's edge, which has no vertex there.
        let units = [
            square(0.0, 0.0, 2.0),
            square(2.0, 0.0, 1.0),
            square(2.0, 1.0, 1.0),
        ];
        assert_eq!(
            polygon_contiguity(&units, ContiguityRule::Rook, 1e-9),
            vec![(0, 1), (0, 2), (1, 2)]
        );
    }

    #[test]
    fn links_islands_to_nearest() {
        // 0–1 and 2–3 are two pairs; 4 is an island nearest to 3.
        let c = [[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [6.0, 0.0], [6.0, 2.0]];
        let added = link_components(&c, &[(0, 1), (2, 3)], false);
        // First the island (smallest) joins 3, then the pair {0,1} (now the smaller) joins 2.
        assert_eq!(added, vec![(1, 2), (3, 4)]);
    }
}
