//! `emission`: gross carbon emission per unit, year and source (t C): land classes with a
//! positive coefficient by area × coefficient, and construction land by energy consumption,
//! the GDP × energy-intensity fallback, an area coefficient, or not at all.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    OutputDecl, Outputs, ParamDoc, Port, Source, Stage, StageContext, StageError,
};
use crate::methods::coefficients::{
    ACTIVITY_PRESETS, ENERGY_PRESETS, FuelFactor, FuelRow, fuel_preset, parse_activity_factors,
    parse_fuel_rows, preset_text, theta_per_input_unit,
};
use crate::methods::emission::{
    activity_emission_t_c, area_emission_t_c, fuel_emission_t_c, intensity_emission_t_c, shares,
};
use crate::table::schema::TableSchema;
use crate::stages::shared::carbon_panel::{
    ClassRow, rows_by_class,
    ClassRows, CoefficientChoice, MissingPolicy, Panel, UnitYearAreas, area_panel,
    class_row_key, class_without_coefficient, gdp_value, is_path,
    refuse_unused_columns, require_column,
};
use crate::table::{has_column, ids};

/// The `emission` stage kind.
pub struct Emission;

/// How construction-land emission is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstructionMethod {
    /// Σ fuel × θ × f from the `energy` table (Liu Xianzhao et al. 2017, Table 1).
    #[default]
    Energy,
    /// GDP × energy intensity × `f_sc` (`energy` table with an intensity column, `economy` with GDP).
    Intensity,
    /// Area × the preset's `construction` coefficient.
    Coefficient,
    /// No construction-land emission.
    None,
}

/// How a higher-level energy table is shared among units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocation {
    /// The energy table is per unit.
    #[default]
    Direct,
    /// Shared by construction-land area within each parent region.
    ConstructionArea,
    /// Shared by GDP within each parent region.
    Gdp,
    /// Shared by night-time-light totals (an `ntl` table: unit_id, year, ntl) within each
    /// parent region.
    Ntl,
}

fn default_energy_preset() -> String {
    "liu2017".to_owned()
}

/// A per-fuel replacement or addition to the energy-factor preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FuelOverride {
    pub theta: Option<f64>,
    pub theta_unit: Option<String>,
    pub f_t_c_per_tce: Option<f64>,
}

/// The energy-factor table: a built-in preset or a user CSV, with per-fuel overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyFactorChoice {
    #[serde(default = "default_energy_preset")]
    pub preset: String,
    #[serde(default, rename = "override")]
    pub overrides: BTreeMap<String, FuelOverride>,
}

impl Default for EnergyFactorChoice {
    fn default() -> Self {
        Self {
            preset: default_energy_preset(),
            overrides: BTreeMap::new(),
        }
    }
}

fn default_f_sc() -> f64 {
    0.67
}
fn default_intensity_column() -> String {
    "energy_intensity_tce_per_10k_yuan".to_owned()
}
fn default_gdp_column() -> String {
    "gdp_10k_yuan".to_owned()
}
fn default_deflator_base() -> f64 {
    100.0
}

/// Parameters of `emission`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Land-use coefficients (classes with a value > 0 are emission sources here).
    #[serde(default)]
    pub coefficients: CoefficientChoice,
    /// `energy` (default), `intensity`, `coefficient` or `none`.
    #[serde(default)]
    pub construction: ConstructionMethod,
    /// Energy factors for `construction: energy`.
    #[serde(default)]
    pub energy_factors: EnergyFactorChoice,
    /// Count electricity (secondary energy; excluded by default to avoid double counting).
    /// Unset means "no" with a warning when the table has electricity; `false` is a quiet "no".
    #[serde(default)]
    pub include_electricity: Option<bool>,
    /// Physical unit of each fuel column when not the default (t; natural gas 10^4 m3;
    /// electricity 10^4 kWh), e.g. `{ raw_coal: "10^4 t" }`.
    #[serde(default)]
    pub fuel_units: BTreeMap<String, String>,
    /// Fuels the `energy` table has no column for, counted as zero on purpose. Any other fuel
    /// without a column is an error, so a misspelt header cannot lower the emission silently.
    #[serde(default)]
    pub absent_fuels: Vec<String>,
    /// Columns of `energy` and `activities` that this stage must not read (notes, codes);
    /// any other unread column is an error naming it.
    #[serde(default)]
    pub ignore_columns: Vec<String>,
    /// Carbon factor of standard coal for `construction: intensity`, t C/tce.
    #[serde(default = "default_f_sc")]
    pub f_sc_t_c_per_tce: f64,
    /// Column of the `energy` table with energy intensity, tce per 10^4 yuan.
    #[serde(default = "default_intensity_column")]
    pub intensity_column: String,
    /// Column of the `economy` table with GDP, 10^4 yuan.
    #[serde(default = "default_gdp_column")]
    pub gdp_column: String,
    /// Column of the `economy` table with a GDP deflator (price index) for constant prices.
    #[serde(default)]
    pub deflator_column: Option<String>,
    /// Value of the deflator in the base year.
    #[serde(default = "default_deflator_base")]
    pub deflator_base: f64,
    /// `direct` (default), `construction_area` or `gdp`.
    #[serde(default)]
    pub energy_allocation: Allocation,
    /// `error` (default), `zero` or `interpolate` for values missing from `energy`/`economy`.
    #[serde(default)]
    pub missing: MissingPolicy,
    /// Other emission sources (agricultural inputs, livestock, respiration) from an
    /// `activities` table; off (`null`) by default.
    #[serde(default)]
    pub other_sources: Option<ActivityChoice>,
}

fn default_activity_preset() -> String {
    "wu2017".to_owned()
}

/// Factors of other emission sources: a built-in preset with per-activity overrides (t C per
/// unit of amount).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityChoice {
    #[serde(default = "default_activity_preset")]
    pub preset: String,
    #[serde(default, rename = "override")]
    pub overrides: BTreeMap<String, f64>,
}

impl ActivityChoice {
    fn load(&self) -> Result<BTreeMap<String, f64>, StageError> {
        let text = preset_text(&format!("activities_{}.csv", self.preset)).ok_or_else(|| {
            StageError::data(format!("unknown preset of other sources `{}`", self.preset))
                .with_hint(format!("built-in presets: {}", ACTIVITY_PRESETS.join(", ")))
        })?;
        let mut map: BTreeMap<String, f64> = parse_activity_factors(text)
            .map_err(|e| StageError::internal(format!("preset `{}`: {e}", self.preset)))?
            .into_iter()
            .map(|(k, v)| (k, v.t_c_per_unit))
            .collect();
        for (k, v) in &self.overrides {
            if !(v.is_finite() && *v >= 0.0) {
                return Err(StageError::data(format!(
                    "other-source override `{k}` is {v}, expected ≥ 0 t C per unit"
                )));
            }
            map.insert(k.clone(), *v);
        }
        Ok(map)
    }
}

/// Default physical unit of a fuel column, by the dimension of its factor's unit.
fn default_fuel_unit(fuel: &str, theta_unit: &str) -> &'static str {
    let per = theta_unit.trim_start_matches("tce/").to_ascii_lowercase();
    if fuel == "natural_gas" || per.ends_with("m3") {
        "10^4 m3"
    } else if fuel == "electricity" || per.ends_with("wh") {
        "10^4 kWh"
    } else {
        "t"
    }
}

/// The energy-factor rows of the chosen preset with overrides applied, sorted by fuel. A factor
/// file is read only when the stage runs (`ctx`); before that it gives no rows.
fn fuel_rows(
    choice: &EnergyFactorChoice,
    ctx: Option<&StageContext>,
) -> Result<Vec<FuelRow>, StageError> {
    let mut rows = if is_path(&choice.preset) {
        let Some(ctx) = ctx else {
            return Ok(Vec::new());
        };
        factor_file_rows(&choice.preset, ctx)?
    } else {
        built_in_fuel_rows(&choice.preset)?
    };
    for (fuel, o) in &choice.overrides {
        o.apply(fuel, &mut rows)?;
    }
    if let Some(r) = rows.iter().find(|r| !factors_are_valid(r)) {
        return Err(StageError::data(format!(
            "energy factors of `{}` must be finite and ≥ 0",
            r.fuel
        )));
    }
    rows.sort_by(|a, b| a.fuel.cmp(&b.fuel));
    Ok(rows)
}

