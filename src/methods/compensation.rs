//! Horizontal carbon compensation: the compensation quantity `Q_i = CE_i − CE*_i` under an
//! allowance convention, its value at a carbon price, and the "modified" value scaled by the
//! Pearl-curve willingness to pay and the ability to pay, with an optional rescaling so that
//! total paid equals total received.
//!
//! Sign: `Q_i > 0` pays, `Q_i < 0` receives.

use serde::{Deserialize, Serialize};

use crate::methods::indices::{Budget, totals};

/// How the allowance `CE*_i` of each unit is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Convention {
    /// `CE*_i = CA_i`: `Q_i = NCE_i`.
    OwnSink,
    /// `CE*_i = CA · G_i/G`: the regional sink shared by GDP.
    SinkByGdpShare,
    /// `CE*_i = CA · P_i/P`: the regional sink shared by population.
    SinkByPopulationShare,
    /// `Q_i = NCE_i − NCE · G_i/G`: the regional net emission shared by GDP (zero-sum).
    NetByGdpShare,
    /// `Q_i = CE_i − CA_i · CE/CA`: regional emission shared by sink share (zero-sum).
    EmissionBySinkShare,
    /// `CE*_i = G_i · CE/G`: the regional average emission intensity (zero-sum).
    IntensityEmission,
    /// `CE*_i = G_i · NCE/G`: the regional average net-emission intensity.
    IntensityNet,
}

impl Convention {
    /// Every convention, in output order.
    pub const ALL: [Convention; 7] = [
        Convention::OwnSink,
        Convention::SinkByGdpShare,
        Convention::SinkByPopulationShare,
        Convention::NetByGdpShare,
        Convention::EmissionBySinkShare,
        Convention::IntensityEmission,
        Convention::IntensityNet,
    ];

    /// The YAML / output name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Convention::OwnSink => "own_sink",
            Convention::SinkByGdpShare => "sink_by_gdp_share",
            Convention::SinkByPopulationShare => "sink_by_population_share",
            Convention::NetByGdpShare => "net_by_gdp_share",
            Convention::EmissionBySinkShare => "emission_by_sink_share",
            Convention::IntensityEmission => "intensity_emission",
            Convention::IntensityNet => "intensity_net",
        }
    }

    /// Whether `Σ Q_i = 0` by construction.
    #[must_use]
    pub fn zero_sum(self) -> bool {
        matches!(
            self,
            Convention::NetByGdpShare
                | Convention::EmissionBySinkShare
                | Convention::IntensityEmission
        )
    }

    /// Whether the convention needs populations.
    #[must_use]
    pub fn needs_population(self) -> bool {
        matches!(self, Convention::SinkByPopulationShare)
    }
}

/// Compensation quantities `Q_i = CE_i − CE*_i` of all units of one year.
///
/// `None` where the convention is undefined: population shares without populations, or
/// `EmissionBySinkShare` in a year whose regional sink is zero.
///
/// # Units
/// t C (inputs in t C, GDP in 10^4 yuan, population in any consistent unit).
///
/// # References
/// Allowance conventions of horizontal carbon compensation: own sink and the compensation rate
/// (Zhao Rongqin et al., J. Natural Resources, Henan counties); intensity-corrected thresholds
/// (E Shixuan, Li Qin, Zhang Luyang, Bull. Soil Water Conserv. 2023, 43(1): 300–306).
///
/// # Examples
/// ```
/// use pipeline::methods::compensation::{Convention, quantities_t_c};
/// use pipeline::methods::indices::Budget;
/// let units = [
///     Budget { ce_t_c: 100.0, cs_t_c: 20.0, gdp_10k_yuan: 300.0, population: None },
///     Budget { ce_t_c: 300.0, cs_t_c: 60.0, gdp_10k_yuan: 100.0, population: None },
/// ];
/// // own sink: Q = NCE
/// assert_eq!(quantities_t_c(Convention::OwnSink, &units), vec![Some(80.0), Some(240.0)]);
/// ```
#[must_use]
pub fn quantities_t_c(convention: Convention, units: &[Budget]) -> Vec<Option<f64>> {
    let t = totals(units);
    let nce = t.ce_t_c - t.cs_t_c;
    units
        .iter()
        .map(|u| {
            let g_share = u.gdp_10k_yuan / t.gdp_10k_yuan;
            let q = match convention {
                Convention::OwnSink => u.ce_t_c - u.cs_t_c,
                Convention::SinkByGdpShare => u.ce_t_c - t.cs_t_c * g_share,
                Convention::SinkByPopulationShare => match (u.population, t.population) {
                    (Some(p), Some(total)) if total > 0.0 => u.ce_t_c - t.cs_t_c * p / total,
                    _ => return None,
                },
                Convention::NetByGdpShare => (u.ce_t_c - u.cs_t_c) - nce * g_share,
                Convention::EmissionBySinkShare => {
                    if t.cs_t_c <= 0.0 {
                        return None;
                    }
                    u.ce_t_c - u.cs_t_c * t.ce_t_c / t.cs_t_c
                }
                Convention::IntensityEmission => u.ce_t_c - t.ce_t_c * g_share,
                Convention::IntensityNet => u.ce_t_c - nce * g_share,
            };
            q.is_finite().then_some(q)
        })
        .collect()
}

