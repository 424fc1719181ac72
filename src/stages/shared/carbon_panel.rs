//! Shared adapter code of the carbon-budget stages (`emission`, `sink`, `indices`,
//! `compensation`, `functional_areas`): reading unit × year tables with an explicit policy for
//! missing values, and choosing land-use coefficient presets. Not a stage kind.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::engine::stage::{Inputs, Source, StageContext, StageError};
use crate::methods::coefficients::{
    LAND_PRESETS, LandCoefficient, land_preset, parse_land_coefficients,
};
use crate::table::{f64s, has_column, i64s, ids};

/// A text column, borrowed from the Arrow array when it is plain non-null UTF-8 (the usual
/// case), otherwise converted to owned strings (integer ids, nulls).
pub enum StrCol<'a> {
    Borrowed(&'a arrow_array::StringArray),
    Owned(Vec<String>),
}

impl StrCol<'_> {
    /// Value of row `i`.
    #[must_use]
    pub fn get(&self, i: usize) -> &str {
        match self {
            StrCol::Borrowed(a) => a.value(i),
            StrCol::Owned(v) => &v[i],
        }
    }
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            StrCol::Borrowed(a) => arrow_array::Array::len(*a),
            StrCol::Owned(v) => v.len(),
        }
    }
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads a text column without copying when possible. With `id`, empty values are an error.
///
/// # Errors
/// A missing column, or an empty id when `id` is set.
pub fn str_col<'a>(
    batch: &'a RecordBatch,
    table: &str,
    name: &str,
    id: bool,
) -> Result<StrCol<'a>, StageError> {
    let col = crate::table::column(batch, table, name)?;
    if let Some(a) = col.as_any().downcast_ref::<arrow_array::StringArray>()
        && arrow_array::Array::null_count(a) == 0
    {
        if id && let Some(row) = (0..arrow_array::Array::len(a)).find(|&i| a.value(i).is_empty()) {
            return Err(StageError::data(format!(
                "`{table}` row {}: id column `{name}` is empty",
                row + 1
            ))
            .with_hint("every row needs an id"));
        }
        return Ok(StrCol::Borrowed(a));
    }
    Ok(StrCol::Owned(if id {
        ids(batch, table, name)?
    } else {
        crate::table::strings(batch, table, name)?
    }))
}

/// What to do when a side table (energy, economy, crops) lacks a value for a unit and year
/// that the main table has, or holds an empty/NaN cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// Stop with an error naming the table, unit, year and column (default).
    #[default]
    Error,
    /// Count the value as zero (with a warning giving how many were filled).
    Zero,
    /// Interpolate linearly between the unit's nearest earlier and later years with a value;
    /// a year outside the unit's range is an error (no extrapolation).
    Interpolate,
}

/// A unit × year table: for each unit and year, one value per requested column. NaN marks a
/// missing cell.
///
/// Lookups go through a hash index (never iterated, so it cannot reach an output) with a
/// one-entry cache of the last unit, because stages read a unit's years and columns in a row.
/// The values are shared ([`Panel::values`], [`Panel::over`]), so a stage that runs many times
/// over the same table reads it once; the record of filled values is each panel's own.
pub struct Panel {
    values: Arc<PanelValues>,
    last: Cell<usize>,
    filled: Cell<usize>,
    first_filled: RefCell<Option<String>>,
}

/// The values of a [`Panel`], without its record of lookups.
pub struct PanelValues {
    table: String,
    columns: Vec<String>,
    /// Unit ids, sorted.
    units: Vec<String>,
    index: HashMap<String, usize>,
    /// Per unit (same order as `units`): year → values.
    rows: Vec<BTreeMap<i64, Vec<f64>>>,
}

impl Panel {
    /// Reads `columns` of a table keyed by `unit_id` and `year`. A repeated unit and year,
    /// a negative value (when `nonnegative`) or an infinite one is an error.
    ///
    /// # Errors
    /// A missing column, a repeated unit and year, or a negative or infinite value.
    pub fn read(
        batch: &RecordBatch,
        table: &str,
        columns: &[&str],
        nonnegative: bool,
    ) -> Result<Self, StageError> {
        let units = str_col(batch, table, "unit_id", true)?;
        let years = i64s(batch, table, "year")?;
        let values: Vec<Vec<f64>> = columns
            .iter()
            .map(|c| f64s(batch, table, c))
            .collect::<Result<_, _>>()?;
        let mut rows: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
        for (row, year) in years.into_iter().enumerate() {
            let unit = units.get(row);
            let mut v = Vec::with_capacity(columns.len());
            for (c, col) in columns.iter().enumerate() {
                let x = values[c][row];
                if x.is_infinite() || (nonnegative && x < 0.0) {
                    return Err(StageError::data(format!(
                        "`{table}` row {}: unit `{unit}`, year {year}: column `{col}` holds {x}",
                        row + 1
                    ))
                    .with_hint(format!(
                        "`{col}` must be a finite number ≥ 0; fix the source table"
                    )));
                }
                v.push(x);
            }
            let by_year = match rows.get_mut(unit) {
                Some(m) => m,
                None => rows.entry(unit.to_owned()).or_default(),
            };
            if by_year.insert(year, v).is_some() {
                return Err(StageError::data(format!(
                    "`{table}` row {}: unit `{unit}` has two rows for year {year}",
                    row + 1
                ))
                .with_hint("keep one row per unit and year"));
            }
        }
        Ok(Self::from_rows(table, columns, rows))
    }

