//! Minimum spanning trees (forests) of a weighted graph, with a fixed tie order so that the
//! tree, and everything built on it, is the same on every run and platform.

use crate::methods::contiguity::UnionFind;

/// The squared Euclidean distance between rows `i` and `j` of a row-major `n × vars` matrix,
/// divided by `vars` (the mean squared difference, as GeoDa's distance matrix has it; the
/// factor does not change any tree or partition).
///
/// # Units
/// Squared units of the (usually standardised, unitless) variables.
///
/// # References
/// de Hoon, M. J. L., Imoto, S., Nolan, J. & Miyano, S. (2004). Open source clustering
/// software. *Bioinformatics* 20(9): 1453–1454 (the `distancematrix` GeoDa uses).
///
/// # Examples
/// ```
/// use pipeline::methods::mst::mean_sq_distance;
/// // Rows (0, 0) and (3, 4): (9 + 16) / 2.
/// assert_eq!(mean_sq_distance(&[0.0, 0.0, 3.0, 4.0], 2, 0, 1), 12.5);
/// ```
pub fn mean_sq_distance(data: &[f64], vars: usize, i: usize, j: usize) -> f64 {
    let (a, b) = (
        &data[i * vars..(i + 1) * vars],
        &data[j * vars..(j + 1) * vars],
    );
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / vars as f64
}

/// A minimum spanning forest by Kruskal's algorithm.
///
/// `edges` are `(i, j, weight)`. Edges are taken in increasing weight, ties by the smaller
/// then the larger endpoint, so the forest is unique. One tree per connected component.
/// Returns the chosen edges as `(min, max)` pairs in the order they were taken.
///
/// # Units
/// Weights in any unit; only their order matters.
///
/// # References
/// Kruskal, J. B. (1956). On the shortest spanning subtree of a graph and the traveling
/// salesman problem. *Proceedings of the AMS* 7(1): 48–50.
///
/// # Examples
/// ```
/// use pipeline::methods::mst::minimum_spanning_forest;
/// // A triangle 0–1 (1), 1–2 (2), 0–2 (2): the tie between the two 2s goes to (0, 2).
/// let tree = minimum_spanning_forest(3, &[(0, 1, 1.0), (1, 2, 2.0), (0, 2, 2.0)]);
/// assert_eq!(tree, vec![(0, 1), (0, 2)]);
/// ```
pub fn minimum_spanning_forest(n: usize, edges: &[(usize, usize, f64)]) -> Vec<(usize, usize)> {
    let mut sorted: Vec<(f64, usize, usize)> = edges
        .iter()
        .map(|&(i, j, w)| (w, i.min(j), i.max(j)))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut uf = UnionFind::new(n);
    let mut tree = Vec::with_capacity(n.saturating_sub(1));
    for (_, i, j) in sorted {
        if uf.union(i, j) {
            tree.push((i, j));
            if tree.len() + 1 == n {
                break;
            }
        }
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forest_of_two_components() {
        // Components {0,1,2} and {3,4}; the heavy edge 0–2 closes a cycle and is skipped.
        let edges = [(0, 1, 1.0), (1, 2, 1.5), (0, 2, 5.0), (3, 4, 0.5)];
        assert_eq!(
            minimum_spanning_forest(5, &edges),
            vec![(3, 4), (0, 1), (1, 2)]
        );
    }
}