/// Combined Engel coefficient `En = Ea·φ + Eb·(1 − φ)`.
///
/// # Units
/// Fractions: Engel coefficients and the urbanisation rate φ all in 0–1.
///
/// # References
/// Zhao Qing, Xu Hao, Guo Niandong 2017, Chinese Journal of Eco-Agriculture 25(7): 1052–1059.
///
/// # Examples
/// ```
/// use pipeline::methods::compensation::combined_engel;
/// // urban 0.30, rural 0.40, urbanisation 0.60 -> 0.18 + 0.16 = 0.34
/// assert!((combined_engel(0.30, 0.40, 0.60) - 0.34).abs() < 1e-12);
/// ```
#[must_use]
pub fn combined_engel(urban: f64, rural: f64, urbanization: f64) -> f64 {
    urban * urbanization + rural * (1.0 - urbanization)
}

/// How the development stage `t` of the Pearl curve is taken from the Engel coefficient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageRule {
    /// `t = 1/En − 3` (Li Jinchang lineage; most papers).
    InverseMinus3,
    /// `t = En` (Zhao Qing et al. 2017).
    Engel,
}

/// Development stage `t` from the Engel coefficient.
///
/// # Units
/// `engel` a fraction (0–1]; `t` dimensionless.
///
/// # References
/// `t = 1/En − 3`: Li Jinchang's ecological-value lineage; `t = En`: Zhao Qing et al. 2017,
/// Chinese Journal of Eco-Agriculture 25(7): 1052–1059, eqs. (9)–(11).
///
/// # Examples
/// ```
/// use pipeline::methods::compensation::{StageRule, development_stage};
/// assert!((development_stage(0.25, StageRule::InverseMinus3) - 1.0).abs() < 1e-12);
/// ```
#[must_use]
pub fn development_stage(engel: f64, rule: StageRule) -> f64 {
    match rule {
        StageRule::InverseMinus3 => 1.0 / engel - 3.0,
        StageRule::Engel => engel,
    }
}

/// Willingness to pay from the Pearl growth curve with `l_max = a = b = 1`,
/// `L = 1 / (1 + e^(−t))`.
///
/// # Units
/// Dimensionless, in (0, 1).
///
/// # References
/// Zhao Qing, Xu Hao, Guo Niandong 2017, Chinese Journal of Eco-Agriculture 25(7):
/// 1052–1059, eqs. (9)–(11).
///
/// # Examples
/// ```
/// use pipeline::methods::compensation::pearl_willingness;
/// assert_eq!(pearl_willingness(0.0), 0.5);
/// // t = 1: 1/(1 + e^-1) = 0.7310585786300049
/// assert!((pearl_willingness(1.0) - 0.731_058_578_630_004_9).abs() < 1e-15);
/// ```
#[must_use]
pub fn pearl_willingness(t: f64) -> f64 {
    1.0 / (1.0 + (-t).exp())
}

/// Ability to pay, GDP per capita relative to the region: `AP_i = (G_i/P_i) / (G/P)`.
///
/// # Units
/// Dimensionless; GDP and population in any consistent units.
///
/// # References
/// Ability-to-pay correction of ecological compensation, e.g. Ma Mingjuan, Li Qiang, Zhou
/// Wenrui 2021, Yellow River 43(12): 5–11.
///
/// # Examples
/// ```
/// use pipeline::methods::compensation::ability_to_pay;
/// // unit 200/10 = 20 per head; region 1000/100 = 10 -> AP = 2
/// assert_eq!(ability_to_pay(200.0, 10.0, 1000.0, 100.0), 2.0);
/// ```
#[must_use]
pub fn ability_to_pay(gdp: f64, population: f64, region_gdp: f64, region_population: f64) -> f64 {
    (gdp / population) / (region_gdp / region_population)
}

