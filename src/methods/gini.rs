//! Inequality of a quantity across units: the Lorenz curve and its Gini coefficient (plain, or
//! against a reference quantity as in the carbon Gini), and the centralization index
//! `(A − R)/(M − R)` of Chinese regional geography.
//!
//! Values and weights are slices indexed by unit; the functions return the unit order they
//! used so callers can label the Lorenz points.

use std::fmt;

/// The conventional Gini alarm threshold ("warning line") of the income-Gini literature.
pub const WARNING_LINE: f64 = 0.4;

/// Why an inequality index could not be computed.
#[derive(Debug, Clone, PartialEq)]
pub enum GiniError {
    /// Fewer than two units: no distribution to measure.
    TooFewUnits { n: usize },
    /// A value or weight is negative (unit index, which quantity, the value).
    Negative {
        unit: usize,
        quantity: Quantity,
        value: f64,
    },
    /// A value or weight is NaN or infinite.
    NotFinite {
        unit: usize,
        quantity: Quantity,
        value: f64,
    },
    /// The quantity sums to zero, so shares are undefined.
    ZeroTotal { quantity: Quantity },
    /// `value` and `weight` have different lengths.
    LengthMismatch { values: usize, weights: usize },
}

/// Which input a [`GiniError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// The distributed quantity (the Lorenz curve's y).
    Value,
    /// The reference quantity (the Lorenz curve's x).
    Weight,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Value => "value",
            Self::Weight => "weight",
        })
    }
}

impl fmt::Display for GiniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFewUnits { n } => {
                write!(f, "{n} unit(s): an inequality index needs at least 2")
            }
            Self::Negative {
                unit,
                quantity,
                value,
            } => write!(f, "unit {unit}: {quantity} {value} is negative"),
            Self::NotFinite {
                unit,
                quantity,
                value,
            } => write!(f, "unit {unit}: {quantity} {value} is not a finite number"),
            Self::ZeroTotal { quantity } => write!(
                f,
                "the {quantity}s sum to zero, so their shares are undefined"
            ),
            Self::LengthMismatch { values, weights } => {
                write!(f, "{values} values but {weights} weights")
            }
        }
    }
}

impl std::error::Error for GiniError {}

/// A Lorenz curve: `points[k] = (X_k, Y_k)` for `k = 0..=n`, from `(0, 0)` to `(1, 1)`, and the
/// unit behind each step (`order[k-1]` is the unit added at point `k`).
#[derive(Debug, Clone, PartialEq)]
pub struct Lorenz {
    pub points: Vec<(f64, f64)>,
    pub order: Vec<usize>,
}

impl Lorenz {
    /// The Gini coefficient of the curve by the trapezoid rule:
    /// `G = 1 − Σ_{k=1..n} (X_k − X_{k−1})(Y_k + Y_{k−1})`.
    ///
    /// # Units
    /// Dimensionless, in `[0, 1)` for a curve below the diagonal.
    ///
    /// # References
    /// 滕飞, 何建坤, 潘勋章 等 (2010). 碳公平的测度: 基于人均历史累计排放的碳基尼系数.
    /// 气候变化研究进展 6(6): 449–455 (trapezoid Lorenz area).
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::gini::lorenz;
    /// // Values 1 and 3 with equal weights: points (0,0), (½,¼), (1,1);
    /// // G = 1 − [½·¼ + ½·(1 + ¼)] = 1 − 0.75 = 0.25.
    /// let curve = lorenz(&[3.0, 1.0], None).unwrap();
    /// assert!((curve.gini() - 0.25).abs() < 1e-15);
    /// ```
    pub fn gini(&self) -> f64 {
        let area2: f64 = self
            .points
            .windows(2)
            .map(|p| (p[1].0 - p[0].0) * (p[1].1 + p[0].1))
            .sum();
        1.0 - area2
    }
}

fn check(values: &[f64], quantity: Quantity) -> Result<(), GiniError> {
    for (unit, &value) in values.iter().enumerate() {
        if !value.is_finite() {
            return Err(GiniError::NotFinite {
                unit,
                quantity,
                value,
            });
        }
        if value < 0.0 {
            return Err(GiniError::Negative {
                unit,
                quantity,
                value,
            });
        }
    }
    Ok(())
}

