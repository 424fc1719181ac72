//! Simplification of a map's outlines that keeps neighbours' borders identical: rings are cut
//! into arcs at their junctions, each arc is simplified once, and every ring is put back
//! together from the simplified arcs, so two neighbours draw their common border with the same
//! vertices and no gap or sliver opens between them.
//!
//! A vertex is a junction where the rings that pass through it do not all come from and go to
//! the same two vertices: where a border meets a third unit or the outline, or where a ring
//! touches itself (the "join" of TopoJSON, Bostock 2013, topojson-server). A ring with no
//! junction (an island, an enclave and the hole it fills) is cut at its lowest vertex and at the
//! vertex farthest from it, so both rings of an enclave are cut alike.
//!
//! Each arc is simplified with the algorithm of Douglas & Peucker (1973, The Canadian
//! Cartographer 10(2): 112–122) through [`geo::Simplify`], which keeps the arc's end points.
//! Vertices are then quantised to a [`QUANTUM_PX`] grid. Simplifying arcs independently can
//! still make two arcs cross or a small ring collapse; those arcs are simplified again with half
//! the tolerance until the map is clean (an arc reaches the unsimplified outline at worst).
//!
//! Pure geometry on pixel coordinates; it knows nothing of units, projections or SVG.

use std::collections::HashMap;

use geo::{Coord, LineString, Simplify};
use rayon::prelude::*;

/// The grid the simplified vertices are snapped to, in pixels: a quarter of a pixel, finer
/// than a screen shows at 1× and half a device pixel at 2×, and coarse enough to print each
/// coordinate as a small integer (a relative step is mostly one or two digits).
pub const QUANTUM_PX: f64 = 0.25;

/// A polygon's rings in pixel coordinates, exterior first.
pub type PixelPolygon = Vec<Vec<(f64, f64)>>;

/// A vertex on the [`QUANTUM_PX`] grid: pixel coordinates divided by the quantum, rounded.
pub type GridPoint = (i64, i64);

/// A polygon's rings on the grid, exterior first; each ring is open (its last vertex is not a
/// repeat of the first) and has at least three distinct vertices.
pub type GridPolygon = Vec<Vec<GridPoint>>;

/// Rounds at most this many times: every round halves the tolerance of the arcs at fault, so
/// after it an arc is within `tolerance / 2⁸` of its outline or unsimplified.
const MAX_ROUNDS: usize = 8;

/// One ring as a sequence of arcs, each walked forwards or backwards.
#[derive(Debug, Clone)]
struct RingArcs {
    unit: usize,
    polygon: usize,
    /// 0 for the exterior, then the holes.
    ring: usize,
    arcs: Vec<(usize, bool)>,
}

/// The map cut into shared arcs.
#[derive(Debug)]
struct Topology {
    points: Vec<(f64, f64)>,
    /// Each arc as point indices, from junction to junction.
    arcs: Vec<Vec<u32>>,
    rings: Vec<RingArcs>,
}

/// Simplifies the outlines of `units` (per unit, its polygons; per polygon, its rings, exterior
/// first; pixel coordinates) with a tolerance of `tolerance_px` pixels, keeping every border
/// between two units identical on both sides. Returns, per unit, its polygons on the grid; a
/// polygon whose exterior is too small to keep three grid vertices is left out, as is a hole
/// that small.
///
/// # References
/// Douglas, D. H. & Peucker, T. K. (1973). Algorithms for the reduction of the number of
/// points required to represent a digitized line or its caricature. The Canadian
/// Cartographer 10(2): 112–122.
pub fn simplify_shared_borders(
    units: &[Vec<PixelPolygon>],
    tolerance_px: f64,
) -> Vec<Vec<GridPolygon>> {
    SharedBorders::new(units).simplify(&|p| p, tolerance_px)
}

/// A map cut into shared arcs once, to be simplified at any size: the cut depends only on which
/// vertices the rings share, not on the scale, so maps of several sizes share it.
#[derive(Debug)]
pub struct SharedBorders {
    topology: Topology,
    /// Polygons per unit, in input order.
    polygons: Vec<usize>,
}

