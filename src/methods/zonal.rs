//! Zonal histograms of a categorical raster: per unit and pixel value, the pixel count and (on a
//! lon/lat grid, where pixel area varies by row) the summed pixel area in whole cm², an integer
//! sum that no order of windows or rows can change.
//!
//! The raster is processed window by window (a tile or a strip), in any order and on any thread;
//! each window gives a small sorted list of counts, and the caller adds the lists up in window
//! order, so float sums never depend on scheduling. Within a window the spans of
//! [`crate::methods::rasterize`] say which pixels belong to which unit.
//!
//! Land-use rasters are long runs of one class. [`Histogrammer`] takes a row in blocks of
//! [`BLOCK`] pixels and counts a block value by value: one vector comparison finds every pixel
//! of the block holding the value of its first uncounted pixel, and one addition counts them.
//! A block of one value costs one comparison, a block with an edge or a speckle two or three,
//! where counting pixel by pixel would cost 32 dependent table lookups and additions. Counters
//! come in four interleaved copies (by block position mod 4, so that consecutive additions to
//! one value do not wait on each other's stores), added up when a unit's run ends. A run
//! notes the bins it touched in a 64-bit mask (bin mod 64), so ending a short run visits those
//! bins, not every bin the histogram has seen. A year counted with its transfer-matrix pairs
//! finds the pixels that kept their code with one comparison of the two layers a block, and
//! counts them on the diagonal with the year's own addition's mask; only the others are split
//! by their earlier code.

use crate::methods::rasterize::Spans;

/// A pixel sample type that can index a lookup table.
pub trait Pixel: Copy {
    /// Number of distinct values (size of the lookup table).
    const VALUES: usize;
    fn index(self) -> usize;
    /// The value as one byte, values above 255 capped at 255 (one side of a code pair).
    fn capped(self) -> u8;
    /// Bit `i` set where `block[i] == value`.
    fn same_mask(block: &[Self; BLOCK], value: Self) -> u32;
    /// Bit `i` set where `from[i] == block[i].capped()`: the pixels whose code pair is
    /// `(v, v)`, the diagonal of a transfer matrix.
    fn kept_mask(from: &[u8; BLOCK], block: &[Self; BLOCK]) -> u32;
}

impl Pixel for u8 {
    const VALUES: usize = 256;
    #[inline(always)]
    fn index(self) -> usize {
        self as usize
    }
    #[inline(always)]
    fn capped(self) -> u8 {
        self
    }
    #[inline(always)]
    fn same_mask(block: &[u8; BLOCK], value: u8) -> u32 {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{
                __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
            };
            // Read with unaligned loads only, so the pointer's alignment does not matter.
            #[allow(clippy::cast_ptr_alignment)]
            let p = block.as_ptr().cast::<__m128i>();
            // SAFETY: SSE2 is part of every x86_64 target; the two unaligned loads read the
            // block's 32 bytes.
            let (lo, hi) = unsafe {
                let needle = _mm_set1_epi8(value.cast_signed());
                (
                    _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(p), needle)),
                    _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128(p.add(1)), needle)),
                )
            };
            lo.cast_unsigned() | hi.cast_unsigned() << 16
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            same_mask_scalar(block, value)
        }
    }
    #[inline(always)]
    fn kept_mask(from: &[u8; BLOCK], block: &[u8; BLOCK]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8};
            // Read with unaligned loads only, so the pointers' alignment does not matter.
            #[allow(clippy::cast_ptr_alignment)]
            let (f, b) = (
                from.as_ptr().cast::<__m128i>(),
                block.as_ptr().cast::<__m128i>(),
            );
            // SAFETY: SSE2 is part of every x86_64 target; the four unaligned loads read the
            // two blocks' 32 bytes each.
            let (lo, hi) = unsafe {
                let eq =
                    |k: usize| _mm_cmpeq_epi8(_mm_loadu_si128(f.add(k)), _mm_loadu_si128(b.add(k)));
                (_mm_movemask_epi8(eq(0)), _mm_movemask_epi8(eq(1)))
            };
            lo.cast_unsigned() | hi.cast_unsigned() << 16
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            kept_mask_scalar(from, block)
        }
    }
}

impl Pixel for u16 {
    const VALUES: usize = 65_536;
    #[inline(always)]
    fn index(self) -> usize {
        self as usize
    }
    #[inline(always)]
    fn capped(self) -> u8 {
        u8::try_from(self).unwrap_or(u8::MAX)
    }
    #[inline(always)]
    fn same_mask(block: &[u16; BLOCK], value: u16) -> u32 {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{
                __m128i, _mm_cmpeq_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16,
                _mm_set1_epi16,
            };
            // Read with unaligned loads only, so the pointer's alignment does not matter.
            #[allow(clippy::cast_ptr_alignment)]
            let p = block.as_ptr().cast::<__m128i>();
            // SAFETY: SSE2 is part of every x86_64 target; the four unaligned loads read the
            // block's 64 bytes. Equal lanes are −1 and pack (signed saturation) to bytes of −1.
            let (lo, hi) = unsafe {
                let needle = _mm_set1_epi16(value.cast_signed());
                let eq = |k: usize| _mm_cmpeq_epi16(_mm_loadu_si128(p.add(k)), needle);
                (
                    _mm_movemask_epi8(_mm_packs_epi16(eq(0), eq(1))),
                    _mm_movemask_epi8(_mm_packs_epi16(eq(2), eq(3))),
                )
            };
            lo.cast_unsigned() | hi.cast_unsigned() << 16
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            same_mask_scalar(block, value)
        }
    }
    #[inline(always)]
    fn kept_mask(from: &[u8; BLOCK], block: &[u16; BLOCK]) -> u32 {
        // 16-bit land-use rasters are rare; the scalar loop is enough for them.
        kept_mask_scalar(from, block)
    }
}

