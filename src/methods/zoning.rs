//! Zoning rule tables: named zones defined by threshold conditions on index columns, the
//! built-in schemes, and the plan-time check that a table leaves no gap and no ambiguity.
//!
//! A rule is a conjunction of conditions `column op value`, so it selects a box (a product of
//! intervals) in the space of the columns. The boxes of all rules cut each axis at their
//! thresholds; satisfaction is constant on every cell of that arrangement, so testing one
//! point per cell (each threshold, the midpoints between them, and a point beyond each end)
//! decides exhaustiveness, overlap and reachability exactly.

use std::fmt::Write as _;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl Op {
    pub fn holds(self, x: f64, value: f64) -> bool {
        match self {
            Op::Ge => x >= value,
            Op::Gt => x > value,
            Op::Le => x <= value,
            Op::Lt => x < value,
            Op::Eq => x == value,
        }
    }
}

/// One condition of a rule: `columns[column] op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub column: usize,
    pub op: Op,
    pub value: f64,
}

/// Parses a condition's text such as `">= 1"`, `"< 0.5"`, `"== 0"` (also `≥`, `≤`, `=`).
///
/// # Units
/// The threshold is in the column's unit.
///
/// # References
/// None (syntax of this project's study files).
///
/// # Examples
/// ```
/// use pipeline::methods::zoning::{Op, parse_condition};
/// assert_eq!(parse_condition(">= 1").unwrap(), (Op::Ge, 1.0));
/// assert_eq!(parse_condition("< -0.5").unwrap(), (Op::Lt, -0.5));
/// assert!(parse_condition("about 1").is_err());
/// ```
pub fn parse_condition(text: &str) -> Result<(Op, f64), String> {
    let t = text.trim();
    let ops: [(&str, Op); 8] = [
        (">=", Op::Ge),
        ("≥", Op::Ge),
        ("<=", Op::Le),
        ("≤", Op::Le),
        ("==", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
    ];
    for (sym, op) in ops {
        if let Some(rest) = t.strip_prefix(sym) {
            let value: f64 = rest
                .trim()
                .parse()
                .map_err(|_| format!("`{text}`: `{}` is not a number", rest.trim()))?;
            if !value.is_finite() {
                return Err(format!("`{text}`: the threshold must be a finite number"));
            }
            return Ok((op, value));
        }
    }
    Err(format!(
        "`{text}` is not a condition; write an operator and a number, e.g. \">= 1\" or \"< 0\" (operators: >=, >, <=, <, ==)"
    ))
}

/// One rule: the zone it assigns and the conditions that must all hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub zone: String,
    pub conditions: Vec<Condition>,
}

/// How rules combine when several match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// The first matching rule wins; later rules may overlap earlier ones.
    First,
    /// Exactly one rule may match any point; overlaps are an error.
    Unique,
}

/// A zoning rule table.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    /// The columns the conditions refer to, in order of first use.
    pub columns: Vec<String>,
    pub rules: Vec<Rule>,
    pub matching: Matching,
    /// The zone of units no rule matches; without it such units are an error.
    pub default: Option<String>,
}

/// Why a rule table was rejected at plan time.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "rules {first} (`{first_zone}`) and {second} (`{second_zone}`) overlap, e.g. at {point}, and `match: unique` allows one rule per point"
    )]
    RulesOverlap {
        first: usize,
        first_zone: String,
        second: usize,
        second_zone: String,
        point: String,
    },
    #[error("no rule matches {point}, and no `default` zone is given")]
    RulesNotExhaustive { point: String },
    #[error(
        "rule {rule} (`{zone}`) can never apply: every point it matches is taken by an earlier rule or its conditions contradict each other"
    )]
    RuleUnreachable { rule: usize, zone: String },
    #[error("the rule table has no rules")]
    RulesEmpty,
    #[error("the rules use too many thresholds to check ({cells} cells); split the table")]
    RulesTooLarge { cells: usize },
}

/// A rule as written: the zone and its `(column, op, value)` conditions.
pub type RuleRow = (String, Vec<(String, Op, f64)>);