    /// A panel from already-grouped values.
    #[must_use]
    pub fn from_rows(
        table: &str,
        columns: &[&str],
        rows: BTreeMap<String, BTreeMap<i64, Vec<f64>>>,
    ) -> Self {
        let (units, rows): (Vec<String>, Vec<BTreeMap<i64, Vec<f64>>>) = rows.into_iter().unzip();
        let index = units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.clone(), i))
            .collect();
        Self::over(Arc::new(PanelValues {
            table: table.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            units,
            index,
            rows,
        }))
    }

    /// A panel over shared values, with nothing filled yet.
    #[must_use]
    pub fn over(values: Arc<PanelValues>) -> Self {
        Self {
            values,
            last: Cell::new(0),
            filled: Cell::new(0),
            first_filled: RefCell::new(None),
        }
    }

    /// The panel's values, to share with [`Panel::over`].
    #[must_use]
    pub fn values(&self) -> Arc<PanelValues> {
        Arc::clone(&self.values)
    }

    /// The years of `unit`, if the table has it.
    fn unit_rows(&self, unit: &str) -> Option<&BTreeMap<i64, Vec<f64>>> {
        let last = self.last.get();
        if self.values.units.get(last).is_some_and(|u| u == unit) {
            return Some(&self.values.rows[last]);
        }
        let i = *self.values.index.get(unit)?;
        self.last.set(i);
        Some(&self.values.rows[i])
    }

    /// The units of the table, sorted.
    pub fn units(&self) -> impl Iterator<Item = &str> {
        self.values.units.iter().map(String::as_str)
    }

    /// Whether the table has any row for `unit`.
    pub fn has_unit(&self, unit: &str) -> bool {
        self.values.index.contains_key(unit)
    }

    /// The units and years the table has, sorted.
    pub fn keys(&self) -> impl Iterator<Item = (&str, i64)> {
        self.values
            .units
            .iter()
            .zip(&self.values.rows)
            .flat_map(|(u, years)| years.keys().map(move |y| (u.as_str(), *y)))
    }

    /// The value of column number `col` for `unit` in `year`, applying `policy` when it is
    /// missing.
    ///
    /// # Errors
    /// A missing value under `MissingPolicy::Error`, or one that cannot be interpolated.
    pub fn get(
        &self,
        unit: &str,
        year: i64,
        col: usize,
        policy: MissingPolicy,
    ) -> Result<f64, StageError> {
        let column = &self.values.columns[col];
        let years = self.unit_rows(unit);
        if let Some(v) = years.and_then(|y| y.get(&year)).map(|v| v[col])
            && !v.is_nan()
        {
            return Ok(v);
        }
        let what = match years {
            None => format!("`{}` has no row for unit `{unit}`", self.values.table),
            Some(y) if !y.contains_key(&year) => format!(
                "`{}` has no row for unit `{unit}` in year {year}",
                self.values.table
            ),
            Some(_) => format!(
                "`{}`: unit `{unit}`, year {year}: column `{column}` is empty",
                self.values.table
            ),
        };
        let value = match policy {
            MissingPolicy::Error => {
                // A county's GDP or population is never zero: do not suggest filling it so.
                let hint = if self.values.table == "economy" {
                    "add the value to the table, or set `missing: interpolate` on this stage"
                } else {
                    "add the value to the table, or set `missing: zero` or `missing: interpolate` on this stage"
                };
                return Err(StageError::data(what).with_hint(hint));
            }
            MissingPolicy::Zero => 0.0,
            MissingPolicy::Interpolate => {
                let known = years.map(|y| {
                    y.iter()
                        .filter(|(_, v)| !v[col].is_nan())
                        .map(|(y, v)| (*y, v[col]))
                });
                let (mut before, mut after) = (None, None);
                for (y, v) in known.into_iter().flatten() {
                    if y < year {
                        before = Some((y, v));
                    } else if y > year && after.is_none() {
                        after = Some((y, v));
                    }
                }
                match (before, after) {
                    (Some((y0, v0)), Some((y1, v1))) => {
                        let w = (year - y0) as f64 / (y1 - y0) as f64;
                        v0 + w * (v1 - v0)
                    }
                    _ => {
                        let hint = if self.values.table == "economy" {
                            "add the value to the table"
                        } else {
                            "add the value, or use `missing: zero`"
                        };
                        return Err(StageError::data(format!("{what}, and `missing: interpolate` needs a value before and after {year}"))
                            .with_hint(hint));
                    }
                }
            }
        };
        self.filled.set(self.filled.get() + 1);
        self.first_filled
            .borrow_mut()
            .get_or_insert(format!("unit `{unit}`, year {year}, column `{column}`"));
        Ok(value)
    }

    /// Warns once about the values filled by the missing policy.
    pub fn report(&self, ctx: &StageContext, policy: MissingPolicy) {
        if let Some(w) = self.filled_warning(policy) {
            ctx.warn(w);
        }
    }

    /// The warning [`Panel::report`] gives, if any value was filled.
    #[must_use]
    pub fn filled_warning(&self, policy: MissingPolicy) -> Option<String> {
        let n = self.filled.get();
        if n == 0 {
            return None;
        }
        let first = self.first_filled.borrow().clone().unwrap_or_default();
        let how = if policy == MissingPolicy::Zero {
            "set to zero"
        } else {
            "interpolated"
        };
        Some(format!(
            "`{}`: {n} missing value(s) {how} by the `missing` policy (first: {first})",
            self.values.table
        ))
    }

    /// Warns about units of this table that `used` says the study does not use.
    pub fn warn_unused_units(&self, ctx: &StageContext, used: &dyn Fn(&str) -> bool) {
        if let Some(w) = self.unused_units_warning(used) {
            ctx.warn(w);
        }
    }

    /// The warning [`Panel::warn_unused_units`] gives, if any unit is unused.
    #[must_use]
    pub fn unused_units_warning(&self, used: &dyn Fn(&str) -> bool) -> Option<String> {
        let extra: Vec<&str> = self.units().filter(|u| !used(u)).collect();
        let shown: Vec<&str> = extra.iter().take(5).copied().collect();
        (!extra.is_empty()).then(|| {
            format!(
                "`{}`: {} unit(s) are not in the study's units and are ignored (e.g. {})",
                self.values.table,
                extra.len(),
                shown.join(", ")
            )
        })
    }
}