fn factors_are_valid(r: &FuelRow) -> bool {
    r.theta.is_finite() && r.theta >= 0.0 && r.f_t_c_per_tce.is_finite() && r.f_t_c_per_tce >= 0.0
}

/// The rows of the user's energy-factor file.
fn factor_file_rows(preset: &str, ctx: &StageContext) -> Result<Vec<FuelRow>, StageError> {
    let path = ctx.source(ENERGY_SOURCE)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        StageError::data(format!(
            "cannot read energy-factor file `{}`",
            path.display()
        ))
        .caused_by(e)
    })?;
    parse_fuel_rows(&text).map_err(|e| {
        StageError::data(format!("energy factors `{preset}`: {e}"))
            .with_hint("columns: fuel,theta,theta_unit,f_t_c_per_tce,citation,confidence[,theta_min,theta_max,f_min,f_max,range_source]")
    })
}

/// The rows of a built-in energy-factor preset.
fn built_in_fuel_rows(preset: &str) -> Result<Vec<FuelRow>, StageError> {
    let unknown = || {
        StageError::data(format!("unknown energy-factor preset `{preset}`")).with_hint(format!(
            "built-in presets: {}; or give a path to a CSV file",
            ENERGY_PRESETS.join(", ")
        ))
    };
    fuel_preset(&format!("energy_{preset}.csv"))
        .ok_or_else(unknown)?
        .clone()
        .map_err(|e| StageError::internal(format!("built-in energy factors `{preset}`: {e}")))
}

impl FuelOverride {
    /// Replaces the given fields of `fuel`'s row, or adds the fuel, which then needs them all.
    fn apply(&self, fuel: &str, rows: &mut Vec<FuelRow>) -> Result<(), StageError> {
        if let Some(row) = rows.iter_mut().find(|r| r.fuel == fuel) {
            if let Some(t) = self.theta {
                row.theta = t;
            }
            if let Some(u) = &self.theta_unit {
                row.theta_unit.clone_from(u);
            }
            if let Some(f) = self.f_t_c_per_tce {
                row.f_t_c_per_tce = f;
            }
            row.citation = "study override".to_owned();
            return Ok(());
        }
        let (Some(theta), Some(theta_unit), Some(f)) =
            (self.theta, self.theta_unit.clone(), self.f_t_c_per_tce)
        else {
            return Err(StageError::data(format!(
                "energy-factor override `{fuel}`: a new fuel needs `theta`, `theta_unit` and `f_t_c_per_tce`"
            )));
        };
        rows.push(FuelRow {
            fuel: fuel.to_owned(),
            theta,
            theta_unit,
            f_t_c_per_tce: f,
            citation: "study override".to_owned(),
            ranges: None,
        });
        Ok(())
    }
}