impl SharedBorders {
    /// Cuts `units` (per unit, its polygons; per polygon, its rings, exterior first; in any
    /// planar coordinates) into arcs at their junctions.
    pub fn new(units: &[Vec<PixelPolygon>]) -> Self {
        SharedBorders {
            topology: Topology::build(units),
            polygons: units.iter().map(Vec::len).collect(),
        }
    }

    /// The outlines moved to pixels by `to_px` (a similarity: a uniform scale, a flip and a
    /// shift, which leaves the Douglas–Peucker choice of vertices unchanged) and simplified
    /// with a tolerance of `tolerance_px` pixels, as [`simplify_shared_borders`] describes.
    /// Arcs are simplified and checked in parallel; the result does not depend on the number
    /// of threads.
    pub fn simplify(
        &self,
        to_px: &(dyn Fn((f64, f64)) -> (f64, f64) + Sync),
        tolerance_px: f64,
    ) -> Vec<Vec<GridPolygon>> {
        let topology = &self.topology;
        let mut tolerance = vec![tolerance_px.max(0.0); topology.arcs.len()];
        let mut arcs: Vec<Vec<GridPoint>> = (0..topology.arcs.len())
            .into_par_iter()
            .map(|a| topology.simplified_arc(a, to_px, tolerance[a]))
            .collect();
        for _ in 0..MAX_ROUNDS {
            let mut faulty = topology.collapsed_ring_arcs(&arcs);
            faulty.extend(crossing_arcs(&arcs));
            faulty.sort_unstable();
            faulty.dedup();
            faulty.retain(|&a| tolerance[a] > 0.0);
            if faulty.is_empty() {
                break;
            }
            for &a in &faulty {
                // Below a quarter of the grid step the arc is as good as unsimplified.
                tolerance[a] = if tolerance[a] < QUANTUM_PX / 4.0 {
                    0.0
                } else {
                    tolerance[a] / 2.0
                };
            }
            let redone: Vec<Vec<GridPoint>> = faulty
                .par_iter()
                .map(|&a| topology.simplified_arc(a, to_px, tolerance[a]))
                .collect();
            for (a, arc) in faulty.into_iter().zip(redone) {
                arcs[a] = arc;
            }
        }
        topology.assemble(&self.polygons, &arcs)
    }
}

impl Topology {
    fn build(units: &[Vec<PixelPolygon>]) -> Self {
        let mut index: HashMap<(u64, u64), u32> = HashMap::new();
        let mut points: Vec<(f64, f64)> = Vec::new();
        let mut rings: Vec<(usize, usize, usize, Vec<u32>)> = Vec::new();
        for (u, polygons) in units.iter().enumerate() {
            for (p, polygon) in polygons.iter().enumerate() {
                for (r, ring) in polygon.iter().enumerate() {
                    let mut ids: Vec<u32> = Vec::with_capacity(ring.len());
                    for &pt in ring {
                        let key = (pt.0.to_bits(), pt.1.to_bits());
                        let id = *index.entry(key).or_insert_with(|| {
                            points.push(pt);
                            u32::try_from(points.len() - 1).expect("fewer than 2³² vertices")
                        });
                        if ids.last() != Some(&id) {
                            ids.push(id);
                        }
                    }
                    if ids.len() > 1 && ids.first() == ids.last() {
                        ids.pop();
                    }
                    if ids.len() >= 3 {
                        rings.push((u, p, r, ids));
                    }
                }
            }
        }
        let junction = junctions(&rings, points.len());
        let mut arcs: Vec<Vec<u32>> = Vec::new();
        let mut arc_index: HashMap<Vec<u32>, usize> = HashMap::new();
        let mut ring_arcs = Vec::with_capacity(rings.len());
        for (unit, polygon, ring, ids) in rings {
            let cuts = ring_cuts(&ids, &junction, &points);
            let mut walk = Vec::with_capacity(cuts.len());
            for (k, &start) in cuts.iter().enumerate() {
                let end = cuts[(k + 1) % cuts.len()];
                let len = (end + ids.len() - start) % ids.len();
                let len = if len == 0 { ids.len() } else { len };
                let arc: Vec<u32> = (0..=len).map(|i| ids[(start + i) % ids.len()]).collect();
                let (canonical, reversed) = canonical_arc(arc, &points);
                let next = arcs.len();
                let a = *arc_index.entry(canonical.clone()).or_insert(next);
                if a == next {
                    arcs.push(canonical);
                }
                walk.push((a, reversed));
            }
            ring_arcs.push(RingArcs {
                unit,
                polygon,
                ring,
                arcs: walk,
            });
        }
        Topology {
            points,
            arcs,
            rings: ring_arcs,
        }
    }