/// Checks that a table has a column, with the "did you mean" hint.
///
/// # Errors
/// The column is missing (with a "did you mean" hint).
pub fn require_column(batch: &RecordBatch, table: &str, column: &str) -> Result<(), StageError> {
    if has_column(batch, column) {
        Ok(())
    } else {
        crate::table::column(batch, table, column).map(|_| ())
    }
}

/// Refuses a column of an input table that the stage neither reads nor was told to ignore:
/// a misspelt or mis-encoded header must not silently drop its values (a fuel column read as
/// absent counts as zero and lowers every emission).
///
/// `label` names the table for messages (see `Inputs::label`); `known` lists the names the
/// stage would read, for the "did you mean" hint.
///
/// # Errors
/// The first column outside `used` and `ignored`, with the closest known name and how to opt out.
pub fn refuse_unused_columns(
    batch: &RecordBatch,
    label: &str,
    used: &[&str],
    known: &[&str],
    ignored: &[String],
) -> Result<(), StageError> {
    let schema = batch.schema();
    let Some(extra) = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .find(|c| !used.contains(c) && !ignored.iter().any(|i| i == c))
    else {
        return Ok(());
    };
    let fix = match crate::engine::suggest::did_you_mean(extra, known.iter().copied()) {
        Some(near) => format!("did you mean `{near}`? rename the column"),
        None if !extra.is_ascii() => "if the header looks garbled, the file is not UTF-8: give \
             its `ingest` stage `encoding:` (e.g. `gbk`) or save it as UTF-8"
            .to_owned(),
        None => format!("the columns read are: {}", known.join(", ")),
    };
    Err(StageError::data(format!(
        "{label} has a column `{extra}` that this stage does not read, so its values would be ignored"
    ))
    .with_hint(format!(
        "{fix}; to leave it out on purpose, add `ignore_columns: [{extra}]` to this stage"
    )))
}

fn default_land_preset() -> String {
    "mixed".to_owned()
}

/// The land-use coefficient table a stage uses: a built-in preset or a user CSV file, with
/// per-class overrides (t C/ha/a, > 0 source, < 0 sink).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoefficientChoice {
    /// A built-in preset (`mixed`, `set1`, `set2`) or a path to a CSV file (relative to the
    /// study file) with columns `class,value,unit[,citation,confidence]`.
    #[serde(default = "default_land_preset")]
    pub preset: String,
    /// Per-class values replacing or adding to the preset's, t C/ha/a.
    #[serde(default, rename = "override")]
    pub overrides: BTreeMap<String, f64>,
}

impl Default for CoefficientChoice {
    fn default() -> Self {
        Self {
            preset: default_land_preset(),
            overrides: BTreeMap::new(),
        }
    }
}

/// Whether a preset name is a file path rather than a built-in name.
#[must_use]
pub fn is_path(preset: &str) -> bool {
    preset.contains('/') || preset.contains('\\') || preset.ends_with(".csv")
}

/// The source name under which a user preset file is declared.
pub const COEFFICIENT_SOURCE: &str = "coefficients";

impl CoefficientChoice {
    /// The source file to declare, if the preset is a user file.
    #[must_use]
    pub fn sources(&self) -> Vec<Source> {
        if is_path(&self.preset) {
            vec![Source::new(COEFFICIENT_SOURCE, PathBuf::from(&self.preset))]
        } else {
            Vec::new()
        }
    }

    /// Plan-time check: a built-in name must exist, overrides must be finite.
    ///
    /// # Errors
    /// An unknown built-in preset or a non-finite override.
    pub fn validate(&self) -> Result<(), StageError> {
        if !is_path(&self.preset) && !LAND_PRESETS.contains(&self.preset.as_str()) {
            let mut err = StageError::data(format!("unknown coefficient preset `{}`", self.preset));
            err.hint = Some(
                match crate::engine::suggest::did_you_mean(
                    &self.preset,
                    LAND_PRESETS.iter().copied(),
                ) {
                    Some(s) => format!(
                        "did you mean `{s}`? (built-in presets: {}; or give a path to a CSV file)",
                        LAND_PRESETS.join(", ")
                    ),
                    None => format!(
                        "built-in presets: {}; or give a path to a CSV file",
                        LAND_PRESETS.join(", ")
                    ),
                },
            );
            return Err(err);
        }
        if let Some((class, v)) = self.overrides.iter().find(|(_, v)| !v.is_finite()) {
            return Err(StageError::data(format!(
                "coefficient override `{class}` is {v}, not a finite number"
            )));
        }
        Ok(())
    }

