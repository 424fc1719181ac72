//! Theil's T index of a positive quantity across units and its decomposition into the
//! inequality between groups of units and the inequality within them.
//!
//! Values are a slice indexed by unit; groups are a parallel slice of group labels. Every value
//! must be strictly positive: `ln(y_i/ȳ)` is undefined at zero.

use std::collections::BTreeMap;
use std::fmt;

/// Why Theil's index could not be computed.
#[derive(Debug, Clone, PartialEq)]
pub enum TheilError {
    /// Fewer than two units: no distribution to measure.
    TooFewUnits { n: usize },
    /// A value is zero or negative (unit index, the value); the logarithm is undefined.
    NotPositive { unit: usize, value: f64 },
    /// A value is NaN or infinite.
    NotFinite { unit: usize, value: f64 },
    /// `values` and `groups` have different lengths.
    LengthMismatch { values: usize, groups: usize },
}

impl fmt::Display for TheilError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFewUnits { n } => write!(f, "{n} unit(s): Theil's index needs at least 2"),
            Self::NotPositive { unit, value } => {
                write!(f, "unit {unit}: value {value} is not positive")
            }
            Self::NotFinite { unit, value } => {
                write!(f, "unit {unit}: value {value} is not a finite number")
            }
            Self::LengthMismatch { values, groups } => {
                write!(f, "{values} values but {groups} group labels")
            }
        }
    }
}

impl std::error::Error for TheilError {}

/// Theil's T split into the parts between and within groups: `total = between + within`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TheilDecomposition {
    pub total: f64,
    pub between: f64,
    pub within: f64,
}

fn check(values: &[f64]) -> Result<(), TheilError> {
    if values.len() < 2 {
        return Err(TheilError::TooFewUnits { n: values.len() });
    }
    for (unit, &value) in values.iter().enumerate() {
        if !value.is_finite() {
            return Err(TheilError::NotFinite { unit, value });
        }
        if value <= 0.0 {
            return Err(TheilError::NotPositive { unit, value });
        }
    }
    Ok(())
}

/// Theil's T: `T = 1/n Σ_i (y_i/ȳ) ln(y_i/ȳ) = Σ_i s_i ln(n s_i)` with shares `s_i = y_i / Σ y`.
///
/// # Units
/// Dimensionless, in `[0, ln n]`: 0 when all values are equal, `ln n` when one unit holds all.
///
/// # References
/// Theil, H. (1967). *Economics and Information Theory*. Amsterdam: North-Holland, ch. 4
/// (the entropy index T). Same definition as PySAL `inequality.theil.Theil` (Rey & Sastré-Gutiérrez
/// 2010, *Journal of Geographical Systems* 12(3): 265–284).
///
/// # Examples
/// ```
/// use pipeline::methods::theil::theil;
/// // Values 1 and 3: shares ¼ and ¾, T = ¼ ln(½) + ¾ ln(3/2) = 0.130812035941137…
/// let t = theil(&[1.0, 3.0]).unwrap();
/// assert!((t - (0.25 * 0.5f64.ln() + 0.75 * 1.5f64.ln())).abs() < 1e-15);
/// ```
///
/// # Errors
/// Fewer than two units, or a value that is not finite and strictly positive.
pub fn theil(values: &[f64]) -> Result<f64, TheilError> {
    check(values)?;
    let total: f64 = values.iter().sum();
    let n = values.len() as f64;
    Ok(values
        .iter()
        .map(|&y| {
            let s = y / total;
            s * (n * s).ln()
        })
        .sum())
}

/// Theil's T with its between-group part `T_b = Σ_g s_g ln(s_g · n / n_g)` (group shares `s_g`
/// of the total, `n_g` units in group g) and the within-group part `T_w = T − T_b`
/// (= `Σ_g s_g T_g`, the share-weighted Theil index inside each group).
///
/// # Units
/// Dimensionless, like [`theil`].
///
/// # References
/// Shorrocks, A. F. (1980). The class of additively decomposable inequality measures.
/// *Econometrica* 48(3): 613–625. Same partition as PySAL `inequality.theil.TheilD`.
///
/// # Examples
/// ```
/// use pipeline::methods::theil::theil_decomposition;
/// // Two groups of two equal units each (1, 1 | 3, 3): all the inequality lies between them.
/// let d = theil_decomposition(&[1.0, 1.0, 3.0, 3.0], &["a", "a", "b", "b"]).unwrap();
/// assert!((d.between - d.total).abs() < 1e-15 && d.within.abs() < 1e-15);
/// ```
///
/// # Errors
/// As [`theil`], or group labels not parallel to the values.
pub fn theil_decomposition<G: Ord>(
    values: &[f64],
    groups: &[G],
) -> Result<TheilDecomposition, TheilError> {
    if values.len() != groups.len() {
        return Err(TheilError::LengthMismatch {
            values: values.len(),
            groups: groups.len(),
        });
    }
    let total_t = theil(values)?;
    let total: f64 = values.iter().sum();
    let mut by_group: BTreeMap<&G, (f64, usize)> = BTreeMap::new();
    for (&y, g) in values.iter().zip(groups) {
        let entry = by_group.entry(g).or_insert((0.0, 0));
        entry.0 += y;
        entry.1 += 1;
    }
    let n = values.len() as f64;
    let between: f64 = by_group
        .values()
        .map(|&(sum, count)| {
            let s = sum / total;
            s * (s * n / count as f64).ln()
        })
        .sum();
    Ok(TheilDecomposition {
        total: total_t,
        between,
        within: total_t - between,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_give_zero_and_one_holder_tends_to_ln_n() {
        assert!(theil(&[5.0; 4]).unwrap().abs() < 1e-15);
        // One unit holds almost all: T → ln 4.
        let t = theil(&[1e-12, 1e-12, 1e-12, 1.0]).unwrap();
        assert!((t - 4f64.ln()).abs() < 1e-9, "{t}");
    }

    #[test]
    fn within_is_the_share_weighted_theil_of_each_group() {
        // Hand check of T_w = Σ_g s_g T_g: groups {1, 3} and {2, 6}, total 12.
        let v = [1.0, 3.0, 2.0, 6.0];
        let d = theil_decomposition(&v, &[0, 0, 1, 1]).unwrap();
        let t_a = theil(&[1.0, 3.0]).unwrap();
        let t_b = theil(&[2.0, 6.0]).unwrap();
        let expected = 4.0 / 12.0 * t_a + 8.0 / 12.0 * t_b;
        assert!((d.within - expected).abs() < 1e-15);
        assert!((d.between + d.within - d.total).abs() < 1e-15);
    }

    #[test]
    fn zero_values_and_mismatched_groups_are_errors() {
        assert_eq!(
            theil(&[1.0, 0.0]),
            Err(TheilError::NotPositive {
                unit: 1,
                value: 0.0
            })
        );
        assert_eq!(theil(&[1.0]), Err(TheilError::TooFewUnits { n: 1 }));
        assert!(matches!(
            theil_decomposition(&[1.0, 2.0], &["a"]),
            Err(TheilError::LengthMismatch { .. })
        ));
    }
}