/// Which side a rescaling keeps fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rescale {
    /// Receipts are scaled so that they add up to the payments.
    #[default]
    Payments,
    /// Payments are scaled so that they add up to the receipts.
    Receipts,
    /// Both sides are scaled to the mean of the two totals.
    Mean,
}

/// Rescales payments (> 0) and receipts (< 0) separately so that their totals match.
/// `None` entries stay `None`. Returns `None` when one side is empty and the other is not.
///
/// # Units
/// As the input values (yuan).
///
/// # References
/// Zero-sum balancing of horizontal transfers: the per-unit factors `L_i` and `AP_i` of the modified
/// model (Zhao Qing, Xu Hao & Guo Niandong 2017, Chinese J. Eco-Agriculture 25(7): 1052–1059)
/// break Σ `V_i` = 0, so payments and receipts are rescaled separately to meet.
///
/// # Examples
/// ```
/// use pipeline::methods::compensation::{Rescale, rescale_balanced};
/// let v = rescale_balanced(&[Some(30.0), Some(-10.0), Some(-5.0)], Rescale::Payments).unwrap();
/// assert_eq!(v, vec![Some(30.0), Some(-20.0), Some(-10.0)]);
/// ```
#[must_use]
pub fn rescale_balanced(values: &[Option<f64>], rescale: Rescale) -> Option<Vec<Option<f64>>> {
    let paid: f64 = values.iter().flatten().filter(|v| **v > 0.0).sum();
    let received: f64 = -values.iter().flatten().filter(|v| **v < 0.0).sum::<f64>();
    if paid == 0.0 && received == 0.0 {
        return Some(values.to_vec());
    }
    if paid == 0.0 || received == 0.0 {
        return None;
    }
    let (pay_scale, receive_scale) = match rescale {
        Rescale::Payments => (1.0, paid / received),
        Rescale::Receipts => (received / paid, 1.0),
        Rescale::Mean => {
            let m = 0.5 * (paid + received);
            (m / paid, m / received)
        }
    };
    Some(
        values
            .iter()
            .map(|v| {
                v.map(|x| {
                    if x > 0.0 {
                        x * pay_scale
                    } else {
                        x * receive_scale
                    }
                })
            })
            .collect(),
    )
}