    /// The coefficients, class → t C/ha/a, overrides applied.
    ///
    /// # Errors
    /// An unreadable or malformed coefficient file.
    pub fn load(&self, ctx: &StageContext) -> Result<BTreeMap<String, f64>, StageError> {
        let from_file;
        let rows: &[LandCoefficient] = if is_path(&self.preset) {
            let path = ctx.source(COEFFICIENT_SOURCE)?;
            let text = std::fs::read_to_string(path).map_err(|e| {
                StageError::data(format!("cannot read coefficient file `{}`", path.display()))
                    .caused_by(e)
            })?;
            from_file = parse_land_coefficients(&text).map_err(|e| {
                StageError::data(format!("coefficient file `{}`: {e}", self.preset))
                    .with_hint("columns: class,value,unit,citation,confidence[,min,max,range_source]; unit `t C/ha/a`")
            })?;
            &from_file
        } else {
            match land_preset(&format!("{}.csv", self.preset)) {
                Some(Ok(rows)) => rows,
                Some(Err(e)) => {
                    return Err(StageError::internal(format!(
                        "built-in preset `{}`: {e}",
                        self.preset
                    )));
                }
                None => {
                    return Err(StageError::internal(format!(
                        "built-in preset `{}` is not embedded",
                        self.preset
                    )));
                }
            }
        };
        let mut map: BTreeMap<String, f64> = rows
            .iter()
            .map(|c| (c.class.clone(), c.value_t_c_per_ha))
            .collect();
        for (class, v) in &self.overrides {
            map.insert(class.clone(), *v);
        }
        Ok(map)
    }

    /// A short label for the `method` output column, e.g. `mixed` or `set1+override`.
    #[must_use]
    pub fn label(&self) -> String {
        if self.overrides.is_empty() {
            self.preset.clone()
        } else {
            format!("{}+override", self.preset)
        }
    }
}

/// Error for a land class without a coefficient.
#[must_use]
pub fn class_without_coefficient(
    class: &str,
    unit: &str,
    year: i64,
    choice: &CoefficientChoice,
) -> StageError {
    StageError::data(format!(
        "`areas`: class `{class}` (unit `{unit}`, year {year}) has no coefficient in preset `{}`",
        choice.preset
    ))
    .with_hint(if class == "wetland" {
        "fold wetland into water with `wetland: water` on the `landuse` stage, use a preset with a wetland coefficient (`set2`), or add `coefficients: { override: { wetland: <t C/ha/a> } }`".to_owned()
    } else {
        format!("add it under `coefficients: {{ override: {{ {class}: <t C/ha/a> }} }}` (> 0 source, < 0 sink)")
    })
}

/// One unit's land-use classes in one year, read from a `landuse` `areas` table.
pub struct UnitYearAreas<'a> {
    pub unit: &'a str,
    pub year: i64,
    /// (class number in `names`, `area_ha`), sorted by class.
    rows: &'a [(usize, f64)],
    names: &'a [String],
}

impl<'a> UnitYearAreas<'a> {
    /// (class, `area_ha`), sorted by class.
    pub fn classes(&self) -> impl Iterator<Item = (&'a str, f64)> + use<'a> {
        let names = self.names;
        self.rows.iter().map(move |&(c, a)| (names[c].as_str(), a))
    }

    /// The area of the `j`-th class of [`UnitYearAreas::classes`].
    #[must_use]
    pub fn area_at(&self, j: usize) -> f64 {
        self.rows[j].1
    }

    /// The area of `class`, 0 if absent.
    #[must_use]
    pub fn area(&self, class: &str) -> f64 {
        self.classes()
            .find(|(c, _)| *c == class)
            .map_or(0.0, |(_, a)| a)
    }
}

/// The columns of an `areas` table (`unit_id`, year, class, `area_ha`), checked: negative, NaN or
/// infinite areas are errors.
struct AreaColumns<'a> {
    table: String,
    units: StrCol<'a>,
    years: Vec<i64>,
    classes: StrCol<'a>,
    areas: Vec<f64>,
}

/// Reads an `areas` table.
///
/// # Errors
/// A missing column, or a negative, NaN or infinite area.
fn read_areas<'a>(batch: &'a RecordBatch, table: &str) -> Result<AreaColumns<'a>, StageError> {
    let units = str_col(batch, table, "unit_id", true)?;
    let years = i64s(batch, table, "year")?;
    let classes = str_col(batch, table, "class", false)?;
    let areas = f64s(batch, table, "area_ha")?;
    for (row, a) in areas.iter().enumerate() {
        if !a.is_finite() || *a < 0.0 {
            return Err(StageError::data(format!(
                "`{table}` row {}: unit `{}`, year {}, class `{}`: area_ha is {a}",
                row + 1,
                units.get(row),
                years[row],
                classes.get(row)
            ))
            .with_hint(
                "areas must be finite and ≥ 0 ha; check the land-use stage or the source table",
            ));
        }
    }
    Ok(AreaColumns {
        table: table.to_owned(),
        units,
        years,
        classes,
        areas,
    })
}