/// [`Pixel::kept_mask`] without vector instructions.
#[inline(always)]
fn kept_mask_scalar<T: Pixel>(from: &[u8; BLOCK], block: &[T; BLOCK]) -> u32 {
    from.iter()
        .zip(block)
        .enumerate()
        .fold(0, |mask, (i, (&f, t))| {
            mask | u32::from(f == t.capped()) << i
        })
}

/// [`Pixel::same_mask`] without vector instructions.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn same_mask_scalar<T: PartialEq>(block: &[T; BLOCK], value: T) -> u32 {
    block
        .iter()
        .enumerate()
        .fold(0, |mask, (i, v)| mask | u32::from(*v == value) << i)
}

/// The most distinct values one raster may have: a categorical raster has a few dozen.
pub const MAX_CODES: usize = 1024;

const COPIES: usize = 4;
/// Lookup-table entry of a value not seen yet: counts land in a trap bin past the real ones.
const TRAP: u16 = MAX_CODES as u16;
const LUT_LEN: usize = 1 << 16;
const LOCAL_LEN: usize = COPIES * (MAX_CODES + 1);

/// Pixels counted as one block (the bits of a [`Pixel::same_mask`]).
pub const BLOCK: usize = 32;

/// Values a block is counted by, one comparison each, before the pixels left (a block of
/// noise) are counted one by one.
const VALUES_PER_BLOCK: usize = 4;

/// The bit of the touched-bins mask for the counters starting at `bin` (a bin times
/// [`COPIES`]): bins 64 apart share a bit, so the mask may name bins not touched, never miss one.
#[inline(always)]
fn touch_bit(bin: usize) -> u64 {
    1 << (bin / COPIES % 64)
}

/// Adds `delta` (1, or `u32::MAX` to undo) to copy `copy` of the counter of every pixel of one
/// block in the mask `left`, value by value: `same(i)` gives every pixel holding pixel `i`'s
/// value, counted at `bin(i)` with one addition. Returns the [`touch_bit`]s of the bins added to.
#[inline(always)]
fn tally_block(
    local: &mut [u32; LOCAL_LEN],
    copy: usize,
    delta: u32,
    mut left: u32,
    bin: impl Fn(usize) -> usize,
    same: impl Fn(usize) -> u32,
) -> u64 {
    let mut touched = 0;
    if left == 0 {
        return touched;
    }
    for _ in 0..VALUES_PER_BLOCK {
        let first = left.trailing_zeros() as usize;
        let counted = same(first) & left;
        let b = bin(first);
        touched |= touch_bit(b);
        local[b + copy] = local[b + copy].wrapping_add(delta.wrapping_mul(counted.count_ones()));
        left &= !counted;
        if left == 0 {
            return touched;
        }
    }
    while left != 0 {
        let b = bin(left.trailing_zeros() as usize);
        touched |= touch_bit(b);
        local[b + copy] = local[b + copy].wrapping_add(delta);
        left &= left - 1;
    }
    touched
}

/// Adds `delta` (1, or `u32::MAX` to undo) to the interleaved counter of every pixel of `seg`:
/// blocks of [`BLOCK`] pixels value by value ([`tally_block`]), the rest pixel by pixel.
/// Fixed-size tables and a clamped bin keep the loops free of bounds checks. Returns the
/// [`touch_bit`]s of the bins added to.
#[inline(always)]
fn tally<T: Pixel>(
    lut: &[u16; LUT_LEN],
    local: &mut [u32; LOCAL_LEN],
    seg: &[T],
    delta: u32,
) -> u64 {
    let bin = |v: T| COPIES * usize::from(lut[v.index()]).min(MAX_CODES);
    let mut touched = 0;
    let (blocks, rest) = seg.as_chunks::<BLOCK>();
    for (n, block) in blocks.iter().enumerate() {
        touched |= tally_block(
            local,
            n % COPIES,
            delta,
            u32::MAX,
            |i| bin(block[i]),
            |i| T::same_mask(block, block[i]),
        );
    }
    for (k, &v) in rest.iter().enumerate() {
        let b = bin(v);
        touched |= touch_bit(b);
        local[b + k % COPIES] = local[b + k % COPIES].wrapping_add(delta);
    }
    touched
}

/// [`tally`] for the code pairs of two layers: the value of a pixel is `from · 256 + to`, and
/// the pixels holding a pair are those holding both its codes. Reads the two decoded windows
/// as they are, without building the pair codes first.
#[inline(always)]
fn tally_pairs<T: Pixel>(
    lut: &[u16; LUT_LEN],
    local: &mut [u32; LOCAL_LEN],
    from: &[u8],
    to: &[T],
    delta: u32,
) -> u64 {
    let bin = |f: u8, t: T| {
        COPIES * usize::from(lut[usize::from(f) << 8 | usize::from(t.capped())]).min(MAX_CODES)
    };
    let (from_blocks, from_rest) = from.as_chunks::<BLOCK>();
    let (to_blocks, to_rest) = to.as_chunks::<BLOCK>();
    let mut touched = 0;
    for (n, (f, t)) in from_blocks.iter().zip(to_blocks).enumerate() {
        touched |= tally_block(
            local,
            n % COPIES,
            delta,
            u32::MAX,
            |i| bin(f[i], t[i]),
            |i| u8::same_mask(f, f[i]) & T::same_mask(t, t[i]),
        );
    }
    for (k, (&f, &t)) in from_rest.iter().zip(to_rest).enumerate() {
        let b = bin(f, t);
        touched |= touch_bit(b);
        local[b + k % COPIES] = local[b + k % COPIES].wrapping_add(delta);
    }
    touched
}

