//! The counts a land-use pass gives and what turns them into class areas: per (unit, code)
//! pixel counts with their summed pixel area, the pixel area of a grid, the code → class table
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

/// Class index for "no class" (NoData, excluded or unmapped) in the per-pixel class tables.
pub const NO_CLASS: u8 = 7;

/// Pixel area on one grid.
pub enum PixelArea {
    /// Every pixel has this area in m² (a projected grid).
    Constant(f64),
    /// The area in m² of a pixel of each row (a lon/lat grid).
    PerRow(Vec<f64>),
}

impl PixelArea {
    /// The per-row areas, on a lon/lat grid.
    pub fn rows(&self) -> Option<&[f64]> {
        match self {
            PixelArea::Constant(_) => None,
            PixelArea::PerRow(v) => Some(v),
        }
    }
    /// Area in m² of `pixels` whose per-row sum is `summed_m2`.
    #[allow(clippy::cast_precision_loss)]
    pub fn area_m2(&self, pixels: u64, summed_m2: f64) -> f64 {
        match self {
            PixelArea::Constant(a) => pixels as f64 * a,
            PixelArea::PerRow(_) => summed_m2,
        }
    }
}

/// Per (unit, code) sums: pixels and per-row area.
pub type CountMap = BTreeMap<(u32, u32), (u64, f64)>;

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
            .or_insert((0, 0.0));
        e.0 += pixels;
        e.1 += area;
    }
    out
}

/// The layers one pass must read to compute the `missing` entries (layers `0..n_layers`, then
/// pairs), ascending and led by `lead` when given, and the missing pairs as positions in them.
pub fn pass_plan(
    n_layers: usize,
    pairs: &[(usize, usize)],
    missing: &[usize],
    lead: Option<usize>,
) -> (Vec<usize>, Vec<(usize, usize)>) {
    let mut needed: std::collections::BTreeSet<usize> = lead.into_iter().collect();
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
