//! The statistics `sweep` reports: moments and quantiles of a collected number, and the rank
//! correlations between sampled parameters and an output (Spearman and PRCC). Plain slices in,
//! numbers out; the sums run in a fixed order so results do not depend on threads.

/// Mean and sample standard deviation (divisor n − 1; 0 for a single value).
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    (mean, (ss / (n - 1.0)).sqrt())
}

/// The `p` quantile of sorted values by linear interpolation between order statistics
/// (Hyndman & Fan 1996, The American Statistician 50(4): 361–365, definition 7; numpy's and R's
/// default).
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Ranks 1..n, ties given their average rank (as `scipy.stats.rankdata`).
pub fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]).then(a.cmp(&b)));
    let mut out = vec![0.0; xs.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && xs[order[end]] == xs[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) share ranks start+1..=end: their mean.
        let rank = (start + end + 1) as f64 / 2.0;
        for &k in &order[start..end] {
            out[k] = rank;
        }
        start = end;
    }
    out
}

/// Pearson's correlation; `None` when either side has no variance.
pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let (mx, _) = mean_sd(x);
    let (my, _) = mean_sd(y);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// Spearman's rank correlation: Pearson's correlation of the average ranks.
///
/// # References
/// Spearman, C. (1904). The proof and measurement of association between two things. *American
/// Journal of Psychology* 15(1): 72–101.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    pearson(&ranks(x), &ranks(y))
}

/// Partial rank correlation coefficients of each parameter (columns of `params`, one row per
/// draw) with `y`: rank everything, regress the ranks of parameter `j` and of `y` on the ranks of
/// the other parameters (least squares with an intercept), and correlate the two residuals.
///
/// # References
/// - Marino, S., Hogue, I. B., Ray, C. J. & Kirschner, D. E. (2008). A methodology for
///   performing global uncertainty and sensitivity analysis in systems biology. *Journal of
///   Theoretical Biology* 254(1): 178–196 (PRCC, §2.4).
/// - Saltelli, A., Chan, K. & Scott, E. M. (2000). *Sensitivity Analysis*, Wiley, ch. 6.
pub fn prcc(params: &[Vec<f64>], y: &[f64]) -> Vec<Option<f64>> {
    let k = params.first().map_or(0, Vec::len);
    let columns: Vec<Vec<f64>> = (0..k)
        .map(|j| ranks(&params.iter().map(|row| row[j]).collect::<Vec<_>>()))
        .collect();
    let ry = ranks(y);
    (0..k)
        .map(|j| {
            let others: Vec<&[f64]> = (0..k)
                .filter(|&o| o != j)
                .map(|o| columns[o].as_slice())
                .collect();
            let ex = residuals(&others, &columns[j])?;
            let ey = residuals(&others, &ry)?;
            pearson(&ex, &ey)
        })
        .collect()
}

/// Residuals of the least-squares fit of `y` on an intercept and `xs`, by the normal equations
/// solved with partial pivoting. Regressors with no variance left (constant or collinear) are
/// dropped, as a pseudo-inverse would; `None` only when nothing is left to correlate.
fn residuals(xs: &[&[f64]], y: &[f64]) -> Option<Vec<f64>> {
    let n = y.len();
    // Centring removes the intercept; the centred design is then regressed without one.
    let centre = |v: &[f64]| {
        let (m, _) = mean_sd(v);
        v.iter().map(|x| x - m).collect::<Vec<f64>>()
    };
    let y = centre(y);
    let mut design: Vec<Vec<f64>> = Vec::new();
    for x in xs {
        let c = centre(x);
        if c.iter().any(|v| v.abs() > 0.0) {
            design.push(c);
        }
    }
    let p = design.len();
    let mut a = vec![vec![0.0; p + 1]; p];
    for r in 0..p {
        for c in 0..p {
            a[r][c] = (0..n).map(|i| design[r][i] * design[c][i]).sum();
        }
        a[r][p] = (0..n).map(|i| design[r][i] * y[i]).sum();
    }
    let beta = solve(a)?;
    Some(
        (0..n)
            .map(|i| y[i] - (0..p).map(|r| beta[r] * design[r][i]).sum::<f64>())
            .collect(),
    )
}