/// The bin of value `v` in a value → bin table, times [`COPIES`]; values not seen yet land in
/// the trap bin.
#[inline(always)]
fn bin_of(lut: &[u16; LUT_LEN], v: usize) -> usize {
    COPIES * usize::from(lut[v]).min(MAX_CODES)
}

/// [`tally`] of `to` and [`tally_pairs`] of `from` and `to` in one walk: the pixels of a block
/// holding one value of `to` are found once, counted in the year's histogram, and split by their
/// value in `from` for the pair histogram, so a block of one value in both layers costs two
/// comparisons and two additions. Returns the [`touch_bit`]s of the year's and the pairs' bins.
#[inline(always)]
fn tally_with_pairs<T: Pixel>(
    year: (&[u16; LUT_LEN], &mut [u32; LOCAL_LEN]),
    pairs: (&[u16; LUT_LEN], &mut [u32; LOCAL_LEN]),
    from: &[u8],
    to: &[T],
    delta: u32,
) -> (u64, u64) {
    let ((year_lut, year_local), (pair_lut, pair_local)) = (year, pairs);
    let pair_code = |f: u8, t: T| usize::from(f) << 8 | usize::from(t.capped());
    let (mut year_touched, mut pair_touched) = (0, 0);
    let (from_blocks, from_rest) = from.as_chunks::<BLOCK>();
    let (to_blocks, to_rest) = to.as_chunks::<BLOCK>();
    for (n, (f, t)) in from_blocks.iter().zip(to_blocks).enumerate() {
        let copy = n % COPIES;
        // Most pixels keep their class from one year to the next: their pair is the diagonal
        // cell of the value found in `to`, so only the others are split by their `from` code.
        let kept = T::kept_mask(f, t);
        let mut left = u32::MAX;
        for _ in 0..VALUES_PER_BLOCK {
            let first = left.trailing_zeros() as usize;
            let value = t[first];
            let same = T::same_mask(t, value) & left;
            let b = bin_of(year_lut, value.index());
            year_touched |= touch_bit(b);
            year_local[b + copy] =
                year_local[b + copy].wrapping_add(delta.wrapping_mul(same.count_ones()));
            let stayed = same & kept;
            if stayed != 0 {
                let p = bin_of(pair_lut, pair_code(value.capped(), value));
                pair_touched |= touch_bit(p);
                pair_local[p + copy] =
                    pair_local[p + copy].wrapping_add(delta.wrapping_mul(stayed.count_ones()));
            }
            pair_touched |= tally_block(
                pair_local,
                copy,
                delta,
                same & !kept,
                |i| bin_of(pair_lut, pair_code(f[i], value)),
                |i| u8::same_mask(f, f[i]),
            );
            left &= !same;
            if left == 0 {
                break;
            }
        }
        while left != 0 {
            let i = left.trailing_zeros() as usize;
            let (b, p) = (
                bin_of(year_lut, t[i].index()),
                bin_of(pair_lut, pair_code(f[i], t[i])),
            );
            year_touched |= touch_bit(b);
            pair_touched |= touch_bit(p);
            year_local[b + copy] = year_local[b + copy].wrapping_add(delta);
            pair_local[p + copy] = pair_local[p + copy].wrapping_add(delta);
            left &= left - 1;
        }
    }
    for (k, (&f, &t)) in from_rest.iter().zip(to_rest).enumerate() {
        let (b, p) = (
            bin_of(year_lut, t.index()),
            bin_of(pair_lut, pair_code(f, t)),
        );
        year_touched |= touch_bit(b);
        pair_touched |= touch_bit(p);
        year_local[b + k % COPIES] = year_local[b + k % COPIES].wrapping_add(delta);
        pair_local[p + k % COPIES] = pair_local[p + k % COPIES].wrapping_add(delta);
    }
    (year_touched, pair_touched)
}

/// What a histogram counts along a window: the pixels of one layer, or the code pairs of two.
trait Values: Copy {
    /// Pixels `a..b` of the window's data.
    fn slice(self, a: usize, b: usize) -> Self;
    /// Adds `delta` to the interleaved counter of every pixel's value; returns the
    /// [`touch_bit`]s of the bins added to.
    fn tally(self, lut: &[u16; LUT_LEN], local: &mut [u32; LOCAL_LEN], delta: u32) -> u64;
    /// Calls `f` with the value of every pixel.
    fn for_each(self, f: impl FnMut(usize));
}

impl<T: Pixel> Values for &[T] {
    #[inline(always)]
    fn slice(self, a: usize, b: usize) -> Self {
        &self[a..b]
    }
    #[inline(always)]
    fn tally(self, lut: &[u16; LUT_LEN], local: &mut [u32; LOCAL_LEN], delta: u32) -> u64 {
        tally(lut, local, self, delta)
    }
    fn for_each(self, mut f: impl FnMut(usize)) {
        for v in self {
            f(v.index());
        }
    }
}

/// The code pairs of two layers over the same pixels: `from` (the earlier layer's codes, capped
/// at 255) and `to`.
#[derive(Clone, Copy)]
struct Pairs<'a, T> {
    from: &'a [u8],
    to: &'a [T],
}

