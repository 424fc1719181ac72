//! The carbon attribution of land-use conversions: how converting an area from one class to
//! another changes the yearly emission and absorption of the area-coefficient method.

/// The change in yearly emission and absorption when `area_ha` turns from a class with
/// coefficient `from_t_c_per_ha` into one with `to_t_c_per_ha` (t C/ha/a; > 0 source, < 0 sink):
///
/// `ΔCE = a · (max(c_to, 0) − max(c_from, 0))`, `ΔCS = a · (max(−c_to, 0) − max(−c_from, 0))`,
///
/// so `ΔCE − ΔCS = a · (c_to − c_from)`, the change of the net flux. A class without a
/// coefficient (`None`) absorbs nothing, and its emission is unknown (construction land is
/// accounted from energy use, not by area): `ΔCE` is then `None`.
///
/// # Units
/// `area_ha` in ha, coefficients in t C/ha/a; both changes in t C per year (CS ≥ 0 convention:
/// a positive `ΔCS` means more absorption).
///
/// # References
/// - Houghton, R. A. (2003). Revised estimates of the annual net flux of carbon to the
///   atmosphere from changes in land use and land management 1850–2000. *Tellus B* 55(2):
///   378–390 (fluxes attributed to each class-to-class conversion).
/// - The area-coefficient method of land-use carbon budgets: 赖力 (2010), 中国土地利用的碳排放
///   效应研究, 南京大学博士学位论文; coefficients as in the presets.
///
/// # Examples
/// ```
/// use pipeline::methods::conversion_carbon::conversion_change_t_c;
/// // 10 ha of forest (−0.644) become cultivated land (+0.422): emission +4.22 t C/a,
/// // absorption −6.44 t C/a, net +10.66 t C/a.
/// let (ce, cs) = conversion_change_t_c(10.0, Some(-0.644), Some(0.422));
/// assert!((ce.unwrap() - 4.22).abs() < 1e-12 && (cs + 6.44).abs() < 1e-12);
/// ```
pub fn conversion_change_t_c(
    area_ha: f64,
    from_t_c_per_ha: Option<f64>,
    to_t_c_per_ha: Option<f64>,
) -> (Option<f64>, f64) {
    let source = |c: f64| c.max(0.0);
    let sink = |c: f64| (-c).max(0.0);
    let ce = match (from_t_c_per_ha, to_t_c_per_ha) {
        (Some(a), Some(b)) => Some(area_ha * (source(b) - source(a))),
        _ => None,
    };
    let cs = area_ha * (to_t_c_per_ha.map_or(0.0, sink) - from_t_c_per_ha.map_or(0.0, sink));
    (ce, cs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_change_is_area_times_coefficient_difference() {
        // Water (−0.253) → cultivated (+0.422), 4 ha: ΔCE = 1.688, ΔCS = −1.012,
        // ΔCE − ΔCS = 4 × 0.675 = 2.7.
        let (ce, cs) = conversion_change_t_c(4.0, Some(-0.253), Some(0.422));
        assert!((ce.unwrap() - 1.688).abs() < 1e-12);
        assert!((cs + 1.012).abs() < 1e-12);
        assert!((ce.unwrap() - cs - 2.7).abs() < 1e-12);
        // Cultivated → construction without a construction coefficient: emission unknown,
        // absorption unchanged (neither absorbs).
        assert_eq!(conversion_change_t_c(2.0, Some(0.422), None), (None, 0.0));
    }
}
