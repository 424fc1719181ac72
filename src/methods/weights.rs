//! Spatial weights from an edge list: symmetric contiguity, row-standardised.
//!
//! Units are indices `0..n`; the caller maps its ids to indices. Neighbours are kept sorted by
//! index so every weighted sum runs in a fixed order.

use std::fmt;

/// Why a weights matrix could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsError {
    /// An edge joins a unit to itself (edge index).
    SelfLoop { edge: usize, unit: usize },
    /// An edge names a unit index `>= n`.
    UnitOutOfRange { edge: usize, unit: usize, n: usize },
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SelfLoop { edge, unit } => write!(f, "edge {edge} joins unit {unit} to itself"),
            Self::UnitOutOfRange { edge, unit, n } => write!(
                f,
                "edge {edge} names unit {unit}, but there are only {n} units"
            ),
        }
    }
}

impl std::error::Error for WeightsError {}

/// A sparse spatial weights matrix `W` in compressed rows: row `i` lists the neighbours `j`
/// of unit `i` (sorted) with their weights `w_ij`.
///
/// Built only by [`SpatialWeights::row_standardised`], so the neighbour relation is
/// symmetric (`j` is a neighbour of `i` exactly when `i` is one of `j`), while the weights
/// need not be (`w_ij = 1/k_i`).
#[derive(Debug, Clone, PartialEq)]
pub struct SpatialWeights {
    offsets: Vec<usize>,
    neighbours: Vec<usize>,
    weights: Vec<f64>,
}

impl SpatialWeights {
    /// Row-standardised contiguity weights from undirected edges: `w_ij = 1/k_i` when `i` and
    /// `j` share an edge (`k_i` = number of neighbours of `i`), else 0. Edges are symmetric:
    /// `(a, b)` and `(b, a)` mean the same, and repeats count once. A unit with no edge (an
    /// island) gets an empty row, as in libpysal's `transform = "r"`.
    ///
    /// # Errors
    /// [`WeightsError`] when an edge joins a unit to itself or names a unit `>= n`.
    ///
    /// # Units
    /// Weights are dimensionless; every non-empty row sums to 1.
    ///
    /// # References
    /// Cliff, A. D. & Ord, J. K. (1981). *Spatial Processes: Models and Applications*. Pion,
    /// London, §1.5 (contiguity weights and their standardisation).
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::weights::SpatialWeights;
    /// // A path 0 – 1 – 2: unit 1 has two neighbours, each weighted 1/2.
    /// let w = SpatialWeights::row_standardised(3, &[(0, 1), (2, 1), (1, 0)]).unwrap();
    /// assert_eq!(w.neighbours(1), &[0, 2]);
    /// assert_eq!(w.weights(1), &[0.5, 0.5]);
    /// assert_eq!(w.weights(0), &[1.0]);
    /// ```
    pub fn row_standardised(n: usize, edges: &[(usize, usize)]) -> Result<Self, WeightsError> {
        let mut lists: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (edge, &(a, b)) in edges.iter().enumerate() {
            for unit in [a, b] {
                if unit >= n {
                    return Err(WeightsError::UnitOutOfRange { edge, unit, n });
                }
            }
            if a == b {
                return Err(WeightsError::SelfLoop { edge, unit: a });
            }
            lists[a].push(b);
            lists[b].push(a);
        }
        let mut offsets = Vec::with_capacity(n + 1);
        let mut neighbours = Vec::with_capacity(2 * edges.len());
        let mut weights = Vec::with_capacity(2 * edges.len());
        offsets.push(0);
        for mut list in lists {
            list.sort_unstable();
            list.dedup();
            let w = if list.is_empty() {
                0.0
            } else {
                1.0 / list.len() as f64
            };
            weights.extend(std::iter::repeat_n(w, list.len()));
            neighbours.extend(list);
            offsets.push(neighbours.len());
        }
        Ok(Self {
            offsets,
            neighbours,
            weights,
        })
    }