impl<T: Pixel> Values for Pairs<'_, T> {
    #[inline(always)]
    fn slice(self, a: usize, b: usize) -> Self {
        Pairs {
            from: &self.from[a..b],
            to: &self.to[a..b],
        }
    }
    #[inline(always)]
    fn tally(self, lut: &[u16; LUT_LEN], local: &mut [u32; LOCAL_LEN], delta: u32) -> u64 {
        tally_pairs(lut, local, self.from, self.to, delta)
    }
    fn for_each(self, mut f: impl FnMut(usize)) {
        for (&a, &b) in self.from.iter().zip(self.to) {
            f(usize::from(a) << 8 | usize::from(b.capped()));
        }
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

/// One count of a window: `pixels` of value `code` in unit `unit`, covering `area_cm2`
/// (only summed when row areas are given; 0 otherwise).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Count {
    pub unit: u32,
    pub code: u32,
    pub pixels: u64,
    pub area_cm2: u64,
}

/// The raster has more distinct values than [`MAX_CODES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {MAX_CODES} distinct pixel values: not a categorical raster")]
pub struct TooManyCodes;

struct Slot {
    unit: u32,
    pixels: Vec<u64>,
    area_cm2: Vec<u64>,
}

/// Whether `len` pixels hold every row of `window`.
fn window_fits(window: Window, len: usize) -> bool {
    window.height == 0 || len >= window.stride * (window.height - 1) + window.width
}

/// Reusable scratch for counting windows of one raster (one per worker thread): a value → bin
/// table filled as values appear, interleaved run counters, and per-unit sums for the window.
pub struct Histogrammer {
    lut: Box<[u16; LUT_LEN]>,
    codes: Vec<u32>,
    local: Box<[u32; LOCAL_LEN]>,
    /// The [`touch_bit`]s of the bins the current run added to: the bins to visit at its end.
    touched: u64,
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
            touched: 0,
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

    /// Adds the run counters into `unit`'s sums (weighting by `area_cm2` when given) and clears them.
    /// Visits only the bins whose [`touch_bit`] the run set: the others are zero. Each bin gets
    /// at most one addition a run, so the order of the visits changes no sum.
    fn flush(&mut self, unit: u32, area_cm2: Option<u64>) {
        let n_bins = self.codes.len();
        let u = unit as usize;
        let slot_index = if self.slot_of_unit[u] == u32::MAX {
            self.slot_of_unit[u] = u32::try_from(self.slots.len()).expect("fewer than 2^32 units");
            self.slots.push(Slot {
                unit,
                pixels: Vec::new(),
                area_cm2: Vec::new(),
            });
            self.slots.len() - 1
        } else {
            self.slot_of_unit[u] as usize
        };
        let slot = &mut self.slots[slot_index];
        if slot.pixels.len() < n_bins {
            slot.pixels.resize(n_bins, 0);
            slot.area_cm2.resize(n_bins, 0);
        }
        let mut touched = std::mem::take(&mut self.touched);
        while touched != 0 {
            let first = touched.trailing_zeros() as usize;
            touched &= touched - 1;
            for b in (first..n_bins).step_by(64) {
                let quad = &mut self.local[COPIES * b..COPIES * (b + 1)];
                let n = quad.iter().copied().map(u64::from).sum::<u64>();
                if n != 0 {
                    quad.fill(0);
                    slot.pixels[b] += n;
                    if let Some(a) = area_cm2 {
                        slot.area_cm2[b] += n * a;
                    }
                }
            }
        }
    }

