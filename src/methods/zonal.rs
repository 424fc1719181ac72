//! Zonal histograms of a categorical raster: per unit and pixel value, the pixel count and (on a
//! lon/lat grid, where pixel area varies by row) the summed pixel area.
//!
//! The raster is processed window by window (a tile or a strip), in any order and on any thread;
//! each window gives a small sorted list of counts, and the caller adds the lists up in window
//! order, so float sums never depend on scheduling. Within a window the spans of
//! [`crate::methods::rasterize`] say which pixels belong to which unit.
//!
//! Land-use rasters are long runs of one class. [`Histogrammer`] takes a row in blocks of
//! [`BLOCK`] pixels and counts a block of one value with one addition; in a block that holds an
//! edge, counting a run into one counter would make every increment wait on the previous store,
//! so it keeps four interleaved copies of each counter (indexed by pixel position mod 4) and
//! adds them up when a unit's run ends.

use crate::methods::rasterize::Spans;

/// A pixel sample type that can index a lookup table.
pub trait Pixel: Copy {
    /// Number of distinct values (size of the lookup table).
    const VALUES: usize;
    fn index(self) -> usize;
    /// Whether every pixel of `block` holds the value of its first.
    fn uniform(block: &[Self; BLOCK]) -> bool;
}

impl Pixel for u8 {
    const VALUES: usize = 256;
    #[inline(always)]
    fn index(self) -> usize {
        self as usize
    }
    #[inline(always)]
    fn uniform(block: &[u8; BLOCK]) -> bool {
        // An OR of differences rather than `all`: no early exit, so it compiles to a few vector ops.
        block.iter().fold(0, |acc, &v| acc | (v ^ block[0])) == 0
    }
}

impl Pixel for u16 {
    const VALUES: usize = 65_536;
    #[inline(always)]
    fn index(self) -> usize {
        self as usize
    }
    #[inline(always)]
    fn uniform(block: &[u16; BLOCK]) -> bool {
        block.iter().fold(0, |acc, &v| acc | (v ^ block[0])) == 0
    }
}

/// The most distinct values one raster may have: a categorical raster has a few dozen.
pub const MAX_CODES: usize = 1024;

const COPIES: usize = 4;
/// Lookup-table entry of a value not seen yet: counts land in a trap bin past the real ones.
const TRAP: u16 = MAX_CODES as u16;
const LUT_LEN: usize = 1 << 16;
const LOCAL_LEN: usize = COPIES * (MAX_CODES + 1);

/// Pixels tested at once for a run: a block of one value is counted with one addition.
pub const BLOCK: usize = 32;

/// Adds `delta` (1, or `u32::MAX` to undo) to the interleaved counter of every pixel of `seg`.
/// Land-use rows are mostly long runs of one class, so `seg` is taken in blocks of [`BLOCK`]
/// pixels and a block of one value adds `BLOCK · delta` to one counter; only blocks that hold
/// an edge are counted pixel by pixel. Fixed-size tables and a clamped bin keep the loops free
/// of bounds checks and branches.
#[inline(always)]
fn tally<T: Pixel>(lut: &[u16; LUT_LEN], local: &mut [u32; LOCAL_LEN], seg: &[T], delta: u32) {
    let bin = |v: T| COPIES * usize::from(lut[v.index()]).min(MAX_CODES);
    let (blocks, rest) = seg.as_chunks::<BLOCK>();
    for block in blocks {
        if T::uniform(block) {
            let i = bin(block[0]);
            local[i] = local[i].wrapping_add(delta.wrapping_mul(BLOCK as u32));
        } else {
            for quad in block.as_chunks::<COPIES>().0 {
                for (k, &v) in quad.iter().enumerate() {
                    let i = bin(v) + k;
                    local[i] = local[i].wrapping_add(delta);
                }
            }
        }
    }
    for (k, &v) in rest.iter().enumerate() {
        let i = bin(v) + k % COPIES;
        local[i] = local[i].wrapping_add(delta);
    }
}

/// A rectangle of the raster held in memory, row-major, rows `stride` pixels apart
/// (`stride ≥ width`: a padded edge tile keeps its padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub col0: usize,
    pub row0: usize,
    pub width: usize,
    pub height: usize,
    pub stride: usize,
}

/// One count of a window: `pixels` of value `code` in unit `unit`, covering `area_m2`
/// (only summed when row areas are given; 0 otherwise).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Count {
    pub unit: u32,
    pub code: u32,
    pub pixels: u64,
    pub area_m2: f64,
}

