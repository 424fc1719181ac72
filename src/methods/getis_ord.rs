//! Getis-Ord local Gi* hot-spot statistic with binary contiguity weights that include the unit
//! itself, and its z-score under the normal approximation.
//!
//! Neighbour lists come from [`SpatialWeights`] (only its neighbour relation is used: every
//! neighbour and the unit itself weigh 1).

use std::fmt;

use crate::methods::moran::normal_sf;
use crate::methods::weights::SpatialWeights;

/// Why Gi* could not be computed.
#[derive(Debug, Clone, PartialEq)]
pub enum GiStarError {
    /// Fewer than two units.
    TooFewUnits { n: usize },
    /// All values are equal: the variance is zero and the z-scores undefined.
    Constant,
    /// The values average to zero: Gi* is a ratio to the total and undefined there.
    ZeroMean,
    /// `values` and the weights have different lengths.
    LengthMismatch { values: usize, units: usize },
}

impl fmt::Display for GiStarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFewUnits { n } => write!(f, "{n} unit(s): Gi* needs at least 2"),
            Self::Constant => f.write_str("all values are equal, so Gi* has no variance"),
            Self::ZeroMean => f.write_str("the values sum to zero, so Gi* is undefined"),
            Self::LengthMismatch { values, units } => {
                write!(f, "{values} values for {units} units")
            }
        }
    }
}

impl std::error::Error for GiStarError {}

/// Per unit: the statistic `G*_i`, its z-score and the one-sided normal p-value.
#[derive(Debug, Clone, PartialEq)]
pub struct GiStar {
    pub g: Vec<f64>,
    pub z: Vec<f64>,
    /// `P(Z > |z|)`: one-sided, as esda's `G_Local.p_norm`.
    pub p_norm: Vec<f64>,
}

/// Getis-Ord Gi* with binary weights `w_ij = 1` for `j` a neighbour of `i` or `j = i`:
///
/// `G*_i = Σ_j w_ij x_j / Σ_j x_j`, `E[G*_i] = W_i / n` with `W_i = Σ_j w_ij = k_i + 1`,
/// `Var[G*_i] = W_i (n − W_i) / (n − 1) · s² / (n² x̄²)` where `x̄` and `s² = Σ x_j²/n − x̄²`
/// are the mean and the (population) variance of all `n` values, and
/// `z_i = (G*_i − E[G*_i]) / sqrt(Var[G*_i])`. Positive z marks a cluster of high values
/// (hot spot), negative a cluster of low values (cold spot).
///
/// # Units
/// `g` is a share of the total (dimensionless); `z` in standard deviations; `p_norm` a
/// probability.
///
/// # References
/// - Ord, J. K. & Getis, A. (1995). Local spatial autocorrelation statistics: distributional
///   issues and an application. *Geographical Analysis* 27(4): 286–306, eqs. (6)–(9) (the
///   moments of Gi* under the normal approximation).
/// - Getis, A. & Ord, J. K. (1992). The analysis of spatial association by use of distance
///   statistics. *Geographical Analysis* 24(3): 189–206.
/// - Equal to PySAL esda 2.9 `G_Local(y, w, transform='B', star=True)`: `Gs`, `Zs`, `p_norm`.
///
/// # Examples
/// ```
/// use pipeline::methods::getis_ord::gi_star;
/// use pipeline::methods::weights::SpatialWeights;
/// // A path 0 – 1 – 2 with values 1, 2, 3: G*_0 = (1 + 2)/6 = ½, W_0 = 2, E = ⅔.
/// let w = SpatialWeights::row_standardised(3, &[(0, 1), (1, 2)]).unwrap();
/// let gi = gi_star(&[1.0, 2.0, 3.0], &w).unwrap();
/// assert!((gi.g[0] - 0.5).abs() < 1e-15);
/// // s² = 14/3 − 4 = ⅔; Var = 2·1/2 · (⅔)/(9·4) = 1/54; z = (½ − ⅔)·√54 = −1.224744871…
/// assert!((gi.z[0] + 54f64.sqrt() / 6.0).abs() < 1e-12);
/// ```
///
/// # Errors
/// Fewer than two units, constant values, values summing to zero, or a length mismatch.
pub fn gi_star(values: &[f64], w: &SpatialWeights) -> Result<GiStar, GiStarError> {
    let n = values.len();
    if n != w.n() {
        return Err(GiStarError::LengthMismatch {
            values: n,
            units: w.n(),
        });
    }
    if n < 2 {
        return Err(GiStarError::TooFewUnits { n });
    }
    let n_f = n as f64;
    let total: f64 = values.iter().sum();
    let mean = total / n_f;
    let variance = values.iter().map(|x| x * x).sum::<f64>() / n_f - mean * mean;
    if mean == 0.0 {
        return Err(GiStarError::ZeroMean);
    }
    if variance <= 0.0 || values.iter().all(|&x| x == values[0]) {
        return Err(GiStarError::Constant);
    }
    let mut out = GiStar {
        g: Vec::with_capacity(n),
        z: Vec::with_capacity(n),
        p_norm: Vec::with_capacity(n),
    };
    for i in 0..n {
        let local: f64 = values[i] + w.neighbours(i).iter().map(|&j| values[j]).sum::<f64>();
        let card = (w.neighbours(i).len() + 1) as f64;
        let g = local / total;
        let expected = card / n_f;
        let var_g = card * (n_f - card) / (n_f - 1.0) / (n_f * n_f) * variance / (mean * mean);
        let z = (g - expected) / var_g.sqrt();
        out.g.push(g);
        out.z.push(z);
        out.p_norm.push(normal_sf(z.abs()));
    }
    Ok(out)
}

/// The hot-spot class of a unit: `hot` (z > 0) or `cold` (z < 0) when `p_norm < alpha`, else
/// `ns`.
///
/// # Examples
/// ```
/// use pipeline::methods::getis_ord::hotspot_class;
/// assert_eq!(hotspot_class(2.5, 0.006, 0.05), "hot");
/// assert_eq!(hotspot_class(-2.5, 0.006, 0.05), "cold");
/// assert_eq!(hotspot_class(1.0, 0.16, 0.05), "ns");
/// ```
pub fn hotspot_class(z: f64, p_norm: f64, alpha: f64) -> &'static str {
    if p_norm < alpha && z > 0.0 {
        "hot"
    } else if p_norm < alpha && z < 0.0 {
        "cold"
    } else {
        "ns"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_linked_to_all_has_no_variance_and_constant_values_are_an_error() {
        // A star: unit 0 touches every other unit, so W_0 = n and Var[G*_0] = 0; z is NaN
        // (0/0) exactly as in esda, and the other units are still defined.
        let w = SpatialWeights::row_standardised(3, &[(0, 1), (0, 2)]).unwrap();
        let gi = gi_star(&[1.0, 2.0, 4.0], &w).unwrap();
        assert!((gi.g[0] - 1.0).abs() < 1e-15);
        assert!(gi.z[0].is_nan());
        assert!(gi.z[1].is_finite());
        assert_eq!(gi_star(&[3.0, 3.0, 3.0], &w), Err(GiStarError::Constant));
        assert_eq!(gi_star(&[1.0, -1.0, 0.0], &w), Err(GiStarError::ZeroMean));
    }
}
