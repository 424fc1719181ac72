//! The counts a land-use pass gives and what turns them into class areas: per (unit, code)
//! pixel counts with their summed pixel area (whole cm², exact in any order), the pixel area of a grid, the code → class table
//! of a scheme, transitions of raw code pairs folded into class pairs, and which layers a pass
//! must read for the counts still missing.
//!
//! # References
//! Zonal histogram (Tomlin, C. D., 1990, *Geographic Information Systems and Cartographic
//! Modeling*, Prentice Hall, ch. 5) and the land-use transfer matrix (Liu, J. et al., 2014,
//! "Spatiotemporal characteristics, patterns, and causes of land-use changes in China since the
//! late 1980s", *Journal of Geographical Sciences* 24(2), 195–210): the area that was class i at
//! the first date and class j at the second.

use std::collections::BTreeMap;

use crate::methods::landuse_scheme::{CodeClass, Scheme};
use crate::methods::pixel_area::cm2_to_m2;

/// Class index for "no class" (NoData, excluded or unmapped) in the per-pixel class tables.
pub const NO_CLASS: u8 = 7;

/// Pixel area on one grid.
pub enum PixelArea {
    /// Every pixel has this area in m² (a projected grid).
    Constant(f64),
    /// The area in whole cm² of a pixel of each row (a lon/lat grid; see
    /// [`crate::methods::pixel_area::row_areas_cm2`]).
    PerRow(Vec<u64>),
}

impl PixelArea {
    /// The per-row areas in cm², on a lon/lat grid.
    pub fn rows_cm2(&self) -> Option<&[u64]> {
        match self {
            PixelArea::Constant(_) => None,
            PixelArea::PerRow(v) => Some(v),
        }
    }
    /// Area in m² of `pixels` whose per-row sum is `summed_cm2`. Both are exact integers
    /// whatever order they were added in, so the area is the same in every run.
    #[allow(clippy::cast_precision_loss)]
    pub fn area_m2(&self, pixels: u64, summed_cm2: u64) -> f64 {
        match self {
            PixelArea::Constant(a) => pixels as f64 * a,
            PixelArea::PerRow(_) => cm2_to_m2(summed_cm2),
        }
    }
}

/// Per (unit, code) sums: pixels and per-row area in cm² (0 on a projected grid).
pub type CountMap = BTreeMap<(u32, u32), (u64, u64)>;

/// Pixel value → class index (0–6) or [`NO_CLASS`] (NoData, excluded, unmapped), for every
/// 16-bit value (so lookups of 8- and 16-bit pixels need no bounds check). A NoData value
/// above 254 also marks 255, the value it is capped to in transition pairs.
pub fn class_lut(nodata: Option<u32>, scheme: &Scheme) -> Box<[u8; 1 << 16]> {
    let lut: Vec<u8> = (0..=u32::from(u16::MAX))
        .map(|v| {
            if nodata == Some(v) || (v == 255 && nodata.is_some_and(|n| n >= 255)) {
                return NO_CLASS;
            }
            match scheme.classify(i64::from(v)) {
                CodeClass::Class(c) => u8::try_from(c.index()).expect("seven classes"),
                _ => NO_CLASS,
            }
        })
        .collect();
    lut.into_boxed_slice().try_into().expect("2^16 entries")
}

/// Raw code pairs (code_from·256 + code_to) to class pairs (class_from·8 + class_to).
pub fn classify_pairs(raw: CountMap, from: &[u8; 1 << 16], to: &[u8; 1 << 16]) -> CountMap {
    let mut out = CountMap::new();
    for ((unit, pair), (pixels, area)) in raw {
        let (a, b) = (from[(pair >> 8) as usize], to[(pair & 0xff) as usize]);
        let e = out
            .entry((unit, u32::from(a) * 8 + u32::from(b)))
            .or_insert((0, 0));
        e.0 += pixels;
        e.1 += area;
    }
    out
}

/// The layers one pass must read to compute the `missing` entries (layers `0..n_layers`, then
/// pairs), ascending, and the missing pairs as positions in them.
pub fn pass_plan(
    n_layers: usize,
    pairs: &[(usize, usize)],
    missing: &[usize],
) -> (Vec<usize>, Vec<(usize, usize)>) {
    let mut needed = std::collections::BTreeSet::new();
    let mut missing_pairs = Vec::new();
    for &j in missing {
        if j < n_layers {
            needed.insert(j);
        } else {
            let (a, b) = pairs[j - n_layers];
            needed.extend([a, b]);
            missing_pairs.push((a, b));
        }
    }
    let sub: Vec<usize> = needed.into_iter().collect();
    let at = |k: usize| {
        sub.iter()
            .position(|&s| s == k)
            .expect("pair years are in the pass")
    };
    let sub_pairs = missing_pairs.iter().map(|&(a, b)| (at(a), at(b))).collect();
    (sub, sub_pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_areas_are_constant_on_projected_grids_and_summed_per_row_on_lon_lat_ones() {
        // 30 m pixels: 10 px × 900 m² = 9,000 m², whatever the row sum says.
        assert_eq!(PixelArea::Constant(900.0).area_m2(10, 0), 9000.0);
        assert!(PixelArea::Constant(900.0).rows_cm2().is_none());
        // Per-row areas were summed in cm² while counting: the sum is the area, 8,050.5 m².
        let rows = PixelArea::PerRow(vec![8_000_000, 8_100_000]);
        assert_eq!(rows.area_m2(10, 80_505_000), 8_050.5);
        assert_eq!(rows.rows_cm2(), Some(&[8_000_000, 8_100_000][..]));
    }

    #[test]
    fn raw_code_pairs_fold_into_class_pairs() {
        // Codes 1 → class 0, 2 and 3 → class 1; anything else no class.
        let mut lut = vec![NO_CLASS; 1 << 16];
        lut[1] = 0;
        lut[2] = 1;
        lut[3] = 1;
        let lut: Box<[u8; 1 << 16]> = lut.into_boxed_slice().try_into().unwrap();
        let raw = CountMap::from([
            ((0, 1 << 8 | 2), (3, 15)),
            ((0, 1 << 8 | 3), (2, 10)),
            ((0, 2 << 8 | 2), (1, 5)),
            ((1, 9 << 8 | 1), (4, 20)),
        ]);
        let classes = classify_pairs(raw, &lut, &lut);
        // (0 → 1) holds both 1→2 and 1→3: 5 px, 25 cm²; (1 → 1) = 1·8 + 1 = 9; code 9 has
        // no class, so unit 1's pair is NO_CLASS·8 + 0 = 56.
        let want = CountMap::from([
            ((0, 1), (5, 25)),
            ((0, 9), (1, 5)),
            ((1, u32::from(NO_CLASS) * 8), (4, 20)),
        ]);
        assert_eq!(classes, want);
    }

    #[test]
    fn a_pass_reads_only_the_layers_its_missing_entries_need() {
        // Four years, pairs (0,1), (1,2), (2,3); missing: year 2 and pair (1,2) (entry 4 + 1).
        // Years 0 and 3 are not read.
        let pairs = [(0, 1), (1, 2), (2, 3)];
        let (sub, sub_pairs) = pass_plan(4, &pairs, &[2, 5]);
        assert_eq!(sub, [1, 2]);
        assert_eq!(sub_pairs, [(0, 1)]);
        // Only a pair missing: both its years, and nothing else.
        let (sub, sub_pairs) = pass_plan(4, &pairs, &[6]);
        assert_eq!(sub, [2, 3]);
        assert_eq!(sub_pairs, [(0, 1)]);
    }
}