/// The raster has more distinct values than [`MAX_CODES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {MAX_CODES} distinct pixel values: not a categorical raster")]
pub struct TooManyCodes;

struct Slot {
    unit: u32,
    pixels: Vec<u64>,
    area_m2: Vec<f64>,
}

/// Reusable scratch for counting windows of one raster (one per worker thread): a value → bin
/// table filled as values appear, interleaved run counters, and per-unit sums for the window.
pub struct Histogrammer {
    lut: Box<[u16; LUT_LEN]>,
    codes: Vec<u32>,
    local: Box<[u32; LOCAL_LEN]>,
    slot_of_unit: Vec<u32>,
    slots: Vec<Slot>,
}

impl Histogrammer {
    /// Scratch for a raster of pixel type `T` and `n_units` units.
    pub fn new<T: Pixel>(n_units: usize) -> Self {
        Self {
            lut: vec![TRAP; LUT_LEN]
                .into_boxed_slice()
                .try_into()
                .expect("LUT_LEN entries"),
            codes: Vec::new(),
            local: vec![0; LOCAL_LEN]
                .into_boxed_slice()
                .try_into()
                .expect("LOCAL_LEN entries"),
            slot_of_unit: vec![u32::MAX; n_units],
            slots: Vec::new(),
        }
    }

    #[cold]
    fn assign(&mut self, value: usize) -> Result<u16, TooManyCodes> {
        if self.codes.len() >= MAX_CODES {
            return Err(TooManyCodes);
        }
        let bin = u16::try_from(self.codes.len()).expect("MAX_CODES < 2^16");
        self.codes
            .push(u32::try_from(value).expect("pixel values fit u32"));
        self.lut[value] = bin;
        Ok(bin)
    }

    /// Adds the run counters into `unit`'s sums (weighting by `area_m2` when given) and clears them.
    fn flush(&mut self, unit: u32, area_m2: Option<f64>) {
        let n_bins = self.codes.len();
        let u = unit as usize;
        let slot_index = if self.slot_of_unit[u] == u32::MAX {
            self.slot_of_unit[u] = u32::try_from(self.slots.len()).expect("fewer than 2^32 units");
            self.slots.push(Slot {
                unit,
                pixels: Vec::new(),
                area_m2: Vec::new(),
            });
            self.slots.len() - 1
        } else {
            self.slot_of_unit[u] as usize
        };
        let slot = &mut self.slots[slot_index];
        if slot.pixels.len() < n_bins {
            slot.pixels.resize(n_bins, 0);
            slot.area_m2.resize(n_bins, 0.0);
        }
        for (b, quad) in self.local[..COPIES * n_bins]
            .chunks_exact_mut(COPIES)
            .enumerate()
        {
            let n = quad.iter().copied().map(u64::from).sum::<u64>();
            if n != 0 {
                quad.fill(0);
                slot.pixels[b] += n;
                if let Some(a) = area_m2 {
                    let w = n as f64 * a;
                    slot.area_m2[b] += w;
                }
            }
        }
    }

