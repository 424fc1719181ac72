//! Polygon → pixel rasterisation by the pixel-centre rule, as per-row spans.
//!
//! A pixel belongs to a unit when its centre lies inside the unit's (multi)polygon. Inside is
//! decided by the even-odd rule over all rings of all parts, so holes are left out and the parts
//! of a multipolygon add up. A centre exactly on an edge follows the half-open convention of
//! scanline fill: a centre on a left (west) edge or on a lower-y horizontal crossing is inside,
//! on a right edge outside, so two units sharing an edge never both get its pixels. This is
//! the rule of GDAL's rasteriser without `ALL_TOUCHED` (what `rasterstats` and `exactextract`'s
//! centre mode use); pixel counts agree with them except for centres on an edge.
//!
//! The result is a list of spans `[x0, x1)` per raster row, sorted by row then start column, so a
//! zonal histogram walks pixels without testing points against polygons.

use geo::MultiPolygon;
use rayon::prelude::*;

/// A north-up raster grid: pixel (col, row) covers x ∈ [x0 + col·dx, x0 + (col+1)·dx) and
/// y between y0 + row·dy and y0 + (row+1)·dy (dy < 0 for the usual north-up raster).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub x0: f64,
    pub y0: f64,
    /// Pixel width, > 0.
    pub dx: f64,
    /// Pixel height, signed (negative for north-up).
    pub dy: f64,
    pub width: usize,
    pub height: usize,
}

impl Grid {
    /// The extent `(xmin, ymin, xmax, ymax)`.
    pub fn extent(&self) -> (f64, f64, f64, f64) {
        let y1 = self.y0 + self.height as f64 * self.dy;
        (
            self.x0,
            self.y0.min(y1),
            self.x0 + self.width as f64 * self.dx,
            self.y0.max(y1),
        )
    }
}

/// Pixels `[x0, x1)` of one row that belong to `unit` (an index into the caller's unit list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub x0: u32,
    pub x1: u32,
    pub unit: u32,
}

/// The spans of every unit on a grid, grouped by row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spans {
    row_start: Vec<usize>,
    spans: Vec<Span>,
    /// Whether a row's spans are disjoint (then their ends are sorted too).
    disjoint: Vec<bool>,
}

impl Spans {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.row_start.len().saturating_sub(1)
    }

    /// The spans of row `r`, sorted by start column.
    pub fn row(&self, r: usize) -> &[Span] {
        &self.spans[self.row_start[r]..self.row_start[r + 1]]
    }

    /// The spans of row `r` that overlap columns `[c0, c1)`, as a slice that may start with a few
    /// spans ending before `c0` when spans of different units overlap.
    pub fn row_window(&self, r: usize, c0: u32, c1: u32) -> &[Span] {
        let row = self.row(r);
        let end = row.partition_point(|s| s.x0 < c1);
        let start = if self.disjoint[r] {
            row[..end].partition_point(|s| s.x1 <= c0)
        } else {
            0
        };
        &row[start..end]
    }

    /// Whether rows `[r0, r1)` hold no span.
    pub fn rows_empty(&self, r0: usize, r1: usize) -> bool {
        self.row_start[r0] == self.row_start[r1]
    }

    /// Pixels per unit (`n_units` long).
    pub fn pixels_per_unit(&self, n_units: usize) -> Vec<u64> {
        let mut out = vec![0u64; n_units];
        for s in &self.spans {
            out[s.unit as usize] += u64::from(s.x1 - s.x0);
        }
        out
    }

    /// Total number of spans.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there is no span at all.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The parts of these spans inside the column ranges `columns(row)` gives for each row
    /// (sorted, disjoint, ends exclusive): the units' pixels within one region of the grid.
    #[must_use]
    pub fn clipped(&self, columns: impl Fn(usize) -> Vec<(u32, u32)>) -> Spans {
        let mut row_start = Vec::with_capacity(self.row_start.len());
        let mut spans = Vec::new();
        let mut disjoint = Vec::with_capacity(self.rows());
        row_start.push(0);
        for r in 0..self.rows() {
            let first = spans.len();
            if !self.row(r).is_empty() {
                for (c0, c1) in columns(r) {
                    spans.extend(self.row(r).iter().filter_map(|s| {
                        let (x0, x1) = (s.x0.max(c0), s.x1.min(c1));
                        (x0 < x1).then_some(Span {
                            x0,
                            x1,
                            unit: s.unit,
                        })
                    }));
                }
            }
            let row = &mut spans[first..];
            row.sort_unstable();
            disjoint.push(row.windows(2).all(|w| w[0].x1 <= w[1].x0));
            row_start.push(spans.len());
        }
        Spans {
            row_start,
            spans,
            disjoint,
        }
    }
}

