//! One distinct zone name per cluster: the centroid naming of spatially constrained clusters,
//! with ties (two clusters whose centroids fall in the same zone) broken by the largest |z|.
//!
//! Spatially constrained clustering returns k unnamed groups; a study that reports them as k
//! optimisation zones names each group by the signs of its centroid against the neutral lines
//! of the zoning table (ECC = 1, ESC = 1, NCE = 0). Zhang, Zhang & Yang (2024, *World Regional
//! Studies* 33(3): 116–130) cluster the 56 Yellow River Basin cities into five groups and name
//! five zones; when two centroids land in one zone, the group that stands out more from the
//! region keeps the name. This module makes that rule exact.
//!
//! * A cluster's **distinctness** is the largest |z| of its centroid over the rule columns,
//!   z = (mean − regional mean) / regional sample sd (the standardisation of the clustering
//!   itself, as in [`crate::methods::pseudo_f::standardize`]).
//! * Clusters choose in order of decreasing distinctness (then by position). Each takes the
//!   first rule its centroid satisfies whose zone is still free; failing that, the free rule
//!   its centroid misses by the least, measured as Σ |mean − threshold| / sd over the
//!   conditions it fails (a z-distance to the rule's box). Equal distances go to rule order.
//! * With more clusters than zones, a cluster that finds no free zone shares its first-match
//!   zone; [`Naming::shared`] counts those clusters.

use crate::methods::zoning::RuleSet;

/// The zone rule chosen for each cluster, in the order of the centroids given.
#[derive(Debug, Clone, PartialEq)]
pub struct Naming {
    /// The index of the rule each cluster takes; `None` for the rule set's default zone or a
    /// centroid with a missing value (no zone).
    pub rules: Vec<Option<usize>>,
    /// Clusters that share a zone with a more distinct cluster because none was left.
    pub shared: usize,
}

/// Names clusters with distinct zones, ties broken by the largest |z|.
///
/// `centroids[c]` holds cluster c's mean of each rule column (in `rules.columns` order);
/// `columns[j]` holds every unit's value of rule column j (non-finite values are ignored),
/// from which the regional mean and sample sd of the z-scores come.
///
/// # Units
/// Centroids and columns in the rule columns' units; z-scores and distances are unitless.
///
/// # References
/// Centroid naming of the Yellow River Basin zones: Zhang Yalong, Zhang Haifeng & Yang Xuemei
/// (2024), *World Regional Studies* 33(3): 116–130 (five zones from spatially constrained
/// clusters; the paper's naming rule is not published in its abstract). Zone table: the ECC/ESC
/// quadrants of the compensation-zoning literature (e.g. 赵荣钦 et al., *Journal of Natural
/// Resources*, on Henan's counties). The tie-break order and the z-distance are this project's
/// reconstruction: distinct names, the most distinct centroid first.
///
/// # Examples
/// ```
/// use pipeline::methods::cluster_naming::name_clusters;
/// use pipeline::methods::zoning::RuleSet;
/// let five = RuleSet::five_type("nce_t_c"); // columns esc, nce_t_c, ecc
/// // Both centroids satisfy the sink-functional rule; the second stands out more (|z| of its
/// // NCE), keeps the name, and the first takes low-carbon maintenance, which it also satisfies.
/// let centroids = [vec![1.2, -1.0, 1.5], vec![1.3, -30.0, 0.5]];
/// let units = [vec![0.5, 1.0, 1.5], vec![-10.0, 0.0, 10.0], vec![0.5, 1.0, 1.5]];
/// let naming = name_clusters(&five, &centroids, &units);
/// assert_eq!(naming.rules, vec![Some(1), Some(0)]);
/// ```
pub fn name_clusters(rules: &RuleSet, centroids: &[Vec<f64>], columns: &[Vec<f64>]) -> Naming {
    let scale: Vec<(f64, f64)> = columns.iter().map(|c| mean_and_sd(c)).collect();
    let mut order: Vec<usize> = (0..centroids.len()).collect();
    let strength: Vec<f64> = centroids.iter().map(|m| distinctness(m, &scale)).collect();
    order.sort_by(|&a, &b| strength[b].total_cmp(&strength[a]).then(a.cmp(&b)));

    let mut taken: Vec<&str> = Vec::new();
    let mut naming = Naming {
        rules: vec![None; centroids.len()],
        shared: 0,
    };
    for c in order {
        let m = &centroids[c];
        if m.iter().any(|v| !v.is_finite()) {
            continue;
        }
        let preferred = rules.classify(m);
        let candidates = ranked_rules(rules, m, &scale);
        let free = |zone: &str| !taken.contains(&zone);
        let choice = match rules.zone_of(preferred) {
            Some(zone) if free(zone) => preferred,
            _ => candidates
                .into_iter()
                .find(|&r| free(&rules.rules[r].zone))
                .or_else(|| {
                    naming.shared += 1;
                    preferred
                }),
        };
        if let Some(zone) = rules.zone_of(choice) {
            taken.push(zone);
        }
        naming.rules[c] = choice;
    }
    naming
}

/// Rule indices by increasing z-distance from the centroid to the rule's box, then rule order.
fn ranked_rules(rules: &RuleSet, centroid: &[f64], scale: &[(f64, f64)]) -> Vec<usize> {
    let distance = |r: usize| -> f64 {
        rules.rules[r]
            .conditions
            .iter()
            .filter(|k| !k.op.holds(centroid[k.column], k.value))
            .map(|k| (centroid[k.column] - k.value).abs() / unit_sd(scale[k.column].1))
            .sum()
    };
    let mut ranked: Vec<(f64, usize)> = (0..rules.rules.len()).map(|r| (distance(r), r)).collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    ranked.into_iter().map(|(_, r)| r).collect()
}