    /// Counts the pixels of one window that fall in units' spans.
    ///
    /// `data` holds the window's pixels row-major (`window.stride` apart). `row_area_m2`, when
    /// given, is the pixel area of every raster row (lon/lat grids); without it areas are left 0
    /// and the caller multiplies counts by the constant pixel area. Returns counts sorted by
    /// unit, then value.
    ///
    /// # Units
    /// Pixels; m² for areas.
    ///
    /// # References
    /// The zonal-statistics operation of map algebra: Tomlin, C. D. (1990). *Geographic
    /// Information Systems and Cartographic Modeling*. Prentice Hall, ch. 5.
    ///
    /// # Examples
    /// ```
    /// use geo::{polygon, MultiPolygon};
    /// use pipeline::methods::rasterize::{rasterize, Grid};
    /// use pipeline::methods::zonal::{Histogrammer, Window};
    /// // 4 × 2 raster [1 1 2 2 / 1 3 3 2]; the unit covers the left three columns.
    /// let grid = Grid { x0: 0.0, y0: 2.0, dx: 1.0, dy: -1.0, width: 4, height: 2 };
    /// let unit = MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: 3.0, y: 0.0), (x: 3.0, y: 2.0), (x: 0.0, y: 2.0)]]);
    /// let spans = rasterize(&grid, &[unit]);
    /// let data: [u8; 8] = [1, 1, 2, 2, 1, 3, 3, 2];
    /// let mut h = Histogrammer::new::<u8>(1);
    /// let counts = h.count(&spans, Window { col0: 0, row0: 0, width: 4, height: 2, stride: 4 }, &data, None).unwrap();
    /// let pairs: Vec<(u32, u64)> = counts.iter().map(|c| (c.code, c.pixels)).collect();
    /// assert_eq!(pairs, vec![(1, 3), (2, 1), (3, 2)]);
    /// ```
    pub fn count<T: Pixel>(
        &mut self,
        spans: &Spans,
        window: Window,
        data: &[T],
        row_area_m2: Option<&[f64]>,
    ) -> Result<Vec<Count>, TooManyCodes> {
        assert!(
            window.height == 0 || data.len() >= window.stride * (window.height - 1) + window.width,
            "window data holds its rows"
        );
        let c0 = u32::try_from(window.col0).expect("columns fit u32");
        let c1 = u32::try_from(window.col0 + window.width).expect("columns fit u32");
        let mut current: Option<u32> = None;
        for wr in 0..window.height {
            let r = window.row0 + wr;
            if r >= spans.rows() {
                break;
            }
            let area = row_area_m2.map(|a| a[r]);
            let row = &data[wr * window.stride..wr * window.stride + window.width];
            for span in spans.row_window(r, c0, c1) {
                let a = span.x0.max(c0);
                let b = span.x1.min(c1);
                if a >= b {
                    continue;
                }
                // A lon/lat grid changes pixel area with every row: flush at each span then.
                if let Some(u) = current
                    && (u != span.unit || area.is_some())
                {
                    self.flush(u, area);
                }
                current = Some(span.unit);
                let seg = &row[(a - c0) as usize..(b - c0) as usize];
                tally(&self.lut, &mut self.local, seg, 1);
                if self.local[COPIES * MAX_CODES..].iter().any(|&n| n != 0) {
                    // New values: undo, give them bins, count again (rare: once per value).
                    tally(&self.lut, &mut self.local, seg, u32::MAX);
                    for v in seg {
                        if self.lut[v.index()] == TRAP {
                            self.assign(v.index())?;
                        }
                    }
                    tally(&self.lut, &mut self.local, seg, 1);
                }
                if area.is_some() {
                    self.flush(span.unit, area);
                    current = None;
                }
            }
        }
        if let Some(u) = current {
            self.flush(u, None);
        }
        // Emit the window's sums, sorted by unit then code, and reset the slots.
        let mut out = Vec::new();
        let mut slots = std::mem::take(&mut self.slots);
        slots.sort_unstable_by_key(|s| s.unit);
        for slot in &slots {
            self.slot_of_unit[slot.unit as usize] = u32::MAX;
            let start = out.len();
            for (b, &n) in slot.pixels.iter().enumerate() {
                if n != 0 {
                    out.push(Count {
                        unit: slot.unit,
                        code: self.codes[b],
                        pixels: n,
                        area_m2: slot.area_m2[b],
                    });
                }
            }
            out[start..].sort_unstable_by_key(|c| c.code);
        }
        slots.clear();
        self.slots = slots;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::methods::rasterize::{Grid, rasterize};
    use geo::{MultiPolygon, polygon};
    use std::collections::BTreeMap;

    #[test]
    fn windows_add_up_to_the_whole_and_weights_rows() {
        // 6 × 3 raster, values v = (col + row) % 3 (u16), one unit covering everything.
        //   row 0: 0 1 2 0 1 2   row 1: 1 2 0 1 2 0   row 2: 2 0 1 2 0 1 → 6 of each value.
        let grid = Grid {
            x0: 0.0,
            y0: 3.0,
            dx: 1.0,
            dy: -1.0,
            width: 6,
            height: 3,
        };
        let unit = MultiPolygon(vec![
            polygon![(x: 0.0, y: 0.0), (x: 6.0, y: 0.0), (x: 6.0, y: 3.0), (x: 0.0, y: 3.0)],
        ]);
        let spans = rasterize(&grid, &[unit]);
        let px = |c: usize, r: usize| ((c + r) % 3) as u16;
        let mut h = Histogrammer::new::<u16>(1);
        let row_area = [1.0, 10.0, 100.0];
        let mut total = [(0u64, 0.0f64); 3];
        // Two windows of 4 and 2 columns (like tiles with a partial last one).
        for (col0, width) in [(0usize, 4usize), (4, 2)] {
            let data: Vec<u16> = (0..3)
                .flat_map(|r| (col0..col0 + width).map(move |c| px(c, r)))
                .collect();
            let w = Window {
                col0,
                row0: 0,
                width,
                height: 3,
                stride: width,
            };
            for c in h.count(&spans, w, &data, Some(&row_area)).unwrap() {
                total[c.code as usize].0 += c.pixels;
                total[c.code as usize].1 += c.area_m2;
            }
        }
        // Each row holds each value twice: area per value = 2·1 + 2·10 + 2·100 = 222.
        assert_eq!(total, [(6, 222.0), (6, 222.0), (6, 222.0)]);
    }

    /// Two units side by side over a 1000 × 3 raster, split at column 517 (not a multiple of
    /// [`BLOCK`]), holding runs of 1 to 69 pixels with values first seen mid-row: the counts
    /// equal a plain pixel-by-pixel tally, whether blocks are of one value or hold an edge.
    fn blocks_and_edges_count_like_single_pixels<T: Pixel + From<u8> + Into<u32>>() {
        let (width, height, split) = (1000usize, 3usize, 517.0);
        let grid = Grid {
            x0: 0.0,
            y0: 3.0,
            dx: 1.0,
            dy: -1.0,
            width,
            height,
        };
        let west = MultiPolygon(vec![
            polygon![(x: 0.0, y: 0.0), (x: split, y: 0.0), (x: split, y: 3.0), (x: 0.0, y: 3.0)],
        ]);
        let east = MultiPolygon(vec![
            polygon![(x: split, y: 0.0), (x: 1000.0, y: 0.0), (x: 1000.0, y: 3.0), (x: split, y: 3.0)],
        ]);
        let spans = rasterize(&grid, &[west, east]);
        // Runs of length 1 + (k·37 mod 69) of values cycling through 1, 2, 5, 7 and, from the
        // middle of the first row on, 9.
        let mut data: Vec<T> = Vec::with_capacity(width * height);
        let mut k = 0u8;
        while data.len() < width * height {
            let run = 1 + (usize::from(k) * 37) % 69;
            let value = if data.len() > 600 && k.is_multiple_of(5) {
                9
            } else {
                [1, 2, 5, 7][usize::from(k % 4)]
            };
            data.extend(std::iter::repeat_n(T::from(value), run));
            k = k.wrapping_add(1);
        }
        data.truncate(width * height);
        let mut expected = BTreeMap::new();
        for (i, &v) in data.iter().enumerate() {
            let unit = u32::from(i % width >= 517);
            *expected.entry((unit, v.into())).or_insert(0u64) += 1;
        }
        let mut h = Histogrammer::new::<T>(2);
        let w = Window {
            col0: 0,
            row0: 0,
            width,
            height,
            stride: width,
        };
        let counted: BTreeMap<(u32, u32), u64> = h
            .count(&spans, w, &data, None)
            .unwrap()
            .iter()
            .map(|c| ((c.unit, c.code), c.pixels))
            .collect();
        assert_eq!(counted, expected);
        assert_eq!(counted.values().sum::<u64>(), 3000);
    }

    #[test]
    fn blocks_and_edges_count_like_single_pixels_u8() {
        blocks_and_edges_count_like_single_pixels::<u8>();
    }

    #[test]
    fn blocks_and_edges_count_like_single_pixels_u16() {
        blocks_and_edges_count_like_single_pixels::<u16>();
    }

    #[test]
    fn too_many_values_is_an_error() {
        let grid = Grid {
            x0: 0.0,
            y0: 1.0,
            dx: 1.0,
            dy: -1.0,
            width: 2000,
            height: 1,
        };
        let unit = MultiPolygon(vec![
            polygon![(x: 0.0, y: 0.0), (x: 2000.0, y: 0.0), (x: 2000.0, y: 1.0), (x: 0.0, y: 1.0)],
        ]);
        let spans = rasterize(&grid, &[unit]);
        let data: Vec<u16> = (0..2000).collect();
        let mut h = Histogrammer::new::<u16>(1);
        let w = Window {
            col0: 0,
            row0: 0,
            width: 2000,
            height: 1,
            stride: 2000,
        };
        assert_eq!(h.count(&spans, w, &data, None).unwrap_err(), TooManyCodes);
    }
}