    /// The number of units.
    pub fn n(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The neighbours of unit `i`, ascending.
    pub fn neighbours(&self, i: usize) -> &[usize] {
        &self.neighbours[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The weights `w_ij` of unit `i`, aligned with [`Self::neighbours`].
    pub fn weights(&self, i: usize) -> &[f64] {
        &self.weights[self.offsets[i]..self.offsets[i + 1]]
    }

    /// The number of neighbours of unit `i`.
    pub fn cardinality(&self, i: usize) -> usize {
        self.offsets[i + 1] - self.offsets[i]
    }

    /// Units without neighbours, ascending.
    pub fn islands(&self) -> Vec<usize> {
        (0..self.n())
            .filter(|&i| self.cardinality(i) == 0)
            .collect()
    }

    /// The weight `w_ij` (0 when `j` is not a neighbour of `i`).
    pub fn weight(&self, i: usize, j: usize) -> f64 {
        self.neighbours(i)
            .binary_search(&j)
            .map_or(0.0, |k| self.weights(i)[k])
    }

    /// The spatial lag `Σ_j w_ij x_j` of every unit.
    ///
    /// # Units
    /// Those of `x` (a weighted mean of the neighbours' values for row-standardised weights).
    ///
    /// # References
    /// Anselin, L. (1988). *Spatial Econometrics: Methods and Models*. Kluwer, ch. 3.
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::weights::SpatialWeights;
    /// let w = SpatialWeights::row_standardised(3, &[(0, 1), (1, 2)]).unwrap();
    /// assert_eq!(w.lag(&[1.0, 2.0, 5.0]), vec![2.0, 3.0, 2.0]);
    /// ```
    pub fn lag(&self, x: &[f64]) -> Vec<f64> {
        (0..self.n())
            .map(|i| {
                self.neighbours(i)
                    .iter()
                    .zip(self.weights(i))
                    .map(|(&j, &w)| w * x[j])
                    .sum()
            })
            .collect()
    }

    /// `S0 = Σ_i Σ_j w_ij`, the sum of all weights (n minus the islands when row-standardised).
    ///
    /// # Units
    /// Dimensionless.
    ///
    /// # References
    /// Cliff & Ord (1981), eq. 1.37.
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::weights::SpatialWeights;
    /// let w = SpatialWeights::row_standardised(3, &[(0, 1), (1, 2)]).unwrap();
    /// assert!((w.s0() - 3.0).abs() < 1e-15);
    /// ```
    pub fn s0(&self) -> f64 {
        self.weights.iter().sum()
    }

    /// `S1 = ½ Σ_i Σ_j (w_ij + w_ji)²`.
    ///
    /// # Units
    /// Dimensionless.
    ///
    /// # References
    /// Cliff & Ord (1981), eq. 1.37.
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::weights::SpatialWeights;
    /// // Path 0 – 1 – 2: pairs (0,1) and (1,2) each have w_ij + w_ji = 1 + 1/2 = 3/2, and
    /// // both orders count: S1 = ½ · 4 · (3/2)² = 4.5.
    /// let w = SpatialWeights::row_standardised(3, &[(0, 1), (1, 2)]).unwrap();
    /// assert!((w.s1() - 4.5).abs() < 1e-12);
    /// ```
    pub fn s1(&self) -> f64 {
        let mut sum = 0.0;
        for i in 0..self.n() {
            for (&j, &wij) in self.neighbours(i).iter().zip(self.weights(i)) {
                let s = wij + self.weight(j, i);
                sum += s * s;
            }
        }
        0.5 * sum
    }

    /// `S2 = Σ_i (w_i· + w_·i)²`, with `w_i·` the row sum and `w_·i` the column sum.
    ///
    /// # Units
    /// Dimensionless.
    ///
    /// # References
    /// Cliff & Ord (1981), eq. 1.37.
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::weights::SpatialWeights;
    /// // Path 0 – 1 – 2: row sums 1, 1, 1; column sums 1/2, 2, 1/2.
    /// // S2 = 1.5² + 3² + 1.5² = 13.5.
    /// let w = SpatialWeights::row_standardised(3, &[(0, 1), (1, 2)]).unwrap();
    /// assert!((w.s2() - 13.5).abs() < 1e-12);
    /// ```
    pub fn s2(&self) -> f64 {
        let n = self.n();
        let mut col = vec![0.0; n];
        for i in 0..n {
            for (&j, &wij) in self.neighbours(i).iter().zip(self.weights(i)) {
                col[j] += wij;
            }
        }
        (0..n)
            .map(|i| {
                let s = self.weights(i).iter().sum::<f64>() + col[i];
                s * s
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_of_four_units() {
        // 2×2 grid with rook contiguity: 0–1, 0–2, 1–3, 2–3; every unit has 2 neighbours, so
        // W is symmetric with w = 1/2: S0 = 4, S1 = ½ · 8 · 1² = 4, S2 = 4 · (1 + 1)² = 16.
        let w = SpatialWeights::row_standardised(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]).unwrap();
        assert_eq!(w.s0(), 4.0);
        assert_eq!(w.s1(), 4.0);
        assert_eq!(w.s2(), 16.0);
        assert!(w.islands().is_empty());
    }

    #[test]
    fn duplicates_are_merged_and_islands_reported() {
        let w = SpatialWeights::row_standardised(4, &[(0, 1), (1, 0), (0, 1), (1, 2)]).unwrap();
        assert_eq!(w.neighbours(0), &[1]);
        assert_eq!(w.cardinality(1), 2);
        assert_eq!(w.islands(), vec![3]);
        // libpysal's transform "r" leaves an island's row empty, so S0 = n − islands.
        assert_eq!(w.s0(), 3.0);
    }

    #[test]
    fn rejects_self_loops_and_unknown_units() {
        assert_eq!(
            SpatialWeights::row_standardised(3, &[(0, 1), (2, 2)]),
            Err(WeightsError::SelfLoop { edge: 1, unit: 2 })
        );
        assert_eq!(
            SpatialWeights::row_standardised(3, &[(0, 3)]),
            Err(WeightsError::UnitOutOfRange {
                edge: 0,
                unit: 3,
                n: 3
            })
        );
    }
}
