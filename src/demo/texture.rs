//! A CLCD-like land-cover texture for demonstration rasters, pixel row by pixel row, on any
//! projected grid in metres: class patches at two scales drawn from a regional class mix,
//! meandering rivers, villages and growing county seats, and per-pixel speckle. Pixels of one
//! row depend only on that row, so a raster of any size is made strip by strip, in parallel.
//!
//! Texture matters because decoders and zonal histograms run at the speed of the data's
//! entropy: long runs of one class compress and count fast, a speckled map slowly. The patch
//! sizes (700 m and 8 km), village spacing (3 km) and speckle rate (1.2 % of pixels per year)
//! are chosen so that a 30–90 m map looks like CLCD at a glance: fields and woods of tens of
//! pixels, runs broken every few pixels, and a few per cent of pixels changing between years.
//!
//! Everything is a pure function of the seed and the coordinates (SplitMix64 hashes of the
//! lattice cells, [`crate::methods::rng`]); no `exp` or `sin`, whose last bit may differ
//! between C libraries, so the same seed gives the same bytes on every platform.

use crate::methods::rng::SplitMix64;

/// CLCD codes (Yang & Huang 2021, *Earth System Science Data* 13, 3907–3925, Table 2).
pub const CROPLAND: u8 = 1;
pub const FOREST: u8 = 2;
pub const SHRUB: u8 = 3;
pub const GRASSLAND: u8 = 4;
pub const WATER: u8 = 5;
pub const SNOW: u8 = 6;
pub const BARREN: u8 = 7;
pub const IMPERVIOUS: u8 = 8;
pub const WETLAND: u8 = 9;
/// The code of pixels outside every unit (the rasters' NoData).
pub const OUTSIDE: u8 = 0;

/// Number of CLCD classes (codes 1..=9).
pub const CLASSES: usize = 9;

/// The share of each class (codes 1..=9, index = code − 1) in a region, before villages,
/// towns and rivers; need not sum to 1.
pub type ClassMix = [f32; CLASSES];

/// A place whose class mix the landscape takes near it, in grid coordinates (metres).
#[derive(Debug, Clone, Copy)]
pub struct Anchor {
    pub x_m: f64,
    pub y_m: f64,
    pub mix: ClassMix,
}

/// A town whose built-up disc grows with the year.
#[derive(Debug, Clone, Copy)]
pub struct Seat {
    pub x_m: f64,
    pub y_m: f64,
    /// Radius of the built-up disc in the first year, metres.
    pub radius_m: f64,
}

/// Small patches (fields, woods), metres.
const PATCH_M: f64 = 700.0;
/// Landscape patches that tilt the class mix towards one class, metres.
const LANDSCAPE_M: f64 = 8_000.0;
/// How much a landscape patch multiplies its dominant class.
const LANDSCAPE_TILT: f32 = 4.0;
/// Lattice of the village cells, metres; at most one village per cell.
const VILLAGE_CELL_M: f64 = 3_000.0;
/// Spacing of the class-mix lattice, metres.
const MIX_CELL_M: f64 = 25_000.0;
/// Share of pixels that take their alternative class in a year.
const SPECKLE: f64 = 0.012;
/// Half-width of the river bands in noise units (about 150–400 m on the ground).
const RIVER_BAND: f32 = 0.004;

/// The year-independent part of one pixel, computed once and classified for every year.
#[derive(Debug, Clone, Copy, Default)]
pub struct PixelBase {
    /// The class of its patch (0 outside the units).
    pub patch: u8,
    /// The class speckle gives it.
    pub alternative: u8,
    /// On a river.
    pub river: bool,
    /// Squared distance to its village centre over the village's squared radius (∞ if none).
    pub village_d2: f32,
    /// Squared distance to its unit's seat over the seat's squared radius, edge roughened.
    pub seat_d2: f32,
    /// Uniform in [0, 1): which patches convert first.
    pub patch_rank: f32,
    /// Per-pixel hash for the yearly speckle.
    pub pixel_hash: u64,
}

