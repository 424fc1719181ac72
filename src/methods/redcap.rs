//! REDCAP (full-order average linkage): a spanning tree grown by contiguity-constrained
//! average-linkage agglomeration, then cut like SKATER's.
//!
//! Clusters merge in order of their average linkage distance, the mean of the distances over
//! all pairs of their units; two clusters are candidates when any contiguity edge joins them
//! ("full order"). Each merge adds to the tree the shortest contiguity edge between the two
//! clusters. With the squared Euclidean distance the average over pairs has a closed form from
//! each cluster's count, sums and sum of squares:
//! `mean_{a∈A, b∈B} |a − b|² = |μ_A − μ_B|² + SSD_A/n_A + SSD_B/n_B`,
//! so a merge costs time proportional to the number of clusters adjacent to it.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use crate::methods::mst::mean_sq_distance;
use crate::methods::skater::{SizeBound, TreeSplits, partition_tree};

/// An original contiguity edge, ordered by (length, smaller end, larger end).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Link {
    length: f64,
    a: usize,
    b: usize,
}

impl Link {
    fn less(self, other: Self) -> bool {
        self.length
            .total_cmp(&other.length)
            .then(self.a.cmp(&other.a))
            .then(self.b.cmp(&other.b))
            == Ordering::Less
    }
}

/// A candidate merge in the heap (smallest distance first), valid while both clusters still
/// have the version they had when it was pushed.
#[derive(Debug, PartialEq)]
struct Candidate {
    distance: f64,
    a: usize,
    b: usize,
    version_a: u32,
    version_b: u32,
}

impl Eq for Candidate {}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .distance
            .total_cmp(&self.distance)
            .then(other.a.cmp(&self.a))
            .then(other.b.cmp(&self.b))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

struct Cluster {
    count: usize,
    sum: Vec<f64>,
    sq: f64,
    version: u32,
    /// Adjacent clusters and the shortest original edge to each.
    links: BTreeMap<usize, Link>,
}

impl Cluster {
    fn ssd(&self) -> f64 {
        let n = self.count as f64;
        (self.sq - self.sum.iter().map(|s| s * s).sum::<f64>() / n).max(0.0)
    }
}

/// The average over all pairs of the mean squared difference (GeoDa's distance), from the
/// clusters' sums.
fn average_linkage(a: &Cluster, b: &Cluster) -> f64 {
    let (na, nb, vars) = (a.count as f64, b.count as f64, a.sum.len() as f64);
    let centroid: f64 = a
        .sum
        .iter()
        .zip(&b.sum)
        .map(|(x, y)| (x / na - y / nb).powi(2))
        .sum();
    (centroid + a.ssd() / na + b.ssd() / nb) / vars
}

/// The REDCAP spanning forest (full-order average linkage), one tree per connected component
/// of `edges`. Returns the tree edges `(min, max)` in the order the merges added them.
///
/// Ties between equal linkage distances go to the pair with the smaller cluster
/// representatives (the smallest node of each).
///
/// # Units
/// `data` row-major `n × vars`, usually z-scores; distances are mean squared differences.
///
/// # References
/// Guo, D. (2008). Regionalization with dynamically constrained agglomerative clustering and
/// partitioning (REDCAP). *IJGIS* 22(7): 801–823 (Full-Order-ALK).
///
/// # Examples
/// ```
/// use pipeline::methods::redcap::redcap_tree;
/// // Path 0–1–2 with values 0, 1, 3: 0 and 1 merge first (distance 1), then {0,1} and 2
/// // through the edge 1–2.
/// assert_eq!(redcap_tree(&[0.0, 1.0, 3.0], 1, &[(0, 1), (1, 2)]), vec![(0, 1), (1, 2)]);
/// ```
pub fn redcap_tree(data: &[f64], vars: usize, edges: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut clusters = singleton_clusters(data, vars, edges);
    let n = clusters.len();
    // A cluster lives at the index of its smallest node; merged-away indices are dead.
    let mut alive = vec![true; n];
    let mut heap = initial_candidates(&clusters);
    let mut tree = Vec::with_capacity(n.saturating_sub(1));
    while let Some(c) = heap.pop() {
        if !(alive[c.a]
            && alive[c.b]
            && clusters[c.a].version == c.version_a
            && clusters[c.b].version == c.version_b)
        {
            continue;
        }
        let link = clusters[c.a].links[&c.b];
        tree.push((link.a, link.b));
        let (keep, gone) = (c.a.min(c.b), c.a.max(c.b));
        merge(&mut clusters, keep, gone);
        alive[gone] = false;
        push_candidates(&mut heap, &mut clusters, keep);
    }
    tree
}

/// One cluster per node, linked to its neighbours along `edges` (self-loops ignored).
fn singleton_clusters(data: &[f64], vars: usize, edges: &[(usize, usize)]) -> Vec<Cluster> {
    let n = data.len().checked_div(vars).unwrap_or(0);
    let mut clusters: Vec<Cluster> = (0..n)
        .map(|i| {
            let row = &data[i * vars..(i + 1) * vars];
            Cluster {
                count: 1,
                sum: row.to_vec(),
                sq: row.iter().map(|x| x * x).sum(),
                version: 0,
                links: BTreeMap::new(),
            }
        })
        .collect();
    for &(i, j) in edges {
        if i == j {
            continue;
        }
        let link = Link {
            length: mean_sq_distance(data, vars, i, j),
            a: i.min(j),
            b: i.max(j),
        };
        clusters[i].links.insert(j, link);
        clusters[j].links.insert(i, link);
    }
    clusters
}

