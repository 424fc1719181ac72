//! Area of raster pixels on the WGS84 ellipsoid. A lon/lat pixel is a quadrangle bounded by two
//! meridians and two parallels; its area depends only on its latitudes, so one number per raster
//! row suffices. Counting sums these areas in fixed point (whole cm²), so a sum is exact and the
//! same in any order of rows, windows, tiles or shards.

/// WGS84 semi-major axis, m.
pub const WGS84_A_M: f64 = 6_378_137.0;
/// WGS84 flattening.
pub const WGS84_F: f64 = 1.0 / 298.257_223_563;

/// Area of the quadrangle between two parallels and two meridians on the WGS84 ellipsoid.
///
/// Uses the closed form of the ellipsoidal zone area: per radian of longitude the area from the
/// equator to latitude φ is b²·F(φ), with F(φ) = sin φ / (2(1 − e² sin² φ)) +
/// ln((1 + e sin φ)/(1 − e sin φ)) / (4e).
///
/// # Units
/// Latitudes and the longitude width in degrees; the result in m². The order of the two
/// latitudes does not matter.
///
/// # References
/// Snyder, J. P. (1987). *Map Projections — A Working Manual*. USGS Professional Paper 1395,
/// eq. 3-12 (q) and the authalic sphere; the zone area is 2π·(a²/2)·(q(φ₂) − q(φ₁)).
///
/// # Examples
/// ```
/// use pipeline::methods::pixel_area::quadrangle_area_m2;
/// // A 1° × 1° cell at the equator: 12,308.464 km² (pyproj 3.7.2 Geod(ellps="WGS84") on the
/// // cell's ring with densified parallels).
/// let a = quadrangle_area_m2(0.0, 1.0, 1.0);
/// assert!((a / 1e6 - 12_308.464).abs() < 0.001, "{a}");
/// ```
pub fn quadrangle_area_m2(lat1_deg: f64, lat2_deg: f64, dlon_deg: f64) -> f64 {
    let e2 = WGS84_F * (2.0 - WGS84_F);
    let e = e2.sqrt();
    let b = WGS84_A_M * (1.0 - WGS84_F);
    let zone = |lat_deg: f64| {
        let s = lat_deg.to_radians().sin();
        s / (2.0 * (1.0 - e2 * s * s)) + ((1.0 + e * s) / (1.0 - e * s)).ln() / (4.0 * e)
    };
    (b * b * dlon_deg.abs().to_radians() * (zone(lat2_deg) - zone(lat1_deg))).abs()
}

/// Area of one pixel in each row of a north-up lon/lat raster.
///
/// Row `r` spans latitudes `top_lat + r·dlat` to `top_lat + (r + 1)·dlat` (dlat is negative for
/// the usual north-up raster) and is `dlon` wide.
///
/// # Units
/// Degrees in, m² out.
///
/// # References
/// As [`quadrangle_area_m2`].
///
/// # Examples
/// ```
/// use pipeline::methods::pixel_area::row_areas_m2;
/// // Two rows of 0.5° pixels from the equator southwards are mirror images of the northern ones.
/// let rows = row_areas_m2(0.0, -0.5, 0.5, 2);
/// let north = pipeline::methods::pixel_area::quadrangle_area_m2(0.0, 0.5, 0.5);
/// assert!((rows[0] - north).abs() < 1e-6 * north);
/// assert!(rows[1] < rows[0]);
/// ```
pub fn row_areas_m2(top_lat_deg: f64, dlat_deg: f64, dlon_deg: f64, rows: usize) -> Vec<f64> {
    (0..rows)
        .map(|r| {
            let r = r as f64;
            let lat1 = (top_lat_deg + r * dlat_deg).clamp(-90.0, 90.0);
            let lat2 = (top_lat_deg + (r + 1.0) * dlat_deg).clamp(-90.0, 90.0);
            quadrangle_area_m2(lat1, lat2, dlon_deg)
        })
        .collect()
}

/// Square centimetres per square metre: lon/lat pixel areas are summed as whole cm² (10⁻⁴ m²).
///
/// Why cm²: the whole WGS84 ellipsoid is 5.10 × 10¹⁴ m² = 5.10 × 10¹⁸ cm², below both
/// `i64::MAX` (9.22 × 10¹⁸, the memo tables' column) and `u64::MAX` (1.84 × 10¹⁹), so no unit's
/// sum can overflow even if one unit were the whole Earth; China (9.6 × 10¹² m² = 9.6 × 10¹⁶ cm²)
/// leaves a hundredfold margin. Rounding each row's pixel to the nearest cm² errs by at most
/// 0.5 cm² a pixel: a relative 5.6 × 10⁻⁸ on a 30 m (900 m²) pixel and 5 × 10⁻⁷ on a 10 m one,
/// orders of magnitude below the pixelisation error along a unit's boundary.
pub const CM2_PER_M2: f64 = 1e4;

/// Area of one pixel in each row of a north-up lon/lat raster, rounded to whole cm² so that
/// sums of them are exact integers whatever their order ([`CM2_PER_M2`] says why cm²).
///
/// # Units
/// Degrees in, cm² out.
///
/// # References
/// As [`quadrangle_area_m2`].
///
/// # Examples
/// ```
/// use pipeline::methods::pixel_area::{row_areas_cm2, row_areas_m2};
/// // A 30 m-class pixel (0.00025°) at 34° N: about 640 m², kept to the cm².
/// let cm2 = row_areas_cm2(34.00025, -0.00025, 0.00025, 1)[0];
/// let m2 = row_areas_m2(34.00025, -0.00025, 0.00025, 1)[0];
/// assert!((cm2 as f64 - m2 * 1e4).abs() <= 0.5, "{cm2} vs {m2}");
/// ```
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn row_areas_cm2(top_lat_deg: f64, dlat_deg: f64, dlon_deg: f64, rows: usize) -> Vec<u64> {
    row_areas_m2(top_lat_deg, dlat_deg, dlon_deg, rows)
        .into_iter()
        // Areas are finite and non-negative, and far below 2⁶⁴ cm² (see CM2_PER_M2).
        .map(|a| (a * CM2_PER_M2).round() as u64)
        .collect()
}