impl AreaColumns<'_> {
    /// The row order, sorted by (unit, year, class), and where each unit-year starts in it
    /// (with `n` at the end). A repeated (unit, year, class) is an error.
    fn row_groups(&self) -> Result<(Vec<usize>, Vec<usize>), StageError> {
        let key = |i: usize| (self.units.get(i), self.years[i], self.classes.get(i));
        let n = self.years.len();
        let mut order: Vec<usize> = (0..n).collect();
        // `landuse` writes its rows sorted; only sort when they are not.
        if !(1..n).all(|i| key(i - 1) <= key(i)) {
            order.sort_by(|&a, &b| key(a).cmp(&key(b)));
        }
        let mut starts = Vec::new();
        for (k, pair) in order.windows(2).enumerate() {
            let ((unit, year, class), next) = (key(pair[1]), key(pair[0]));
            if (unit, year) != (next.0, next.1) {
                starts.push(k + 1);
            } else if class == next.2 {
                return Err(StageError::data(format!(
                    "`{}`: unit `{unit}`, year {year}: class `{class}` appears twice",
                    self.table
                ))
                .with_hint("keep one row per unit, year and class"));
            }
        }
        if n > 0 {
            starts.insert(0, 0);
        }
        starts.push(n);
        Ok((order, starts))
    }
}

/// An `areas` table grouped by unit and year, each unit-year's classes sorted, with ids of its
/// own rather than borrowed from the table: the runs that read the same table (a sweep's
/// draws) share one, read and grouped once ([`area_panel`]).
pub struct AreaPanel {
    /// The class names, sorted.
    names: Vec<String>,
    /// The unit ids, in order of first appearance (sorted).
    units: Vec<String>,
    /// Per unit-year, sorted by unit then year: its unit (in `units`), its year and where its
    /// classes start in `rows` (and `rows.len()` after the last).
    unit_years: Vec<(usize, i64, usize)>,
    /// (class number in `names`, `area_ha`), unit-year by unit-year.
    rows: Vec<(usize, f64)>,
}

impl AreaPanel {
    /// Reads and groups an `areas` table.
    ///
    /// # Errors
    /// A missing column, a negative, NaN or infinite area, or a repeated (unit, year, class).
    pub fn read(batch: &RecordBatch, table: &str) -> Result<Self, StageError> {
        let columns = read_areas(batch, table)?;
        let (order, starts) = columns.row_groups()?;
        let mut names: Vec<String> = Vec::new();
        for &i in &order {
            let class = columns.classes.get(i);
            if let Err(at) = names.binary_search_by(|n| n.as_str().cmp(class)) {
                names.insert(at, class.to_owned());
            }
        }
        let mut panel = Self {
            names,
            units: Vec::new(),
            unit_years: Vec::with_capacity(starts.len()),
            rows: Vec::with_capacity(order.len()),
        };
        for w in starts.windows(2) {
            let first = order[w[0]];
            let unit = columns.units.get(first);
            if panel.units.last().is_none_or(|u| u != unit) {
                panel.units.push(unit.to_owned());
            }
            panel.unit_years.push((
                panel.units.len() - 1,
                columns.years[first],
                panel.rows.len(),
            ));
            for &i in &order[w[0]..w[1]] {
                let class = columns.classes.get(i);
                let c = panel
                    .names
                    .binary_search_by(|n| n.as_str().cmp(class))
                    .expect("every class was named above");
                panel.rows.push((c, columns.areas[i]));
            }
        }
        Ok(panel)
    }

    /// The unit-years, sorted by unit then year.
    #[must_use]
    pub fn unit_years(&self) -> Vec<UnitYearAreas<'_>> {
        let ends = self
            .unit_years
            .iter()
            .skip(1)
            .map(|&(_, _, start)| start)
            .chain([self.rows.len()]);
        self.unit_years
            .iter()
            .zip(ends)
            .map(|(&(unit, year, start), end)| UnitYearAreas {
                unit: &self.units[unit],
                year,
                rows: &self.rows[start..end],
                names: &self.names,
            })
            .collect()
    }
}

/// The `areas` input (port `areas`) read and grouped: once for all the runs that share it (a
/// sweep's draws), as reading and grouping compare ids row by row.
///
/// # Errors
/// As [`AreaPanel::read`].
pub fn area_panel(inputs: &Inputs, ctx: &StageContext) -> Result<Arc<AreaPanel>, StageError> {
    ctx.reuse("area_panel", &["areas"], &(), || {
        AreaPanel::read(inputs.table("areas")?, "areas")
    })
}

/// The land classes an output table has rows for, found once per `areas` table and set of
/// coefficients (see [`ClassRows`]).
pub struct ClassRows {
    /// The classes that have rows, sorted.
    pub classes: Vec<String>,
    /// Per output row: its unit-year (an index into the grouped areas) and, for a land class,
    /// its position among that unit-year's classes and its index in `classes`; `None` for a
    /// row the kind computes otherwise (construction, cultivated land by another method).
    pub rows: Vec<RowPosition>,
    /// The output with every row, its value column still to be filled.
    pub template: RecordBatch,
}

