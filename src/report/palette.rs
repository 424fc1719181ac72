//! Colour schemes of the report: perceptually uniform and colour-blind safe.
//!
//! - Sequential: viridis (van der Walt & Smith 2015, matplotlib), 9 stops interpolated in sRGB.
//! - Diverging: ColorBrewer BrBG (Brewer 2003; marked colour-blind safe), brown for the "more
//!   emission" side, blue-green for the "more sink / better" side, light grey at the neutral value.
//! - Categorical: Okabe & Ito (2008) "Color Universal Design" palette.

/// viridis at 0, 1/8, …, 1.
const VIRIDIS: [&str; 9] = [
    "#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30",
    "#fde725",
];

/// ColorBrewer BrBG, 11 classes, from teal (index 0) to brown (index 10).
const TEAL_TO_BROWN: [&str; 11] = [
    "#003c30", "#01665e", "#35978f", "#80cdc1", "#c7eae5", "#f5f5f5", "#f6e8c3", "#dfc27d",
    "#bf812d", "#8c510a", "#543005",
];

/// Okabe–Ito, without black (grey instead, so outlines stay visible).
pub const OKABE_ITO: [&str; 8] = [
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999",
];

/// Fill of units with no value.
pub const NO_DATA: &str = "#ffffff";

fn rgb(hex: &str) -> [f64; 3] {
    let v = u32::from_str_radix(&hex[1..], 16).expect("palette entries are #rrggbb");
    [
        f64::from((v >> 16) & 0xff),
        f64::from((v >> 8) & 0xff),
        f64::from(v & 0xff),
    ]
}

fn hex(c: [f64; 3]) -> String {
    let b = |x: f64| x.round().clamp(0.0, 255.0) as u8;
    format!("#{:02x}{:02x}{:02x}", b(c[0]), b(c[1]), b(c[2]))
}

fn interpolate(stops: &[&str], t: f64) -> String {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = t * (stops.len() - 1) as f64;
    let i = (pos.floor() as usize).min(stops.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (rgb(stops[i]), rgb(stops[i + 1]));
    hex([
        a[0] + f * (b[0] - a[0]),
        a[1] + f * (b[1] - a[1]),
        a[2] + f * (b[2] - a[2]),
    ])
}

/// viridis at t ∈ [0, 1].
pub fn sequential(t: f64) -> String {
    interpolate(&VIRIDIS, t)
}

/// BrBG at t ∈ [−1, 1]: −1 teal, 0 neutral grey, +1 brown.
pub fn diverging(t: f64) -> String {
    interpolate(&TEAL_TO_BROWN, (t + 1.0) / 2.0)
}

/// The k-th categorical colour (cycling).
pub fn categorical(k: usize) -> &'static str {
    OKABE_ITO[k % OKABE_ITO.len()]
}

/// Colours of the seven land-use carbon classes (six and wetland), from the Okabe–Ito set (other class names get
/// `None` and a categorical colour).
pub fn land_class(class: &str) -> Option<&'static str> {
    Some(match class {
        "cultivated" => "#F0E442",
        "forest" => "#009E73",
        "grassland" => "#E69F00",
        "water" => "#0072B2",
        "construction" => "#D55E00",
        "unused" => "#999999",
        "wetland" => "#56B4E9",
        _ => return None,
    })
}

/// Colours of the LISA classes: hot spots vermillion, cold spots blue, outliers orange and
/// sky blue, not significant light grey.
pub fn lisa(class: &str) -> &'static str {
    match class {
        "HH" => "#D55E00",
        "LL" => "#0072B2",
        "HL" => "#E69F00",
        "LH" => "#56B4E9",
        _ => "#dddddd",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_midpoints() {
        assert_eq!(sequential(0.0), "#440154");
        assert_eq!(sequential(1.0), "#fde725");
        assert_eq!(sequential(0.5), "#21918c");
        assert_eq!(diverging(0.0), "#f5f5f5");
        assert_eq!(diverging(1.0), "#543005");
        assert_eq!(diverging(-1.0), "#003c30");
        // Halfway between #440154 and #472d7b: (68+71)/2 = 69.5 → 70 (0x46), (1+45)/2 = 23 (0x17),
        // (84+123)/2 = 103.5 → 104 (0x68).
        assert_eq!(sequential(1.0 / 16.0), "#461768");
    }

    #[test]
    fn every_land_class_with_wetland_has_its_own_colour() {
        use crate::methods::landuse_scheme::LandClass;
        let colours: std::collections::BTreeSet<&str> = LandClass::WITH_WETLAND
            .iter()
            .map(|c| land_class(c.as_str()).expect("a colour per class"))
            .collect();
        assert_eq!(colours.len(), 7);
    }
}