/// Converts a sum of whole cm² to m², the same way in every run: one exact-or-nearest
/// conversion to `f64` (exact below 2⁵³ cm² ≈ 9 × 10¹¹ m², more than any province) and one
/// correctly rounded division.
///
/// # Units
/// cm² in, m² out.
///
/// # Examples
/// ```
/// use pipeline::methods::pixel_area::cm2_to_m2;
/// assert_eq!(cm2_to_m2(9_000_000), 900.0);
/// ```
#[allow(clippy::cast_precision_loss)]
pub fn cm2_to_m2(area_cm2: u64) -> f64 {
    area_cm2 as f64 / CM2_PER_M2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent route: authalic latitude β and authalic radius R_q (Snyder 1987 eq. 3-11,
    /// 3-12, 3-13); the area between two parallels is Δλ·R_q²·(sin β₂ − sin β₁).
    fn authalic_area_m2(lat1: f64, lat2: f64, dlon: f64) -> f64 {
        let a = 6_378_137.0_f64;
        let f: f64 = 1.0 / 298.257_223_563;
        let e2 = 2.0 * f - f * f;
        let e = e2.sqrt();
        let q = |phi: f64| {
            let s = phi.sin();
            (1.0 - e2)
                * (s / (1.0 - e2 * s * s)
                    - (1.0 / (2.0 * e)) * ((1.0 - e * s) / (1.0 + e * s)).ln())
        };
        let qp = q(std::f64::consts::FRAC_PI_2);
        let rq2 = a * a * qp / 2.0;
        let beta = |phi: f64| (q(phi) / qp).asin();
        (dlon.to_radians() * rq2 * (beta(lat2.to_radians()).sin() - beta(lat1.to_radians()).sin()))
            .abs()
    }

    #[test]
    fn matches_authalic_formula_and_pyproj_at_several_latitudes() {
        // pyproj 3.7 Geod(ellps="WGS84").polygon_area_perimeter on the cell's ring with each
        // parallel edge densified to 1000 points (so geodesic edges follow the parallel); see
        // tests/fixtures/landuse/README.md for the script. Cells are 0.05° × 0.05° (MCD12C1) and
        // 1° × 1°.
        let pyproj: [(f64, f64, f64, f64); 6] = [
            (0.0, 0.05, 0.05, 30_772_676.397_037_25),
            (30.0, 30.05, 0.05, 26_732_745.613_076_773),
            (34.5, 34.55, 0.05, 25_462_353.549_550_16),
            (60.0, 60.05, 0.05, 15_530_345.615_388_423),
            (89.95, 90.0, 0.05, 13_608.707_650_184_631),
            (0.0, 1.0, 1.0, 12_308_463_894.290_436),
        ];
        for (lat1, lat2, dlon, expect) in pyproj {
            let got = quadrangle_area_m2(lat1, lat2, dlon);
            assert!(
                ((got - expect) / expect).abs() < 1e-6,
                "lat {lat1}: {got} vs pyproj {expect}"
            );
            let auth = authalic_area_m2(lat1, lat2, dlon);
            assert!(
                ((got - auth) / auth).abs() < 1e-9,
                "lat {lat1}: {got} vs authalic {auth}"
            );
        }
        // A 30 m-class pixel (0.00025°) in Henan: check against the authalic route.
        let got = quadrangle_area_m2(34.0, 34.00025, 0.00025);
        let auth = authalic_area_m2(34.0, 34.00025, 0.00025);
        assert!(((got - auth) / auth).abs() < 1e-6, "{got} vs {auth}");
    }

    #[test]
    fn whole_ellipsoid_area() {
        // The WGS84 surface area is 510,065,621.7 km² (Karney 2013, GeographicLib docs).
        let total = 2.0 * quadrangle_area_m2(-90.0, 90.0, 180.0);
        assert!((total / 1e6 - 510_065_621.718).abs() < 0.01, "{total}");
    }

    #[test]
    fn row_areas_in_cm2_are_the_rounded_m2_and_add_up_in_any_order() {
        // 0.00025° rows from 34° N southwards (Henan, CLCD-class 30 m pixels).
        let m2 = row_areas_m2(34.0, -0.00025, 0.00025, 400);
        let cm2 = row_areas_cm2(34.0, -0.00025, 0.00025, 400);
        for (&a, &c) in m2.iter().zip(&cm2) {
            assert!((c as f64 - a * 1e4).abs() <= 0.5, "{c} cm² vs {a} m²");
        }
        // Integer sums do not depend on the order; float sums of the same areas here do.
        let forward: u64 = cm2.iter().sum();
        let backward: u64 = cm2.iter().rev().sum();
        assert_eq!(forward, backward);
        let total_m2: f64 = m2.iter().sum();
        assert!(
            (cm2_to_m2(forward) - total_m2).abs() < 400.0 * 0.5e-4,
            "{forward} vs {total_m2}"
        );
        // The whole ellipsoid in cm² still fits i64 (the memo column), as CM2_PER_M2 says.
        let earth_cm2 = 2.0 * quadrangle_area_m2(-90.0, 90.0, 180.0) * CM2_PER_M2;
        assert!(earth_cm2 < i64::MAX as f64, "{earth_cm2}");
    }
}