impl RuleSet {
    /// Builds a rule set from `(zone, [(column, op, value)])` rows.
    pub fn new(rules: Vec<RuleRow>, matching: Matching, default: Option<String>) -> Self {
        let mut columns: Vec<String> = Vec::new();
        let rules = rules
            .into_iter()
            .map(|(zone, conds)| Rule {
                zone,
                conditions: conds
                    .into_iter()
                    .map(|(col, op, value)| {
                        let column = columns.iter().position(|c| *c == col).unwrap_or_else(|| {
                            columns.push(col);
                            columns.len() - 1
                        });
                        Condition { column, op, value }
                    })
                    .collect(),
            })
            .collect();
        Self {
            columns,
            rules,
            matching,
            default,
        }
    }

    /// The five-type scheme, first match wins: carbon sink functional (ESC ≥ 1 and NCE ≤ 0),
    /// low-carbon maintenance (ESC ≥ 1, ECC ≥ 1), carbon intensity control (ESC ≥ 1, ECC < 1),
    /// economic development (ESC < 1, ECC ≥ 1), high-carbon optimization (ESC < 1, ECC < 1).
    ///
    /// # Units
    /// ECC and ESC are ratios (neutral line 1); NCE in t C (neutral line 0).
    ///
    /// # References
    /// A reconstruction for the Yellow River Basin study (its published abstract names five zone
    /// types but not their rules), on the ECC/ESC quadrants of the carbon-compensation zoning
    /// literature (Rong et al. 2020, *Energies* 13(10): 2600).
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::zoning::RuleSet;
    /// let five = RuleSet::five_type("nce_t_c");
    /// assert_eq!(five.zones().len(), 5);
    /// assert_eq!(five.rules[0].zone, "carbon_sink_functional");
    /// ```
    pub fn five_type(nce_column: &str) -> Self {
        let c = |col: &str, op, v| (col.to_owned(), op, v);
        Self::new(
            vec![
                (
                    "carbon_sink_functional".into(),
                    vec![c("esc", Op::Ge, 1.0), c(nce_column, Op::Le, 0.0)],
                ),
                (
                    "low_carbon_maintenance".into(),
                    vec![c("esc", Op::Ge, 1.0), c("ecc", Op::Ge, 1.0)],
                ),
                (
                    "carbon_intensity_control".into(),
                    vec![c("esc", Op::Ge, 1.0), c("ecc", Op::Lt, 1.0)],
                ),
                (
                    "economic_development".into(),
                    vec![c("esc", Op::Lt, 1.0), c("ecc", Op::Ge, 1.0)],
                ),
                (
                    "high_carbon_optimization".into(),
                    vec![c("esc", Op::Lt, 1.0), c("ecc", Op::Lt, 1.0)],
                ),
            ],
            Matching::First,
            None,
        )
    }

    /// The ECC/ESC quadrants: low-carbon maintenance (ECC ≥ 1, ESC ≥ 1), economic development
    /// (ECC ≥ 1, ESC < 1), carbon sink functional (ECC < 1, ESC ≥ 1), high-carbon optimization
    /// (ECC < 1, ESC < 1). Disjoint and exhaustive.
    ///
    /// # Units
    /// ECC and ESC are ratios; the neutral line is 1.
    ///
    /// # References
    /// The 2×2 ECC/ESC zoning common in the Chinese carbon-compensation literature
    /// (Rong et al. 2020, *Energies* 13(10): 2600, on the lower Yellow River).
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::zoning::RuleSet;
    /// let q = RuleSet::quadrant();
    /// // ECC 0.5, ESC 2 → carbon sink functional.
    /// assert_eq!(q.zone_of(q.classify(&[0.5, 2.0])), Some("carbon_sink_functional"));
    /// ```
    pub fn quadrant() -> Self {
        let c = |col: &str, op, v| (col.to_owned(), op, v);
        Self::new(
            vec![
                (
                    "low_carbon_maintenance".into(),
                    vec![c("ecc", Op::Ge, 1.0), c("esc", Op::Ge, 1.0)],
                ),
                (
                    "economic_development".into(),
                    vec![c("ecc", Op::Ge, 1.0), c("esc", Op::Lt, 1.0)],
                ),
                (
                    "carbon_sink_functional".into(),
                    vec![c("ecc", Op::Lt, 1.0), c("esc", Op::Ge, 1.0)],
                ),
                (
                    "high_carbon_optimization".into(),
                    vec![c("ecc", Op::Lt, 1.0), c("esc", Op::Lt, 1.0)],
                ),
            ],
            Matching::Unique,
            None,
        )
    }