/// Rasterises units on a grid by the pixel-centre rule (module docs), in parallel over units.
///
/// Coordinates must already be in the grid's CRS. Parts outside the grid are clipped.
///
/// # Units
/// Grid and polygon coordinates in the same (any) unit; spans in pixels.
///
/// # References
/// Foley, J. D., van Dam, A., Feiner, S. K., Hughes, J. F. (1990). *Computer Graphics:
/// Principles and Practice*, 2nd ed., §3.6 (scan-line polygon filling, even-odd rule).
///
/// # Examples
/// ```
/// use geo::{polygon, MultiPolygon};
/// use pipeline::methods::rasterize::{rasterize, Grid};
/// // A 4 × 4 grid of unit pixels from (0, 4) down to (4, 0); a triangle over its lower left half
/// // holds the centres (0.5, 0.5), (0.5, 1.5), (1.5, 0.5), … below the diagonal x + y < 4.
/// let grid = Grid { x0: 0.0, y0: 4.0, dx: 1.0, dy: -1.0, width: 4, height: 4 };
/// let tri = MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: 4.0, y: 0.0), (x: 0.0, y: 4.0)]]);
/// let spans = rasterize(&grid, &[tri]);
/// assert_eq!(spans.pixels_per_unit(1), vec![6]); // 3 + 2 + 1 centres; the diagonal row has 0
/// ```
pub fn rasterize(grid: &Grid, units: &[MultiPolygon<f64>]) -> Spans {
    let per_unit: Vec<Vec<(u32, Span)>> = units
        .par_iter()
        .enumerate()
        .map(|(i, mp)| unit_spans(grid, mp, u32::try_from(i).expect("fewer than 2^32 units")))
        .collect();
    let mut all: Vec<(u32, Span)> = per_unit.into_iter().flatten().collect();
    all.par_sort_unstable();
    let mut row_start = vec![0usize; grid.height + 1];
    for (r, _) in &all {
        row_start[*r as usize + 1] += 1;
    }
    for r in 0..grid.height {
        row_start[r + 1] += row_start[r];
    }
    let spans: Vec<Span> = all.into_iter().map(|(_, s)| s).collect();
    let disjoint = (0..grid.height)
        .map(|r| {
            spans[row_start[r]..row_start[r + 1]]
                .windows(2)
                .all(|w| w[0].x1 <= w[1].x0)
        })
        .collect();
    Spans {
        row_start,
        spans,
        disjoint,
    }
}