/// A merge candidate for each pair of linked singletons.
fn initial_candidates(clusters: &[Cluster]) -> BinaryHeap<Candidate> {
    let mut heap = BinaryHeap::new();
    for (i, cluster) in clusters.iter().enumerate() {
        for (&j, link) in &cluster.links {
            if i < j {
                heap.push(Candidate {
                    distance: link.length,
                    a: i,
                    b: j,
                    version_a: 0,
                    version_b: 0,
                });
            }
        }
    }
    heap
}

/// Merges cluster `gone` into `keep` (the smaller id): sums add up, and each neighbour of
/// `gone` is linked to `keep` by the shorter of the two links (Full-Order-ALK keeps the
/// shortest edge between two clusters).
fn merge(clusters: &mut [Cluster], keep: usize, gone: usize) {
    let gone_cluster = std::mem::replace(
        &mut clusters[gone],
        Cluster {
            count: 0,
            sum: Vec::new(),
            sq: 0.0,
            version: 0,
            links: BTreeMap::new(),
        },
    );
    let k = &mut clusters[keep];
    k.count += gone_cluster.count;
    for (s, g) in k.sum.iter_mut().zip(&gone_cluster.sum) {
        *s += g;
    }
    k.sq += gone_cluster.sq;
    k.version += 1;
    k.links.remove(&gone);
    for (other, link) in gone_cluster.links {
        if other == keep {
            continue;
        }
        let entry = clusters[keep].links.entry(other).or_insert(link);
        if link.less(*entry) {
            *entry = link;
        }
        clusters[other].links.remove(&gone);
    }
}

/// Links `keep`'s neighbours back to it and queues a candidate for each at the new average
/// linkage.
fn push_candidates(heap: &mut BinaryHeap<Candidate>, clusters: &mut [Cluster], keep: usize) {
    let neighbours: Vec<(usize, Link)> =
        clusters[keep].links.iter().map(|(&o, &l)| (o, l)).collect();
    for (other, link) in neighbours {
        clusters[other].links.insert(keep, link);
        let distance = average_linkage(&clusters[keep], &clusters[other]);
        let (a, b) = (keep.min(other), keep.max(other));
        heap.push(Candidate {
            distance,
            a,
            b,
            version_a: clusters[a].version,
            version_b: clusters[b].version,
        });
    }
}

/// REDCAP clustering: [`redcap_tree`] cut into `k` clusters by [`partition_tree`].
///
/// # Units
/// `data` row-major `n × vars`, usually z-scores.
///
/// # References
/// Guo, D. (2008). Regionalization with dynamically constrained agglomerative clustering and
/// partitioning (REDCAP). *IJGIS* 22(7): 801–823.
///
/// # Examples
/// ```
/// use pipeline::methods::redcap::redcap;
/// let splits = redcap(&[0.0, 1.0, 3.0, 9.0], 1, &[(0, 1), (1, 2), (2, 3)], 2, None);
/// assert_eq!(splits.labels(2), vec![0, 0, 0, 1]);
/// ```
pub fn redcap(
    data: &[f64],
    vars: usize,
    edges: &[(usize, usize)],
    k: usize,
    bound: Option<SizeBound<'_>>,
) -> TreeSplits {
    let tree = redcap_tree(data, vars, edges);
    partition_tree(data, vars, &tree, k, bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_linkage_equals_pairwise_mean() {
        // A = {(0,0), (2,0)}, B = {(0,4)}: squared distances 16 and 20, mean 18, over 2 vars 9.
        let a = Cluster {
            count: 2,
            sum: vec![2.0, 0.0],
            sq: 4.0,
            version: 0,
            links: BTreeMap::new(),
        };
        let b = Cluster {
            count: 1,
            sum: vec![0.0, 4.0],
            sq: 16.0,
            version: 0,
            links: BTreeMap::new(),
        };
        assert!((average_linkage(&a, &b) - 9.0).abs() < 1e-12);
    }

    #[test]
    fn average_linkage_differs_from_single_linkage() {
        // Star: centre 0 (value 0) linked to 1 (value 1), 2 (1.5) and 3 (10); 2–3 also linked.
        // 0 and 1 merge first (distance 1). Then {0,1}–2: mean of (0 − 1.5)² and (1 − 1.5)²
        // = 1.25; {0,1}–3: mean of 100 and 81 = 90.5; 2–3: 72.25. So 2 joins through its only
        // edge to the cluster, 0–2. Last {0,1,2}–3 through the shortest edge, 2–3 (72.25 < 100).
        let tree = redcap_tree(&[0.0, 1.0, 1.5, 10.0], 1, &[(0, 1), (0, 2), (0, 3), (2, 3)]);
        assert_eq!(tree, vec![(0, 1), (0, 2), (2, 3)]);
    }
}