    /// Payment / balanced / receiving zones on a value column with a balance band `±band`:
    /// payment above `+band`, receiving below `−band`, balanced in between (inclusive).
    ///
    /// # Units
    /// `band` in the column's unit (t C for net emission, yuan for a compensation value).
    ///
    /// # References
    /// The payment / balanced / compensated zoning of the carbon-compensation literature
    /// (Xu Hongwen et al. 2025, *Scientific Reports* 15: 3266: 7 payment, 5 balanced, 14 compensated).
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::zoning::RuleSet;
    /// let t = RuleSet::three_zone("nce_t_c", 5.0);
    /// assert_eq!(t.zone_of(t.classify(&[-4.0])), Some("balanced"));
    /// assert_eq!(t.zone_of(t.classify(&[-6.0])), Some("receiving"));
    /// ```
    pub fn three_zone(column: &str, band: f64) -> Self {
        let band = band.abs();
        let c = |op, v| (column.to_owned(), op, v);
        Self::new(
            vec![
                ("payment".into(), vec![c(Op::Gt, band)]),
                ("balanced".into(), vec![c(Op::Ge, -band), c(Op::Le, band)]),
                ("receiving".into(), vec![c(Op::Lt, -band)]),
            ],
            Matching::Unique,
            None,
        )
    }

    fn matches(rule: &Rule, values: &[f64]) -> bool {
        rule.conditions
            .iter()
            .all(|c| c.op.holds(values[c.column], c.value))
    }

    /// The index of the rule that assigns a unit with these values (in `columns` order), or
    /// `None` when no rule matches (the `default` zone applies). Under `Matching::Unique` the
    /// first match is returned too; [`RuleSet::check`] guarantees there is only one.
    ///
    /// # Units
    /// Values in the columns' units.
    ///
    /// # References
    /// Five-type first-match scheme: this project's reconstruction of the zoning of the Yellow
    /// River Basin study; quadrants after the ECC/ESC zoning literature (e.g. 赵荣钦 et al.).
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::zoning::RuleSet;
    /// let five = RuleSet::five_type("nce_t_c");
    /// // columns in order of first use: esc, nce_t_c, ecc
    /// assert_eq!(five.columns, vec!["esc", "nce_t_c", "ecc"]);
    /// // ESC 1.2, NCE −5, ECC 0.3 → carbon sink functional (rule 0).
    /// assert_eq!(five.classify(&[1.2, -5.0, 0.3]), Some(0));
    /// // ESC 0.4, NCE 10, ECC 1.5 → economic development (rule 3).
    /// assert_eq!(five.classify(&[0.4, 10.0, 1.5]), Some(3));
    /// ```
    pub fn classify(&self, values: &[f64]) -> Option<usize> {
        self.rules.iter().position(|r| Self::matches(r, values))
    }

    /// The name of the zone a rule index (or `None`, the default) stands for.
    pub fn zone_of(&self, rule: Option<usize>) -> Option<&str> {
        match rule {
            Some(i) => Some(&self.rules[i].zone),
            None => self.default.as_deref(),
        }
    }

    /// The distinct zone names in rule order, then the default.
    pub fn zones(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for z in self
            .rules
            .iter()
            .map(|r| &r.zone)
            .chain(self.default.as_ref())
        {
            if !out.contains(z) {
                out.push(z.clone());
            }
        }
        out
    }

    fn describe(&self, point: &[f64]) -> String {
        let mut s = String::new();
        for (i, (c, v)) in self.columns.iter().zip(point).enumerate() {
            // `{v}` prints whole numbers without a fraction (`1.0` as `1`).
            let _ = write!(s, "{}{c} = {v}", if i > 0 { ", " } else { "" });
        }
        s
    }

