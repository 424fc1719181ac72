//! Class breaks for choropleth maps: quantiles and Jenks natural breaks.
//!
//! Both return the **upper bounds** of the classes in ascending order; the last bound is the
//! maximum. A value v falls in the first class whose upper bound is ≥ v ([`class_of`]).
//! Non-finite values are ignored.

/// How values are grouped into classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classing {
    /// Equal counts per class.
    Quantile,
    /// Jenks natural breaks (minimum within-class sum of squares).
    NaturalBreaks,
}

/// Upper class bounds by the chosen method; fewer than `n` bounds when there are fewer
/// distinct values than classes.
pub fn breaks(values: &[f64], n: usize, classing: Classing) -> Vec<f64> {
    match classing {
        Classing::Quantile => quantile_breaks(values, n),
        Classing::NaturalBreaks => jenks_breaks(values, n),
    }
}

fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Quantile class bounds: the k/n quantiles (k = 1..n) with linear interpolation between
/// order statistics (Hyndman & Fan 1996, definition 7, the default of R and NumPy);
/// repeated bounds are merged.
///
/// # Units
/// Those of `values`.
///
/// # References
/// Hyndman, R. J. & Fan, Y. (1996). Sample quantiles in statistical packages. *The American
/// Statistician* 50(4), 361–365.
///
/// # Examples
/// ```
/// use pipeline::report::classing::quantile_breaks;
/// // Quartiles of 1..=9: positions 2, 4, 6, 8 (0-based) → 3, 5, 7, 9.
/// let v: Vec<f64> = (1..=9).map(f64::from).collect();
/// assert_eq!(quantile_breaks(&v, 4), vec![3.0, 5.0, 7.0, 9.0]);
/// ```
pub fn quantile_breaks(values: &[f64], n: usize) -> Vec<f64> {
    let v = sorted_finite(values);
    if v.is_empty() || n == 0 {
        return Vec::new();
    }
    let last = (v.len() - 1) as f64;
    let mut out: Vec<f64> = Vec::with_capacity(n);
    for k in 1..=n {
        let h = last * k as f64 / n as f64;
        let lo = h.floor() as usize;
        let hi = h.ceil() as usize;
        let q = v[lo] + (h - lo as f64) * (v[hi] - v[lo]);
        if out.last().is_none_or(|&b| q > b) {
            out.push(q);
        }
    }
    out
}

/// Jenks natural breaks: the partition of the sorted values into `n` contiguous classes that
/// minimises the total within-class sum of squared deviations, found exactly by Fisher's
/// dynamic programme (O(n·m²) for m values). Above [`JENKS_EXACT_MAX`] values the programme
/// runs on that many evenly spaced order statistics (the minimum and maximum among them), as
/// PySAL mapclassify's `FisherJenksSampled` runs on a sample: a national panel of 2,852 units
/// × 38 years would otherwise take minutes for a legend.
///
/// # Units
/// Those of `values`.
///
/// # References
/// Jenks, G. F. (1967). The data model concept in statistical mapping. *International Yearbook
/// of Cartography* 7, 186–190. Fisher, W. D. (1958). On grouping for maximum homogeneity.
/// *Journal of the American Statistical Association* 53(284), 789–798.
///
/// # Examples
/// ```
/// use pipeline::report::classing::jenks_breaks;
/// let v = [1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 20.0, 21.0, 22.0];
/// assert_eq!(jenks_breaks(&v, 3), vec![3.0, 12.0, 22.0]);
/// ```
pub fn jenks_breaks(values: &[f64], n: usize) -> Vec<f64> {
    let v = order_statistics(sorted_finite(values), JENKS_EXACT_MAX);
    let m = v.len();
    if m == 0 || n == 0 {
        return Vec::new();
    }
    let mut distinct = v.clone();
    distinct.dedup();
    if distinct.len() <= n {
        return distinct;
    }
    // Prefix sums for the sum of squared deviations of v[i..j] in O(1).
    let mut s1 = vec![0.0; m + 1];
    let mut s2 = vec![0.0; m + 1];
    for (i, &x) in v.iter().enumerate() {
        s1[i + 1] = s1[i] + x;
        s2[i + 1] = s2[i] + x * x;
    }
    let ssd = |i: usize, j: usize| {
        // Values i..j (exclusive end), at least one.
        let c = (j - i) as f64;
        let s = s1[j] - s1[i];
        (s2[j] - s2[i] - s * s / c).max(0.0)
    };
    // cost[k][j]: best total SSD of the first j values in k+1 classes; cut[k][j]: start of
    // the last class. Ties keep the earliest cut, so the result is deterministic.
    let mut cost = vec![vec![f64::INFINITY; m + 1]; n];
    let mut cut = vec![vec![0usize; m + 1]; n];
    for (j, c) in cost[0].iter_mut().enumerate().skip(1) {
        *c = ssd(0, j);
    }
    for k in 1..n {
        for j in (k + 1)..=m {
            for i in k..j {
                let c = cost[k - 1][i] + ssd(i, j);
                if c < cost[k][j] {
                    cost[k][j] = c;
                    cut[k][j] = i;
                }
            }
        }
    }
    let mut bounds = Vec::with_capacity(n);
    let mut j = m;
    for k in (0..n).rev() {
        bounds.push(v[j - 1]);
        j = if k > 0 { cut[k][j] } else { 0 };
    }
    bounds.reverse();
    bounds
}