impl ClassRows {
    /// Each class's coefficient in the order of `classes`.
    ///
    /// # Errors
    /// A class without a coefficient (checked when the rows were found; an internal error).
    pub fn coefficients(&self, all: &BTreeMap<String, f64>) -> Result<Vec<f64>, StageError> {
        self.classes
            .iter()
            .map(|c| {
                all.get(c).copied().ok_or_else(|| {
                    StageError::internal(format!("class `{c}` lost its coefficient"))
                })
            })
            .collect()
    }

    /// The template with its float column `column` set to `values` (one per row): the other
    /// columns are the template's own arrays, shared by every run that uses it.
    ///
    /// # Errors
    /// `column` missing from the template, or a length other than the rows'.
    pub fn with_values(&self, column: &str, values: Vec<f64>) -> Result<RecordBatch, StageError> {
        let at = self.template.schema().index_of(column).map_err(|_| {
            StageError::internal(format!("the output template has no column `{column}`"))
        })?;
        let mut columns = self.template.columns().to_vec();
        columns[at] = Arc::new(arrow_array::Float64Array::from(values));
        RecordBatch::try_new(self.template.schema(), columns)
            .map_err(|e| StageError::internal("filling an output template").caused_by(e))
    }
}

/// Where an output row's value comes from (see [`ClassRows::rows`]).
pub type RowPosition = (usize, Option<(usize, usize)>);

/// A row of a per-class output: its label (a class name) and, for a land class, its position
/// among the unit-year's classes and its index in the sorted `classes`.
pub type ClassRow<'a> = (&'a str, Option<(usize, usize)>);

