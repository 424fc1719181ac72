//! Carbon-budget indices of a set of units in one year: net emission, carbon intensity,
//! compensation rate, economic contribution coefficient (ECC) and ecological support
//! coefficient (ESC), and the regional totals they are relative to.
//!
//! An index whose denominator is zero (a unit with no emission makes CCR, ECC and ESC
//! infinite) is `None`, never ±∞ or NaN; the stage turns that into a null and a warning.

/// One unit in one year: the budget terms the indices are built from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Gross emission CE, t C (≥ 0).
    pub ce_t_c: f64,
    /// Gross absorption CS (CA in some papers), t C (≥ 0).
    pub cs_t_c: f64,
    /// GDP, 10^4 yuan (> 0).
    pub gdp_10k_yuan: f64,
    /// Population (persons or 10^4 persons, as given), if known.
    pub population: Option<f64>,
}

/// Indices of one unit in one year.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitIndices {
    /// NCE = CE − CS, t C.
    pub nce_t_c: f64,
    /// CI = CE / G, t C per 10^4 yuan.
    pub ci_t_per_10k_yuan: Option<f64>,
    /// CCR = CS / CE.
    pub ccr: Option<f64>,
    /// ECC = (`G_i/G`) / (`CE_i/CE`).
    pub ecc: Option<f64>,
    /// ESC = (`CS_i/CS`) / (`CE_i/CE`).
    pub esc: Option<f64>,
    /// SS = CE / CS (source/sink ratio).
    pub ss: Option<f64>,
    /// CE per person, t C per population unit.
    pub ce_per_capita_t_c: Option<f64>,
}

/// Regional totals of one year.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionTotals {
    pub ce_t_c: f64,
    pub cs_t_c: f64,
    pub gdp_10k_yuan: f64,
    /// Sum of populations, `None` when any unit lacks one.
    pub population: Option<f64>,
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    let r = num / den;
    if den != 0.0 && r.is_finite() {
        Some(r)
    } else {
        None
    }
}