/// The most values [`jenks_breaks`] partitions exactly.
pub const JENKS_EXACT_MAX: usize = 2_000;

/// `count` evenly spaced order statistics of sorted values (all of them when there are fewer),
/// always keeping the first and the last.
fn order_statistics(sorted: Vec<f64>, count: usize) -> Vec<f64> {
    let m = sorted.len();
    if m <= count || count < 2 {
        return sorted;
    }
    (0..count)
        .map(|i| sorted[i * (m - 1) / (count - 1)])
        .collect()
}

/// The class (0-based) of `value`: the first whose upper bound is ≥ it; values above the
/// last bound go in the last class. `None` for non-finite values or no classes.
pub fn class_of(value: f64, bounds: &[f64]) -> Option<usize> {
    if !value.is_finite() || bounds.is_empty() {
        return None;
    }
    Some(
        bounds
            .iter()
            .position(|&b| value <= b)
            .unwrap_or(bounds.len() - 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jenks_on_a_national_panel_samples_and_keeps_the_groups_apart() {
        // 3 × 40,000 values in three separated groups (1.000–1.399, 10.000–10.399,
        // 100.000–100.399): the sampled programme must cut between the groups, at their maxima.
        let values: Vec<f64> = (0..120_000)
            .map(|i| {
                [1.0, 10.0, 100.0][i % 3] + f64::from(u32::try_from(i % 400).unwrap()) / 1000.0
            })
            .collect();
        assert_eq!(
            jenks_breaks(&values, 3),
            vec![1.0 + 0.399, 10.0 + 0.399, 100.0 + 0.399]
        );
        // The order statistics keep the extremes.
        let sample = order_statistics((0..10_000).map(f64::from).collect(), 5);
        assert_eq!(sample, vec![0.0, 2499.0, 4999.0, 7499.0, 9999.0]);
    }

    #[test]
    fn jenks_hand_worked_example() {
        // Values 1, 2, 4, 5, 7, 8, 9 into 2 classes. Hand calculation of every cut
        // (within-class SSD, first class | second class):
        //   {1}|{2,4,5,7,8,9}: 0 + 34.83 = 34.83    {1,2}|{4,5,7,8,9}: 0.5 + 17.2 = 17.7
        //   {1,2,4}|{5,7,8,9}: 4.67 + 8.75 = 13.42   {1,2,4,5}|{7,8,9}: 10 + 2 = 12 (best)
        //   {1,2,4,5,7}|{8,9}: 22.8 + 0.5 = 23.3     {1,2,4,5,7,8}|{9}: 37.5 + 0 = 37.5
        // So the bounds are 5 and 9.
        assert_eq!(
            jenks_breaks(&[9.0, 1.0, 4.0, 2.0, 8.0, 5.0, 7.0], 2),
            vec![5.0, 9.0]
        );
        // Three classes of 1, 2, 4, 5, 7, 8, 9: {1,2} {4,5} {7,8,9} gives 0.5 + 0.5 + 2 = 3,
        // against e.g. {1,2,4} {5} {7,8,9}: 4.67 + 0 + 2 and {1,2} {4,5,7} {8,9}: 0.5 + 4.67 + 0.5.
        assert_eq!(
            jenks_breaks(&[1.0, 2.0, 4.0, 5.0, 7.0, 8.0, 9.0], 3),
            vec![2.0, 5.0, 9.0]
        );
    }

    #[test]
    fn jenks_with_few_distinct_values_and_nan() {
        assert_eq!(jenks_breaks(&[3.0, 3.0, 1.0, f64::NAN], 5), vec![1.0, 3.0]);
        assert!(jenks_breaks(&[], 3).is_empty());
    }

    #[test]
    fn quantile_breaks_interpolate_like_numpy() {
        // numpy.quantile([1, 2, 3, 4, 10], [0.2, 0.4, 0.6, 0.8, 1.0]) (linear, the default):
        // positions 0.8, 1.6, 2.4, 3.2, 4 → 1.8, 2.6, 3.4, 5.2, 10.
        let b = quantile_breaks(&[10.0, 1.0, 2.0, 3.0, 4.0], 5);
        let expected = [1.8, 2.6, 3.4, 5.2, 10.0];
        assert_eq!(b.len(), 5);
        for (x, e) in b.iter().zip(expected) {
            assert!((x - e).abs() < 1e-12, "{b:?}");
        }
        // Ties merge: all equal values give one class.
        assert_eq!(quantile_breaks(&[2.0; 6], 4), vec![2.0]);
    }

    #[test]
    fn class_of_uses_upper_bounds() {
        let b = [2.0, 5.0, 9.0];
        assert_eq!(class_of(1.0, &b), Some(0));
        assert_eq!(class_of(2.0, &b), Some(0));
        assert_eq!(class_of(2.5, &b), Some(1));
        assert_eq!(class_of(10.0, &b), Some(2));
        assert_eq!(class_of(f64::NAN, &b), None);
    }

    #[test]
    fn jenks_and_quantiles_match_python_references() {
        // v_i = ((37 i) mod 101)^1.5 / 10 for i = 0..40. References from a throwaway venv:
        // jenkspy 0.4.1 `jenks_breaks(v, n_classes=5)` → [0, 13.25745073534124,
        // 32.22157662188491, 54.84186357154541, 76.98727167525811, 100] (first entry = min);
        // numpy `quantile(v, [.2, .4, .6, .8, 1])` → [8.811799126544784, 24.181421313649587,
        // 44.41075383042156, 72.36665996537417, 100].
        let v: Vec<f64> = (0..40)
            .map(|i| f64::from((i * 37) % 101).powf(1.5) / 10.0)
            .collect();
        let close = |a: &[f64], b: &[f64]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
        };
        let jenks = jenks_breaks(&v, 5);
        assert!(
            close(
                &jenks,
                &[
                    13.25745073534124,
                    32.22157662188491,
                    54.84186357154541,
                    76.98727167525811,
                    100.0
                ]
            ),
            "{jenks:?}"
        );
        let q = quantile_breaks(&v, 5);
        assert!(
            close(
                &q,
                &[
                    8.811799126544784,
                    24.181421313649587,
                    44.41075383042156,
                    72.36665996537417,
                    100.0
                ]
            ),
            "{q:?}"
        );
    }
}
