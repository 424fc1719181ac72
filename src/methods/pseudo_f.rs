//! Standardisation and the sums of squares of a partition: total, within and between SSD, their
//! ratio, and the pseudo-F (Calinski–Harabasz) statistic used to choose the number of clusters.

/// Z-scores of each column of a row-major `n × vars` matrix, in place, with the sample standard
/// deviation (divisor `n − 1`), as GeoDa's `standardize`. Returns the indices of columns with
/// zero spread (left as zeros after centring).
///
/// # Units
/// Unitless out.
///
/// # References
/// Anselin, L. (2024). *An Introduction to Spatial Data Science with GeoDa*, Vol. 2, ch. 6
/// (variable standardisation before clustering).
///
/// # Examples
/// ```
/// use pipeline::methods::pseudo_f::standardize;
/// let mut x = vec![1.0, 2.0, 3.0];
/// assert!(standardize(&mut x, 1).is_empty());
/// assert_eq!(x, vec![-1.0, 0.0, 1.0]);
/// ```
pub fn standardize(data: &mut [f64], vars: usize) -> Vec<usize> {
    let n = data.len().checked_div(vars).unwrap_or(0);
    let mut constant = Vec::new();
    for j in 0..vars {
        let nf = n as f64;
        let mean = (0..n).map(|i| data[i * vars + j]).sum::<f64>() / nf;
        let ss = (0..n)
            .map(|i| (data[i * vars + j] - mean).powi(2))
            .sum::<f64>();
        let sd = if n > 1 { (ss / (nf - 1.0)).sqrt() } else { 0.0 };
        for i in 0..n {
            let x = &mut data[i * vars + j];
            *x = if sd > 0.0 { (*x - mean) / sd } else { 0.0 };
        }
        if sd <= 0.0 {
            constant.push(j);
        }
    }
    constant
}

/// Sums of squares of a partition.
#[derive(Debug, Clone, PartialEq)]
pub struct SumsOfSquares {
    /// Total SSD around the overall means, summed over variables.
    pub total: f64,
    /// Within-cluster SSD of each cluster (indexed by label).
    pub within: Vec<f64>,
    /// Σ within.
    pub within_total: f64,
    /// total − within_total.
    pub between: f64,
}

impl SumsOfSquares {
    /// between / total (0 when the total is 0).
    pub fn ratio(&self) -> f64 {
        if self.total > 0.0 {
            self.between / self.total
        } else {
            0.0
        }
    }
}

/// The sums of squares of the partition `labels` (`0..k`) of a row-major `n × vars` matrix.
/// Deviations are taken from the means (two passes), in row order.
///
/// # Units
/// Squared units of the data.
///
/// # References
/// Calinski, T. & Harabasz, J. (1974). A dendrite method for cluster analysis.
/// *Communications in Statistics* 3(1): 1–27.
///
/// # Examples
/// ```
/// use pipeline::methods::pseudo_f::sums_of_squares;
/// // Values 0, 2 | 10, mean 4: total 16 + 4 + 36 = 56; within 2 (0 and 2 around 1) + 0.
/// let s = sums_of_squares(&[0.0, 2.0, 10.0], 1, &[0, 0, 1], 2);
/// assert_eq!((s.total, s.within_total, s.between), (56.0, 2.0, 54.0));
/// ```
pub fn sums_of_squares(data: &[f64], vars: usize, labels: &[usize], k: usize) -> SumsOfSquares {
    let n = labels.len();
    let mut mean = vec![0.0; vars];
    let mut cmean = vec![0.0; k * vars];
    let mut count = vec![0usize; k];
    for i in 0..n {
        count[labels[i]] += 1;
        for j in 0..vars {
            mean[j] += data[i * vars + j];
            cmean[labels[i] * vars + j] += data[i * vars + j];
        }
    }
    {
        for m in &mut mean {
            *m /= n.max(1) as f64;
        }
        for c in 0..k {
            for j in 0..vars {
                cmean[c * vars + j] /= count[c].max(1) as f64;
            }
        }
    }
    let mut total = 0.0;
    let mut within = vec![0.0; k];
    for i in 0..n {
        let c = labels[i];
        for j in 0..vars {
            let x = data[i * vars + j];
            total += (x - mean[j]).powi(2);
            within[c] += (x - cmean[c * vars + j]).powi(2);
        }
    }
    let within_total = within.iter().sum::<f64>();
    SumsOfSquares {
        total,
        within,
        within_total,
        between: total - within_total,
    }
}

/// The pseudo-F statistic `[B / (k − 1)] / [W / (n − k)]` (NaN when `k < 2`, `k ≥ n` or
/// `W = 0`).
///
/// # Units
/// Unitless ratio.
///
/// # References
/// Calinski, T. & Harabasz, J. (1974). A dendrite method for cluster analysis.
/// *Communications in Statistics* 3(1): 1–27; the form ArcGIS's Spatially Constrained
/// Multivariate Clustering uses to choose the number of clusters.
///
/// # Examples
/// ```
/// use pipeline::methods::pseudo_f::pseudo_f;
/// // B = 54, W = 2, n = 3, k = 2: (54 / 1) / (2 / 1) = 27.
/// assert_eq!(pseudo_f(54.0, 2.0, 3, 2), 27.0);
/// ```
pub fn pseudo_f(between: f64, within: f64, n: usize, k: usize) -> f64 {
    if k < 2 || k >= n || within <= 0.0 {
        return f64::NAN;
    }
    let (n, k) = (n as f64, k as f64);
    (between / (k - 1.0)) / (within / (n - k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_variable_sums_by_hand() {
        // Rows (0,0), (2,0), (10,4), (12,4); clusters {0,1}, {2,3}.
        // Means (6, 2). Total: x: 36+16+16+36 = 104, y: 4·4 = 16 → 120.
        // Within: each pair differs by 2 in x → 2 per pair, 4 in all. Between 116.
        let data = [0.0, 0.0, 2.0, 0.0, 10.0, 4.0, 12.0, 4.0];
        let s = sums_of_squares(&data, 2, &[0, 0, 1, 1], 2);
        assert_eq!(s.total, 120.0);
        assert_eq!(s.within, vec![2.0, 2.0]);
        assert_eq!(s.between, 116.0);
        // F = (116 / 1) / (4 / 2) = 58.
        assert_eq!(pseudo_f(s.between, s.within_total, 4, 2), 58.0);
    }

    #[test]
    fn standardize_uses_sample_sd() {
        // 2, 4, 6, 8: mean 5, sample variance (9+1+1+9)/3 = 20/3.
        let mut x = vec![2.0, 4.0, 6.0, 8.0];
        standardize(&mut x, 1);
        let sd = (20.0f64 / 3.0).sqrt();
        assert!((x[0] + 3.0 / sd).abs() < 1e-15 && (x[3] - 3.0 / sd).abs() < 1e-15);
        let mut c = vec![1.0, 5.0, 1.0, 6.0];
        assert_eq!(standardize(&mut c, 2), vec![0]);
    }
}