    /// Arc `a` moved to pixels by `to_px` and simplified with `tolerance_px`, on the grid,
    /// without repeated vertices.
    fn simplified_arc(
        &self,
        a: usize,
        to_px: &(dyn Fn((f64, f64)) -> (f64, f64) + Sync),
        tolerance_px: f64,
    ) -> Vec<GridPoint> {
        let line = LineString(
            self.arcs[a]
                .iter()
                .map(|&i| {
                    let (x, y) = to_px(self.points[i as usize]);
                    Coord { x, y }
                })
                .collect(),
        );
        let line = if tolerance_px > 0.0 {
            line.simplify(tolerance_px)
        } else {
            line
        };
        let mut out: Vec<GridPoint> = Vec::with_capacity(line.0.len());
        for c in line.0 {
            let g = to_grid(c.x, c.y);
            if out.last() != Some(&g) {
                out.push(g);
            }
        }
        out
    }

    /// The ring's vertices on the grid from simplified arcs, open, without repeats.
    fn ring_points(ring: &RingArcs, arcs: &[Vec<GridPoint>]) -> Vec<GridPoint> {
        let mut out: Vec<GridPoint> = Vec::new();
        for &(a, reversed) in &ring.arcs {
            let arc = &arcs[a];
            let mut push = |g: GridPoint| {
                if out.last() != Some(&g) {
                    out.push(g);
                }
            };
            if reversed {
                arc.iter().rev().copied().for_each(&mut push);
            } else {
                arc.iter().copied().for_each(&mut push);
            }
        }
        if out.len() > 1 && out.first() == out.last() {
            out.pop();
        }
        out
    }

    /// The arcs of rings that collapsed: fewer than three vertices or no area.
    fn collapsed_ring_arcs(&self, arcs: &[Vec<GridPoint>]) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .rings
            .par_iter()
            .filter(|ring| !is_proper_ring(&Self::ring_points(ring, arcs)))
            .flat_map_iter(|ring| ring.arcs.iter().map(|&(a, _)| a))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn assemble(&self, polygons: &[usize], arcs: &[Vec<GridPoint>]) -> Vec<Vec<GridPolygon>> {
        let mut out: Vec<Vec<GridPolygon>> =
            polygons.iter().map(|&n| vec![Vec::new(); n]).collect();
        let mut exterior_kept: Vec<Vec<bool>> = polygons.iter().map(|&n| vec![false; n]).collect();
        let rings: Vec<Vec<GridPoint>> = self
            .rings
            .par_iter()
            .map(|ring| Self::ring_points(ring, arcs))
            .collect();
        // Rings were recorded unit by unit, polygon by polygon, exterior first.
        for (ring, pts) in self.rings.iter().zip(rings) {
            if !is_proper_ring(&pts) {
                continue;
            }
            if ring.ring == 0 {
                exterior_kept[ring.unit][ring.polygon] = true;
            } else if !exterior_kept[ring.unit][ring.polygon] {
                continue;
            }
            out[ring.unit][ring.polygon].push(pts);
        }
        for polygons in &mut out {
            polygons.retain(|rings| !rings.is_empty());
        }
        out
    }
}

