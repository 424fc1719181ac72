//! Land-use dynamic degrees: how fast one class's area changes (single dynamic degree K) and
//! how much of a unit's land changes class (comprehensive dynamic degree LC) between two years.

/// The single dynamic degree of one class: `K = (A_t2 − A_t1) / A_t1 / T × 100`, the mean
/// yearly change of its area as a percentage of the area at t1. `None` where `A_t1 = 0`
/// (the rate is undefined) or `T ≤ 0`.
///
/// # Units
/// Areas in any one unit (e.g. ha); `years` = `T = t2 − t1`; result in % per year.
///
/// # References
/// 王秀兰, 包玉海 (1999). 土地利用动态变化研究方法探讨. 地理科学进展 18(1): 81–87
/// (Wang & Bao, land-use dynamic degree). Also 刘纪远 et al. (2003), 地理研究 22(1): 1–12.
///
/// # Examples
/// ```
/// use pipeline::methods::land_dynamics::single_dynamic_degree_pct_per_year;
/// // 200 ha → 230 ha over 5 years: 15% in 5 years = 3% per year.
/// let k = single_dynamic_degree_pct_per_year(200.0, 230.0, 5).unwrap();
/// assert!((k - 3.0).abs() < 1e-12);
/// assert_eq!(single_dynamic_degree_pct_per_year(0.0, 10.0, 5), None);
/// ```
pub fn single_dynamic_degree_pct_per_year(area_t1: f64, area_t2: f64, years: i64) -> Option<f64> {
    if area_t1 == 0.0 || years <= 0 {
        return None;
    }
    let t = years as f64;
    Some((area_t2 - area_t1) / area_t1 / t * 100.0)
}

/// The comprehensive dynamic degree from a transfer matrix:
/// `LC = Σ_{i≠j} ΔLU_{i→j} / (2 Σ_i LU_{i,t1}) / T × 100`, where `ΔLU_{i→j}` is the area of
/// class i at t1 that is class j at t2 and `Σ_i LU_{i,t1}` the matrix total (the area at t1).
/// `None` where the matrix is empty or its total is 0, or `T ≤ 0`.
///
/// # Units
/// Areas in any one unit (e.g. ha); `years` = `T`; result in % per year.
///
/// # References
/// 王秀兰, 包玉海 (1999). 土地利用动态变化研究方法探讨. 地理科学进展 18(1): 81–87 (the
/// comprehensive land-use dynamic degree from the conversion areas ΔLU_{i−j}).
///
/// # Examples
/// ```
/// use pipeline::methods::land_dynamics::comprehensive_dynamic_degree_pct_per_year;
/// // 100 ha, of which 10 ha cultivated → construction and 4 ha forest → cultivated, in 10 years:
/// // LC = 14 / 200 / 10 × 100 = 0.7 % per year.
/// let m = [("c", "c", 60.0), ("c", "b", 10.0), ("f", "c", 4.0), ("f", "f", 26.0)];
/// let lc = comprehensive_dynamic_degree_pct_per_year(&m, 10).unwrap();
/// assert!((lc - 0.7).abs() < 1e-12);
/// ```
pub fn comprehensive_dynamic_degree_pct_per_year<C: PartialEq>(
    transfer: &[(C, C, f64)],
    years: i64,
) -> Option<f64> {
    let total: f64 = transfer.iter().map(|t| t.2).sum();
    let changed: f64 = transfer
        .iter()
        .filter(|(from, to, _)| from != to)
        .map(|t| t.2)
        .sum();
    comprehensive_dynamic_degree_from_sums_pct_per_year(changed, total, years)
}

/// [`comprehensive_dynamic_degree_pct_per_year`] from the matrix's sums, for a caller that
/// adds the cells up as they come instead of holding the matrix: `changed = Σ_{i≠j} ΔLU_{i→j}`
/// and `total = Σ_i LU_{i,t1}`. `None` where `total` is 0 or `T ≤ 0`.
///
/// # Units
/// Areas in any one unit (e.g. ha); `years` = `T`; result in % per year.
///
/// # References
/// 王秀兰, 包玉海 (1999). 土地利用动态变化研究方法探讨. 地理科学进展 18(1): 81–87.
///
/// # Examples
/// ```
/// use pipeline::methods::land_dynamics::comprehensive_dynamic_degree_from_sums_pct_per_year;
/// // 14 ha of 100 ha changed class in 10 years: LC = 14 / 200 / 10 × 100 = 0.7 % per year.
/// let lc = comprehensive_dynamic_degree_from_sums_pct_per_year(14.0, 100.0, 10).unwrap();
/// assert!((lc - 0.7).abs() < 1e-12);
/// assert_eq!(comprehensive_dynamic_degree_from_sums_pct_per_year(0.0, 0.0, 10), None);
/// ```
pub fn comprehensive_dynamic_degree_from_sums_pct_per_year(
    changed: f64,
    total: f64,
    years: i64,
) -> Option<f64> {
    if total == 0.0 || years <= 0 {
        return None;
    }
    let t = years as f64;
    Some(changed / (2.0 * total) / t * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_class_has_a_negative_degree_and_no_change_gives_zero() {
        // 50 → 40 ha in 2 years: −20 % / 2 = −10 % per year.
        let k = single_dynamic_degree_pct_per_year(50.0, 40.0, 2).unwrap();
        assert!((k + 10.0).abs() < 1e-12);
        let diagonal = [(1, 1, 30.0), (2, 2, 70.0)];
        assert_eq!(
            comprehensive_dynamic_degree_pct_per_year(&diagonal, 5),
            Some(0.0)
        );
        assert_eq!(
            comprehensive_dynamic_degree_pct_per_year::<u8>(&[], 5),
            None
        );
        assert_eq!(single_dynamic_degree_pct_per_year(5.0, 6.0, 0), None);
    }
}