    /// Counts the pixels of one window that fall in units' spans.
    ///
    /// `data` holds the window's pixels row-major (`window.stride` apart). `row_area_cm2`, when
    /// given, is the pixel area of every raster row (lon/lat grids); without it areas are left 0
    /// and the caller multiplies counts by the constant pixel area. Returns counts sorted by
    /// unit, then value.
    ///
    /// # Units
    /// Pixels; cm² for areas.
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
        row_area_cm2: Option<&[u64]>,
    ) -> Result<Vec<Count>, TooManyCodes> {
        assert!(
            window_fits(window, data.len()),
            "window data holds its rows"
        );
        self.count_values(spans, window, data, row_area_cm2)
    }

    /// Counts the code pairs of two layers over one window, as [`Self::count`] counts one layer:
    /// the value of a pixel is `from · 256 + to`, its code in `from` (an earlier layer, capped at
    /// 255) and in `to` (capped likewise). Both hold the window's pixels in the same layout. The
    /// cells of a land-use transfer matrix (Liu et al., 2014, *Journal of Geographical Sciences*
    /// 24(2), 195–210), counted per unit.
    ///
    /// # Units
    /// Pixels; cm² for areas.
    ///
    /// # Examples
    /// ```
    /// use geo::{polygon, MultiPolygon};
    /// use pipeline::methods::rasterize::{rasterize, Grid};
    /// use pipeline::methods::zonal::{Histogrammer, Window};
    /// // 3 × 1 raster: codes [1 1 2] then [1 3 3]; pairs (1,1), (1,3), (2,3).
    /// let grid = Grid { x0: 0.0, y0: 1.0, dx: 1.0, dy: -1.0, width: 3, height: 1 };
    /// let unit = MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: 3.0, y: 0.0), (x: 3.0, y: 1.0), (x: 0.0, y: 1.0)]]);
    /// let spans = rasterize(&grid, &[unit]);
    /// let w = Window { col0: 0, row0: 0, width: 3, height: 1, stride: 3 };
    /// let mut h = Histogrammer::new::<u16>(1);
    /// let counts = h.count_pairs(&spans, w, &[1, 1, 2], &[1u8, 3, 3], None).unwrap();
    /// let pairs: Vec<(u32, u64)> = counts.iter().map(|c| (c.code, c.pixels)).collect();
    /// assert_eq!(pairs, vec![(1 * 256 + 1, 1), (1 * 256 + 3, 1), (2 * 256 + 3, 1)]);
    /// ```
    pub fn count_pairs<T: Pixel>(
        &mut self,
        spans: &Spans,
        window: Window,
        from: &[u8],
        to: &[T],
        row_area_cm2: Option<&[u64]>,
    ) -> Result<Vec<Count>, TooManyCodes> {
        assert!(
            window_fits(window, from.len()) && window_fits(window, to.len()),
            "both layers' window data hold its rows"
        );
        self.count_values(spans, window, Pairs { from, to }, row_area_cm2)
    }

    /// Counts the pixels of one window of `to` as [`Self::count`] does, and the code pairs of
    /// `from` and `to` into `pairs` as [`Self::count_pairs`] does, in one walk over the window:
    /// the pixels holding a value of `to` are found once for both. Returns the year's counts,
    /// then the pairs'.
    ///
    /// # Units
    /// Pixels; cm² for areas.
    ///
    /// # Examples
    /// ```
    /// use geo::{polygon, MultiPolygon};
    /// use pipeline::methods::rasterize::{rasterize, Grid};
    /// use pipeline::methods::zonal::{Histogrammer, Window};
    /// // 3 × 1 raster: codes [1 1 2] then [1 3 3]: the later year 1 once and 3 twice; pairs
    /// // (1,1), (1,3), (2,3).
    /// let grid = Grid { x0: 0.0, y0: 1.0, dx: 1.0, dy: -1.0, width: 3, height: 1 };
    /// let unit = MultiPolygon(vec![polygon![(x: 0.0, y: 0.0), (x: 3.0, y: 0.0), (x: 3.0, y: 1.0), (x: 0.0, y: 1.0)]]);
    /// let spans = rasterize(&grid, &[unit]);
    /// let w = Window { col0: 0, row0: 0, width: 3, height: 1, stride: 3 };
    /// let (mut year, mut pairs) = (Histogrammer::new::<u8>(1), Histogrammer::new::<u16>(1));
    /// let (counts, pair_counts) = year.count_with_pairs(&mut pairs, &spans, w, &[1, 1, 2], &[1u8, 3, 3], None).unwrap();
    /// let codes = |c: &[pipeline::methods::zonal::Count]| c.iter().map(|c| (c.code, c.pixels)).collect::<Vec<_>>();
    /// assert_eq!(codes(&counts), vec![(1, 1), (3, 2)]);
    /// assert_eq!(codes(&pair_counts), vec![(1 * 256 + 1, 1), (1 * 256 + 3, 1), (2 * 256 + 3, 1)]);
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn count_with_pairs<T: Pixel>(
        &mut self,
        pairs: &mut Histogrammer,
        spans: &Spans,
        window: Window,
        from: &[u8],
        to: &[T],
        row_area_cm2: Option<&[u64]>,
    ) -> Result<(Vec<Count>, Vec<Count>), TooManyCodes> {
        assert!(
            window_fits(window, from.len()) && window_fits(window, to.len()),
            "both layers' window data hold its rows"
        );
        let mut both = WithPairs {
            year: &mut *self,
            pairs: &mut *pairs,
            from,
            to,
        };
        walk(&mut both, spans, window, row_area_cm2)?;
        Ok((self.emit(), pairs.emit()))
    }

    /// The walk of [`Self::count`] over the spans of a window, whatever the values are.
    fn count_values<V: Values>(
        &mut self,
        spans: &Spans,
        window: Window,
        data: V,
        row_area_cm2: Option<&[u64]>,
    ) -> Result<Vec<Count>, TooManyCodes> {
        walk(&mut (&mut *self, data), spans, window, row_area_cm2)?;
        Ok(self.emit())
    }

    /// Whether the last tally met values not seen yet (counted in the trap bin).
    fn trapped(&self) -> bool {
        self.local[COPIES * MAX_CODES..].iter().any(|&n| n != 0)
    }

    /// Gives a bin to every value of `seg` not seen yet.
    #[cold]
    fn assign_all<V: Values>(&mut self, seg: V) -> Result<(), TooManyCodes> {
        let mut result = Ok(());
        seg.for_each(|v| {
            if result.is_ok() && self.lut[v] == TRAP {
                result = self.assign(v).map(|_| ());
            }
        });
        result
    }

    /// The window's sums, sorted by unit then code; resets the slots.
    fn emit(&mut self) -> Vec<Count> {
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
                        area_cm2: slot.area_cm2[b],
                    });
                }
            }
            out[start..].sort_unstable_by_key(|c| c.code);
        }
        slots.clear();
        self.slots = slots;
        out
    }
}

/// What a walk over the spans of a window counts into: one histogram, or a year's and its
/// pairs' together.
trait Runs {
    /// Counts pixels `a..b` of the window's data into the current run.
    fn span(&mut self, a: usize, b: usize) -> Result<(), TooManyCodes>;
    /// Ends the current run, adding it to `unit`'s sums.
    fn flush(&mut self, unit: u32, area_cm2: Option<u64>);
}