/// The Lorenz curve of `value` against `weight` (or against equal shares `1/n` when `weight`
/// is `None`).
///
/// Units are sorted by `r_i = value_i / weight_i` ascending (ties keep the input order, which
/// does not change the curve: tied units lie on one straight segment). A unit with weight 0
/// has `r_i = +∞` and sorts last: it adds a vertical step (emission with no sink). With
/// `weight = None` the order is by value, giving the ordinary Lorenz curve.
///
/// Cumulative shares are running sums divided by the total summed in the same order, so the
/// last point is exactly `(1, 1)`.
///
/// # Errors
/// [`GiniError`] on fewer than 2 units, a negative or non-finite value or weight, a zero
/// total of either, or slices of different lengths.
///
/// # Units
/// `value` and `weight` in any units (t C for the carbon Gini); the points are shares in `[0, 1]`.
///
/// # References
/// - Lorenz, M. O. (1905). Methods of measuring the concentration of wealth. *Publications of
///   the American Statistical Association* 9(70): 209–219.
/// - 滕飞 et al. (2010), 气候变化研究进展 6(6): 449–455 (the carbon Gini: emission shares
///   against shares of a reference quantity, units ordered by emission per unit reference).
///
/// # Examples
/// ```
/// use pipeline::methods::gini::lorenz;
/// // Emission 2 and 6 t C against sinks 4 and 4 t C: r = ½, 3/2, so the points are
/// // (0,0), (½, ¼), (1, 1) and the carbon Gini is 0.25.
/// let curve = lorenz(&[2.0, 6.0], Some(&[4.0, 4.0])).unwrap();
/// assert_eq!(curve.points, vec![(0.0, 0.0), (0.5, 0.25), (1.0, 1.0)]);
/// assert!((curve.gini() - 0.25).abs() < 1e-15);
/// ```
pub fn lorenz(value: &[f64], weight: Option<&[f64]>) -> Result<Lorenz, GiniError> {
    let n = value.len();
    if let Some(w) = weight
        && w.len() != n
    {
        return Err(GiniError::LengthMismatch {
            values: n,
            weights: w.len(),
        });
    }
    if n < 2 {
        return Err(GiniError::TooFewUnits { n });
    }
    check(value, Quantity::Value)?;
    if let Some(w) = weight {
        check(w, Quantity::Weight)?;
    }
    // Each ratio computed once, not once per comparison (the sort is the curve's main cost).
    let key: std::borrow::Cow<'_, [f64]> = match weight {
        None => value.into(),
        Some(w) => value
            .iter()
            .zip(w)
            .map(|(v, w)| if *w == 0.0 { f64::INFINITY } else { v / w })
            .collect::<Vec<f64>>()
            .into(),
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| key[a].total_cmp(&key[b]));

    let x_of = |i: usize| weight.map_or(1.0, |w| w[i]);
    let total_x: f64 = order.iter().map(|&i| x_of(i)).sum();
    let total_y: f64 = order.iter().map(|&i| value[i]).sum();
    if total_y == 0.0 {
        return Err(GiniError::ZeroTotal {
            quantity: Quantity::Value,
        });
    }
    if total_x == 0.0 {
        return Err(GiniError::ZeroTotal {
            quantity: Quantity::Weight,
        });
    }
    let mut points = Vec::with_capacity(n + 1);
    points.push((0.0, 0.0));
    let (mut cx, mut cy) = (0.0, 0.0);
    for &i in &order {
        cx += x_of(i);
        cy += value[i];
        points.push((cx / total_x, cy / total_y));
    }
    Ok(Lorenz { points, order })
}

/// The ordinary Gini coefficient of `values` (Lorenz curve with each unit weighted `1/n`).
///
/// Equals the mean absolute difference over twice the mean, `Σ_i Σ_j |x_i − x_j| / (2 n² x̄)`,
/// which is what PySAL's `inequality.gini.Gini` computes.
///
/// # Errors
/// As [`lorenz`].
///
/// # Units
/// Dimensionless; `values` in any units, all ≥ 0.
///
/// # References
/// - Gini, C. (1912). *Variabilità e mutabilità*. Bologna.
/// - 滕飞 et al. (2010), 气候变化研究进展 6(6): 449–455 (trapezoid form used here).
///
/// # Examples
/// ```
/// use pipeline::methods::gini::gini;
/// // One unit of four holds everything: G = 1 − 1/n = 0.75.
/// assert!((gini(&[0.0, 0.0, 0.0, 8.0]).unwrap() - 0.75).abs() < 1e-15);
/// ```
pub fn gini(values: &[f64]) -> Result<f64, GiniError> {
    Ok(lorenz(values, None)?.gini())
}