    /// Checks the table at plan time: it must have rules, leave no point unmatched unless a
    /// `default` is given, have no overlaps under `Matching::Unique`, and every rule must
    /// match some point that no earlier rule takes.
    ///
    /// # Units
    /// None.
    ///
    /// # References
    /// None (a consistency check of this project's rule tables).
    ///
    /// # Examples
    /// ```
    /// use pipeline::methods::zoning::{Matching, Op, RuleSet, RuleError};
    /// assert!(RuleSet::five_type("nce_t_c").check().is_ok());
    /// let gap = RuleSet::new(vec![("high".into(), vec![("esc".into(), Op::Gt, 1.0)])], Matching::First, None);
    /// assert!(matches!(gap.check(), Err(RuleError::RulesNotExhaustive { .. })));
    /// ```
    pub fn check(&self) -> Result<(), RuleError> {
        if self.rules.is_empty() {
            return Err(RuleError::RulesEmpty);
        }
        let axes: Vec<Vec<f64>> = (0..self.columns.len())
            .map(|col| self.probe_values(col))
            .collect();
        let cells = axes
            .iter()
            .try_fold(1usize, |acc, a| acc.checked_mul(a.len()))
            .unwrap_or(usize::MAX);
        if cells > 2_000_000 {
            return Err(RuleError::RulesTooLarge { cells });
        }
        let mut reachable = vec![false; self.rules.len()];
        let mut point = vec![0.0; self.columns.len()];
        for cell in 0..cells {
            let mut rest = cell;
            for (p, axis) in point.iter_mut().zip(&axes) {
                *p = axis[rest % axis.len()];
                rest /= axis.len();
            }
            self.check_point(&point, &mut reachable)?;
        }
        if let Some(r) = reachable.iter().position(|&ok| !ok) {
            return Err(RuleError::RuleUnreachable {
                rule: r + 1,
                zone: self.rules[r].zone.clone(),
            });
        }
        Ok(())
    }

    /// The values of column `col` that stand for every interval its thresholds make: each
    /// threshold, the midpoints between them, and one beyond each end.
    fn probe_values(&self, col: usize) -> Vec<f64> {
        let mut t: Vec<f64> = self
            .rules
            .iter()
            .flat_map(|r| {
                r.conditions
                    .iter()
                    .filter(|c| c.column == col)
                    .map(|c| c.value)
            })
            .collect();
        t.sort_by(f64::total_cmp);
        t.dedup();
        let mut pts = vec![t[0] - 1.0];
        for (i, &v) in t.iter().enumerate() {
            pts.push(v);
            if let Some(&next) = t.get(i + 1) {
                pts.push((v + next) / 2.0);
            }
        }
        pts.push(t[t.len() - 1] + 1.0);
        pts
    }

    /// Marks the rule that takes `point` as reachable; an error if no rule (and no default)
    /// takes it, or two do under unique matching.
    fn check_point(&self, point: &[f64], reachable: &mut [bool]) -> Result<(), RuleError> {
        let matching: Vec<usize> = (0..self.rules.len())
            .filter(|&r| Self::matches(&self.rules[r], point))
            .take(2)
            .collect();
        match matching.as_slice() {
            [] if self.default.is_none() => Err(RuleError::RulesNotExhaustive {
                point: self.describe(point),
            }),
            [] => Ok(()),
            [a, b] if self.matching == Matching::Unique => Err(RuleError::RulesOverlap {
                first: a + 1,
                first_zone: self.rules[*a].zone.clone(),
                second: b + 1,
                second_zone: self.rules[*b].zone.clone(),
                point: self.describe(point),
            }),
            [a, ..] => {
                reachable[*a] = true;
                Ok(())
            }
        }
    }
}