/// Role of a unit from its quantity: `payer` if `Q > band`, `receiver` if `Q < −band`,
/// otherwise `balanced`; `band = max(abs_t_c, rel · CE_i)`.
///
/// # Units
/// `q_t_c`, `abs_t_c`, `ce_t_c` in t C; `rel` a fraction.
///
/// # References
/// Payment / balanced / compensated zones with a balance band (Xu Hongwen et al., Sci. Rep. 15:3266, 2025).
///
/// # Examples
/// ```
/// use pipeline::methods::compensation::role;
/// assert_eq!(role(5.0, 0.0, 0.1, 100.0), "balanced");
/// assert_eq!(role(-15.0, 0.0, 0.1, 100.0), "receiver");
/// ```
#[must_use]
pub fn role(q_t_c: f64, abs_t_c: f64, rel: f64, ce_t_c: f64) -> &'static str {
    let band = abs_t_c.max(rel * ce_t_c.abs());
    if q_t_c > band {
        "payer"
    } else if q_t_c < -band {
        "receiver"
    } else {
        "balanced"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ce: f64, cs: f64, g: f64, p: f64) -> Budget {
        Budget {
            ce_t_c: ce,
            cs_t_c: cs,
            gdp_10k_yuan: g,
            population: Some(p),
        }
    }

    fn units() -> Vec<Budget> {
        // CE 100, 200, 700 (1000); CS 50, 150, 50 (250); G 400, 400, 200 (1000); P 10, 30, 60 (100)
        vec![
            b(100.0, 50.0, 400.0, 10.0),
            b(200.0, 150.0, 400.0, 30.0),
            b(700.0, 50.0, 200.0, 60.0),
        ]
    }

    #[test]
    fn quantities_hand_computed() {
        let u = units();
        let q = |c| {
            quantities_t_c(c, &u)
                .into_iter()
                .map(Option::unwrap)
                .collect::<Vec<_>>()
        };
        // own sink: NCE = 50, 50, 650
        assert_eq!(q(Convention::OwnSink), vec![50.0, 50.0, 650.0]);
        // sink by GDP: 100 − 250·0.4 = 0, 200 − 100 = 100, 700 − 50 = 650
        assert_eq!(q(Convention::SinkByGdpShare), vec![0.0, 100.0, 650.0]);
        // sink by population: 100 − 25 = 75, 200 − 75 = 125, 700 − 150 = 550
        assert_eq!(
            q(Convention::SinkByPopulationShare),
            vec![75.0, 125.0, 550.0]
        );
        // net by GDP (NCE = 750): 50 − 300 = −250, 50 − 300 = −250, 650 − 150 = 500
        assert_eq!(q(Convention::NetByGdpShare), vec![-250.0, -250.0, 500.0]);
        // emission by sink share (CE/CA = 4): 100 − 200 = −100, 200 − 600 = −400, 700 − 200 = 500
        assert_eq!(
            q(Convention::EmissionBySinkShare),
            vec![-100.0, -400.0, 500.0]
        );
        // intensity emission (CE/G = 1): 100 − 400 = −300, 200 − 400 = −200, 700 − 200 = 500
        assert_eq!(
            q(Convention::IntensityEmission),
            vec![-300.0, -200.0, 500.0]
        );
        // intensity net (NCE/G = 0.75): 100 − 300 = −200, 200 − 300 = −100, 700 − 150 = 550
        assert_eq!(q(Convention::IntensityNet), vec![-200.0, -100.0, 550.0]);
    }

    #[test]
    fn zero_sum_conventions_sum_to_zero() {
        let mut x = 0xD1B5_4A32_D192_ED03_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 1_000_000) as f64 / 37.0 + 0.1
        };
        for n in 2..40 {
            let u: Vec<Budget> = (0..n).map(|_| b(next(), next(), next(), next())).collect();
            for c in Convention::ALL.into_iter().filter(|c| c.zero_sum()) {
                let q: Vec<f64> = quantities_t_c(c, &u)
                    .into_iter()
                    .map(Option::unwrap)
                    .collect();
                let sum: f64 = q.iter().sum();
                let scale: f64 = q.iter().map(|v| v.abs()).sum();
                assert!(sum.abs() <= 1e-9 * scale, "{c:?}: {sum} of {scale}");
            }
        }
    }

    #[test]
    fn pearl_and_engel() {
        // En = 0.35·0.6 + 0.45·0.4 = 0.21 + 0.18 = 0.39; t = 1/0.39 − 3 = −0.435897…;
        // L = 1/(1 + e^0.4358974) = 1/(1 + 1.5463473) = 0.3927190 (computed with Python math.exp)
        let en = combined_engel(0.35, 0.45, 0.6);
        assert!((en - 0.39).abs() < 1e-12);
        let t = development_stage(en, StageRule::InverseMinus3);
        assert!((t + 0.435_897_4).abs() < 1e-6);
        assert!((pearl_willingness(t) - 0.392_719_0).abs() < 1e-7);
        // t = En rule (Zhao Qing 2017): L = 1/(1 + e^-0.39) = 1/(1 + 0.677057) = 0.596283
        assert!(
            (pearl_willingness(development_stage(en, StageRule::Engel)) - 0.596_283).abs() < 1e-6
        );
    }

    #[test]
    fn rescaling_balances_totals() {
        let v = [Some(60.0), Some(-10.0), None, Some(-30.0)];
        for r in [Rescale::Payments, Rescale::Receipts, Rescale::Mean] {
            let out = rescale_balanced(&v, r).unwrap();
            let sum: f64 = out.iter().flatten().sum();
            assert!(sum.abs() < 1e-12, "{r:?} {out:?}");
            assert_eq!(out[2], None);
        }
        // mean: totals 60 and 40 -> both 50: 60 -> 50; −10 -> −12.5; −30 -> −37.5
        assert_eq!(
            rescale_balanced(&v, Rescale::Mean).unwrap(),
            vec![Some(50.0), Some(-12.5), None, Some(-37.5)]
        );
        assert!(rescale_balanced(&[Some(5.0), Some(0.0)], Rescale::Payments).is_none());
    }
}