/// The rows of a per-class output, unit-year by unit-year: each row's unit-year and position
/// ([`ClassRows::rows`]) and the output row `row` makes of it. Per unit-year, the rows are the
/// classes [`classes_with_rows`] finds, after `arrange` has added the kind's own row (which
/// has no position) and ordered them.
///
/// # Errors
/// A class other than construction without a coefficient.
pub fn rows_by_class<'a, R>(
    areas: &[UnitYearAreas<'a>],
    classes: &[String],
    coefficients: &BTreeMap<String, f64>,
    choice: &CoefficientChoice,
    arrange: impl Fn(&mut Vec<ClassRow<'a>>),
    row: impl Fn(&UnitYearAreas<'a>, ClassRow<'a>) -> R,
) -> Result<(Vec<RowPosition>, Vec<R>), StageError> {
    let mut rows = Vec::new();
    let mut out = Vec::with_capacity(areas.len() * 4);
    let mut here = Vec::new();
    for (k, ua) in areas.iter().enumerate() {
        classes_with_rows(ua, classes, coefficients, choice, &mut here)?;
        arrange(&mut here);
        for &(label, at) in &here {
            rows.push((k, at));
            out.push(row(ua, (label, at)));
        }
    }
    Ok((rows, out))
}

/// The classes of one unit-year's `areas` that have rows, as (class, (index in `ua.classes`,
/// index in `classes`)), in the order of `ua.classes`: those listed in the sorted `classes`.
/// Construction is left to the caller (it has a method of its own).
///
/// # Errors
/// A class other than construction without a coefficient.
fn classes_with_rows<'a>(
    ua: &UnitYearAreas<'a>,
    classes: &[String],
    coefficients: &BTreeMap<String, f64>,
    choice: &CoefficientChoice,
    here: &mut Vec<(&'a str, Option<(usize, usize)>)>,
) -> Result<(), StageError> {
    here.clear();
    for (j, (class, _)) in ua.classes().enumerate() {
        if class == "construction" {
            continue;
        }
        if !coefficients.contains_key(class) {
            return Err(class_without_coefficient(class, ua.unit, ua.year, choice));
        }
        if let Ok(c) = classes.binary_search_by(|x| x.as_str().cmp(class)) {
            here.push((class, Some((j, c))));
        }
    }
    Ok(())
}

/// Which coefficients a class's rows depend on: each class with a coefficient and whether it
/// passes `keep` (say, `> 0` for an emission). A [`ClassRows`] found for one key serves every
/// run with the same key.
#[must_use]
pub fn class_row_key(
    coefficients: &BTreeMap<String, f64>,
    keep: impl Fn(f64) -> bool,
) -> Vec<(&str, bool)> {
    coefficients
        .iter()
        .map(|(c, v)| (c.as_str(), keep(*v)))
        .collect()
}

/// Reads GDP (10^4 yuan) from an economy panel, dividing by `deflator / deflator_base` when a
/// deflator column is used (constant prices). GDP must be > 0.
///
/// # Errors
/// A missing value (per `policy`), a deflator ≤ 0, or GDP ≤ 0.
pub fn gdp_value(
    panel: &Panel,
    unit: &str,
    year: i64,
    deflator: Option<f64>,
    policy: MissingPolicy,
    gdp_column: &str,
) -> Result<f64, StageError> {
    let mut g = panel.get(unit, year, 0, policy)?;
    if let Some(base) = deflator {
        let d = panel.get(unit, year, 1, policy)?;
        if d <= 0.0 {
            return Err(StageError::data(format!(
                "`economy`: unit `{unit}`, year {year}: deflator is {d}"
            ))
            .with_hint("the deflator is a price index > 0 (base year = `deflator_base`)"));
        }
        g *= base / d;
    }
    if g <= 0.0 {
        return Err(StageError::data(format!(
            "`economy`: unit `{unit}`, year {year}: `{gdp_column}` is {g}"
        ))
        .with_hint(
            "GDP must be > 0 (10^4 yuan); carbon intensity and ECC are undefined otherwise",
        ));
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableBuilder;

    fn ctx() -> StageContext {
        StageContext::new("t", std::path::Path::new("."), BTreeMap::new())
    }

    #[test]
    fn missing_policies() {
        let t = TableBuilder::new()
            .str("unit_id", &["a", "a", "a", "b"])
            .i64("year", vec![2000, 2005, 2010, 2000])
            .f64("x", vec![10.0, f64::NAN, 30.0, 1.0])
            .build()
            .unwrap();
        let p = Panel::read(&t, "energy", &["x"], true).unwrap();
        // 2005 is empty: error names table, unit, year and column
        let err = p.get("a", 2005, 0, MissingPolicy::Error).unwrap_err();
        assert!(
            err.message.contains("`energy`")
                && err.message.contains("`a`")
                && err.message.contains("2005"),
            "{}",
            err.message
        );
        // interpolation: 10 + (2005 − 2000)/(2010 − 2000) × (30 − 10) = 20
        assert_eq!(
            p.get("a", 2005, 0, MissingPolicy::Interpolate).unwrap(),
            20.0
        );
        // 2003 (no row): 10 + 0.3 × 20 = 16
        assert!((p.get("a", 2003, 0, MissingPolicy::Interpolate).unwrap() - 16.0).abs() < 1e-12);
        // no extrapolation
        assert!(p.get("a", 2015, 0, MissingPolicy::Interpolate).is_err());
        assert_eq!(p.get("c", 2000, 0, MissingPolicy::Zero).unwrap(), 0.0);
        let err = p.get("c", 2000, 0, MissingPolicy::Error).unwrap_err();
        assert!(
            err.message.contains("no row for unit `c`"),
            "{}",
            err.message
        );
        let c = ctx();
        p.report(&c, MissingPolicy::Zero);
        assert_eq!(c.take_warnings().len(), 1);
    }

    #[test]
    fn negative_and_duplicate_rows_are_errors() {
        let t = TableBuilder::new()
            .str("unit_id", &["a"])
            .i64("year", vec![2000])
            .f64("x", vec![-1.0])
            .build()
            .unwrap();
        let err = Panel::read(&t, "energy", &["x"], true).err().unwrap();
        assert!(
            err.message
                .contains("unit `a`, year 2000: column `x` holds -1"),
            "{}",
            err.message
        );
        let t = TableBuilder::new()
            .str("unit_id", &["a", "a"])
            .i64("year", vec![2000, 2000])
            .f64("x", vec![1.0, 2.0])
            .build()
            .unwrap();
        assert!(
            Panel::read(&t, "energy", &["x"], true)
                .err()
                .unwrap()
                .message
                .contains("two rows")
        );
    }

    #[test]
    fn areas_reader_groups_and_rejects_bad_areas() {
        let t = TableBuilder::new()
            .str("unit_id", &["b", "a", "a"])
            .i64("year", vec![2000, 2000, 2000])
            .str("class", &["forest", "water", "forest"])
            .f64("area_ha", vec![1.0, 2.0, 3.0])
            .build()
            .unwrap();
        let panel = AreaPanel::read(&t, "areas").unwrap();
        let g = panel.unit_years();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].unit, "a");
        let classes: Vec<(&str, f64)> = g[0].classes().collect();
        assert_eq!(classes, vec![("forest", 3.0), ("water", 2.0)]);
        assert_eq!(
            (g[1].unit, g[1].area("forest"), g[1].area("water")),
            ("b", 1.0, 0.0)
        );
        let t = TableBuilder::new()
            .str("unit_id", &["a"])
            .i64("year", vec![2000])
            .str("class", &["forest"])
            .f64("area_ha", vec![-3.0])
            .build()
            .unwrap();
        let err = AreaPanel::read(&t, "areas").err().unwrap();
        assert!(
            err.message
                .contains("unit `a`, year 2000, class `forest`: area_ha is -3"),
            "{}",
            err.message
        );
    }
}

/// The five carbon-budget stages chained on a two-unit study: checks that each stage reads the
/// columns the previous one writes, against hand-computed numbers.
#[cfg(test)]
mod chain_tests {

    use arrow_array::RecordBatch;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;

    use crate::engine::stage::{Entry, Stage, StageEntry};
    use crate::stages::{compensation, emission, functional_areas, indices, sink};
    use crate::table::TableBuilder;

    /// Runs a kind and checks its inputs against what it declares (the columns of each wired
    /// port); the harness checks its outputs.
    fn run<S: Stage>(
        params: serde_json::Value,
        tables: Vec<(&str, RecordBatch)>,
    ) -> Vec<RecordBatch> {
        let prepared = Entry::<S>::new().prepare(params.clone()).unwrap();
        for port in prepared.ports() {
            if let Some((_, t)) = tables.iter().find(|(n, _)| *n == port.name) {
                for c in &port.columns {
                    assert!(
                        t.column_by_name(c).is_some(),
                        "{}: input `{}` lacks declared column `{c}`",
                        S::KIND,
                        port.name
                    );
                }
            }
        }
        let (out, _) = crate::stages::testing::run::<S>(params, tables).unwrap();
        out.into_iter().map(|(_, t)| t).collect()
    }