/// Area-weighted majority: the zone index with the largest total weight among `(zone, weight)`
/// pairs; ties go to the zone listed first in `order` (the rule order).
///
/// # Units
/// Weights in any unit (area, or 1 per unit for a head count).
///
/// # References
/// None (a plurality vote).
///
/// # Examples
/// ```
/// use pipeline::methods::zoning::majority;
/// // Zone 2 has area 5 + 1 = 6 against zone 0's 5.
/// assert_eq!(majority(&[(0, 5.0), (2, 5.0), (2, 1.0)], 3), Some(2));
/// ```
pub fn majority(members: &[(usize, f64)], zones: usize) -> Option<usize> {
    let mut total = vec![0.0; zones];
    let mut seen = vec![false; zones];
    for &(z, w) in members {
        total[z] += w;
        seen[z] = true;
    }
    let mut best: Option<usize> = None;
    for z in 0..zones {
        if seen[z] && best.is_none_or(|b| total[z] > total[b]) {
            best = Some(z);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One unit per type of the five-type scheme (columns esc, nce_t_c, ecc), by the rules of
    /// the scheme read in order.
    #[test]
    fn five_type_every_zone() {
        let five = RuleSet::five_type("nce_t_c");
        let zone = |esc: f64, nce: f64, ecc: f64| {
            five.zone_of(five.classify(&[esc, nce, ecc]))
                .unwrap()
                .to_owned()
        };
        // ESC ≥ 1 and NCE ≤ 0 wins even with ECC ≥ 1 (first match).
        assert_eq!(zone(1.0, 0.0, 2.0), "carbon_sink_functional");
        assert_eq!(zone(1.5, 3.0, 1.0), "low_carbon_maintenance");
        assert_eq!(zone(1.5, 3.0, 0.99), "carbon_intensity_control");
        assert_eq!(zone(0.99, -1.0, 1.0), "economic_development");
        assert_eq!(zone(0.2, 8.0, 0.5), "high_carbon_optimization");
        assert!(five.check().is_ok());
    }

    #[test]
    fn quadrant_and_three_zone_every_zone() {
        let q = RuleSet::quadrant();
        assert_eq!(q.columns, vec!["ecc", "esc"]);
        let zq = |ecc: f64, esc: f64| q.zone_of(q.classify(&[ecc, esc])).unwrap().to_owned();
        assert_eq!(zq(1.0, 1.0), "low_carbon_maintenance");
        assert_eq!(zq(1.0, 0.5), "economic_development");
        assert_eq!(zq(0.5, 1.0), "carbon_sink_functional");
        assert_eq!(zq(0.5, 0.5), "high_carbon_optimization");
        assert!(q.check().is_ok());
        let t = RuleSet::three_zone("nce_t_c", 10.0);
        let zt = |v: f64| t.zone_of(t.classify(&[v])).unwrap().to_owned();
        assert_eq!(zt(10.5), "payment");
        assert_eq!(zt(10.0), "balanced");
        assert_eq!(zt(-10.0), "balanced");
        assert_eq!(zt(-10.5), "receiving");
        assert!(t.check().is_ok());
    }

    #[test]
    fn overlap_is_an_error_under_unique() {
        let rules = vec![
            ("a".into(), vec![("esc".into(), Op::Ge, 1.0)]),
            ("b".into(), vec![("esc".into(), Op::Le, 1.0)]),
        ];
        let unique = RuleSet::new(rules.clone(), Matching::Unique, None);
        // The two rules share exactly esc = 1.
        assert_eq!(
            unique.check(),
            Err(RuleError::RulesOverlap {
                first: 1,
                first_zone: "a".into(),
                second: 2,
                second_zone: "b".into(),
                point: "esc = 1".into()
            })
        );
        assert!(RuleSet::new(rules, Matching::First, None).check().is_ok());
    }

    #[test]
    fn gap_is_an_error_unless_default() {
        // esc in (1, 2) is uncovered; the midpoint 1.5 is the example.
        let rules = vec![
            ("low".into(), vec![("esc".into(), Op::Le, 1.0)]),
            ("high".into(), vec![("esc".into(), Op::Ge, 2.0)]),
        ];
        let err = RuleSet::new(rules.clone(), Matching::Unique, None)
            .check()
            .unwrap_err();
        assert_eq!(
            err,
            RuleError::RulesNotExhaustive {
                point: "esc = 1.5".into()
            }
        );
        assert!(
            RuleSet::new(rules, Matching::Unique, Some("middle".into()))
                .check()
                .is_ok()
        );
    }

    #[test]
    fn shadowed_and_contradictory_rules_are_unreachable() {
        let shadowed = vec![
            ("all".into(), vec![("esc".into(), Op::Ge, 0.0)]),
            ("some".into(), vec![("esc".into(), Op::Ge, 1.0)]),
            ("neg".into(), vec![("esc".into(), Op::Lt, 0.0)]),
        ];
        assert_eq!(
            RuleSet::new(shadowed, Matching::First, None).check(),
            Err(RuleError::RuleUnreachable {
                rule: 2,
                zone: "some".into()
            })
        );
        let contradictory = vec![
            (
                "x".into(),
                vec![("esc".into(), Op::Ge, 1.0), ("esc".into(), Op::Lt, 0.5)],
            ),
            ("rest".into(), vec![]),
        ];
        assert_eq!(
            RuleSet::new(contradictory, Matching::First, None).check(),
            Err(RuleError::RuleUnreachable {
                rule: 1,
                zone: "x".into()
            })
        );
    }

    #[test]
    fn majority_ties_go_to_rule_order() {
        assert_eq!(majority(&[(3, 2.0), (1, 2.0)], 4), Some(1));
        assert_eq!(majority(&[], 4), None);
    }
}