impl<V: Values> Runs for (&mut Histogrammer, V) {
    #[inline(always)]
    fn span(&mut self, a: usize, b: usize) -> Result<(), TooManyCodes> {
        let (h, data) = self;
        let seg = data.slice(a, b);
        h.touched |= seg.tally(&h.lut, &mut h.local, 1);
        if h.trapped() {
            // New values: undo, give them bins, count again (rare: once per value).
            seg.tally(&h.lut, &mut h.local, u32::MAX);
            h.assign_all(seg)?;
            h.touched |= seg.tally(&h.lut, &mut h.local, 1);
        }
        Ok(())
    }
    fn flush(&mut self, unit: u32, area_cm2: Option<u64>) {
        self.0.flush(unit, area_cm2);
    }
}

/// A year's histogram and its pairs' with the two layers they count.
struct WithPairs<'a, T> {
    year: &'a mut Histogrammer,
    pairs: &'a mut Histogrammer,
    from: &'a [u8],
    to: &'a [T],
}

impl<T: Pixel> WithPairs<'_, T> {
    #[inline(always)]
    fn tally(&mut self, a: usize, b: usize, delta: u32) {
        let (year, pairs) = tally_with_pairs(
            (&self.year.lut, &mut self.year.local),
            (&self.pairs.lut, &mut self.pairs.local),
            &self.from[a..b],
            &self.to[a..b],
            delta,
        );
        self.year.touched |= year;
        self.pairs.touched |= pairs;
    }
}

impl<T: Pixel> Runs for WithPairs<'_, T> {
    #[inline(always)]
    fn span(&mut self, a: usize, b: usize) -> Result<(), TooManyCodes> {
        self.tally(a, b, 1);
        if self.year.trapped() || self.pairs.trapped() {
            // New values in either: undo both, give them bins, count again.
            self.tally(a, b, u32::MAX);
            self.year.assign_all(&self.to[a..b])?;
            let (from, to) = (&self.from[a..b], &self.to[a..b]);
            self.pairs.assign_all(Pairs { from, to })?;
            self.tally(a, b, 1);
        }
        Ok(())
    }
    fn flush(&mut self, unit: u32, area_cm2: Option<u64>) {
        self.year.flush(unit, area_cm2);
        self.pairs.flush(unit, area_cm2);
    }
}

/// [`walk_portable`], compiled a second time with the `popcnt` instruction where the CPU has
/// it. Each addition of a block counts its pixels with `count_ones`, which the baseline x86_64
/// target computes with a dozen bit operations; on this counting loop that is a tenth of the
/// instructions. Both versions are the same code, so they count the same.
fn walk(
    runs: &mut impl Runs,
    spans: &Spans,
    window: Window,
    row_area_cm2: Option<&[u64]>,
) -> Result<(), TooManyCodes> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: `walk_popcnt` only adds the `popcnt` target feature, and the CPU running this
        // has it (checked just above; the check is cached by the standard library).
        return unsafe { walk_popcnt(runs, spans, window, row_area_cm2) };
    }
    walk_portable(runs, spans, window, row_area_cm2)
}

/// [`walk_portable`] with `count_ones` as one instruction (see [`walk`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn walk_popcnt(
    runs: &mut impl Runs,
    spans: &Spans,
    window: Window,
    row_area_cm2: Option<&[u64]>,
) -> Result<(), TooManyCodes> {
    walk_portable(runs, spans, window, row_area_cm2)
}