/// The spans of one unit, as (row, span).
fn unit_spans(grid: &Grid, mp: &MultiPolygon<f64>, unit: u32) -> Vec<(u32, Span)> {
    // Continuous row coordinate of y: row r's centre is at t = r.
    let t_of = |y: f64| (y - grid.y0) / grid.dy - 0.5;
    let u_of = |x: f64| (x - grid.x0) / grid.dx - 0.5;
    let centre_y = |r: usize| grid.y0 + (r as f64 + 0.5) * grid.dy;
    let last_row = grid.height as f64 - 1.0;
    let mut crossings: Vec<(u32, f64)> = Vec::new();
    for poly in &mp.0 {
        for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            let pts = &ring.0;
            if pts.len() < 3 {
                continue;
            }
            for k in 0..pts.len() {
                let p = pts[k];
                let q = pts[(k + 1) % pts.len()];
                if !(p.x.is_finite() && p.y.is_finite() && q.x.is_finite() && q.y.is_finite())
                    || p.y == q.y
                {
                    continue;
                }
                let (tp, tq) = (t_of(p.y), t_of(q.y));
                let lo = tp.min(tq).floor().max(0.0);
                let hi = tp.max(tq).ceil().min(last_row);
                if lo > hi {
                    continue;
                }
                // Candidate rows, then the exact half-open test on y (robust to rounding in t).
                for r in (lo as usize)..=(hi as usize) {
                    let yc = centre_y(r);
                    if (p.y <= yc) != (q.y <= yc) {
                        let x = p.x + (yc - p.y) * (q.x - p.x) / (q.y - p.y);
                        crossings.push((r as u32, u_of(x)));
                    }
                }
            }
        }
    }
    crossings.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut out = Vec::new();
    let width = grid.width as f64;
    let mut i = 0;
    while i + 1 < crossings.len() {
        let (r, ua) = crossings[i];
        let (r2, ub) = crossings[i + 1];
        if r != r2 {
            // An odd number of crossings in a row only happens with a ring that is not closed
            // in this row's range (it cannot for closed rings): skip the stray one.
            i += 1;
            continue;
        }
        // Columns whose centre u = c satisfies ua ≤ c < ub.
        let c0 = ua.ceil().max(0.0);
        let c1 = ub.ceil().min(width);
        if c0 < c1 {
            out.push((
                r,
                Span {
                    x0: c0 as u32,
                    x1: c1 as u32,
                    unit,
                },
            ));
        }
        i += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{MultiPolygon, polygon};

    fn grid10() -> Grid {
        // 10 × 10 unit pixels, x 0..10, y 10 (top) .. 0.
        Grid {
            x0: 0.0,
            y0: 10.0,
            dx: 1.0,
            dy: -1.0,
            width: 10,
            height: 10,
        }
    }

    #[test]
    fn square_with_hole_and_multipolygon() {
        // Square 1..9 × 1..9 holds centres 1.5..8.5 → 8 × 8 = 64; the hole 3..6 × 3..6 holds
        // centres 3.5, 4.5, 5.5 → 3 × 3 = 9. Inside: 64 − 9 = 55.
        let holed = polygon!(
            exterior: [(x: 1.0, y: 1.0), (x: 9.0, y: 1.0), (x: 9.0, y: 9.0), (x: 1.0, y: 9.0)],
            interiors: [[(x: 3.0, y: 3.0), (x: 6.0, y: 3.0), (x: 6.0, y: 6.0), (x: 3.0, y: 6.0)]],
        );
        // Two parts: 0..1 × 0..2 (centres (0.5, 0.5), (0.5, 1.5) → 2) and 9..10 × 9..10 (1).
        let multi = MultiPolygon(vec![
            polygon![(x: 0.0, y: 0.0), (x: 1.0, y: 0.0), (x: 1.0, y: 2.0), (x: 0.0, y: 2.0)],
            polygon![(x: 9.0, y: 9.0), (x: 10.0, y: 9.0), (x: 10.0, y: 10.0), (x: 9.0, y: 10.0)],
        ]);
        let spans = rasterize(&grid10(), &[MultiPolygon(vec![holed]), multi]);
        assert_eq!(spans.pixels_per_unit(2), vec![55, 3]);
        // Row 5 (y centre 4.5) crosses the hole: columns 1–2 and 6–8 for unit 0.
        let r5: Vec<(u32, u32, u32)> = spans.row(5).iter().map(|s| (s.x0, s.x1, s.unit)).collect();
        assert_eq!(r5, vec![(1, 3, 0), (6, 9, 0)]);
    }

    #[test]
    fn shared_edge_gives_pixels_to_one_side_and_outside_parts_are_clipped() {
        // Two rectangles sharing x = 4.5 (through the centres of column 4): the centre 4.5 is on
        // the left edge of the right unit, so it goes right. Left: columns 0..3 (4 cols),
        // right 4..9 (6 cols; it extends to x = 30, clipped), rows 0..9 (10 rows).
        let left =
            polygon![(x: -5.0, y: 0.0), (x: 4.5, y: 0.0), (x: 4.5, y: 10.0), (x: -5.0, y: 10.0)];
        let right =
            polygon![(x: 4.5, y: 0.0), (x: 30.0, y: 0.0), (x: 30.0, y: 10.0), (x: 4.5, y: 10.0)];
        let spans = rasterize(
            &grid10(),
            &[MultiPolygon(vec![left]), MultiPolygon(vec![right])],
        );
        assert_eq!(spans.pixels_per_unit(2), vec![40, 60]);
        // Far outside: nothing.
        let away = polygon![(x: 50.0, y: 50.0), (x: 51.0, y: 50.0), (x: 51.0, y: 51.0)];
        assert!(rasterize(&grid10(), &[MultiPolygon(vec![away])]).is_empty());
        // Smaller than a pixel and not covering a centre: nothing.
        let tiny = polygon![(x: 2.1, y: 2.1), (x: 2.4, y: 2.1), (x: 2.4, y: 2.4)];
        assert!(rasterize(&grid10(), &[MultiPolygon(vec![tiny])]).is_empty());
    }

    #[test]
    fn row_window_finds_overlapping_spans() {
        let a = polygon![(x: 0.0, y: 0.0), (x: 6.0, y: 0.0), (x: 6.0, y: 1.0), (x: 0.0, y: 1.0)];
        let b = polygon![(x: 3.0, y: 0.0), (x: 10.0, y: 0.0), (x: 10.0, y: 1.0), (x: 3.0, y: 1.0)];
        let spans = rasterize(&grid10(), &[MultiPolygon(vec![a]), MultiPolygon(vec![b])]);
        // Bottom row 9: unit 0 columns 0..6, unit 1 columns 3..10 (overlapping: both counted).
        assert_eq!(
            spans
                .row_window(9, 7, 10)
                .iter()
                .filter(|s| s.x1 > 7)
                .count(),
            1
        );
        assert_eq!(spans.row_window(9, 4, 5).len(), 2);
        assert!(spans.rows_empty(0, 9));
    }

    #[test]
    fn clipped_spans_keep_the_pixels_inside_the_columns_of_each_row() {
        // The 55-pixel holed square of unit 0; row 5 holds columns 1–2 and 6–8 (see above).
        let holed = polygon!(
            exterior: [(x: 1.0, y: 1.0), (x: 9.0, y: 1.0), (x: 9.0, y: 9.0), (x: 1.0, y: 9.0)],
            interiors: [[(x: 3.0, y: 3.0), (x: 6.0, y: 3.0), (x: 6.0, y: 6.0), (x: 3.0, y: 6.0)]],
        );
        let spans = rasterize(&grid10(), &[MultiPolygon(vec![holed])]);
        // Columns [0, 2) and [7, 10) in rows below 5, nothing from row 5 on: rows 1..4 hold
        // column 1 and columns 7–8, 3 px each → 12 px.
        let clipped = spans.clipped(|r| if r < 5 { vec![(0, 2), (7, 10)] } else { vec![] });
        assert_eq!(clipped.pixels_per_unit(1), vec![12]);
        let r1: Vec<(u32, u32)> = clipped.row(1).iter().map(|s| (s.x0, s.x1)).collect();
        assert_eq!(r1, vec![(1, 2), (7, 9)]);
        assert!(clipped.rows_empty(5, 10));
        // Two regions that split every row add up to the whole.
        let left = spans.clipped(|_| vec![(0, 4)]);
        let right = spans.clipped(|_| vec![(4, 10)]);
        assert_eq!(left.pixels_per_unit(1)[0] + right.pixels_per_unit(1)[0], 55);
    }
}