/// The texture: a seed, the regional class mixes on a coarse lattice, and the seats.
pub struct Landscape {
    seed: u64,
    /// Lattice origin (x, y of node 0, 0) and size.
    mix_x0: f64,
    mix_y0: f64,
    mix_cols: usize,
    mix_rows: usize,
    /// Cumulative-ready class mixes per lattice node, row-major, normalised to sum 1.
    mix: Vec<ClassMix>,
    seats: Vec<Seat>,
    first_year: i64,
    last_year: i64,
}

fn unit_f64(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn hash(seed: u64, keys: &[u64]) -> u64 {
    SplitMix64::stream(seed, keys).next_u64()
}

fn cell(v: f64, size: f64) -> i64 {
    (v / size).floor() as i64
}

impl Landscape {
    /// A landscape over the extent `(x_min, y_min, x_max, y_max)` (metres) whose class mix near
    /// each anchor is the anchor's (inverse-distance blend with a 400 km scale elsewhere), with
    /// seats indexed by unit, changing between `first_year` and `last_year`.
    pub fn new(
        seed: u64,
        extent: (f64, f64, f64, f64),
        anchors: &[Anchor],
        seats: Vec<Seat>,
        years: (i64, i64),
    ) -> Self {
        let (x0, y0, x1, y1) = extent;
        let mix_cols = ((x1 - x0) / MIX_CELL_M).ceil() as usize + 2;
        let mix_rows = ((y1 - y0) / MIX_CELL_M).ceil() as usize + 2;
        let mut mix = Vec::with_capacity(mix_cols * mix_rows);
        for r in 0..mix_rows {
            for c in 0..mix_cols {
                let (x, y) = (x0 + c as f64 * MIX_CELL_M, y0 + r as f64 * MIX_CELL_M);
                mix.push(blend(anchors, x, y));
            }
        }
        Self {
            seed,
            mix_x0: x0,
            mix_y0: y0,
            mix_cols,
            mix_rows,
            mix,
            seats,
            first_year: years.0,
            last_year: years.1.max(years.0 + 1),
        }
    }

    /// The class mix at a point, bilinear between lattice nodes.
    fn mix_at(&self, x: f64, y: f64) -> ClassMix {
        let fx = ((x - self.mix_x0) / MIX_CELL_M).clamp(0.0, (self.mix_cols - 2) as f64);
        let fy = ((y - self.mix_y0) / MIX_CELL_M).clamp(0.0, (self.mix_rows - 2) as f64);
        let (c, r) = (fx.floor() as usize, fy.floor() as usize);
        let (tx, ty) = ((fx - c as f64) as f32, (fy - r as f64) as f32);
        let at = |r: usize, c: usize| &self.mix[r * self.mix_cols + c];
        let (a, b, d, e) = (at(r, c), at(r, c + 1), at(r + 1, c), at(r + 1, c + 1));
        let mut out = [0f32; CLASSES];
        for k in 0..CLASSES {
            let bottom = a[k] + (b[k] - a[k]) * tx;
            let top = d[k] + (e[k] - d[k]) * tx;
            out[k] = bottom + (top - bottom) * ty;
        }
        out
    }

    /// The year-independent pixels of one row at `y_m`, columns at `x0_m + (c + ½)·dx_m`;
    /// `owner[c]` is the unit index of each pixel (`None` outside every unit).
    pub fn base_row(
        &self,
        y_m: f64,
        x0_m: f64,
        dx_m: f64,
        owner: &[Option<u32>],
        out: &mut [PixelBase],
    ) {
        let n = owner.len();
        let mut warp_x = vec![0f32; n];
        let mut warp_y = vec![0f32; n];
        let mut river = vec![0f32; n];
        let warp_cell = 2.0 * PATCH_M;
        value_noise_row(self.seed ^ 0x11, warp_cell, y_m, x0_m, dx_m, &mut warp_x);
        value_noise_row(self.seed ^ 0x12, warp_cell, y_m, x0_m, dx_m, &mut warp_y);
        fbm_row(self.seed ^ 0x13, 80_000.0, 3, y_m, x0_m, dx_m, &mut river);
        for (c, (o, px)) in owner.iter().zip(out.iter_mut()).enumerate() {
            let Some(unit) = *o else {
                *px = PixelBase::default();
                continue;
            };
            let x = x0_m + (c as f64 + 0.5) * dx_m;
            let (wx, wy) = (f64::from(warp_x[c]) - 0.5, f64::from(warp_y[c]) - 0.5);
            *px = self.pixel(x, y_m, (wx, wy), river[c], unit);
        }
    }

    fn pixel(&self, x: f64, y: f64, warp: (f64, f64), river: f32, unit: u32) -> PixelBase {
        let mut mix = self.mix_at(x, y);
        // Patch boundaries wander by up to a patch width, so patches are not squares.
        let (px, py) = (x + warp.0 * PATCH_M * 1.6, y + warp.1 * PATCH_M * 1.6);
        let landscape = hash(
            self.seed ^ 0x21,
            &[cell(px, LANDSCAPE_M) as u64, cell(py, LANDSCAPE_M) as u64],
        );
        let dominant = draw(&mix, unit_f64(landscape));
        mix[usize::from(dominant - 1)] *= LANDSCAPE_TILT;
        let patch = hash(
            self.seed ^ 0x22,
            &[cell(px, PATCH_M) as u64, cell(py, PATCH_M) as u64],
        );
        let class = draw(&mix, unit_f64(patch));
        let pixel_hash = hash(self.seed ^ 0x23, &[x.to_bits(), y.to_bits()]);
        let alternative = draw(&mix, unit_f64(pixel_hash.rotate_left(17)));
        let arid = mix[usize::from(BARREN - 1)] + mix[usize::from(SNOW - 1)];
        let river_band = RIVER_BAND * (1.0 - arid.min(0.8));
        let seat = self.seats[unit as usize];
        let (dx, dy) = (x - seat.x_m, y - seat.y_m);
        let edge = 0.7 + 0.6 * (warp.0 + 0.5);
        PixelBase {
            patch: class,
            alternative,
            river: (river - 0.5).abs() < river_band,
            village_d2: self.village_d2(x, y, mix[usize::from(CROPLAND - 1)]),
            seat_d2: ((dx * dx + dy * dy) / (seat.radius_m * seat.radius_m) * edge) as f32,
            patch_rank: unit_f64(patch.rotate_left(29)) as f32,
            pixel_hash,
        }
    }

    /// Villages: at most one per cell, more likely where cropland dominates, 150–400 m across,
    /// centred in the middle half of the cell so no village crosses into the next cell.
    fn village_d2(&self, x: f64, y: f64, cropland: f32) -> f32 {
        let (cx, cy) = (cell(x, VILLAGE_CELL_M), cell(y, VILLAGE_CELL_M));
        let h = hash(self.seed ^ 0x31, &[cx as u64, cy as u64]);
        if unit_f64(h) >= 0.05 + 0.7 * f64::from(cropland) {
            return f32::INFINITY;
        }
        let jx = unit_f64(h.rotate_left(13));
        let jy = unit_f64(h.rotate_left(26));
        let r = 150.0 + 250.0 * unit_f64(h.rotate_left(39));
        let vx = (cx as f64 + 0.25 + 0.5 * jx) * VILLAGE_CELL_M;
        let vy = (cy as f64 + 0.25 + 0.5 * jy) * VILLAGE_CELL_M;
        (((x - vx) * (x - vx) + (y - vy) * (y - vy)) / (r * r)) as f32
    }

    /// The CLCD code of every pixel of a base row in `year`.
    pub fn classify_row(&self, base: &[PixelBase], year: i64, out: &mut [u8]) {
        let t = ((year - self.first_year) as f64 / (self.last_year - self.first_year) as f64)
            .clamp(0.0, 1.5);
        // Seats grow from half to 1.4 times their radius; villages by a third.
        let seat_r = 0.5 + 0.9 * t;
        let (seat_r2, village_r2) = ((seat_r * seat_r) as f32, ((1.0 + 0.33 * t).powi(2)) as f32);
        // Cumulative conversions: Grain for Green from 1999, reclamation of grass and wetland.
        let green = (0.12 * ((year - 1999) as f64 / 23.0).clamp(0.0, 1.0)) as f32;
        let reclaim = (0.08 * t) as f32;
        let year_key = (year as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for (px, code) in base.iter().zip(out.iter_mut()) {
            if px.patch == OUTSIDE {
                *code = OUTSIDE;
                continue;
            }
            *code = if px.seat_d2 < seat_r2 || px.village_d2 < village_r2 {
                IMPERVIOUS
            } else if px.river {
                WATER
            } else {
                let speckle = unit_f64(SplitMix64::new(px.pixel_hash ^ year_key).next_u64());
                let class = if speckle < SPECKLE {
                    px.alternative
                } else {
                    px.patch
                };
                match class {
                    CROPLAND if px.patch_rank < green => FOREST,
                    GRASSLAND | WETLAND if px.patch_rank < reclaim => CROPLAND,
                    other => other,
                }
            };
        }
    }
}

/// The inverse-distance blend of the anchors' mixes at a point, normalised to sum 1.
fn blend(anchors: &[Anchor], x: f64, y: f64) -> ClassMix {
    let mut acc = [0f64; CLASSES];
    for a in anchors {
        let d2 = ((x - a.x_m).powi(2) + (y - a.y_m).powi(2)) / (400_000.0f64 * 400_000.0);
        let k = 1.0 / ((1.0 + d2) * (1.0 + d2) * (1.0 + d2));
        let total: f32 = a.mix.iter().sum();
        for (s, m) in acc.iter_mut().zip(a.mix) {
            *s += k * f64::from(m / total);
        }
    }
    let total: f64 = acc.iter().sum();
    let mut out = [0f32; CLASSES];
    for (o, s) in out.iter_mut().zip(acc) {
        *o = (s / total) as f32;
    }
    out
}

/// The class (code) whose share of the cumulative mix holds `u` ∈ [0, 1).
fn draw(mix: &ClassMix, u: f64) -> u8 {
    let total: f32 = mix.iter().sum();
    let target = u as f32 * total;
    let mut acc = 0.0;
    for (k, m) in mix.iter().enumerate() {
        acc += m;
        if target < acc {
            return k as u8 + 1;
        }
    }
    mix.iter()
        .rposition(|&m| m > 0.0)
        .map_or(CROPLAND, |k| k as u8 + 1)
}

/// Value noise in [0, 1] along a row: lattice values from a hash, smoothstep-interpolated.
fn value_noise_row(seed: u64, cell_m: f64, y: f64, x0: f64, dx: f64, out: &mut [f32]) {
    let fy = y / cell_m;
    let iy = fy.floor();
    let ty = smoothstep(fy - iy) as f32;
    let first = ((x0 + 0.5 * dx) / cell_m).floor() as i64;
    let last = ((x0 + (out.len() as f64 - 0.5) * dx) / cell_m).floor() as i64 + 1;
    let lattice = |row: f64| -> Vec<f32> {
        (first..=last)
            .map(|ix| unit_f64(hash(seed, &[ix as u64, row as i64 as u64])) as f32)
            .collect()
    };
    let (bottom, top) = (lattice(iy), lattice(iy + 1.0));
    for (c, o) in out.iter_mut().enumerate() {
        let fx = (x0 + (c as f64 + 0.5) * dx) / cell_m;
        let ix = fx.floor();
        let tx = smoothstep(fx - ix) as f32;
        let i = (ix as i64 - first) as usize;
        let b = bottom[i] + (bottom[i + 1] - bottom[i]) * tx;
        let t = top[i] + (top[i + 1] - top[i]) * tx;
        *o = b + (t - b) * ty;
    }
}

/// Fractal value noise: `octaves` layers at `cell_m`, `cell_m/2`, … weighted 1, ½, …, in [0, 1].
fn fbm_row(seed: u64, cell_m: f64, octaves: u32, y: f64, x0: f64, dx: f64, out: &mut [f32]) {
    out.fill(0.0);
    let mut layer = vec![0f32; out.len()];
    let (mut amp, mut total, mut cell) = (1.0f32, 0.0f32, cell_m);
    for octave in 0..octaves {
        value_noise_row(
            seed.wrapping_add(u64::from(octave)),
            cell,
            y,
            x0,
            dx,
            &mut layer,
        );
        for (o, l) in out.iter_mut().zip(&layer) {
            *o += amp * l;
        }
        total += amp;
        amp *= 0.5;
        cell *= 0.5;
    }
    for o in out.iter_mut() {
        *o /= total;
    }
}

fn smoothstep(t: f64) -> f64 {
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(seed: u64) -> Landscape {
        let mut mix = [0f32; CLASSES];
        mix[0] = 0.6;
        mix[1] = 0.3;
        mix[3] = 0.1;
        Landscape::new(
            seed,
            (0.0, 0.0, 100_000.0, 100_000.0),
            &[Anchor {
                x_m: 50_000.0,
                y_m: 50_000.0,
                mix,
            }],
            vec![Seat {
                x_m: 50_000.0,
                y_m: 50_000.0,
                radius_m: 3_000.0,
            }],
            (1985, 2022),
        )
    }

    fn map(l: &Landscape, year: i64, size: usize, dx: f64) -> Vec<u8> {
        let owner = vec![Some(0); size];
        let mut base = vec![PixelBase::default(); size];
        let mut out = vec![0u8; size * size];
        for r in 0..size {
            let y = 100_000.0 - (r as f64 + 0.5) * dx;
            l.base_row(y, 0.0, dx, &owner, &mut base);
            l.classify_row(&base, year, &mut out[r * size..(r + 1) * size]);
        }
        out
    }

    #[test]
    fn texture_has_patches_villages_a_growing_town_and_small_yearly_change() {
        let l = plain(7);
        let (a, b) = (map(&l, 2000, 400, 90.0), map(&l, 2001, 400, 90.0));
        let share =
            |m: &[u8], code: u8| m.iter().filter(|&&c| c == code).count() as f64 / m.len() as f64;
        // The mix is 60 % cropland; villages, the town and rivers take some of it.
        assert!(
            (0.4..0.7).contains(&share(&a, CROPLAND)),
            "{}",
            share(&a, CROPLAND)
        );
        assert!(
            share(&a, IMPERVIOUS) > 0.005,
            "villages and the town are built up"
        );
        // Patches, not noise: most horizontal neighbours agree, but runs are broken often.
        let same = a
            .chunks(400)
            .flat_map(|row| row.windows(2).map(|w| u32::from(w[0] == w[1])))
            .sum::<u32>() as f64
            / (400.0 * 399.0);
        assert!((0.8..0.97).contains(&same), "neighbour agreement {same}");
        // A few per cent of pixels change from one year to the next.
        let changed = a.iter().zip(&b).filter(|(x, y)| x != y).count() as f64 / a.len() as f64;
        assert!((0.01..0.06).contains(&changed), "changed {changed}");
        // The town grows.
        let late = map(&l, 2022, 400, 90.0);
        assert!(share(&late, IMPERVIOUS) > share(&a, IMPERVIOUS));
    }

    #[test]
    fn same_seed_same_pixels_other_seed_other_pixels() {
        assert_eq!(
            map(&plain(7), 2010, 64, 90.0),
            map(&plain(7), 2010, 64, 90.0)
        );
        assert_ne!(
            map(&plain(7), 2010, 64, 90.0),
            map(&plain(8), 2010, 64, 90.0)
        );
    }
}
