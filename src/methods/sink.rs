//! Carbon absorption (sink) of land use: area × |coefficient| for sink classes, and the
//! crop-yield method for cultivated land.

use crate::methods::coefficients::CropParameters;

/// Absorption of a sink class, `S_k = A_k · |δ_k|` (stored ≥ 0).
///
/// # Units
/// `area_ha` in ha, `coefficient_t_c_per_ha` in t C/ha/a (the sign is ignored: sink
/// coefficients are printed negative in some tables and positive in others); returns t C/a.
///
/// # References
/// Fang Jingyun et al. 2007, Science in China D 37(6) (vegetation sink coefficients);
/// Lai Li 2010 (`PhD` thesis, Nanjing University).
///
/// # Examples
/// ```
/// use pipeline::methods::sink::area_sink_t_c;
/// // 2500 ha of forest at −0.644 t C/ha/a absorb 1610 t C
/// assert!((area_sink_t_c(2500.0, -0.644) - 1610.0).abs() < 1e-9);
/// ```
#[must_use]
pub fn area_sink_t_c(area_ha: f64, coefficient_t_c_per_ha: f64) -> f64 {
    area_ha * coefficient_t_c_per_ha.abs()
}

/// Cropland absorption of one crop from its yield, `C = c · Y · (1 − w) / H` (dry-matter
/// biomass × carbon fraction; no root term).
///
/// # Units
/// `yield_t` in t of harvested product; parameters are fractions; returns t C.
///
/// # References
/// Crop-yield method of agricultural carbon-sink studies (Tian Yun et al.; Li Bo et al.),
/// as used for cultivated land in Henan by Zhao Rongqin et al. (J. Natural Resources).
///
/// # Examples
/// ```
/// use pipeline::methods::coefficients::CropParameters;
/// use pipeline::methods::sink::crop_sink_t_c;
/// // 1000 t wheat: 0.485 × 1000 × 0.88 / 0.40 = 1067 t C
/// let wheat = CropParameters { carbon_fraction: 0.485, moisture: 0.12, harvest_index: 0.40 };
/// assert!((crop_sink_t_c(1000.0, &wheat) - 1067.0).abs() < 1e-9);
/// ```
#[must_use]
pub fn crop_sink_t_c(yield_t: f64, p: &CropParameters) -> f64 {
    p.carbon_fraction * yield_t * (1.0 - p.moisture) / p.harvest_index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_yield_hand_computed() {
        // maize 5000 t: 0.471 × 5000 × (1 − 0.13) / 0.40 = 0.471 × 5000 = 2355; × 0.87 = 2048.85; / 0.4 = 5122.125
        let maize = CropParameters {
            carbon_fraction: 0.471,
            moisture: 0.13,
            harvest_index: 0.40,
        };
        assert!((crop_sink_t_c(5000.0, &maize) - 5122.125).abs() < 1e-9);
        // Order of magnitude: Henan's wheat harvest is about 37 Mt -> 0.485 × 37e6 × 0.88 / 0.40 ≈ 39.5 Mt C
        let wheat = CropParameters {
            carbon_fraction: 0.485,
            moisture: 0.12,
            harvest_index: 0.40,
        };
        assert!((crop_sink_t_c(37e6, &wheat) - 39.479e6).abs() < 1e3);
    }

    #[test]
    fn henan_order_of_magnitude() {
        // Order of magnitude: Henan's forest is about 3 Mha; at −0.581 that is ≈ 1.7 Mt C/yr
        // (3e6 × 0.581 = 1.743e6 t C)
        assert!((area_sink_t_c(3.0e6, -0.581) - 1.743e6).abs() < 1e-3);
    }

    #[test]
    fn sink_is_nonnegative_for_either_sign() {
        assert_eq!(area_sink_t_c(100.0, -0.021), area_sink_t_c(100.0, 0.021));
        assert!((area_sink_t_c(100.0, -0.021) - 2.1).abs() < 1e-12);
    }
}