    fn f(t: &RecordBatch, name: &str) -> Vec<f64> {
        t.column_by_name(name)
            .unwrap()
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.unwrap())
            .collect()
    }

    #[test]
    fn emission_to_functional_areas() {
        let areas = TableBuilder::new()
            .str("unit_id", &["a", "a", "a", "b", "b", "b"])
            .i64("year", vec![2000; 6])
            .str(
                "class",
                &[
                    "construction",
                    "cultivated",
                    "forest",
                    "construction",
                    "cultivated",
                    "water",
                ],
            )
            .i64("pixels", vec![0; 6])
            .f64("area_ha", vec![300.0, 1000.0, 2000.0, 100.0, 500.0, 100.0])
            .build()
            .unwrap();
        let energy = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("raw_coal", vec![10_000.0, 1_000.0])
            .build()
            .unwrap();
        let economy = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("gdp_10k_yuan", vec![600.0, 400.0])
            .f64("population", vec![10.0, 20.0])
            .build()
            .unwrap();
        let e = run::<emission::Emission>(
            serde_json::json!({"absent_fuels": ["coke", "crude_oil", "gasoline", "kerosene", "diesel", "fuel_oil", "natural_gas"]}),
            vec![("areas", areas.clone()), ("energy", energy)],
        );
        let s = run::<sink::Sink>(serde_json::json!({}), vec![("areas", areas)]);
        let ix = run::<indices::Indices>(
            serde_json::json!({}),
            vec![
                ("emission", e[0].clone()),
                ("sink", s[0].clone()),
                ("economy", economy),
            ],
        );
        // CE a = 1000 × 0.422 + 10000 × 0.7143 × 0.7559 = 422 + 5399.3937 = 5821.3937
        // CE b = 500 × 0.422 + 1000 × 0.7143 × 0.7559 = 211 + 539.93937 = 750.93937
        // CS a = 2000 × 0.644 = 1288; CS b = 100 × 0.253 = 25.3; CE = 6572.33307, CS = 1313.3
        let ce = f(&ix[0], "ce_t_c");
        assert!(
            (ce[0] - 5821.3937).abs() < 1e-9 && (ce[1] - 750.939_37).abs() < 1e-9,
            "{ce:?}"
        );
        assert_eq!(f(&ix[0], "cs_t_c"), vec![1288.0, 25.3]);
        // ECC a = 0.6 / (5821.3937 / 6572.33307) = 0.677397896; ESC a = (1288/1313.3) / 0.885743 = 1.107246998
        let ecc = f(&ix[0], "ecc");
        let esc = f(&ix[0], "esc");
        assert!((ecc[0] - 0.677_397_896).abs() < 1e-8, "{ecc:?}");
        assert!((esc[0] - 1.107_246_998).abs() < 1e-8, "{esc:?}");
        assert!((esc[1] - 0.168_605_317).abs() < 1e-8, "{esc:?}");

        let c = run::<compensation::Compensation>(
            serde_json::json!({"conventions": ["own_sink"], "price": {"unit": "yuan_per_t_c", "value": 100.0}, "willingness": "none", "ability": "none"}),
            vec![("indices", ix[0].clone())],
        );
        // own sink, a: (5821.3937 − 1288) × 100 = 453339.37 yuan
        assert!((f(&c[0], "value_yuan")[0] - 453_339.37).abs() < 1e-6);

        let cats = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .str("category", &["dev", "eco"])
            .build()
            .unwrap();
        let fa = run::<functional_areas::FunctionalAreas>(
            serde_json::json!({}),
            vec![("indices", ix[0].clone()), ("categories", cats)],
        );
        // mean CI: dev 5821.3937/600 = 9.702322833, eco 750.93937/400 = 1.877348425 (ranked highest first)
        let ci = f(&fa[0], "mean_ci_t_per_10k_yuan");
        assert!(
            (ci[0] - 9.702_322_833).abs() < 1e-8 && (ci[1] - 1.877_348_425).abs() < 1e-8,
            "{ci:?}"
        );
    }

    #[test]
    fn kinds_are_registered() {
        let kinds: Vec<&str> = crate::stages::BUILTIN.iter().map(|e| e.kind()).collect();
        for k in [
            "emission",
            "sink",
            "indices",
            "compensation",
            "functional_areas",
        ] {
            assert!(kinds.contains(&k), "{k} is not in BUILTIN: {kinds:?}");
        }
    }

    /// Every parameter a kind accepts is documented in its `PARAMS`, and nothing more.
    #[test]
    fn params_docs_match_params() {
        fn check<S: Stage>(minimal: serde_json::Value) {
            let prepared = Entry::<S>::new().prepare(minimal).unwrap();
            let mut keys: Vec<String> = prepared
                .canonical_params()
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            let mut docs: Vec<String> = S::PARAMS.iter().map(|p| p.name.to_owned()).collect();
            keys.sort();
            docs.sort();
            assert_eq!(keys, docs, "{}", S::KIND);
        }
        check::<emission::Emission>(serde_json::json!({}));
        check::<sink::Sink>(serde_json::json!({}));
        check::<indices::Indices>(serde_json::json!({}));
        check::<compensation::Compensation>(
            serde_json::json!({"price": {"unit": "yuan_per_t_c", "value": 1.0}}),
        );
        check::<functional_areas::FunctionalAreas>(serde_json::json!({}));
    }
}