/// Pixel coordinates to the grid.
pub(crate) fn to_grid(x: f64, y: f64) -> GridPoint {
    // Pixel coordinates of a map are a few thousand at most: far inside i64.
    #[allow(clippy::cast_possible_truncation)]
    (
        (x / QUANTUM_PX).round() as i64,
        (y / QUANTUM_PX).round() as i64,
    )
}

/// Marks the vertices where rings do not all pass between the same two neighbours.
fn junctions(rings: &[(usize, usize, usize, Vec<u32>)], n_points: usize) -> Vec<bool> {
    const NONE: (u32, u32) = (u32::MAX, u32::MAX);
    let mut through = vec![NONE; n_points];
    let mut junction = vec![false; n_points];
    for (_, _, _, ids) in rings {
        let n = ids.len();
        for i in 0..n {
            let (prev, next) = (ids[(i + n - 1) % n], ids[(i + 1) % n]);
            let pair = (prev.min(next), prev.max(next));
            let p = ids[i] as usize;
            if through[p] == NONE {
                through[p] = pair;
            } else if through[p] != pair {
                junction[p] = true;
            }
        }
    }
    // A vertex a ring passes twice is a junction even when both passes look alike.
    for (_, _, _, ids) in rings {
        let mut seen: Vec<u32> = ids.clone();
        seen.sort_unstable();
        for w in seen.windows(2) {
            if w[0] == w[1] {
                junction[w[0] as usize] = true;
            }
        }
    }
    junction
}

/// Where a ring is cut into arcs: its junctions. A ring with none is cut at its lowest vertex
/// (by coordinates), and a ring with one junction or none also at the vertex farthest from the
/// first cut, so no arc is closed and every ring through the same vertices is cut alike.
fn ring_cuts(ids: &[u32], junction: &[bool], points: &[(f64, f64)]) -> Vec<usize> {
    let cuts: Vec<usize> = (0..ids.len())
        .filter(|&i| junction[ids[i] as usize])
        .collect();
    if cuts.len() >= 2 {
        return cuts;
    }
    let pt = |i: usize| points[ids[i] as usize];
    let by_coords = |a: (f64, f64), b: (f64, f64)| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1));
    let lowest = cuts.first().copied().unwrap_or_else(|| {
        (0..ids.len())
            .min_by(|&a, &b| by_coords(pt(a), pt(b)))
            .expect("a ring has at least three vertices")
    });
    let (x0, y0) = pt(lowest);
    let d2 = |i: usize| (pt(i).0 - x0).powi(2) + (pt(i).1 - y0).powi(2);
    let farthest = (0..ids.len())
        .max_by(|&a, &b| d2(a).total_cmp(&d2(b)).then(by_coords(pt(b), pt(a))))
        .expect("a ring has at least three vertices");
    let mut cuts = vec![lowest, farthest];
    cuts.sort_unstable();
    cuts
}

/// The arc in the direction that starts at its lower end (by coordinates), and whether that is
/// the reverse of the ring's direction. The two rings of a border walk it in opposite
/// directions; both then name the same arc.
fn canonical_arc(arc: Vec<u32>, points: &[(f64, f64)]) -> (Vec<u32>, bool) {
    let n = arc.len();
    let cmp = |a: u32, b: u32| {
        let (a, b) = (points[a as usize], points[b as usize]);
        a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1))
    };
    // Ends equal only for an arc around a whole ring; compare inwards until they differ.
    let order = (0..n / 2)
        .map(|i| cmp(arc[i], arc[n - 1 - i]))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal);
    if order.is_gt() {
        (arc.into_iter().rev().collect(), true)
    } else {
        (arc, false)
    }
}

/// Twice the signed area of a ring on the grid (shoelace formula).
fn doubled_area(ring: &[GridPoint]) -> i128 {
    let n = ring.len();
    (0..n)
        .map(|i| {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            i128::from(a.0) * i128::from(b.1) - i128::from(b.0) * i128::from(a.1)
        })
        .sum()
}