/// A parameter (`fuel_units`, `absent_fuels`) that names a fuel the factor table does not have.
fn refuse_unknown_fuels<'a>(
    param: &str,
    mut named: impl Iterator<Item = &'a String>,
    rows: &[FuelRow],
) -> Result<(), StageError> {
    let Some(fuel) = named.find(|f| !rows.iter().any(|r| &r.fuel == *f)) else {
        return Ok(());
    };
    Err(StageError::data(format!(
        "`{param}` names `{fuel}`, which the energy factors do not have"
    ))
    .with_hint(format!(
        "fuels: {}",
        rows.iter()
            .map(|r| r.fuel.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// The fuels counted, with factors per unit of the energy table's column.
fn fuel_factors(
    params: &Params,
    rows: &[FuelRow],
) -> Result<Vec<(String, String, FuelFactor)>, StageError> {
    refuse_unknown_fuels("fuel_units", params.fuel_units.keys(), rows)?;
    let mut out = Vec::new();
    for r in rows {
        if r.fuel == "electricity" && params.include_electricity != Some(true) {
            continue;
        }
        let unit = params
            .fuel_units
            .get(&r.fuel)
            .cloned()
            .unwrap_or_else(|| default_fuel_unit(&r.fuel, &r.theta_unit).to_owned());
        let theta = theta_per_input_unit(r.theta, &r.theta_unit, &unit).map_err(|e| {
            StageError::data(format!("fuel `{}`: {e}", r.fuel))
                .with_hint("fix `fuel_units` (e.g. `t`, `10^4 t`, `10^4 m3`, `10^4 kWh`)")
        })?;
        out.push((
            r.fuel.clone(),
            unit,
            FuelFactor {
                theta_tce_per_unit: theta,
                f_t_c_per_tce: r.f_t_c_per_tce,
            },
        ));
    }
    Ok(out)
}

/// Source name of a user energy-factor file.
const ENERGY_SOURCE: &str = "energy_factors";

/// The embedded presets this kind reads, and their digest pinned with `VERSION`. Presets are
/// code: editing one changes results without changing any study, so the test
/// `presets_are_pinned_to_version` fails until the pin is updated, and `VERSION` bumped when a
/// value changed (not for comments or the cited ranges, which no output reads).
#[cfg_attr(not(test), allow(dead_code))]
const PRESETS_PINNED: (u32, &str) = (
    2,
    "5c4bcd6b7fdc45006e40c7a3e2f0b82165a4a578fce4857f648834cb0dba74b6",
);
#[cfg_attr(not(test), allow(dead_code))]
const PRESET_FILES_USED: &[&str] = &[
    "set1.csv",
    "set2.csv",
    "mixed.csv",
    "energy_liu2017.csv",
    "energy_xia2017.csv",
    "activities_wu2017.csv",
];

const PARAMS: &[ParamDoc] = &[
    ParamDoc {
        name: "coefficients",
        ty: "{preset, override}",
        default: "",
        doc: "land-use coefficients t C/ha/a: built-in `mixed` (default), `set1`, `set2` or a CSV path; `override: {class: value}`. Classes with value > 0 are sources",
    },
    ParamDoc {
        name: "construction",
        ty: "energy|intensity|coefficient|none",
        default: "",
        doc: "construction-land method (energy: Liu et al. 2017 factors; intensity: GDP × EI × f_sc)",
    },
    ParamDoc {
        name: "energy_factors",
        ty: "{preset, override}",
        default: "",
        doc: "fuel factors: `liu2017`, `xia2017` or a CSV path; `override: {fuel: {theta, theta_unit, f_t_c_per_tce}}`",
    },
    ParamDoc {
        name: "include_electricity",
        ty: "bool",
        default: "unset (no)",
        doc: "count electricity (secondary energy); unset warns when the table has electricity, `false` does not",
    },
    ParamDoc {
        name: "fuel_units",
        ty: "map fuel → unit",
        default: "",
        doc: "unit of each fuel column; defaults t, natural gas 10^4 m3, electricity 10^4 kWh",
    },
    ParamDoc {
        name: "absent_fuels",
        ty: "list of fuels",
        default: "",
        doc: "fuels the `energy` table lacks, counted as zero on purpose; any other fuel without a column is an error",
    },
    ParamDoc {
        name: "ignore_columns",
        ty: "list of columns",
        default: "",
        doc: "columns of `energy`/`activities` left unread on purpose; any other column that is neither a key nor read (e.g. a misspelt fuel) is an error",
    },
    ParamDoc {
        name: "f_sc_t_c_per_tce",
        ty: "float",
        default: "",
        doc: "carbon factor of standard coal for `intensity` (NDRC Energy Research Institute)",
    },
    ParamDoc {
        name: "intensity_column",
        ty: "string",
        default: "",
        doc: "energy-intensity column of `energy` (tce per 10^4 yuan)",
    },
    ParamDoc {
        name: "gdp_column",
        ty: "string",
        default: "",
        doc: "GDP column of `economy` (10^4 yuan)",
    },
    ParamDoc {
        name: "deflator_column",
        ty: "string?",
        default: "null",
        doc: "price-index column of `economy`; GDP × deflator_base / deflator gives constant prices",
    },
    ParamDoc {
        name: "deflator_base",
        ty: "float",
        default: "",
        doc: "deflator value of the base year",
    },
    ParamDoc {
        name: "energy_allocation",
        ty: "direct|construction_area|gdp|ntl",
        default: "",
        doc: "share a higher-level energy table among units (by `parents` table, or one region when `parents` is not wired); `ntl` shares by night-time-light totals from an `ntl` table (unit_id, year, ntl)",
    },
    ParamDoc {
        name: "missing",
        ty: "error|zero|interpolate",
        default: "",
        doc: "policy for values missing from `energy`/`economy`/`activities`",
    },
    ParamDoc {
        name: "other_sources",
        ty: "{preset, override}?",
        default: "null",
        doc: "other sources from an `activities` table (unit_id, year, activity, amount): preset `wu2017` (fertilizer, pesticide, plastic_film, agricultural_diesel, irrigation, ploughing, livestock heads, respiration); `override: {activity: t C per unit}`",
    },
];

impl Stage for Emission {
    const KIND: &'static str = "emission";
    const VERSION: u32 = 2;
    const DOC: &'static str = "Gross carbon emission (t C) per unit, year and source: area × coefficient for source classes, \
        construction land from energy consumption (Σ e·θ·f), GDP × energy intensity × f_sc, or a coefficient.";
    const PARAMS: &'static [ParamDoc] = PARAMS;
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        vec![Example::new(json!({"construction": "none"}), vec![("areas", study::land_areas())])]
    }

    fn ports(params: &Params) -> Vec<Port> {
        let mut ports = vec![
            Port::required("areas", "class areas per unit and year (landuse `areas`)")
                .with_columns(["unit_id", "year", "class", "area_ha"]),
        ];
        match params.construction {
            ConstructionMethod::Energy => ports.push(
                Port::required("energy", "fuel consumption per unit (or parent) and year")
                    .with_columns(["unit_id", "year"]),
            ),
            ConstructionMethod::Intensity => ports.push(
                Port::required("energy", "energy intensity per unit (or parent) and year")
                    .with_columns([
                        "unit_id".to_owned(),
                        "year".to_owned(),
                        params.intensity_column.clone(),
                    ]),
            ),
            ConstructionMethod::Coefficient | ConstructionMethod::None => {}
        }
        if params.construction == ConstructionMethod::Intensity
            || params.energy_allocation == Allocation::Gdp
        {
            let mut cols = vec![
                "unit_id".to_owned(),
                "year".to_owned(),
                params.gdp_column.clone(),
            ];
            cols.extend(params.deflator_column.clone());
            ports.push(Port::required("economy", "GDP per unit and year").with_columns(cols));
        }
        if params.energy_allocation == Allocation::Ntl {
            ports.push(
                Port::required(
                    "ntl",
                    "night-time-light total per unit and year (sum of the radiance values of the unit's pixels)",
                )
                .with_columns(["unit_id", "year", "ntl"]),
            );
        }
        if params.energy_allocation != Allocation::Direct {
            ports.push(
                Port::optional("parents", "unit → parent region of the energy table")
                    .with_columns(["unit_id", "parent_id"]),
            );
        }
        if params.other_sources.is_some() {
            ports.push(
                Port::required(
                    "activities",
                    "other sources: unit_id, year, activity, amount",
                )
                .with_columns(["unit_id", "year", "activity", "amount"]),
            );
        }
        ports
    }

    fn outputs(_params: &Params) -> Vec<OutputDecl> {
        vec![emission_schema().decl(), fuels_schema().decl()]
    }

    fn sources(params: &Params) -> Vec<Source> {
        let mut s = params.coefficients.sources();
        if params.construction == ConstructionMethod::Energy
            && is_path(&params.energy_factors.preset)
        {
            s.push(Source::new(ENERGY_SOURCE, &params.energy_factors.preset));
        }
        s
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        params.coefficients.validate()?;
        if !(params.f_sc_t_c_per_tce.is_finite() && params.f_sc_t_c_per_tce > 0.0) {
            return Err(StageError::data(format!(
                "`f_sc_t_c_per_tce` is {}, expected > 0",
                params.f_sc_t_c_per_tce
            ))
            .with_hint("0.67 t C/tce (NDRC) is the usual value"));
        }
        if !(params.deflator_base.is_finite() && params.deflator_base > 0.0) {
            return Err(StageError::data("`deflator_base` must be > 0"));
        }
        if params.construction == ConstructionMethod::Energy
            && !is_path(&params.energy_factors.preset)
        {
            fuel_factors(params, &fuel_rows(&params.energy_factors, None)?)?;
        }
        if params.energy_allocation == Allocation::Gdp
            && params.construction == ConstructionMethod::Intensity
        {
            return Err(StageError::data("`energy_allocation: gdp` with `construction: intensity` would allocate GDP by GDP")
                .with_hint("with `intensity`, a parent-level intensity is applied to each unit's GDP: use `energy_allocation: construction_area` or `direct`"));
        }
        Ok(())
    }

    fn run(
        params: &Params,
        inputs: &crate::engine::stage::Inputs,
        ctx: &StageContext,
    ) -> Result<Outputs, StageError> {
        let coefficients = params.coefficients.load(ctx)?;
        let area_panel = area_panel(inputs, ctx)?;
        let areas = area_panel.unit_years();
        let area_method = format!("area_coefficient:{}", params.coefficients.label());

        let mut fuels = FuelRowsOut::default();
        let (construction, construction_method) = construction_emission(
            params,
            inputs,
            ctx,
            &areas,
            &coefficients,
            &area_method,
            &mut fuels,
        )?;

        let activities = match &params.other_sources {
            Some(choice) => {
                let factors = choice.load()?;
                let table = inputs.table("activities")?;
                let columns = ["unit_id", "year", "activity", "amount"];
                refuse_unused_columns(
                    table,
                    &inputs.label("activities"),
                    &columns,
                    &columns,
                    &params.ignore_columns,
                )?;
                let (names, panel) = activity_panel(table)?;
                if let Some(n) = names.iter().find(|n| !factors.contains_key(*n)) {
                    return Err(StageError::data(format!("`activities`: activity `{n}` has no factor in preset `{}`", choice.preset)).with_hint(
                        format!(
                            "known: {}; or add `other_sources: {{ override: {{ {n}: <t C per unit> }} }}`",
                            factors.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                Some((factors, (names, panel)))
            }
            None => None,
        };
        let activity_method = params
            .other_sources
            .as_ref()
            .map(|c| format!("activity:{}", c.preset))
            .unwrap_or_default();
        if activities.is_none() {
            let methods = (area_method.as_str(), construction_method.as_str());
            let emission = class_rows(
                params,
                &coefficients,
                &areas,
                construction.as_deref(),
                methods,
                ctx,
            )?;
            return Ok(vec![emission, fuels_schema().build(&fuels.rows())?]);
        }

        let mut out: Vec<SourceRow<'_>> = Vec::with_capacity(areas.len() * 4);
        let mut rows: Vec<(&str, f64, &str)> = Vec::new();
        for (k, ua) in areas.iter().enumerate() {
            rows.clear();
            if let Some((factors, (names, panel))) = &activities {
                for (c, name) in names.iter().enumerate() {
                    let amount = panel.get(ua.unit, ua.year, c, params.missing)?;
                    rows.push((
                        name,
                        activity_emission_t_c(amount, factors[name]),
                        &activity_method,
                    ));
                }
            }
            for (class, area) in ua.classes() {
                if class == "construction" {
                    continue;
                }
                let Some(&coef) = coefficients.get(class) else {
                    return Err(class_without_coefficient(
                        class,
                        ua.unit,
                        ua.year,
                        &params.coefficients,
                    ));
                };
                if coef > 0.0 {
                    rows.push((class, area_emission_t_c(area, coef), &area_method));
                }
            }
            if let Some(c) = &construction {
                rows.push(("construction", c[k], &construction_method));
            }
            rows.sort_by(|a, b| a.0.cmp(b.0));
            if let Some(w) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(StageError::data(format!(
                    "source `{}` is both a land class and an activity (unit `{}`, year {})",
                    w[0].0, ua.unit, ua.year
                ))
                .with_hint("rename the activity"));
            }
            for &(source, e, method) in &rows {
                out.push(SourceRow {
                    unit: ua.unit,
                    year: ua.year,
                    source,
                    emission_t_c: e,
                    method,
                });
            }
        }
        if let Some((_, (_, panel))) = &activities {
            panel.report(ctx, params.missing);
            let known: BTreeSet<&str> = areas.iter().map(|a| a.unit).collect();
            panel.warn_unused_units(ctx, &|u| known.contains(u));
        }
        Ok(vec![
            emission_schema().build(&out)?,
            fuels_schema().build(&fuels.rows())?,
        ])
    }
}

/// Construction-land emission per unit-year (aligned with `areas`) and the method it names,
/// by the study's `construction` choice; the energy method also fills `fuels`.
fn construction_emission(
    params: &Params,
    inputs: &crate::engine::stage::Inputs,
    ctx: &StageContext,
    areas: &[UnitYearAreas<'_>],
    coefficients: &BTreeMap<String, f64>,
    area_method: &str,
    fuels: &mut FuelRowsOut,
) -> Result<(Option<Vec<f64>>, String), StageError> {
    Ok(match params.construction {
        ConstructionMethod::None => (None, String::new()),
        ConstructionMethod::Coefficient => {
            let Some(&coef) = coefficients.get("construction") else {
                let (u, y) = areas.first().map_or(("", 0), |a| (a.unit, a.year));
                return Err(class_without_coefficient(
                    "construction",
                    u,
                    y,
                    &params.coefficients,
                ));
            };
            let e = areas
                .iter()
                .map(|ua| area_emission_t_c(ua.area("construction"), coef))
                .collect();
            (Some(e), area_method.to_owned())
        }
        ConstructionMethod::Energy => {
            let e = energy_method(params, inputs, ctx, areas, fuels)?;
            let method = format!(
                "energy:{}{}",
                params.energy_factors.preset,
                if params.include_electricity == Some(true) {
                    "+electricity"
                } else {
                    ""
                }
            );
            (Some(e), method)
        }
        ConstructionMethod::Intensity => (
            Some(intensity_method(params, inputs, ctx, areas)?),
            "intensity".to_owned(),
        ),
    })
}

/// The `emission` output when no activities are counted: a row per land class with a positive
/// coefficient and one for construction, per unit-year. Which rows there are depends only on
/// `areas` and on which coefficients are positive, so a sweep's draws find the rows once and
/// then only multiply.
fn class_rows(
    params: &Params,
    coefficients: &BTreeMap<String, f64>,
    areas: &[UnitYearAreas<'_>],
    construction: Option<&[f64]>,
    (area_method, construction_method): (&str, &str),
    ctx: &StageContext,
) -> Result<(String, arrow_array::RecordBatch), StageError> {
    let key = (
        class_row_key(coefficients, |c| c > 0.0),
        construction.is_some(),
        area_method,
        construction_method,
    );
    let layout = ctx.reuse("emission_rows", &["areas"], &key, || {
        let mut classes: Vec<String> = coefficients
            .iter()
            .filter(|(c, v)| **v > 0.0 && *c != "construction")
            .map(|(c, _)| c.clone())
            .collect();
        classes.sort();
        let arrange = |here: &mut Vec<ClassRow<'_>>| {
            if construction.is_some() {
                here.push(("construction", None));
            }
            here.sort_by(|a, b| a.0.cmp(b.0));
        };
        let (rows, out) = rows_by_class(
            areas,
            &classes,
            coefficients,
            &params.coefficients,
            arrange,
            |ua, (source, at)| SourceRow {
                unit: ua.unit,
                year: ua.year,
                source,
                emission_t_c: 0.0,
                method: if at.is_some() {
                    area_method
                } else {
                    construction_method
                },
            },
        )?;
        let template = emission_schema().build(&out)?.1;
        Ok(ClassRows {
            classes,
            rows,
            template,
        })
    })?;
    let coef = layout.coefficients(coefficients)?;
    let values = layout
        .rows
        .iter()
        .map(|&(k, at)| match (at, construction) {
            (Some((j, c)), _) => area_emission_t_c(areas[k].area_at(j), coef[c]),
            (None, Some(e)) => e[k],
            (None, None) => unreachable!("construction rows exist only with construction"),
        })
        .collect();
    Ok((
        "emission".to_owned(),
        layout.with_values("emission_t_c", values)?,
    ))
}

/// The `activities` table pivoted to one column per activity (sorted). An activity a unit-year
/// does not list counts as 0; a unit-year with no rows at all, or an empty amount, is missing.
fn activity_panel(table: &arrow_array::RecordBatch) -> Result<(Vec<String>, Panel), StageError> {
    let units = crate::stages::shared::carbon_panel::str_col(table, "activities", "unit_id", true)?;
    let years = crate::table::i64s(table, "activities", "year")?;
    let acts =
        crate::stages::shared::carbon_panel::str_col(table, "activities", "activity", false)?;
    let amounts = crate::table::f64s(table, "activities", "amount")?;
    let names: Vec<String> = {
        let set: BTreeSet<&str> = (0..acts.len()).map(|i| acts.get(i)).collect();
        set.into_iter().map(str::to_owned).collect()
    };
    let mut rows: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    for (i, &year) in years.iter().enumerate() {
        let (unit, act, x) = (units.get(i), acts.get(i), amounts[i]);
        if x.is_infinite() || x < 0.0 {
            return Err(StageError::data(format!(
                "`activities` row {}: unit `{unit}`, year {year}, activity `{act}`: amount is {x}",
                i + 1
            ))
            .with_hint("amounts must be finite and ≥ 0"));
        }
        let c = names
            .binary_search_by(|n| n.as_str().cmp(act))
            .expect("every activity is in the name list");
        let slot = rows
            .entry(unit.to_owned())
            .or_default()
            .entry(year)
            .or_insert_with(|| vec![0.0; names.len()]);
        slot[c] += x;
    }
    let cols: Vec<&str> = names.iter().map(String::as_str).collect();
    Ok((names.clone(), Panel::from_rows("activities", &cols, rows)))
}

/// Parent region of each unit for allocation: from `parents`, or the energy table's only id.
fn parent_map(
    params: &Params,
    inputs: &crate::engine::stage::Inputs,
    energy: &Panel,
    areas: &[UnitYearAreas<'_>],
) -> Result<Option<BTreeMap<String, String>>, StageError> {
    if params.energy_allocation == Allocation::Direct {
        return Ok(None);
    }
    let mut map = BTreeMap::new();
    if let Some(t) = inputs.optional("parents") {
        let units = ids(t, "parents", "unit_id")?;
        let parents = ids(t, "parents", "parent_id")?;
        for (u, p) in units.into_iter().zip(parents) {
            if let Some(old) = map.insert(u.clone(), p.clone())
                && old != p
            {
                return Err(StageError::data(format!(
                    "`parents`: unit `{u}` has two parents (`{old}`, `{p}`)"
                )));
            }
        }
        if let Some(ua) = areas.iter().find(|a| !map.contains_key(a.unit)) {
            return Err(
                StageError::data(format!("`parents` has no row for unit `{}`", ua.unit))
                    .with_hint("give every unit of `areas` a `parent_id`"),
            );
        }
    } else {
        let regions: Vec<&str> = energy.units().collect();
        let [region] = regions.as_slice() else {
            return Err(StageError::data(format!(
                "`energy` has {} regions but no `parents` table says which units belong to which",
                regions.len()
            ))
            .with_hint(
                "wire a `parents` input (unit_id, parent_id), or give `energy` one region",
            ));
        };
        for ua in areas {
            if !map.contains_key(ua.unit) {
                map.insert(ua.unit.to_owned(), (*region).to_owned());
            }
        }
    }
    Ok(Some(map))
}

/// Allocation shares of each (unit, year) within its parent, in `areas` order.
fn allocation_shares(
    params: &Params,
    inputs: &crate::engine::stage::Inputs,
    areas: &[UnitYearAreas<'_>],
    parents: &BTreeMap<String, String>,
    ctx: &StageContext,
) -> Result<Vec<f64>, StageError> {
    let weights: Vec<f64> = match params.energy_allocation {
        Allocation::Direct => return Ok(vec![1.0; areas.len()]),
        Allocation::ConstructionArea => areas.iter().map(|a| a.area("construction")).collect(),
        Allocation::Gdp => {
            let economy = economy_panel(params, inputs)?;
            let base = params
                .deflator_column
                .as_ref()
                .map(|_| params.deflator_base);
            let w = areas
                .iter()
                .map(|a| {
                    gdp_value(
                        &economy,
                        a.unit,
                        a.year,
                        base,
                        params.missing,
                        &params.gdp_column,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            economy.report(ctx, params.missing);
            w
        }
        Allocation::Ntl => {
            let ntl = Panel::read(inputs.table("ntl")?, "ntl", &["ntl"], true)?;
            let w = areas
                .iter()
                .map(|a| ntl.get(a.unit, a.year, 0, params.missing))
                .collect::<Result<Vec<_>, _>>()?;
            ntl.report(ctx, params.missing);
            w
        }
    };
    // group (parent, year) → indices, in a fixed order
    let mut groups: BTreeMap<(&str, i64), Vec<usize>> = BTreeMap::new();
    for (i, a) in areas.iter().enumerate() {
        groups
            .entry((parents[a.unit].as_str(), a.year))
            .or_default()
            .push(i);
    }
    let mut out = vec![0.0; areas.len()];
    for ((parent, year), idx) in groups {
        let w: Vec<f64> = idx.iter().map(|&i| weights[i]).collect();
        let s = shares(&w).ok_or_else(|| {
            StageError::data(format!(
                "no {} to allocate the energy of `{parent}` in {year}: all its units have zero",
                allocation_name(params.energy_allocation)
            ))
        })?;
        for (i, s) in idx.into_iter().zip(s) {
            out[i] = s;
        }
    }
    Ok(out)
}

fn allocation_name(a: Allocation) -> &'static str {
    match a {
        Allocation::Direct => "direct",
        Allocation::ConstructionArea => "construction area",
        Allocation::Gdp => "GDP",
        Allocation::Ntl => "night-time light",
    }
}

fn economy_panel(
    params: &Params,
    inputs: &crate::engine::stage::Inputs,
) -> Result<Panel, StageError> {
    let mut cols = vec![params.gdp_column.as_str()];
    cols.extend(params.deflator_column.as_deref());
    Panel::read(inputs.table("economy")?, "economy", &cols, true)
}

/// The column of `fuel` in the energy table: `fuel`, else `fuel_<unit>` with the unit written
/// as in names (`t`, `10^4 t` → `10k_t`, `10^4 m3` → `10k_m3`, `10^4 kWh` → `10k_kwh`).
fn fuel_column(table: &arrow_array::RecordBatch, fuel: &str, unit: &str) -> Option<String> {
    fuel_column_names(fuel, unit)
        .into_iter()
        .find(|c| has_column(table, c))
}

/// The column names a fuel may have: bare, or with its unit (see [`fuel_column`]).
fn fuel_column_names(fuel: &str, unit: &str) -> [String; 2] {
    let suffix = unit
        .trim()
        .to_ascii_lowercase()
        .replace("10^4", "10k")
        .replace(' ', "_");
    [fuel.to_owned(), format!("{fuel}_{suffix}")]
}

/// Every column of `energy` must be a key, a fuel of the factor table (electricity included,
/// counted or not) or listed in `ignore_columns`; every counted fuel needs a column unless it
/// is listed in `absent_fuels`. A misspelt (`raw_coal_tonnes`) or mis-encoded header would
/// otherwise count that fuel as zero.
fn check_energy_columns(
    params: &Params,
    inputs: &crate::engine::stage::Inputs,
    rows: &[FuelRow],
    factors: &[(String, String, FuelFactor)],
    columns: &[Option<String>],
) -> Result<(), StageError> {
    let table = inputs.table("energy")?;
    let label = inputs.label("energy");
    let mut known: Vec<String> = vec!["unit_id".into(), "year".into()];
    for r in rows {
        let unit = params
            .fuel_units
            .get(&r.fuel)
            .map_or_else(|| default_fuel_unit(&r.fuel, &r.theta_unit), String::as_str);
        known.extend(fuel_column_names(&r.fuel, unit));
    }
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    refuse_unused_columns(table, &label, &known, &known, &params.ignore_columns)?;
    refuse_unknown_fuels("absent_fuels", params.absent_fuels.iter(), rows)?;
    for ((fuel, unit, _), column) in factors.iter().zip(columns) {
        let listed = params.absent_fuels.contains(fuel);
        match column {
            Some(c) if listed => {
                return Err(StageError::data(format!(
                    "`absent_fuels` names `{fuel}`, but {label} has its column `{c}`"
                ))
                .with_hint(format!("remove `{fuel}` from `absent_fuels`")));
            }
            None if !listed => {
                let [bare, with_unit] = fuel_column_names(fuel, unit);
                return Err(StageError::data(format!(
                    "{label} has no column for fuel `{fuel}` (`{bare}` or `{with_unit}`)"
                ))
                .with_hint(format!(
                    "add the column; if the region used none, add `absent_fuels: [{fuel}]` to this stage to count it as zero"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Construction emission of each unit-year by the energy method; fills the `fuels` detail.
fn energy_method(
    params: &Params,
    inputs: &crate::engine::stage::Inputs,
    ctx: &StageContext,
    areas: &[UnitYearAreas<'_>],
    fuels_out: &mut FuelRowsOut,
) -> Result<Vec<f64>, StageError> {
    let rows = fuel_rows(&params.energy_factors, Some(ctx))?;
    let factors = fuel_factors(params, &rows)?;
    let table = inputs.table("energy")?;
    // Each fuel's column: named after the fuel, or after the fuel and its unit
    // (`raw_coal_t`, `natural_gas_10k_m3`), as units-in-names tables write them.
    let columns: Vec<Option<String>> = factors
        .iter()
        .map(|(f, u, _)| fuel_column(table, f, u))
        .collect();
    check_energy_columns(params, inputs, &rows, &factors, &columns)?;
    let present: Vec<&(String, String, FuelFactor)> = factors
        .iter()
        .zip(&columns)
        .filter_map(|(x, c)| c.as_ref().map(|_| x))
        .collect();
    if params.include_electricity.is_none()
        && (has_column(table, "electricity") || has_column(table, "electricity_10k_kwh"))
    {
        ctx.warn("`energy` has an `electricity` column, excluded by default (set `include_electricity: true` to count it, or `false` to say so)");
    }
    let cols: Vec<&str> = columns.iter().flatten().map(String::as_str).collect();
    let energy = energy_panel(table, &cols, ctx)?;
    let parents = parent_map(params, inputs, &energy, areas)?;
    let shares = match &parents {
        Some(p) => allocation_shares(params, inputs, areas, p, ctx)?,
        None => vec![1.0; areas.len()],
    };
    // Each unit's own consumption, looked up once for a sweep's draws (which vary factors).
    let own = match &parents {
        Some(_) => None,
        None => Some(own_consumption(params, &energy, &cols, areas, ctx)?),
    };
    // A sweep's draws that read only `emission` leave the `fuels` detail empty.
    let detail = ctx.output_read("fuels");
    let mut out = Vec::with_capacity(areas.len());
    for (k, (ua, share)) in areas.iter().zip(shares).enumerate() {
        let region = parents.as_ref().map_or(ua.unit, |p| p[ua.unit].as_str());
        let mut total = 0.0;
        for (c, (_, _, factor)) in present.iter().enumerate() {
            let consumption = match &own {
                Some(own) => own.values[k * cols.len() + c],
                None => energy.get(region, ua.year, c, params.missing)? * share,
            };
            let e = fuel_emission_t_c(consumption, *factor);
            total += e;
            if detail {
                fuels_out.push(
                    k,
                    c,
                    consumption,
                    consumption * factor.theta_tce_per_unit,
                    e,
                );
            }
        }
        out.push(total);
    }
    if detail {
        fuels_out.units = areas.iter().map(|a| (a.unit.to_owned(), a.year)).collect();
        fuels_out.fuels = present
            .iter()
            .map(|(f, u, _)| (f.clone(), u.clone()))
            .collect();
    }
    match (&own, &parents) {
        (Some(own), _) => {
            for w in own.filled.iter().chain(&own.unused) {
                ctx.warn(w.clone());
            }
        }
        (None, Some(parents)) => {
            energy.report(ctx, params.missing);
            let used = used_regions(parents.values().map(String::as_str));
            energy.warn_unused_units(ctx, &|u| used.binary_search(&u).is_ok());
        }
        (None, None) => unreachable!("without parents each unit's own consumption is read"),
    }
    Ok(out)
}

/// The regions whose energy is used, sorted and without repeats.
fn used_regions<'a>(regions: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut used: Vec<&str> = regions.collect();
    used.sort_unstable();
    used.dedup();
    used
}

/// Each unit-year's own consumption of each fuel column, and the warnings about values the
/// `missing` policy filled and about units of `energy` the study does not have.
struct OwnConsumption {
    /// Per unit-year (in `areas` order), one value per column.
    values: Vec<f64>,
    filled: Option<String>,
    unused: Option<String>,
}

/// The consumption of each unit-year of `areas` and column `cols` of `energy`: read from the
/// `energy` and `areas` tables alone, so a sweep's draws that vary factors look it up once.
fn own_consumption(
    params: &Params,
    energy: &Panel,
    cols: &[&str],
    areas: &[UnitYearAreas<'_>],
    ctx: &StageContext,
) -> Result<std::sync::Arc<OwnConsumption>, StageError> {
    ctx.reuse(
        "own_consumption",
        &["energy", "areas"],
        &(cols, params.missing),
        || {
            // A panel of its own, so that its record of filled values is this lookup's.
            let panel = Panel::over(energy.values());
            let mut values = Vec::with_capacity(areas.len() * cols.len());
            for ua in areas {
                for c in 0..cols.len() {
                    values.push(panel.get(ua.unit, ua.year, c, params.missing)?);
                }
            }
            let used = used_regions(areas.iter().map(|a| a.unit));
            Ok(OwnConsumption {
                values,
                filled: panel.filled_warning(params.missing),
                unused: panel.unused_units_warning(&|u| used.binary_search(&u).is_ok()),
            })
        },
    )
}

/// Columns `cols` of the `energy` table as a panel, read once for all the draws of a sweep that
/// vary factors rather than the table.
fn energy_panel(
    table: &arrow_array::RecordBatch,
    cols: &[&str],
    ctx: &StageContext,
) -> Result<Panel, StageError> {
    let values = ctx.reuse("energy_panel", &["energy"], &cols, || {
        Ok(Panel::read(table, "energy", cols, true)?.values())
    })?;
    Ok(Panel::over(std::sync::Arc::clone(&values)))
}

/// Construction emission of each unit-year by GDP × energy intensity × `f_sc`.
fn intensity_method(
    params: &Params,
    inputs: &crate::engine::stage::Inputs,
    ctx: &StageContext,
    areas: &[UnitYearAreas<'_>],
) -> Result<Vec<f64>, StageError> {
    let table = inputs.table("energy")?;
    require_column(table, "energy", &params.intensity_column)?;
    let energy = energy_panel(table, &[params.intensity_column.as_str()], ctx)?;
    let economy = economy_panel(params, inputs)?;
    let parents = parent_map(params, inputs, &energy, areas)?;
    let base = params
        .deflator_column
        .as_ref()
        .map(|_| params.deflator_base);
    let mut out = Vec::with_capacity(areas.len());
    for ua in areas {
        let region = parents.as_ref().map_or(ua.unit, |p| p[ua.unit].as_str());
        let ei = energy.get(region, ua.year, 0, params.missing)?;
        let gdp = gdp_value(
            &economy,
            ua.unit,
            ua.year,
            base,
            params.missing,
            &params.gdp_column,
        )?;
        out.push(intensity_emission_t_c(gdp, ei, params.f_sc_t_c_per_tce));
    }
    energy.report(ctx, params.missing);
    economy.report(ctx, params.missing);
    Ok(out)
}

/// One row of `emission`: a unit's emission from one source in one year; pushed in (unit,
/// year, source) order.
struct SourceRow<'a> {
    unit: &'a str,
    year: i64,
    source: &'a str,
    emission_t_c: f64,
    method: &'a str,
}

/// The `emission` output, declared once for `outputs()` and `run()`.
fn emission_schema<'a>() -> TableSchema<SourceRow<'a>> {
    TableSchema::<SourceRow<'a>>::new(
        "emission",
        "unit_id, year, source, emission_t_c (t C), method; one row per source",
    )
    .text("unit_id", |r| r.unit)
    .int("year", |r| r.year)
    .text("source", |r| r.source)
    .float("emission_t_c", |r| r.emission_t_c)
    .text("method", |r| r.method)
}

/// One row of `fuels`: a fuel's consumption and emission in one unit-year.
struct FuelOut<'a> {
    unit: &'a str,
    year: i64,
    fuel: &'a str,
    consumption: f64,
    physical_unit: &'a str,
    tce: f64,
    emission_t_c: f64,
}

/// The `fuels` output, declared once for `outputs()` and `run()`.
fn fuels_schema<'a>() -> TableSchema<FuelOut<'a>> {
    TableSchema::<FuelOut<'a>>::new(
        "fuels",
        "energy method detail: unit_id, year, fuel, consumption, unit, tce, emission_t_c",
    )
    .text("unit_id", |r| r.unit)
    .int("year", |r| r.year)
    .text("fuel", |r| r.fuel)
    .float("consumption", |r| r.consumption)
    .text("unit", |r| r.physical_unit)
    .float("tce", |r| r.tce)
    .float("emission_t_c", |r| r.emission_t_c)
}

/// Output rows of `fuels`: unit-year index and fuel index per row (already in unit, year,
/// fuel order).
#[derive(Default)]
struct FuelRowsOut {
    /// (unit, year) of each unit-year index.
    units: Vec<(String, i64)>,
    /// (fuel, physical unit) of each fuel index.
    fuels: Vec<(String, String)>,
    rows: Vec<(usize, usize)>,
    consumption: Vec<f64>,
    tce: Vec<f64>,
    emission: Vec<f64>,
}

impl FuelRowsOut {
    fn push(&mut self, unit_year: usize, fuel: usize, consumption: f64, tce: f64, e: f64) {
        self.rows.push((unit_year, fuel));
        self.consumption.push(consumption);
        self.tce.push(tce);
        self.emission.push(e);
    }
    fn rows(&self) -> Vec<FuelOut<'_>> {
        self.rows
            .iter()
            .enumerate()
            .map(|(k, &(unit_year, fuel))| FuelOut {
                unit: &self.units[unit_year].0,
                year: self.units[unit_year].1,
                fuel: &self.fuels[fuel].0,
                consumption: self.consumption[k],
                physical_unit: &self.fuels[fuel].1,
                tce: self.tce[k],
                emission_t_c: self.emission[k],
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stage::StageEntry;
    use crate::table::{TableBuilder, f64s, strings};
    use arrow_array::RecordBatch;

    pub(crate) fn areas_table() -> RecordBatch {
        // unit a: cultivated 1000 ha, forest 2000 ha, construction 300 ha
        // unit b: cultivated 500 ha, water 100 ha, construction 100 ha
        TableBuilder::new()
            .str("unit_id", &["a", "a", "a", "b", "b", "b"])
            .i64("year", vec![2000; 6])
            .str(
                "class",
                &[
                    "cultivated",
                    "forest",
                    "construction",
                    "cultivated",
                    "water",
                    "construction",
                ],
            )
            .i64("pixels", vec![0; 6])
            .f64("area_ha", vec![1000.0, 2000.0, 300.0, 500.0, 100.0, 100.0])
            .build()
            .unwrap()
    }

    fn run(
        params: serde_json::Value,
        tables: Vec<(&str, RecordBatch)>,
    ) -> Result<(Outputs, Vec<String>), StageError> {
        crate::stages::testing::run::<Emission>(params, tables)
    }

    /// The fossil fuels of the default preset other than `present`, as `absent_fuels`.
    fn absent_except(present: &[&str]) -> serde_json::Value {
        let all = [
            "raw_coal",
            "coke",
            "crude_oil",
            "gasoline",
            "kerosene",
            "diesel",
            "fuel_oil",
            "natural_gas",
        ];
        serde_json::json!(
            all.iter()
                .filter(|f| !present.contains(f))
                .collect::<Vec<_>>()
        )
    }

    fn rows(out: &Outputs) -> Vec<(String, String, f64)> {
        let t = &out[0].1;
        let u = strings(t, "e", "unit_id").unwrap();
        let s = strings(t, "e", "source").unwrap();
        let e = f64s(t, "e", "emission_t_c").unwrap();
        u.into_iter()
            .zip(s)
            .zip(e)
            .map(|((u, s), e)| (u, s, e))
            .collect()
    }

    #[test]
    fn energy_method_direct() {
        let energy = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("raw_coal", vec![10_000.0, 1_000.0])
            .f64("natural_gas", vec![500.0, 0.0])
            .f64("electricity", vec![99_999.0, 99_999.0])
            .build()
            .unwrap();
        // A fuel without a column is an error unless declared absent.
        let err = run(
            serde_json::json!({}),
            vec![("areas", areas_table()), ("energy", energy.clone())],
        )
        .err()
        .unwrap();
        assert!(
            err.message.contains("no column for fuel `coke`"),
            "{}",
            err.message
        );
        let (out, warnings) = run(
            serde_json::json!({"absent_fuels": absent_except(&["raw_coal", "natural_gas"])}),
            vec![("areas", areas_table()), ("energy", energy)],
        )
        .unwrap();
        // a: cultivated 1000 × 0.422 = 422; construction: coal 10000 × 0.7143 × 0.7559 = 5399.3937,
        //    gas 500 (10^4 m3) × 13.3 × 0.4483 = 2981.195 -> 8380.5887; electricity excluded.
        // b: cultivated 500 × 0.422 = 211; construction 1000 × 0.7143 × 0.7559 = 539.93937
        let r = rows(&out);
        assert_eq!(r.len(), 4);
        assert_eq!((r[0].0.as_str(), r[0].1.as_str()), ("a", "construction"));
        assert!((r[0].2 - 8380.5887).abs() < 1e-6, "{}", r[0].2);
        assert!((r[1].2 - 422.0).abs() < 1e-9);
        assert!((r[2].2 - 539.939_37).abs() < 1e-6);
        assert!((r[3].2 - 211.0).abs() < 1e-9);
        // electricity exclusion is reported
        assert!(
            warnings.iter().any(|w| w.contains("electricity")),
            "{warnings:?}"
        );
        assert_eq!(out[1].1.num_rows(), 4); // 2 units × 2 fuels
    }

    #[test]
    fn runs_sharing_reused_rows_give_what_separate_runs_give() {
        // As a sweep's draws: one store for runs that vary coefficients and factors. A
        // cultivated coefficient of 0 drops the cultivated rows, so the rows are found again.
        let store = std::sync::Arc::new(crate::engine::reuse::ReuseStore::new([
            "areas".to_owned(),
            "energy".to_owned(),
        ]));
        let energy = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("raw_coal", vec![10_000.0, 1_000.0])
            .build()
            .unwrap();
        for (cultivated, coal_f) in [(0.422, 0.7559), (0.5, 0.73), (0.0, 0.7559), (0.45, 0.74)] {
            let params = serde_json::json!({
                "absent_fuels": absent_except(&["raw_coal"]),
                "coefficients": {"override": {"cultivated": cultivated}},
                "energy_factors": {"override": {"raw_coal": {"f_t_c_per_tce": coal_f}}},
            });
            let tables = || vec![("areas", areas_table()), ("energy", energy.clone())];
            let shared =
                crate::stages::testing::run_sharing::<Emission>(&store, params.clone(), tables())
                    .unwrap();
            let alone = run(params, tables()).unwrap();
            assert_eq!(shared, alone, "cultivated {cultivated}");
        }
    }

    #[test]
    fn electricity_switch_and_units() {
        let energy = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("raw_coal", vec![1.0, 0.0])
            .f64("electricity", vec![100.0, 0.0])
            .build()
            .unwrap();
        let params = serde_json::json!({"include_electricity": true, "fuel_units": {"raw_coal": "10^4 t"}, "coefficients": {"override": {"cultivated": 0.0}}, "absent_fuels": absent_except(&["raw_coal"])});
        let (out, _) = run(params, vec![("areas", areas_table()), ("energy", energy)]).unwrap();
        // a: coal 1 × 10^4 t × 0.7143 × 0.7559 = 5399.3937; electricity 100 × 10^4 kWh = 1000 MWh
        //    × 0.1229 × 0.68 = 83.572 -> 5482.9657. cultivated overridden to 0: no source rows.
        let r = rows(&out);
        assert_eq!(r.len(), 2);
        assert!((r[0].2 - 5482.9657).abs() < 1e-6, "{}", r[0].2);
        // a mass unit for a gas is refused at plan time
        let err = crate::engine::stage::Entry::<Emission>::new()
            .prepare(serde_json::json!({"fuel_units": {"natural_gas": "t"}}))
            .err()
            .unwrap();
        assert!(err.message.contains("natural_gas"), "{}", err.message);
    }

    #[test]
    fn allocation_by_construction_area() {
        // a province consumes 4000 t raw coal; a has 300 ha construction, b 100 ha -> 3/4 and 1/4
        // a: 3000 × 0.7143 × 0.7559 = 1619.81811; b: 1000 × 0.53993937 = 539.93937
        let energy = TableBuilder::new()
            .str("unit_id", &["P"])
            .i64("year", vec![2000])
            .f64("raw_coal", vec![4000.0])
            .build()
            .unwrap();
        let (out, _) = run(
            serde_json::json!({"energy_allocation": "construction_area", "absent_fuels": absent_except(&["raw_coal"])}),
            vec![("areas", areas_table()), ("energy", energy)],
        )
        .unwrap();
        let r = rows(&out);
        assert!((r[0].2 - 1_619.818_11).abs() < 1e-6, "{}", r[0].2);
        assert!((r[2].2 - 539.939_37).abs() < 1e-6, "{}", r[2].2);
        // allocated construction emissions add up to the province's
        assert!((r[0].2 + r[2].2 - 4000.0 * 0.7143 * 0.7559).abs() < 1e-9);
    }

    #[test]
    fn allocation_by_night_time_light() {
        // The province's 4000 t raw coal shared by night-time light: a 60, b 20 -> 3/4 and 1/4,
        // the same shares as `allocation_by_construction_area`, so the same tonnes:
        // a 3000 × 0.7143 × 0.7559 = 1619.81811; b 1000 × 0.53993937 = 539.93937.
        let energy = TableBuilder::new()
            .str("unit_id", &["P"])
            .i64("year", vec![2000])
            .f64("raw_coal", vec![4000.0])
            .build()
            .unwrap();
        let ntl = TableBuilder::new()
            .str("unit_id", &["b", "a"])
            .i64("year", vec![2000, 2000])
            .f64("ntl", vec![20.0, 60.0])
            .build()
            .unwrap();
        let (out, _) = run(
            serde_json::json!({"energy_allocation": "ntl", "absent_fuels": absent_except(&["raw_coal"])}),
            vec![
                ("areas", areas_table()),
                ("energy", energy.clone()),
                ("ntl", ntl),
            ],
        )
        .unwrap();
        let r = rows(&out);
        assert!((r[0].2 - 1_619.818_11).abs() < 1e-6, "{}", r[0].2);
        assert!((r[2].2 - 539.939_37).abs() < 1e-6, "{}", r[2].2);
        // A negative light total is an error naming the table.
        let bad = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("ntl", vec![-1.0, 60.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"energy_allocation": "ntl", "absent_fuels": absent_except(&["raw_coal"])}),
            vec![("areas", areas_table()), ("energy", energy), ("ntl", bad)],
        )
        .unwrap_err();
        assert!(err.message.contains("`ntl`"), "{}", err.message);
    }

    #[test]
    fn intensity_fallback_with_deflator() {
        let energy = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("energy_intensity_tce_per_10k_yuan", vec![1.2, 0.5])
            .build()
            .unwrap();
        let economy = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("gdp_10k_yuan", vec![150_000.0, 10_000.0])
            .f64("deflator", vec![100.0, 125.0])
            .build()
            .unwrap();
        let params =
            serde_json::json!({"construction": "intensity", "deflator_column": "deflator"});
        let (out, _) = run(
            params,
            vec![
                ("areas", areas_table()),
                ("energy", energy),
                ("economy", economy),
            ],
        )
        .unwrap();
        // a: 150000 × 1.2 × 0.67 = 120600; b: real GDP 10000 × 100/125 = 8000; × 0.5 × 0.67 = 2680
        let r = rows(&out);
        assert!((r[0].2 - 120_600.0).abs() < 1e-6);
        assert!((r[2].2 - 2680.0).abs() < 1e-6);
    }

    #[test]
    fn unit_missing_from_energy_table() {
        let energy = TableBuilder::new()
            .str("unit_id", &["a"])
            .i64("year", vec![2000])
            .f64("raw_coal", vec![10.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"absent_fuels": absent_except(&["raw_coal"])}),
            vec![("areas", areas_table()), ("energy", energy.clone())],
        )
        .err()
        .unwrap();
        assert!(
            err.message.contains("`energy` has no row for unit `b`"),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("missing: zero"));
        // with `missing: zero` unit b's construction emission is 0, with a warning
        let (out, warnings) = run(
            serde_json::json!({"missing": "zero", "absent_fuels": absent_except(&["raw_coal"])}),
            vec![("areas", areas_table()), ("energy", energy)],
        )
        .unwrap();
        assert_eq!(rows(&out)[2].2, 0.0);
        assert!(
            warnings.iter().any(|w| w.contains("set to zero")),
            "{warnings:?}"
        );
    }

    #[test]
    fn misspelt_or_contradicted_fuel_columns_are_errors() {
        let energy = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("raw_coal_tonnes", vec![1.0, 1.0])
            .f64("coke", vec![1.0, 1.0])
            .build()
            .unwrap();
        let absent = absent_except(&["coke"]);
        let err = run(
            serde_json::json!({ "absent_fuels": absent }),
            vec![("areas", areas_table()), ("energy", energy.clone())],
        )
        .err()
        .unwrap();
        assert!(
            err.message.contains("column `raw_coal_tonnes`"),
            "{}",
            err.message
        );
        assert!(
            err.hint.unwrap().starts_with("did you mean `raw_coal_t`?"),
            "the closest fuel column is suggested"
        );
        let err = run(
            serde_json::json!({ "absent_fuels": absent_except(&[]), "ignore_columns": ["raw_coal_tonnes"] }),
            vec![("areas", areas_table()), ("energy", energy)],
        )
        .err()
        .unwrap();
        assert!(
            err.message
                .contains("`absent_fuels` names `coke`, but `energy` has its column `coke`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_inputs() {
        let energy = TableBuilder::new()
            .str("unit_id", &["a", "b"])
            .i64("year", vec![2000, 2000])
            .f64("raw_coal", vec![-1.0, 1.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"absent_fuels": absent_except(&["raw_coal"])}),
            vec![("areas", areas_table()), ("energy", energy)],
        )
        .err()
        .unwrap();
        assert!(
            err.message
                .contains("unit `a`, year 2000: column `raw_coal` holds -1"),
            "{}",
            err.message
        );
        let areas = TableBuilder::new()
            .str("unit_id", &["a"])
            .i64("year", vec![2000])
            .str("class", &["cultivated"])
            .f64("area_ha", vec![f64::NAN])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"construction": "none"}),
            vec![("areas", areas)],
        )
        .err()
        .unwrap();
        assert!(err.message.contains("area_ha is NaN"), "{}", err.message);
        let areas = TableBuilder::new()
            .str("unit_id", &["a"])
            .i64("year", vec![2000])
            .str("class", &["garden"])
            .f64("area_ha", vec![1.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"construction": "none"}),
            vec![("areas", areas.clone())],
        )
        .err()
        .unwrap();
        assert!(err.message.contains("class `garden`") && err.hint.unwrap().contains("override"));
        // any other coefficient class works once given a value
        let (out, _) = run(serde_json::json!({"construction": "none", "coefficients": {"override": {"garden": 0.5}}}), vec![("areas", areas)]).unwrap();
        assert_eq!(rows(&out), vec![("a".to_owned(), "garden".to_owned(), 0.5)]);
        assert!(
            crate::engine::stage::Entry::<Emission>::new()
                .prepare(serde_json::json!({"coefficients": {"preset": "set3"}}))
                .is_err()
        );
        assert!(
            crate::engine::stage::Entry::<Emission>::new()
                .prepare(serde_json::json!({"f_sc": 0.67}))
                .is_err()
        );
    }

    #[test]
    fn user_coefficient_file_is_a_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my.csv");
        std::fs::write(&path, "class,value,unit\ncultivated,0.5,t C/ha/a\nforest,-0.6,t C/ha/a\nwater,-0.2,t C/ha/a\n").unwrap();
        let prepared = crate::engine::stage::Entry::<Emission>::new()
            .prepare(
                serde_json::json!({"construction": "none", "coefficients": {"preset": "my.csv"}}),
            )
            .unwrap();
        assert_eq!(
            prepared.sources(),
            vec![Source::new("coefficients", "my.csv")]
        );
        let (out, _) = crate::stages::testing::run_in::<Emission>(
            dir.path(),
            serde_json::json!({"construction": "none", "coefficients": {"preset": "my.csv"}}),
            vec![("areas", areas_table())],
        )
        .unwrap();
        // a: 1000 × 0.5 = 500; b: 500 × 0.5 = 250
        assert_eq!(
            f64s(&out[0].1, "e", "emission_t_c").unwrap(),
            vec![500.0, 250.0]
        );
    }

    #[test]
    fn other_sources_from_activities() {
        let activities = TableBuilder::new()
            .str("unit_id", &["a", "a", "b"])
            .i64("year", vec![2000, 2000, 2000])
            .str("activity", &["fertilizer", "pig", "respiration"])
            .f64("amount", vec![2000.0, 10_000.0, 50_000.0])
            .build()
            .unwrap();
        let params = serde_json::json!({"construction": "none", "other_sources": {}});
        let (out, _) = run(
            params,
            vec![("areas", areas_table()), ("activities", activities.clone())],
        )
        .unwrap();
        // a: cultivated 422; fertilizer 2000 × 0.8956 = 1791.2; pig 10000 × 0.0341 = 341;
        //    respiration not listed for a -> 0
        // b: cultivated 211; respiration 50000 × 0.079 = 3950; fertilizer and pig 0
        let r = rows(&out);
        let get = |u: &str, s: &str| r.iter().find(|x| x.0 == u && x.1 == s).unwrap().2;
        assert!((get("a", "fertilizer") - 1791.2).abs() < 1e-9);
        assert!((get("a", "pig") - 341.0).abs() < 1e-9);
        assert_eq!(get("a", "respiration"), 0.0);
        assert!((get("b", "respiration") - 3950.0).abs() < 1e-9);
        assert_eq!(r.len(), 8); // 2 units × (cultivated + 3 activities)
        // an unknown activity is an error with a hint
        let bad = TableBuilder::new()
            .str("unit_id", &["a"])
            .i64("year", vec![2000])
            .str("activity", &["goose"])
            .f64("amount", vec![1.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"construction": "none", "other_sources": {}}),
            vec![("areas", areas_table()), ("activities", bad.clone())],
        )
        .err()
        .unwrap();
        assert!(err.message.contains("activity `goose`"), "{}", err.message);
        // ... fixed by an override; unit b has no activity rows: an error unless `missing: zero`
        let params = serde_json::json!({"construction": "none", "other_sources": {"override": {"goose": 0.01}}});
        let err = run(
            params.clone(),
            vec![("areas", areas_table()), ("activities", bad.clone())],
        )
        .err()
        .unwrap();
        assert!(
            err.message.contains("`activities` has no row for unit `b`"),
            "{}",
            err.message
        );
        let params = serde_json::json!({"construction": "none", "missing": "zero", "other_sources": {"override": {"goose": 0.01}}});
        let (out, _) = run(params, vec![("areas", areas_table()), ("activities", bad)]).unwrap();
        assert_eq!(rows(&out).iter().find(|x| x.1 == "goose").unwrap().2, 0.01);
    }

    #[test]
    fn presets_are_pinned_to_version() {
        let digest = crate::methods::coefficients::presets_digest(PRESET_FILES_USED);
        assert_eq!(
            (Emission::VERSION, digest.as_str()),
            PRESETS_PINNED,
            "an embedded preset changed: if any value it gives changed, bump `Emission::VERSION`; then set PRESETS_PINNED to (VERSION, \"{digest}\")"
        );
    }

    #[test]
    fn fuel_columns_may_carry_their_unit() {
        let t = TableBuilder::new()
            .f64("raw_coal_t", vec![1.0])
            .f64("natural_gas_10k_m3", vec![1.0])
            .f64("coke", vec![1.0])
            .f64("diesel_10k_t", vec![1.0])
            .build()
            .unwrap();
        assert_eq!(
            fuel_column(&t, "raw_coal", "t").as_deref(),
            Some("raw_coal_t")
        );
        assert_eq!(
            fuel_column(&t, "natural_gas", "10^4 m3").as_deref(),
            Some("natural_gas_10k_m3")
        );
        assert_eq!(fuel_column(&t, "coke", "t").as_deref(), Some("coke"));
        // A column whose unit is not the fuel's declared unit is not taken for it.
        assert_eq!(fuel_column(&t, "diesel", "t"), None);
        assert_eq!(
            fuel_column(&t, "diesel", "10^4 t").as_deref(),
            Some("diesel_10k_t")
        );
    }
}