/// Regional totals, summed in the order of `units`.
///
/// # Units
/// As the inputs: t C, 10^4 yuan, population units.
///
/// # References
/// Regional aggregates of the carbon-budget indices (domain notation CE, CA, G, P).
///
/// # Examples
/// ```
/// use pipeline::methods::indices::{Budget, totals};
/// let u = [Budget { ce_t_c: 3.0, cs_t_c: 1.0, gdp_10k_yuan: 10.0, population: None }; 2];
/// assert_eq!(totals(&u).ce_t_c, 6.0);
/// ```
#[must_use]
pub fn totals(units: &[Budget]) -> RegionTotals {
    let mut t = RegionTotals {
        ce_t_c: 0.0,
        cs_t_c: 0.0,
        gdp_10k_yuan: 0.0,
        population: Some(0.0),
    };
    for u in units {
        t.ce_t_c += u.ce_t_c;
        t.cs_t_c += u.cs_t_c;
        t.gdp_10k_yuan += u.gdp_10k_yuan;
        t.population = match (t.population, u.population) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
    t
}

/// The indices of every unit of one year, relative to the regional totals of that year.
///
/// # Units
/// NCE in t C; CI in t C per 10^4 yuan; CCR, ECC, ESC, SS dimensionless; per-capita CE in t C
/// per population unit.
///
/// # References
/// NCE, CI, CCR, SS: carbon-budget indices of the land-use carbon literature (e.g. Zhao Rongqin
/// et al., J. Natural Resources, Henan county carbon compensation). ECC and ESC: Rong et al.,
/// Energies 2020, 13(10), 2600 (lower Yellow River), and the Shaanxi county study,
/// Sustainability 2025, 17(12), 5395.
///
/// # Examples
/// ```
/// use pipeline::methods::indices::{Budget, unit_indices};
/// let units = [
///     Budget { ce_t_c: 100.0, cs_t_c: 20.0, gdp_10k_yuan: 300.0, population: None },
///     Budget { ce_t_c: 300.0, cs_t_c: 60.0, gdp_10k_yuan: 100.0, population: None },
/// ];
/// let ix = unit_indices(&units);
/// // ECC_1 = (300/400) / (100/400) = 3
/// assert_eq!(ix[0].ecc, Some(3.0));
/// ```
#[must_use]
pub fn unit_indices(units: &[Budget]) -> Vec<UnitIndices> {
    let t = totals(units);
    units
        .iter()
        .map(|u| {
            let ce_share = ratio(u.ce_t_c, t.ce_t_c);
            let ce_share = ce_share.filter(|s| *s > 0.0);
            UnitIndices {
                nce_t_c: u.ce_t_c - u.cs_t_c,
                ci_t_per_10k_yuan: ratio(u.ce_t_c, u.gdp_10k_yuan),
                ccr: ratio(u.cs_t_c, u.ce_t_c),
                ecc: ce_share.and_then(|s| ratio(u.gdp_10k_yuan, t.gdp_10k_yuan).map(|g| g / s)),
                esc: ce_share.and_then(|s| ratio(u.cs_t_c, t.cs_t_c).map(|c| c / s)),
                ss: ratio(u.ce_t_c, u.cs_t_c),
                ce_per_capita_t_c: u.population.and_then(|p| ratio(u.ce_t_c, p)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ce: f64, cs: f64, g: f64) -> Budget {
        Budget {
            ce_t_c: ce,
            cs_t_c: cs,
            gdp_10k_yuan: g,
            population: Some(10.0),
        }
    }

    #[test]
    fn hand_computed_three_units() {
        // CE = 100, 200, 700 (total 1000); CS = 50, 150, 50 (total 250); G = 400, 400, 200 (total 1000)
        // unit 1: NCE = 50; CI = 100/400 = 0.25; CCR = 0.5; ECC = (400/1000)/(100/1000) = 4;
        //         ESC = (50/250)/(100/1000) = 0.2/0.1 = 2; SS = 2; per capita 100/10 = 10
        // unit 3: NCE = 650; CI = 3.5; CCR = 50/700; ECC = 0.2/0.7; ESC = 0.2/0.7
        let ix = unit_indices(&[
            b(100.0, 50.0, 400.0),
            b(200.0, 150.0, 400.0),
            b(700.0, 50.0, 200.0),
        ]);
        let close =
            |a: Option<f64>, e: f64| assert!((a.unwrap() - e).abs() < 1e-12, "{a:?} vs {e}");
        assert_eq!(ix[0].nce_t_c, 50.0);
        close(ix[0].ci_t_per_10k_yuan, 0.25);
        close(ix[0].ccr, 0.5);
        close(ix[0].ecc, 4.0);
        close(ix[0].esc, 2.0);
        close(ix[0].ss, 2.0);
        close(ix[0].ce_per_capita_t_c, 10.0);
        assert_eq!(ix[2].nce_t_c, 650.0);
        close(ix[2].ci_t_per_10k_yuan, 3.5);
        close(ix[2].ccr, 50.0 / 700.0);
        close(ix[2].ecc, 0.2 / 0.7);
        close(ix[2].esc, 0.2 / 0.7);
    }

    #[test]
    fn ci_ratio_is_inverse_ecc() {
        // identity CI_i / CI_region = (CE_i/G_i)/(CE/G) = 1 / ECC_i (algebra), on pseudo-random panels
        let mut x = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1_000_000) as f64 / 100.0 + 0.5
        };
        for n in 2..30 {
            let units: Vec<Budget> = (0..n).map(|_| b(next(), next(), next())).collect();
            let t = totals(&units);
            let ci_region = t.ce_t_c / t.gdp_10k_yuan;
            for (u, ix) in units.iter().zip(unit_indices(&units)) {
                let lhs = ix.ci_t_per_10k_yuan.unwrap() / ci_region;
                let rhs = 1.0 / ix.ecc.unwrap();
                assert!((lhs - rhs).abs() < 1e-9 * rhs.max(1.0), "{lhs} {rhs} {u:?}");
            }
            // GDP-weighted mean of ECC^-1... simpler: Σ_i CE-share_i × ECC_i = Σ_i G-share_i = 1
            let s: f64 = units
                .iter()
                .zip(unit_indices(&units))
                .map(|(u, ix)| u.ce_t_c / t.ce_t_c * ix.ecc.unwrap())
                .sum();
            assert!((s - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn zero_emission_unit_has_no_ratio_indices() {
        // unit 2 emits nothing: CCR, ECC, ESC would be infinite -> None; CI = 0 is defined.
        let ix = unit_indices(&[b(100.0, 10.0, 50.0), b(0.0, 10.0, 50.0)]);
        assert_eq!(ix[1].ccr, None);
        assert_eq!(ix[1].ecc, None);
        assert_eq!(ix[1].esc, None);
        assert_eq!(ix[1].ci_t_per_10k_yuan, Some(0.0));
        // and a region with no sink: ESC undefined everywhere, SS undefined
        let ix = unit_indices(&[b(100.0, 0.0, 50.0)]);
        assert_eq!(ix[0].esc, None);
        assert_eq!(ix[0].ss, None);
        assert_eq!(ix[0].ecc, Some(1.0));
    }
}
