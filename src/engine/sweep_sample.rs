//! Sampling for `sweep`: the distributions a parameter can be drawn from, Latin hypercube and
//! simple random designs, and an engine-local SplitMix64 so a draw depends only on the seed, the
//! number of draws and its index, never on threads or on a crate's version.

use serde::{Deserialize, Serialize};

/// A distribution a swept parameter is drawn from, written `{uniform: [a, b]}` and so on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    /// Uniform on `[a, b]`.
    Uniform([f64; 2]),
    /// Triangular with `[min, mode, max]`.
    Triangular([f64; 3]),
    /// Normal with `[mean, sd]`.
    Normal([f64; 2]),
    /// One of the listed values (numbers or names), each equally likely.
    Choice(Vec<serde_json::Value>),
}

impl Distribution {
    /// Why the distribution's arguments are unusable, if they are.
    pub fn problem(&self) -> Option<String> {
        let finite = |xs: &[f64]| xs.iter().all(|x| x.is_finite());
        match self {
            Self::Uniform([a, b]) if !finite(&[*a, *b]) || a >= b => {
                Some(format!("uniform [{a}, {b}] needs finite bounds with a < b"))
            }
            Self::Triangular([lo, mode, hi])
                if !finite(&[*lo, *mode, *hi]) || lo >= hi || mode < lo || mode > hi =>
            {
                Some(format!(
                    "triangular [{lo}, {mode}, {hi}] needs min < max and min ≤ mode ≤ max"
                ))
            }
            Self::Normal([mean, sd]) if !finite(&[*mean, *sd]) || *sd <= 0.0 => Some(format!(
                "normal [{mean}, {sd}] needs a finite mean and sd > 0"
            )),
            Self::Choice(values) if values.is_empty() => {
                Some("choice needs at least one value".to_owned())
            }
            _ => None,
        }
    }

    /// Values a parameter must accept for the sweep to make sense: both ends of a range (the
    /// mean and mean + sd for a normal), or every choice. Used to check a path at plan time.
    pub fn probes(&self) -> Vec<serde_json::Value> {
        let num = |x: f64| serde_json::json!(x);
        match self {
            Self::Uniform([a, b]) => vec![num(*a), num(*b)],
            Self::Triangular([lo, _, hi]) => vec![num(*lo), num(*hi)],
            Self::Normal([mean, sd]) => vec![num(*mean), num(mean + sd)],
            Self::Choice(values) => values.clone(),
        }
    }

    /// The value at probability `u` in (0, 1) (the inverse of the distribution function), and
    /// its number: the value itself, or a choice's 0-based position in the list.
    pub fn at(&self, u: f64) -> (serde_json::Value, f64) {
        let x = match self {
            Self::Uniform([a, b]) => a + u * (b - a),
            Self::Triangular([lo, mode, hi]) => triangular_quantile(*lo, *mode, *hi, u),
            Self::Normal([mean, sd]) => mean + sd * normal_quantile(u),
            Self::Choice(values) => {
                let n = values.len();
                // `u < 1`, so the position is below `n`; the `min` guards rounding.
                let pos = ((u * n as f64) as usize).min(n - 1);
                return (values[pos].clone(), pos as f64);
            }
        };
        (serde_json::json!(x), x)
    }
}

/// The inverse distribution function of the triangular distribution.
///
/// # References
/// Johnson, N. L., Kotz, S. & Balakrishnan, N. (1995). *Continuous Univariate Distributions*,
/// vol. 2, 2nd ed., Wiley, ch. 26 (the triangular distribution, its CDF in two pieces).
fn triangular_quantile(lo: f64, mode: f64, hi: f64, u: f64) -> f64 {
    let split = (mode - lo) / (hi - lo);
    if u < split {
        lo + (u * (hi - lo) * (mode - lo)).sqrt()
    } else {
        hi - ((1.0 - u) * (hi - lo) * (hi - mode)).sqrt()
    }
}

