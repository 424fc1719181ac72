//! Carbon emission of land use: area × coefficient for land classes that are sources, energy
//! consumption × standard-coal conversion × carbon factor for construction land, the
//! GDP × energy-intensity fallback, and the allocation of a higher-level energy emission to
//! units by a share.

use crate::methods::coefficients::FuelFactor;

/// Emission of a land class by the direct coefficient method, `E_k = A_k · δ_k`.
///
/// # Units
/// `area_ha` in ha, `coefficient_t_c_per_ha` in t C/ha/a; returns t C/a.
///
/// # References
/// Direct coefficient method of the land-use carbon literature, e.g. Lai Li 2010 (`PhD`
/// thesis, Nanjing University); Li Ying, Huang Xianjin et al. 2008, Trans. CSAE 24(Suppl.2).
///
/// # Examples
/// ```
/// use pipeline::methods::emission::area_emission_t_c;
/// // 1000 ha of cultivated land at 0.422 t C/ha/a
/// assert!((area_emission_t_c(1000.0, 0.422) - 422.0).abs() < 1e-9);
/// ```
#[must_use]
pub fn area_emission_t_c(area_ha: f64, coefficient_t_c_per_ha: f64) -> f64 {
    area_ha * coefficient_t_c_per_ha
}

/// Energy-related emission `E_b = Σ_j e_j · θ_j · f_j`, summed in the order given.
///
/// # Units
/// `consumption[j]` in the physical unit `factors[j].theta_tce_per_unit` is expressed per;
/// returns t C.
///
/// # References
/// Liu Xianzhao et al. 2017, Acta Ecologica Sinica 37(7): 2476–2487, eq. and Table 1
/// (θ from the China Energy Statistical Yearbook, f from IPCC).
///
/// # Examples
/// ```
/// use pipeline::methods::coefficients::FuelFactor;
/// use pipeline::methods::emission::energy_emission_t_c;
/// // 1000 t raw coal: 1000 × 0.7143 × 0.7559 = 539.93937 t C
/// let coal = FuelFactor { theta_tce_per_unit: 0.7143, f_t_c_per_tce: 0.7559 };
/// assert!((energy_emission_t_c(&[1000.0], &[coal]) - 539.939_37).abs() < 1e-9);
/// ```
#[must_use]
pub fn energy_emission_t_c(consumption: &[f64], factors: &[FuelFactor]) -> f64 {
    assert_eq!(consumption.len(), factors.len(), "one factor per fuel");
    consumption
        .iter()
        .zip(factors)
        .map(|(e, f)| fuel_emission_t_c(*e, *f))
        .sum()
}

/// Emission of one fuel, `e · θ · f`.
///
/// # Units
/// `consumption` in the fuel's physical unit; returns t C.
///
/// # References
/// Liu Xianzhao et al. 2017, Acta Ecologica Sinica 37(7), Table 1.
///
/// # Examples
/// ```
/// use pipeline::methods::coefficients::FuelFactor;
/// use pipeline::methods::emission::fuel_emission_t_c;
/// // 100 × 10^4 m3 natural gas at 13.3 tce/10^4 m3 and 0.4483 t C/tce = 596.239 t C
/// let gas = FuelFactor { theta_tce_per_unit: 13.3, f_t_c_per_tce: 0.4483 };
/// assert!((fuel_emission_t_c(100.0, gas) - 596.239).abs() < 1e-9);
/// ```
#[must_use]
pub fn fuel_emission_t_c(consumption: f64, factor: FuelFactor) -> f64 {
    consumption * factor.theta_tce_per_unit * factor.f_t_c_per_tce
}

/// Emission of another source (agricultural input, livestock, respiration), `E = amount · factor`.
///
/// # Units
/// `amount` in the factor's unit (t, head, ha, person); `factor_t_c_per_unit` in t C per unit;
/// returns t C.
///
/// # References
/// Wu Haoyue, He Yanqiu, Chen Rou 2017, Chinese Journal of Eco-Agriculture 25(9): 1381–1391,
/// Table 1.
///
/// # Examples
/// ```
/// use pipeline::methods::emission::activity_emission_t_c;
/// // 2000 t of fertiliser at 0.8956 t C/t -> 1791.2 t C
/// assert!((activity_emission_t_c(2000.0, 0.8956) - 1791.2).abs() < 1e-9);
/// ```
#[must_use]
pub fn activity_emission_t_c(amount: f64, factor_t_c_per_unit: f64) -> f64 {
    amount * factor_t_c_per_unit
}