/// The carbon Gini of `emission_t_c` against `reference` (e.g. sinks `cs_t_c`, or GDP): the
/// Gini of the Lorenz curve of [`lorenz`] with `weight = reference`.
///
/// # Errors
/// As [`lorenz`].
///
/// # Units
/// Dimensionless; `emission_t_c` in t C, `reference` in its own units (t C for sinks).
///
/// # References
/// 滕飞 et al. (2010), 气候变化研究进展 6(6): 449–455.
///
/// # Examples
/// ```
/// use pipeline::methods::gini::carbon_gini;
/// // Emissions proportional to sinks: the curve is the diagonal and G = 0.
/// assert!(carbon_gini(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]).unwrap().abs() < 1e-15);
/// ```
pub fn carbon_gini(emission_t_c: &[f64], reference: &[f64]) -> Result<f64, GiniError> {
    Ok(lorenz(emission_t_c, Some(reference))?.gini())
}

/// The centralization index `I = (A − R)/(M − R)` of `values`.
///
/// Units are ranked by value descending; `A` is the sum over `k = 1..n` of the cumulative
/// percentage (0–100) held by the first `k` units, `R = 50(n + 1)` the same sum for an even
/// distribution and `M = 100 n` for one unit holding everything. `I ∈ [0, 1]`: 0 even,
/// 1 fully concentrated. With `n` units, `I = Gini × n/(n − 1)` (ordinary Gini).
///
/// # Errors
/// As [`lorenz`].
///
/// # Units
/// Dimensionless; `values` in any units, all ≥ 0.
///
/// # References
/// The 集中化指数 of Chinese regional and industrial geography, e.g. applied to land-use carbon
/// budgets in the "carbon budget concentration index" literature; the identity with the Gini
/// follows from Gini (1912) by summation by parts.
///
/// # Examples
/// ```
/// use pipeline::methods::gini::centralization_index;
/// // 30, 10 (n = 2): cumulative % 75, 100 → A = 175, R = 150, M = 200 → I = 0.5.
/// assert!((centralization_index(&[10.0, 30.0]).unwrap() - 0.5).abs() < 1e-12);
/// ```
pub fn centralization_index(values: &[f64]) -> Result<f64, GiniError> {
    let n = values.len();
    if n < 2 {
        return Err(GiniError::TooFewUnits { n });
    }
    check(values, Quantity::Value)?;
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = sorted.iter().sum();
    if total == 0.0 {
        return Err(GiniError::ZeroTotal {
            quantity: Quantity::Value,
        });
    }
    let mut cum = 0.0;
    let mut a = 0.0;
    for v in sorted {
        cum += v;
        a += 100.0 * cum / total;
    }
    let nf = n as f64;
    let r = 50.0 * (nf + 1.0);
    let m = 100.0 * nf;
    Ok((a - r) / (m - r))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 6-unit fixture of tests/fixtures/stats/gini_expected.json (t C).
    const CE: [f64; 6] = [120.0, 45.0, 300.0, 15.0, 80.0, 240.0];
    const CS: [f64; 6] = [60.0, 90.0, 30.0, 75.0, 40.0, 15.0];

    #[test]
    fn plain_gini_matches_pysal_inequality() {
        // inequality 1.1.2: inequality.gini.Gini(CE).g = 0.4270833333333333 (reference.py).
        // By hand: sorted 15, 45, 80, 120, 240, 300 (total 800);
        // G = Σ_i (2i − n − 1) x_(i) / (n Σx) = (−5·15 − 3·45 − 80 + 120 + 3·240 + 5·300)/(6·800)
        //   = 2050/4800 = 0.42708333…
        assert!((gini(&CE).unwrap() - 0.427_083_333_333_333_3).abs() < 1e-12);
        // inequality.gini.Gini(CS).g = 0.2849462365591398.
        assert!((gini(&CS).unwrap() - 0.284_946_236_559_139_8).abs() < 1e-12);
    }

    #[test]
    fn carbon_gini_by_hand() {
        // r = CE/CS: 2, 0.5, 10, 0.2, 2, 16 → order units 3, 1, 0, 4, 2, 5 (tie 0/4 keeps input order).
        // Totals: CE 800, CS 310.
        //   k  unit  CS   CE    X_k          Y_k
        //   1   3    75   15    75/310       15/800
        //   2   1    90   45   165/310       60/800
        //   3   0    60  120   225/310      180/800
        //   4   4    40   80   265/310      260/800
        //   5   2    30  300   295/310      560/800
        //   6   5    15  240   310/310      800/800
        // Σ (X_k − X_{k−1})(Y_k + Y_{k−1}) · 310·800 = 75·15 + 90·75 + 60·240 + 40·440 + 30·820 + 15·1360
        //   = 1125 + 6750 + 14400 + 17600 + 24600 + 20400 = 84875
        // G = 1 − 84875/248000 = 0.657762096774…  (reference.py's independent loop: 0.6577620967741936)
        let g = carbon_gini(&CE, &CS).unwrap();
        assert!((g - (1.0 - 84_875.0 / 248_000.0)).abs() < 1e-12);
        assert!((g - 0.657_762_096_774_193_6).abs() < 1e-12);
    }

    #[test]
    fn centralization_by_hand_and_identity() {
        // Descending 300, 240, 120, 80, 45, 15 of 800: cumulative % 37.5, 67.5, 82.5, 92.5, 98.125, 100
        // A = 478.125, R = 50·7 = 350, M = 600 → I = 128.125/250 = 0.5125 (reference.py: 0.5125).
        let i = centralization_index(&CE).unwrap();
        assert!((i - 0.5125).abs() < 1e-12);
        // Identity I = Gini × n/(n − 1) (algebra in docs/methods.md): 0.42708333 × 6/5 = 0.5125.
        assert!((i - gini(&CE).unwrap() * 6.0 / 5.0).abs() < 1e-12);
        assert!((centralization_index(&CS).unwrap() - gini(&CS).unwrap() * 1.2).abs() < 1e-12);
    }

    #[test]
    fn centralization_extremes() {
        assert!(centralization_index(&[7.0; 5]).unwrap().abs() < 1e-12);
        assert!((centralization_index(&[0.0, 0.0, 9.0, 0.0]).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn lorenz_ends_at_one_one_and_handles_zero_weight() {
        // A unit with sink 0 sorts last (r = ∞) and adds a vertical step at X = 1.
        let curve = lorenz(&[1.0, 2.0, 1.0], Some(&[1.0, 0.0, 3.0])).unwrap();
        assert_eq!(curve.order, vec![2, 0, 1]);
        assert_eq!(*curve.points.last().unwrap(), (1.0, 1.0));
        assert_eq!(curve.points[2], (1.0, 0.5));
        // X: 0, ¾, 1, 1; Y: 0, ¼, ½, 1 → Σ = ¾·¼ + ¼·¾ + 0 = 0.375 → G = 0.625.
        assert!((curve.gini() - 0.625).abs() < 1e-15);
        let c = lorenz(&CE, Some(&CS)).unwrap();
        assert_eq!(*c.points.last().unwrap(), (1.0, 1.0));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(gini(&[1.0]), Err(GiniError::TooFewUnits { n: 1 }));
        assert_eq!(
            gini(&[1.0, -2.0]),
            Err(GiniError::Negative {
                unit: 1,
                quantity: Quantity::Value,
                value: -2.0
            })
        );
        assert_eq!(
            carbon_gini(&[1.0, 2.0], &[1.0, -1.0]),
            Err(GiniError::Negative {
                unit: 1,
                quantity: Quantity::Weight,
                value: -1.0
            })
        );
        assert_eq!(
            gini(&[0.0, 0.0]),
            Err(GiniError::ZeroTotal {
                quantity: Quantity::Value
            })
        );
        assert_eq!(
            carbon_gini(&[1.0, 2.0], &[0.0, 0.0]),
            Err(GiniError::ZeroTotal {
                quantity: Quantity::Weight
            })
        );
        assert!(matches!(
            gini(&[1.0, f64::NAN]),
            Err(GiniError::NotFinite { unit: 1, .. })
        ));
    }
}