/// The standard normal quantile, relative error below 1.2e-9 over (0, 1).
///
/// # References
/// Acklam, P. J. (2003). An algorithm for computing the inverse normal cumulative distribution
/// function (rational approximations in a central region and two tails).
pub fn normal_quantile(u: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if u < LOW {
        tail((-2.0 * u.ln()).sqrt())
    } else if u > 1.0 - LOW {
        -tail((-2.0 * (1.0 - u).ln()).sqrt())
    } else {
        let q = u - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// How the unit hypercube is filled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Latin hypercube: each parameter's range cut into `draws` equal-probability strata, each
    /// stratum used once, strata paired at random across parameters (McKay, Beckman & Conover
    /// 1979, Technometrics 21(2): 239–245).
    #[default]
    Lhs,
    /// Independent uniform draws.
    Random,
}

/// SplitMix64 (Steele, Lea & Flood 2014, OOPSLA: 453–472), kept here so the engine imports no
/// domain code; the same algorithm as Vigna's public-domain `splitmix64.c`.
struct SplitMix(u64);

impl SplitMix {
    /// An independent stream for `keys` under `seed`: each key folded in through the mixer.
    fn stream(seed: u64, keys: &[u64]) -> Self {
        let mut state = seed;
        for &k in keys {
            state = mix(state ^ mix(k.wrapping_add(GAMMA)));
        }
        Self(state)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }
    /// Uniform in the open interval (0, 1): 53 random bits, centred in their cell.
    fn next_open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Uniform in `0..n` (Lemire's multiply-shift; its bias is below 2^-32 for n < 2^32).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stream purposes, so the permutation and the jitter of a parameter never share a stream.
const PERMUTATION: u64 = 1;
const JITTER: u64 = 2;

/// Probabilities in (0, 1) for `draws` draws × `params` parameters, `u[draw][param]`.
///
/// Each parameter `j` has its own streams under `seed`: with `random`, draw `i` takes the first
/// number of stream `(j, i)`; with `lhs`, a Fisher–Yates permutation `π_j` of the strata (stream
/// `(j, draws)`) puts draw `i` in stratum `π_j(i)`, at a uniform position inside it. So a draw
/// depends on the seed, the number of draws and its index, and not on the threads that run it.
pub fn unit_samples(sampling: Sampling, seed: u64, draws: usize, params: usize) -> Vec<Vec<f64>> {
    let mut u = vec![vec![0.0; params]; draws];
    for j in 0..params {
        let jj = j as u64;
        let strata: Vec<usize> = match sampling {
            Sampling::Random => Vec::new(),
            Sampling::Lhs => {
                let mut perm: Vec<usize> = (0..draws).collect();
                let mut rng = SplitMix::stream(seed, &[PERMUTATION, jj, draws as u64]);
                for k in (1..draws).rev() {
                    let pick = rng.below(k as u64 + 1) as usize;
                    perm.swap(k, pick);
                }
                perm
            }
        };
        for (i, row) in u.iter_mut().enumerate() {
            let v = SplitMix::stream(seed, &[JITTER, jj, i as u64]).next_open01();
            row[j] = match sampling {
                Sampling::Random => v,
                Sampling::Lhs => (strata[i] as f64 + v) / draws as f64,
            };
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_output() {
        // splitmix64.c from state 1234567: the first two outputs (also pinned in the crate's
        // own generator's doc test).
        let mut rng = SplitMix(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn normal_quantile_matches_scipy() {
        // scipy.stats.norm.ppf(p) for p in 0.001, 0.025, 0.3, 0.5, 0.9, 0.999 (scipy 1.x).
        let cases = [
            (0.001, -3.090_232_306_167_813_5),
            (0.025, -1.959_963_984_540_054),
            (0.3, -0.524_400_512_708_041_2),
            (0.5, 0.0),
            (0.9, 1.281_551_565_544_600_4),
            (0.999, 3.090_232_306_167_813_5),
        ];
        for (p, z) in cases {
            let got = normal_quantile(p);
            assert!(
                (got - z).abs() < 5e-9 * z.abs().max(1.0),
                "ppf({p}) = {got}, want {z}"
            );
        }
    }

    #[test]
    fn triangular_quantile_inverts_the_cdf() {
        // [0, 1, 4]: F(1) = 1/4, so u = 0.25 sits at the mode; u = 1/16 at x = 0.5
        // (F(x) = x² / (4·1) for x ≤ 1); u = 0.75 at 4 − sqrt(0.25·4·3) = 4 − sqrt(3).
        assert!((triangular_quantile(0.0, 1.0, 4.0, 0.25) - 1.0).abs() < 1e-12);
        assert!((triangular_quantile(0.0, 1.0, 4.0, 1.0 / 16.0) - 0.5).abs() < 1e-12);
        let want = 4.0 - 3f64.sqrt();
        assert!((triangular_quantile(0.0, 1.0, 4.0, 0.75) - want).abs() < 1e-12);
    }

    #[test]
    fn latin_hypercube_uses_each_stratum_once() {
        let draws = 50;
        let u = unit_samples(Sampling::Lhs, 7, draws, 3);
        for j in 0..3 {
            let mut strata: Vec<usize> = u.iter().map(|r| (r[j] * draws as f64) as usize).collect();
            strata.sort_unstable();
            assert_eq!(strata, (0..draws).collect::<Vec<_>>(), "parameter {j}");
        }
        assert_eq!(
            u,
            unit_samples(Sampling::Lhs, 7, draws, 3),
            "same seed, same design"
        );
        assert_ne!(
            u,
            unit_samples(Sampling::Lhs, 8, draws, 3),
            "another seed, another design"
        );
        let random = unit_samples(Sampling::Random, 7, draws, 3);
        assert!(random.iter().flatten().all(|&x| x > 0.0 && x < 1.0));
    }

    #[test]
    fn choice_picks_by_position() {
        let d = Distribution::Choice(vec!["a".into(), "b".into(), "c".into()]);
        assert_eq!(d.at(0.1), (serde_json::json!("a"), 0.0));
        assert_eq!(d.at(0.5), (serde_json::json!("b"), 1.0));
        assert_eq!(d.at(0.999_999), (serde_json::json!("c"), 2.0));
        assert!(Distribution::Uniform([1.0, 1.0]).problem().is_some());
        assert!(
            Distribution::Triangular([0.0, 2.0, 1.0])
                .problem()
                .is_some()
        );
        assert!(Distribution::Normal([0.0, 0.0]).problem().is_some());
    }
}