/// At least three distinct vertices enclosing some area.
fn is_proper_ring(ring: &[GridPoint]) -> bool {
    ring.len() >= 3 && doubled_area(ring) != 0
}

/// Sign of the turn a → b → c: positive counter-clockwise (in x-right, y-up terms).
fn orientation(a: GridPoint, b: GridPoint, c: GridPoint) -> i8 {
    let cross = i128::from(b.0 - a.0) * i128::from(c.1 - a.1)
        - i128::from(b.1 - a.1) * i128::from(c.0 - a.0);
    match cross {
        0 => 0,
        x if x > 0 => 1,
        _ => -1,
    }
}

/// `p`, collinear with segment a–b, lies on it.
fn within(a: GridPoint, b: GridPoint, p: GridPoint) -> bool {
    p.0 >= a.0.min(b.0) && p.0 <= a.0.max(b.0) && p.1 >= a.1.min(b.1) && p.1 <= a.1.max(b.1)
}

/// Two segments meet anywhere but at one shared end point (where they may only turn, not
/// double back along each other). Exact on the grid.
pub(crate) fn segments_conflict(s: (GridPoint, GridPoint), t: (GridPoint, GridPoint)) -> bool {
    let shared = [(s.0, t.0), (s.0, t.1), (s.1, t.0), (s.1, t.1)]
        .into_iter()
        .filter(|(a, b)| a == b)
        .count();
    if shared >= 2 {
        return true;
    }
    if shared == 1 {
        let (c, a, b) = if s.0 == t.0 || s.0 == t.1 {
            (s.0, s.1, if s.0 == t.0 { t.1 } else { t.0 })
        } else {
            (s.1, s.0, if s.1 == t.0 { t.1 } else { t.0 })
        };
        let dot = (a.0 - c.0) * (b.0 - c.0) + (a.1 - c.1) * (b.1 - c.1);
        return orientation(c, a, b) == 0 && dot > 0;
    }
    let (o1, o2) = (orientation(s.0, s.1, t.0), orientation(s.0, s.1, t.1));
    let (o3, o4) = (orientation(t.0, t.1, s.0), orientation(t.0, t.1, s.1));
    if o1 * o2 < 0 && o3 * o4 < 0 {
        return true;
    }
    (o1 == 0 && within(s.0, s.1, t.0))
        || (o2 == 0 && within(s.0, s.1, t.1))
        || (o3 == 0 && within(t.0, t.1, s.0))
        || (o4 == 0 && within(t.0, t.1, s.1))
}