/// Solves an augmented system `[A | b]` by Gaussian elimination with partial pivoting; a pivot
/// that vanishes (collinear regressors) sets its coefficient to zero.
fn solve(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let p = a.len();
    let scale = a
        .iter()
        .enumerate()
        .map(|(i, row)| row[i].abs())
        .fold(0.0, f64::max);
    let mut usable = vec![true; p];
    for col in 0..p {
        let pivot = (col..p).max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs()))?;
        if a[pivot][col].abs() <= 1e-12 * scale.max(1.0) {
            usable[col] = false;
            continue;
        }
        a.swap(col, pivot);
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (x, y) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *x -= f * y;
                }
            }
        }
    }
    Some(
        (0..p)
            .map(|i| if usable[i] { a[i][p] / a[i][i] } else { 0.0 })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        // scipy.stats.rankdata([3, 1, 4, 1, 5]) = [3, 1.5, 4, 1.5, 5]
        assert_eq!(ranks(&[3.0, 1.0, 4.0, 1.0, 5.0]), [3.0, 1.5, 4.0, 1.5, 5.0]);
    }

    #[test]
    fn moments_and_quantiles_by_hand() {
        // 1..=5: mean 3, sd sqrt(10/4); p05 = 1 + 0.2·1 = 1.2 (h = 4·0.05), p50 = 3, p95 = 4.8.
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        let (m, sd) = mean_sd(&xs);
        assert!((m - 3.0).abs() < 1e-15);
        assert!((sd - 2.5f64.sqrt()).abs() < 1e-15);
        assert!((quantile_sorted(&xs, 0.05) - 1.2).abs() < 1e-15);
        assert!((quantile_sorted(&xs, 0.5) - 3.0).abs() < 1e-15);
        assert!((quantile_sorted(&xs, 0.95) - 4.8).abs() < 1e-15);
    }

    fn csv(name: &str) -> Vec<Vec<String>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sweep")
            .join(name);
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn spearman_and_prcc_match_scipy_and_pingouin() {
        // tests/fixtures/sweep: scipy.stats.spearmanr and pingouin.partial_corr(method="spearman").
        let rows: Vec<Vec<f64>> = csv("samples.csv")
            .iter()
            .map(|r| r.iter().map(|x| x.parse().unwrap()).collect())
            .collect();
        let params: Vec<Vec<f64>> = rows.iter().map(|r| r[..3].to_vec()).collect();
        let y: Vec<f64> = rows.iter().map(|r| r[3]).collect();
        let prcc = prcc(&params, &y);
        for (j, expected) in csv("expected.csv").iter().enumerate() {
            let xj: Vec<f64> = params.iter().map(|r| r[j]).collect();
            let want_s: f64 = expected[1].parse().unwrap();
            let want_p: f64 = expected[2].parse().unwrap();
            let got_s = spearman(&xj, &y).unwrap();
            let got_p = prcc[j].unwrap();
            assert!(
                (got_s - want_s).abs() < 1e-12,
                "{}: spearman {got_s} vs {want_s}",
                expected[0]
            );
            assert!(
                (got_p - want_p).abs() < 1e-12,
                "{}: prcc {got_p} vs {want_p}",
                expected[0]
            );
        }
    }

    #[test]
    fn constant_sides_have_no_correlation() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]), None);
        // A constant parameter is dropped from the other's regression, not fatal.
        let params = vec![
            vec![1.0, 0.0],
            vec![2.0, 0.0],
            vec![3.0, 0.0],
            vec![4.0, 0.0],
        ];
        let r = prcc(&params, &[1.0, 3.0, 2.0, 4.0]);
        assert!((r[0].unwrap() - 0.8).abs() < 1e-12, "{r:?}");
        assert_eq!(r[1], None);
    }
}