/// The largest |z| of a centroid over the columns.
fn distinctness(centroid: &[f64], scale: &[(f64, f64)]) -> f64 {
    centroid
        .iter()
        .zip(scale)
        .map(|(v, &(mean, sd))| ((v - mean) / unit_sd(sd)).abs())
        .filter(|z| z.is_finite())
        .fold(0.0, f64::max)
}

/// A zero or undefined sd (one unit, or all equal) measures distances in the column's units.
fn unit_sd(sd: f64) -> f64 {
    if sd > 0.0 && sd.is_finite() { sd } else { 1.0 }
}

/// The mean and sample standard deviation (n − 1) of the finite values.
fn mean_and_sd(values: &[f64]) -> (f64, f64) {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let n = finite.len() as f64;
    if finite.is_empty() {
        return (0.0, 0.0);
    }
    let mean = finite.iter().sum::<f64>() / n;
    if finite.len() < 2 {
        return (mean, 0.0);
    }
    let ss: f64 = finite.iter().map(|v| (v - mean).powi(2)).sum();
    (mean, (ss / (n - 1.0)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regional scale chosen so the z-scores are round: means (1, 0, 1), sample sds
    /// (0.5, 10, 1) for (esc, nce_t_c, ecc). Two units per column: m ± s/√2 has sample sd s.
    fn regional_columns() -> Vec<Vec<f64>> {
        let pair = |m: f64, s: f64| vec![m - s / 2f64.sqrt(), m + s / 2f64.sqrt()];
        vec![pair(1.0, 0.5), pair(0.0, 10.0), pair(1.0, 1.0)]
    }

    /// Worked by hand. Centroids (esc, nce, ecc) and their z-scores:
    /// A (1.5, −10, 0.5): z (1.0, −1.0, −0.5), distinctness 1.0, first match sink functional.
    /// B (1.2, −2, 1.8):  z (0.4, −0.2, 0.8), distinctness 0.8, first match sink functional.
    /// C (0.5, 20, 1.5):  z (−1.0, 2.0, 0.5), distinctness 2.0, first match economic development.
    /// D (1.1, −1, 0.9):  z (0.2, −0.1, −0.1), distinctness 0.2, first match sink functional.
    /// E (1.3, −5, 1.2):  z (0.6, −0.5, 0.2), distinctness 0.6, first match sink functional.
    /// Order C, A, B, E, D. C takes economic development, A sink functional. B's first match is
    /// taken; it also satisfies low-carbon maintenance (ESC ≥ 1, ECC ≥ 1): distance 0, free.
    /// E: sink functional and low-carbon maintenance taken; carbon intensity control misses
    /// ECC < 1 by |1.2 − 1| / 1 = 0.2; high-carbon optimization misses ESC < 1 by 0.3 / 0.5 =
    /// 0.6 and ECC < 1 by 0.2, so 0.8: E takes intensity control. D: only high-carbon
    /// optimization is free (misses ESC < 1 by 0.1 / 0.5 = 0.2).
    #[test]
    fn five_clusters_get_five_zones_by_hand() {
        let five = RuleSet::five_type("nce_t_c");
        let centroids = [
            vec![1.5, -10.0, 0.5],
            vec![1.2, -2.0, 1.8],
            vec![0.5, 20.0, 1.5],
            vec![1.1, -1.0, 0.9],
            vec![1.3, -5.0, 1.2],
        ];
        let naming = name_clusters(&five, &centroids, &regional_columns());
        let zones: Vec<&str> = naming
            .rules
            .iter()
            .map(|&r| five.zone_of(r).unwrap())
            .collect();
        assert_eq!(
            zones,
            [
                "carbon_sink_functional",
                "low_carbon_maintenance",
                "economic_development",
                "high_carbon_optimization",
                "carbon_intensity_control",
            ]
        );
        assert_eq!(naming.shared, 0);
    }

    /// A sixth cluster finds every zone taken and keeps its first-match zone, counted as shared;
    /// the names of the other five do not depend on its presence.
    #[test]
    fn more_clusters_than_zones_share_the_first_match() {
        let five = RuleSet::five_type("nce_t_c");
        let mut centroids = vec![
            vec![1.5, -10.0, 0.5],
            vec![1.2, -2.0, 1.8],
            vec![0.5, 20.0, 1.5],
            vec![1.1, -1.0, 0.9],
            vec![1.3, -5.0, 1.2],
        ];
        let five_only = name_clusters(&five, &centroids, &regional_columns());
        centroids.push(vec![1.0, 0.0, 1.0]); // z = 0 everywhere: least distinct, chooses last
        let naming = name_clusters(&five, &centroids, &regional_columns());
        assert_eq!(naming.rules[..5], five_only.rules[..]);
        assert_eq!(naming.rules[5], five.classify(&[1.0, 0.0, 1.0]));
        assert_eq!(naming.shared, 1);
    }

    /// Equal distinctness goes to the earlier cluster, so the result does not depend on how
    /// the clusters are ordered beyond their labels; a centroid with a missing value gets none.
    #[test]
    fn ties_in_distinctness_go_to_the_first_cluster_and_missing_means_get_no_zone() {
        let five = RuleSet::five_type("nce_t_c");
        let twin = vec![1.5, -10.0, 0.5];
        let centroids = [twin.clone(), twin, vec![f64::NAN, 0.0, 1.0]];
        let naming = name_clusters(&five, &centroids, &regional_columns());
        assert_eq!(naming.rules[0], Some(0));
        assert_ne!(naming.rules[1], Some(0));
        assert_eq!(naming.rules[2], None);
    }
}