/// The arcs with a segment that meets another segment where it should not (see
/// [`segments_conflict`]), found through a uniform grid of buckets.
fn crossing_arcs(arcs: &[Vec<GridPoint>]) -> Vec<usize> {
    let segments: Vec<(usize, usize, GridPoint, GridPoint)> = arcs
        .iter()
        .enumerate()
        .flat_map(|(a, arc)| {
            arc.windows(2)
                .enumerate()
                .map(move |(k, w)| (a, k, w[0], w[1]))
        })
        .collect();
    if segments.is_empty() {
        return Vec::new();
    }
    let (mut x0, mut y0, mut x1, mut y1) = (i64::MAX, i64::MAX, i64::MIN, i64::MIN);
    for &(_, _, p, q) in &segments {
        x0 = x0.min(p.0.min(q.0));
        y0 = y0.min(p.1.min(q.1));
        x1 = x1.max(p.0.max(q.0));
        y1 = y1.max(p.1.max(q.1));
    }
    // About four segments per bucket on average.
    let side = (segments.len() / 4).max(1).isqrt().max(1) as i64;
    let cell = ((x1 - x0).max(y1 - y0) / side).max(1) + 1;
    let mut buckets: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (i, &(_, _, p, q)) in segments.iter().enumerate() {
        for cx in (p.0.min(q.0) - x0) / cell..=(p.0.max(q.0) - x0) / cell {
            for cy in (p.1.min(q.1) - y0) / cell..=(p.1.max(q.1) - y0) / cell {
                buckets.entry((cx, cy)).or_default().push(i);
            }
        }
    }
    // Each bucket is checked on its own; the union of the faulty arcs does not depend on the
    // order the buckets are visited in.
    let buckets: Vec<Vec<usize>> = buckets.into_values().collect();
    let conflicts: Vec<usize> = buckets
        .par_iter()
        .flat_map_iter(|members| {
            let mut found = Vec::new();
            for (k, &i) in members.iter().enumerate() {
                for &j in &members[k + 1..] {
                    let (ai, ki, p, q) = segments[i];
                    let (aj, kj, r, s) = segments[j];
                    if (ai, ki) != (aj, kj) && segments_conflict((p, q), (r, s)) {
                        found.extend([ai, aj]);
                    }
                }
            }
            found
        })
        .collect();
    let mut faulty = vec![false; arcs.len()];
    for a in conflicts {
        faulty[a] = true;
    }
    (0..arcs.len()).filter(|&a| faulty[a]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Cell size of the test grid, pixels.
    const CELL: f64 = 10.0;

    /// A border from `a` to `b` with vertices every quarter pixel, wiggling across the straight
    /// line by up to 1.3 px (more than the tolerance, so some wiggles survive), `seed`
    /// varying the shape. Outline borders stay straight (with their collinear vertices).
    fn border(a: (f64, f64), b: (f64, f64), seed: f64, wiggle: bool) -> Vec<(f64, f64)> {
        let steps = 40;
        let (dx, dy) = (
            (b.0 - a.0) / f64::from(steps),
            (b.1 - a.1) / f64::from(steps),
        );
        let (nx, ny) = (-dy / dx.hypot(dy), dx / dx.hypot(dy));
        (0..=steps)
            .map(|k| {
                let t = f64::from(k);
                // Tapered towards the corners so borders meeting there never cross.
                let taper = (f64::from(k.min(steps - k)) / 8.0).min(1.0);
                let off = if wiggle {
                    taper * ((t * 0.7 + seed).sin() + 0.3 * (t * 2.3 + seed * 3.0).sin())
                } else {
                    0.0
                };
                (a.0 + dx * t + nx * off, a.1 + dy * t + ny * off)
            })
            .collect()
    }

    /// A 3 × 3 grid of units whose inner borders wiggle, unit 9 an enclave in the middle
    /// unit (its hole) and unit 10 an island; with the pairs of neighbours.
    fn grid() -> (Vec<Vec<PixelPolygon>>, Vec<(usize, usize)>) {
        let n = 3;
        let corner = |i: usize, j: usize| (i as f64 * CELL, j as f64 * CELL);
        let on_outline = |a: (usize, usize), b: (usize, usize)| {
            (a.0 == b.0 && (a.0 == 0 || a.0 == n)) || (a.1 == b.1 && (a.1 == 0 || a.1 == n))
        };
        // Each border once, from its lower corner to its upper one.
        type Corner = (usize, usize);
        let mut borders: BTreeMap<(Corner, Corner), Vec<(f64, f64)>> = BTreeMap::new();
        let mut seed = 0.0;
        let mut edge = |a: (usize, usize), b: (usize, usize)| -> Vec<(f64, f64)> {
            let key = if a < b { (a, b) } else { (b, a) };
            let line = borders
                .entry(key)
                .or_insert_with(|| {
                    seed += 1.7;
                    border(
                        corner(key.0.0, key.0.1),
                        corner(key.1.0, key.1.1),
                        seed,
                        !on_outline(a, b),
                    )
                })
                .clone();
            if a < b {
                line
            } else {
                line.into_iter().rev().collect()
            }
        };
        let mut units = Vec::new();
        for j in 0..n {
            for i in 0..n {
                let cs = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)];
                let mut ring: Vec<(f64, f64)> = Vec::new();
                for k in 0..4 {
                    let line = edge(cs[k], cs[(k + 1) % 4]);
                    ring.extend(&line[..line.len() - 1]);
                }
                // Rings start anywhere, as in real data (here mid-border).
                let start = (13 + 29 * units.len()) % ring.len();
                ring.rotate_left(start);
                ring.push(ring[0]);
                units.push(vec![vec![ring]]);
            }
        }
        // The enclave: a wiggly-free octagon inside the middle unit, which has it as a hole.
        let enclave: Vec<(f64, f64)> = (0..=8)
            .map(|k| {
                let t = f64::from(k % 8) * std::f64::consts::FRAC_PI_4;
                (15.0 + 2.0 * t.cos(), 15.0 + 2.0 * t.sin())
            })
            .collect();
        units[4][0].push(enclave.iter().rev().copied().collect());
        units.push(vec![vec![enclave]]);
        units.push(vec![vec![vec![
            (40.0, 0.0),
            (44.0, 0.0),
            (44.0, 3.0),
            (40.0, 0.0),
        ]]]);
        let mut pairs = Vec::new();
        for j in 0..n {
            for i in 0..n {
                let u = j * n + i;
                if i + 1 < n {
                    pairs.push((u, u + 1));
                }
                if j + 1 < n {
                    pairs.push((u, u + n));
                }
            }
        }
        pairs.push((4, 9));
        (units, pairs)
    }

    /// Directed edges of each unit's rings.
    fn edges(unit: &[GridPolygon]) -> BTreeSet<(GridPoint, GridPoint)> {
        unit.iter()
            .flatten()
            .flat_map(|ring| (0..ring.len()).map(move |i| (ring[i], ring[(i + 1) % ring.len()])))
            .collect()
    }

    /// Checks that every edge of a unit not on the grid's outline or the island is walked
    /// backwards by exactly one other unit, and that neighbours share an edge.
    fn borders_are_shared(
        out: &[Vec<GridPolygon>],
        pairs: &[(usize, usize)],
    ) -> Result<(), String> {
        let frame = (CELL * 3.0 / QUANTUM_PX).round() as i64;
        let on_frame = |p: GridPoint| p.0 == 0 || p.1 == 0 || p.0 == frame || p.1 == frame;
        let all: Vec<_> = out.iter().map(|u| edges(u)).collect();
        for (u, es) in all.iter().enumerate().take(10) {
            for &(a, b) in es {
                if on_frame(a) && on_frame(b) {
                    continue;
                }
                let others = (0..all.len())
                    .filter(|&v| v != u && all[v].contains(&(b, a)))
                    .count();
                if others != 1 {
                    return Err(format!(
                        "unit {u}: edge {a:?}→{b:?} is walked back by {others} units"
                    ));
                }
            }
        }
        for &(u, v) in pairs {
            if !all[u].iter().any(|&(a, b)| all[v].contains(&(b, a))) {
                return Err(format!("units {u} and {v} no longer share a border"));
            }
        }
        Ok(())
    }

    #[test]
    fn neighbours_keep_identical_borders_after_simplification() {
        let (units, pairs) = grid();
        let out = simplify_shared_borders(&units, 0.6);
        assert_eq!(out.len(), units.len());
        borders_are_shared(&out, &pairs).unwrap();
        // The hole of the middle unit is the enclave's exterior, walked the other way.
        let hole: BTreeSet<GridPoint> = out[4][0][1].iter().copied().collect();
        let enclave: BTreeSet<GridPoint> = out[9][0][0].iter().copied().collect();
        assert_eq!(hole, enclave);
        // It did simplify: 9 cells × 160 vertices + 8 + 3 in, far fewer out.
        let before: usize = units.iter().flatten().flatten().map(|r| r.len() - 1).sum();
        let after: usize = out.iter().flatten().flatten().map(Vec::len).sum();
        assert_eq!(before, 9 * 160 + 8 + 8 + 3);
        assert!(after * 2 < before, "{after} of {before} vertices kept");
    }

    #[test]
    fn simplifying_each_ring_alone_would_open_gaps() {
        // The check above can fail: the per-ring simplification the report used before
        // simplifies each side of a border from a different start and keeps other vertices.
        let (units, pairs) = grid();
        let per_ring: Vec<Vec<GridPolygon>> = units
            .iter()
            .map(|polygons| {
                polygons
                    .iter()
                    .map(|rings| {
                        rings
                            .iter()
                            .map(|ring| {
                                let line =
                                    LineString(ring.iter().map(|&(x, y)| Coord { x, y }).collect());
                                let mut pts: Vec<GridPoint> = line
                                    .simplify(0.6)
                                    .0
                                    .iter()
                                    .map(|c| to_grid(c.x, c.y))
                                    .collect();
                                pts.pop();
                                pts
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        assert!(borders_are_shared(&per_ring, &pairs).is_err());
    }

    #[test]
    fn no_ring_collapses_or_crosses_another_even_at_a_coarse_tolerance() {
        let (units, _) = grid();
        for tolerance in [0.6, 3.0, 8.0] {
            let out = simplify_shared_borders(&units, tolerance);
            // Every unit keeps its exterior; the middle unit keeps its hole.
            assert!(out.iter().all(|u| u.len() == 1), "tolerance {tolerance}");
            assert_eq!(out[4][0].len(), 2);
            let segments: Vec<(GridPoint, GridPoint)> = out
                .iter()
                .flatten()
                .flatten()
                .flat_map(|r| (0..r.len()).map(move |i| (r[i], r[(i + 1) % r.len()])))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            for ring in out.iter().flatten().flatten() {
                assert!(is_proper_ring(ring), "tolerance {tolerance}: {ring:?}");
            }
            // Segments meet only at shared end points (the two directions of one border
            // count once: an edge and its reverse are the same segment).
            let undirected: BTreeSet<(GridPoint, GridPoint)> = segments
                .iter()
                .map(|&(a, b)| (a.min(b), a.max(b)))
                .collect();
            let undirected: Vec<_> = undirected.into_iter().collect();
            for i in 0..undirected.len() {
                for j in i + 1..undirected.len() {
                    assert!(
                        !segments_conflict(undirected[i], undirected[j]),
                        "tolerance {tolerance}: {:?} meets {:?}",
                        undirected[i],
                        undirected[j]
                    );
                }
            }
        }
    }

    #[test]
    fn segments_meet_only_at_shared_ends() {
        // By hand: crossing diagonals of a square conflict; two segments that share an end
        // and turn do not; one that doubles back along the other does; a T-touch does.
        let seg = |a: GridPoint, b: GridPoint| (a, b);
        assert!(segments_conflict(
            seg((0, 0), (10, 10)),
            seg((0, 10), (10, 0))
        ));
        assert!(!segments_conflict(
            seg((0, 0), (10, 0)),
            seg((10, 0), (10, 10))
        ));
        assert!(segments_conflict(
            seg((0, 0), (10, 0)),
            seg((10, 0), (5, 0))
        ));
        assert!(segments_conflict(
            seg((0, 0), (10, 0)),
            seg((5, 0), (5, 10))
        ));
        assert!(!segments_conflict(
            seg((0, 0), (10, 0)),
            seg((0, 1), (10, 1))
        ));
        assert!(!segments_conflict(
            seg((0, 0), (10, 0)),
            seg((20, 0), (30, 0))
        ));
    }

    #[test]
    fn the_same_map_in_another_unit_order_gives_the_same_outlines() {
        let (units, _) = grid();
        let out = simplify_shared_borders(&units, 0.6);
        let mut reversed = units.clone();
        reversed.reverse();
        let mut back = simplify_shared_borders(&reversed, 0.6);
        back.reverse();
        assert_eq!(out, back);
    }
}