/// Walks the spans of the units over a window, row by row, counting each span into `runs` and
/// ending a run where the unit changes (or at every span on a lon/lat grid, where pixel area
/// changes with the row). Inlined into [`walk_popcnt`], so the counting loops it inlines are
/// compiled with that target feature.
#[inline(always)]
fn walk_portable(
    runs: &mut impl Runs,
    spans: &Spans,
    window: Window,
    row_area_cm2: Option<&[u64]>,
) -> Result<(), TooManyCodes> {
    let c0 = u32::try_from(window.col0).expect("columns fit u32");
    let c1 = u32::try_from(window.col0 + window.width).expect("columns fit u32");
    let mut current: Option<u32> = None;
    for wr in 0..window.height {
        let r = window.row0 + wr;
        if r >= spans.rows() {
            break;
        }
        let area = row_area_cm2.map(|a| a[r]);
        let row0 = wr * window.stride;
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
                runs.flush(u, area);
            }
            current = Some(span.unit);
            runs.span(row0 + (a - c0) as usize, row0 + (b - c0) as usize)?;
            if area.is_some() {
                runs.flush(span.unit, area);
                current = None;
            }
        }
    }
    if let Some(u) = current {
        runs.flush(u, None);
    }
    Ok(())
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
        let row_area = [1u64, 10, 100];
        let mut total = [(0u64, 0u64); 3];
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
                total[c.code as usize].1 += c.area_cm2;
            }
        }
        // Each row holds each value twice: area per value = 2·1 + 2·10 + 2·100 = 222.
        assert_eq!(total, [(6, 222), (6, 222), (6, 222)]);
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

    /// Two layers over the two units of a 1000 × 3 raster split at column 517: runs of 1 to 69
    /// pixels whose edges fall at different places in each layer, so blocks are uniform in
    /// both, in one, or in neither; the later layer holds 300, which pairs as 255.
    fn two_layers() -> (Spans, Window, Vec<u8>, Vec<u16>) {
        let (width, height) = (1000usize, 3usize);
        let grid = Grid {
            x0: 0.0,
            y0: 3.0,
            dx: 1.0,
            dy: -1.0,
            width,
            height,
        };
        let half = |x0: f64, x1: f64| {
            MultiPolygon(vec![
                polygon![(x: x0, y: 0.0), (x: x1, y: 0.0), (x: x1, y: 3.0), (x: x0, y: 3.0)],
            ])
        };
        let spans = rasterize(&grid, &[half(0.0, 517.0), half(517.0, 1000.0)]);
        let runs = |step: usize, values: &[u16]| -> Vec<u16> {
            let mut out = Vec::new();
            let mut k = 0;
            while out.len() < width * height {
                let run = 1 + (k * step) % 69;
                out.extend(std::iter::repeat_n(values[k % values.len()], run));
                k += 1;
            }
            out.truncate(width * height);
            out
        };
        let from: Vec<u8> = runs(37, &[1, 2, 5, 7])
            .into_iter()
            .map(|v| u8::try_from(v).unwrap())
            .collect();
        let to = runs(23, &[1, 2, 300, 7, 9]);
        let window = Window {
            col0: 0,
            row0: 0,
            width,
            height,
            stride: width,
        };
        (spans, window, from, to)
    }

    #[test]
    fn pairs_count_like_the_pair_codes_built_first() {
        let (spans, window, from, to) = two_layers();
        // The reference: pair codes from · 256 + min(to, 255), tallied pixel by pixel.
        let mut expected = BTreeMap::new();
        for (i, (&a, &b)) in from.iter().zip(&to).enumerate() {
            let unit = u32::from(i % 1000 >= 517);
            let code = u32::from(a) * 256 + u32::from(b.min(255));
            *expected.entry((unit, code)).or_insert(0u64) += 1;
        }
        assert!(expected.keys().any(|&(_, code)| code % 256 == 255));
        let to_u8: Vec<u8> = to.iter().map(|&v| v.min(255) as u8).collect();
        for counts in [
            Histogrammer::new::<u16>(2).count_pairs(&spans, window, &from, &to, None),
            Histogrammer::new::<u16>(2).count_pairs(&spans, window, &from, &to_u8, None),
        ] {
            let counted: BTreeMap<(u32, u32), u64> = counts
                .unwrap()
                .iter()
                .map(|c| ((c.unit, c.code), c.pixels))
                .collect();
            assert_eq!(counted, expected);
        }
    }

    /// The year and its pairs counted in one walk equal the two counted apart, for both pixel
    /// types of the later layer, with and without row areas, over two windows (the second
    /// counted with tables that already hold values), values first met mid-row in either.
    #[test]
    fn year_and_pairs_in_one_walk_count_like_two_walks() {
        let (spans, window, from, to) = two_layers();
        let to_u8: Vec<u8> = to.iter().map(|&v| v.min(255) as u8).collect();
        let row_area = [15u64, 20, 42];
        let halves = [(0, 517), (517, 483)];
        for areas in [None, Some(&row_area[..])] {
            let (mut year, mut pairs) = (Histogrammer::new::<u16>(2), Histogrammer::new::<u16>(2));
            let (mut year8, mut pairs8) = (Histogrammer::new::<u8>(2), Histogrammer::new::<u16>(2));
            for (col0, width) in halves {
                let w = Window {
                    col0,
                    width,
                    ..window
                };
                let (f, t, t8) = (&from[col0..], &to[col0..], &to_u8[col0..]);
                let apart = (
                    Histogrammer::new::<u16>(2)
                        .count(&spans, w, t, areas)
                        .unwrap(),
                    Histogrammer::new::<u16>(2)
                        .count_pairs(&spans, w, f, t, areas)
                        .unwrap(),
                );
                assert!(!apart.0.is_empty() && apart.1.len() > apart.0.len());
                let fused = year.count_with_pairs(&mut pairs, &spans, w, f, t, areas);
                assert_eq!(fused.unwrap(), apart);
                let fused8 = year8.count_with_pairs(&mut pairs8, &spans, w, f, t8, areas);
                let apart8 = (
                    Histogrammer::new::<u8>(2)
                        .count(&spans, w, t8, areas)
                        .unwrap(),
                    apart.1.clone(),
                );
                assert_eq!(fused8.unwrap(), apart8);
            }
        }
    }

    /// The walk compiled with the `popcnt` target feature (taken wherever the CPU has it, as on
    /// the machines tests run on) counts a year and its pairs exactly as the portable one.
    #[test]
    fn the_popcnt_walk_counts_like_the_portable_one() {
        let (spans, window, from, to) = two_layers();
        let row_area_cm2 = [15_000_u64, 20_000, 42_500];
        for areas in [None, Some(&row_area_cm2[..])] {
            let run = |dispatched: bool| {
                let mut year = Histogrammer::new::<u16>(2);
                let mut pairs = Histogrammer::new::<u16>(2);
                let mut both = WithPairs {
                    year: &mut year,
                    pairs: &mut pairs,
                    from: &from,
                    to: &to,
                };
                if dispatched {
                    walk(&mut both, &spans, window, areas)
                } else {
                    walk_portable(&mut both, &spans, window, areas)
                }
                .unwrap();
                (year.emit(), pairs.emit())
            };
            let (dispatched, portable) = (run(true), run(false));
            assert!(!dispatched.1.is_empty());
            assert_eq!(dispatched, portable);
        }
    }

    /// Pixels of noise: `values` distinct values from SplitMix-like hashing of the index.
    fn noise<T: TryFrom<u64>>(n: usize, values: u64) -> Vec<T> {
        (0..n as u64)
            .map(|i| {
                let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                T::try_from((z ^ (z >> 31)) % values).ok().unwrap()
            })
            .collect()
    }

    #[test]
    fn same_mask_marks_the_pixels_holding_a_value() {
        // The vector comparison against the scalar one, on blocks of 2 and of 40 values.
        for values in [2, 40] {
            let bytes: Vec<u8> = noise(BLOCK * 20, values);
            let wide: Vec<u16> = noise::<u16>(BLOCK * 20, values)
                .iter()
                .map(|v| v * 1000)
                .collect();
            for (b, w) in bytes
                .as_chunks::<BLOCK>()
                .0
                .iter()
                .zip(wide.as_chunks::<BLOCK>().0)
            {
                for i in [0, 7, 31] {
                    assert_eq!(u8::same_mask(b, b[i]), same_mask_scalar(b, b[i]));
                    assert_eq!(u16::same_mask(w, w[i]), same_mask_scalar(w, w[i]));
                    assert_ne!(u8::same_mask(b, b[i]) & 1 << i, 0);
                }
            }
        }
        // The kept mask of two layers against the scalar one: noise of 2 values makes about
        // half the pixels of a block keep their code, of 3 values a third.
        let (before, after): (Vec<u8>, Vec<u8>) = (noise(BLOCK * 40, 3), noise(BLOCK * 41, 2));
        let after = &after[BLOCK..];
        for (f, t) in before
            .as_chunks::<BLOCK>()
            .0
            .iter()
            .zip(after.as_chunks::<BLOCK>().0)
        {
            assert_eq!(u8::kept_mask(f, t), kept_mask_scalar(f, t));
        }
        let mut block = [3u16; BLOCK];
        block[0] = 700;
        block[17] = 700;
        block[31] = 700;
        assert_eq!(u16::same_mask(&block, 700), 1 | 1 << 17 | 1 << 31);
        assert_eq!(u16::same_mask(&block, 3), !(1 | 1 << 17 | 1 << 31));
    }

    /// Blocks of more values than [`VALUES_PER_BLOCK`] (noise of 3, 6 and 40 values, first seen
    /// anywhere in a block) count like a plain pixel-by-pixel tally.
    fn noisy_blocks_count_like_single_pixels<T: Pixel + TryFrom<u64> + Into<u32>>() {
        let width = 1000;
        let grid = Grid {
            x0: 0.0,
            y0: 1.0,
            dx: 1.0,
            dy: -1.0,
            width,
            height: 1,
        };
        let unit = MultiPolygon(vec![
            polygon![(x: 3.0, y: 0.0), (x: 990.0, y: 0.0), (x: 990.0, y: 1.0), (x: 3.0, y: 1.0)],
        ]);
        let spans = rasterize(&grid, &[unit]);
        for values in [3, 6, 40] {
            let data: Vec<T> = noise(width, values);
            let mut expected = BTreeMap::new();
            for &v in &data[3..990] {
                *expected.entry(v.into()).or_insert(0u64) += 1;
            }
            let w = Window {
                col0: 0,
                row0: 0,
                width,
                height: 1,
                stride: width,
            };
            let counted: BTreeMap<u32, u64> = Histogrammer::new::<T>(1)
                .count(&spans, w, &data, None)
                .unwrap()
                .iter()
                .map(|c| (c.code, c.pixels))
                .collect();
            assert_eq!(counted, expected, "{values} values");
        }
    }

    #[test]
    fn noisy_blocks_count_like_single_pixels_u8() {
        noisy_blocks_count_like_single_pixels::<u8>();
    }

    #[test]
    fn noisy_blocks_count_like_single_pixels_u16() {
        noisy_blocks_count_like_single_pixels::<u16>();
    }

    /// Ten units of 100 columns each over 1000 × 4 px of noise of 200 values (more than the 64
    /// bits of the touched-bins mask, so bins 64 apart share a bit), with and without row areas:
    /// every run ends after a short span, and the counts and areas equal a pixel-by-pixel tally.
    #[test]
    fn short_runs_of_many_values_count_like_single_pixels() {
        let (width, height) = (1000usize, 4usize);
        let grid = Grid {
            x0: 0.0,
            y0: 4.0,
            dx: 1.0,
            dy: -1.0,
            width,
            height,
        };
        let units: Vec<MultiPolygon> = (0..10)
            .map(|u| {
                let (x0, x1) = (f64::from(u) * 100.0, f64::from(u + 1) * 100.0);
                MultiPolygon(vec![
                    polygon![(x: x0, y: 0.0), (x: x1, y: 0.0), (x: x1, y: 4.0), (x: x0, y: 4.0)],
                ])
            })
            .collect();
        let spans = rasterize(&grid, &units);
        let data: Vec<u16> = noise(width * height, 200);
        let row_area = [1u64, 2, 4, 8];
        let mut expected = BTreeMap::new();
        for (i, &v) in data.iter().enumerate() {
            let e = expected
                .entry((u32::try_from(i % width / 100).unwrap(), u32::from(v)))
                .or_insert((0u64, 0u64));
            e.0 += 1;
            e.1 += row_area[i / width];
        }
        let w = Window {
            col0: 0,
            row0: 0,
            width,
            height,
            stride: width,
        };
        let mut h = Histogrammer::new::<u16>(10);
        for areas in [None, Some(&row_area[..])] {
            let counted: BTreeMap<(u32, u32), (u64, u64)> = h
                .count(&spans, w, &data, areas)
                .unwrap()
                .iter()
                .map(|c| ((c.unit, c.code), (c.pixels, c.area_cm2)))
                .collect();
            let want: BTreeMap<(u32, u32), (u64, u64)> = expected
                .iter()
                .map(|(&k, &(n, a))| (k, (n, if areas.is_some() { a } else { 0 })))
                .collect();
            assert_eq!(counted, want);
        }
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