/// Fallback construction-land emission from GDP and energy intensity, `E_b = G · EI · f_sc`.
///
/// # Units
/// `gdp_10k_yuan` in 10^4 yuan, `intensity_tce_per_10k_yuan` in tce per 10^4 yuan,
/// `f_sc_t_c_per_tce` in t C per tce (0.67 by the NDRC Energy Research Institute); returns t C.
///
/// # References
/// Fallback used in county-level carbon-budget studies; `f_sc` = 0.67 t C/tce (NDRC Energy
/// Research Institute), see e.g. Zhao Rongqin et al., J. Natural Resources (Henan county carbon
/// compensation).
///
/// # Examples
/// ```
/// use pipeline::methods::emission::intensity_emission_t_c;
/// // GDP 2,000,000 × 10^4 yuan, 0.8 tce/10^4 yuan, 0.67 t C/tce -> 1,072,000 t C
/// assert!((intensity_emission_t_c(2.0e6, 0.8, 0.67) - 1.072e6).abs() < 1e-6);
/// ```
#[must_use]
pub fn intensity_emission_t_c(
    gdp_10k_yuan: f64,
    intensity_tce_per_10k_yuan: f64,
    f_sc_t_c_per_tce: f64,
) -> f64 {
    gdp_10k_yuan * intensity_tce_per_10k_yuan * f_sc_t_c_per_tce
}

/// Shares `w_i / Σ w` of a list of weights (construction area or GDP), summed in order.
/// Returns `None` when the weights sum to zero (nothing to allocate by).
///
/// # Units
/// Dimensionless; the shares sum to 1.
///
/// # References
/// Allocation of provincial/municipal energy emission to counties by construction-land area or
/// GDP share, as in county-level land-use carbon studies (e.g. Zhao Rongqin et al.).
///
/// # Examples
/// ```
/// use pipeline::methods::emission::shares;
/// assert_eq!(shares(&[1.0, 3.0]).unwrap(), vec![0.25, 0.75]);
/// assert!(shares(&[0.0, 0.0]).is_none());
/// ```
#[must_use]
pub fn shares(weights: &[f64]) -> Option<Vec<f64>> {
    let total: f64 = weights.iter().sum();
    if total > 0.0 && total.is_finite() {
        Some(weights.iter().map(|w| w / total).collect())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_method_hand_computed() {
        // Liu et al. 2017 Table 1 factors; consumption of one county in one year:
        //   raw coal 10,000 t:  10000 × 0.7143 × 0.7559 = 5399.3937
        //   diesel    2,000 t:   2000 × 1.4571 × 0.5921 = 1725.49782
        //   gas 500 × 10^4 m3:    500 × 13.3   × 0.4483 = 2981.195
        //   total                                         = 10106.08652 t C
        let factors = [
            FuelFactor {
                theta_tce_per_unit: 0.7143,
                f_t_c_per_tce: 0.7559,
            },
            FuelFactor {
                theta_tce_per_unit: 1.4571,
                f_t_c_per_tce: 0.5921,
            },
            FuelFactor {
                theta_tce_per_unit: 13.3,
                f_t_c_per_tce: 0.4483,
            },
        ];
        let e = energy_emission_t_c(&[10_000.0, 2_000.0, 500.0], &factors);
        assert!((e - 10_106.086_52).abs() < 1e-6, "{e}");
    }

    #[test]
    fn shares_sum_to_one() {
        // property-style: for a spread of weight vectors the shares sum to 1 and keep ratios
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        for n in 1..40 {
            let w: Vec<f64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 10_000) as f64 / 7.0 + 0.001
                })
                .collect();
            let s = shares(&w).unwrap();
            let total: f64 = s.iter().sum();
            assert!((total - 1.0).abs() < 1e-12, "{total}");
            assert!((s[0] / s[n - 1] - w[0] / w[n - 1]).abs() < 1e-9 * (w[0] / w[n - 1]).max(1.0));
        }
    }

    #[test]
    fn henan_order_of_magnitude() {
        // Order of magnitude: Henan's cropland is about 8 Mha; at +0.422 that is ≈ 3.4 Mt C/yr
        // (8e6 × 0.422 = 3.376e6 t C)
        assert!((area_emission_t_c(8.0e6, 0.422) - 3.376e6).abs() < 1e-3);
    }

    #[test]
    fn intensity_fallback() {
        // 1.5e5 × 10^4 yuan × 1.2 tce/10^4 yuan × 0.67 = 120,600 t C
        assert!((intensity_emission_t_c(1.5e5, 1.2, 0.67) - 120_600.0).abs() < 1e-6);
    }
}
