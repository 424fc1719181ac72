//! `sink`: gross carbon absorption per unit, year and land class (t C, ≥ 0): area × |coefficient|
//! for classes with a negative coefficient, and cultivated land by `none`, an area coefficient
//! or the crop-yield method.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Source, Stage, StageContext, StageError,
};
use crate::methods::coefficients::{
    CROP_PRESETS, CropParameters, check_crop, crop_name, crop_preset,
};
use crate::methods::sink::{area_sink_t_c, crop_sink_t_c};
use crate::table::schema::TableSchema;
use crate::stages::shared::carbon_panel::{
    ClassRow, rows_by_class,
    ClassRows, CoefficientChoice, MissingPolicy, Panel, UnitYearAreas, area_panel,
    class_row_key, refuse_unused_columns, str_col,
};
use crate::table::{f64s, i64s};

/// The `sink` stage kind.
pub struct Sink;

/// How cultivated land absorbs carbon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CultivatedSink {
    /// No cropland sink (a row with 0 records the choice).
    #[default]
    None,
    /// Area × |the preset's `cultivated_sink` coefficient| (−0.007 t C/ha/a in the built-in sets).
    Coefficient,
    /// Σ c·Y·(1 − w)/H over the crops of the `crops` table.
    CropYield,
}

impl CultivatedSink {
    fn name(self) -> &'static str {
        match self {
            CultivatedSink::None => "none",
            CultivatedSink::Coefficient => "coefficient",
            CultivatedSink::CropYield => "crop_yield",
        }
    }
}

/// A per-crop replacement or addition to the crop-parameter preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropOverride {
    pub carbon_fraction: Option<f64>,
    pub moisture: Option<f64>,
    pub harvest_index: Option<f64>,
}

fn default_crop_preset() -> String {
    "tian".to_owned()
}

/// Crop parameters: a built-in preset with per-crop overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CropChoice {
    #[serde(default = "default_crop_preset")]
    pub preset: String,
    #[serde(default, rename = "override")]
    pub overrides: BTreeMap<String, CropOverride>,
}

impl Default for CropChoice {
    fn default() -> Self {
        Self {
            preset: default_crop_preset(),
            overrides: BTreeMap::new(),
        }
    }
}

impl CropChoice {
    fn load(&self) -> Result<BTreeMap<String, CropParameters>, StageError> {
        let mut map = crop_preset(&format!("crops_{}.csv", self.preset))
            .ok_or_else(|| {
                StageError::data(format!("unknown crop-parameter preset `{}`", self.preset))
                    .with_hint(format!("built-in presets: {}", CROP_PRESETS.join(", ")))
            })?
            .clone()
            .map_err(|e| StageError::internal(format!("crop preset `{}`: {e}", self.preset)))?;
        for (crop, o) in &self.overrides {
            let p = match map.get(crop) {
                Some(p) => CropParameters {
                    carbon_fraction: o.carbon_fraction.unwrap_or(p.carbon_fraction),
                    moisture: o.moisture.unwrap_or(p.moisture),
                    harvest_index: o.harvest_index.unwrap_or(p.harvest_index),
                },
                None => {
                    let (Some(c), Some(w), Some(h)) =
                        (o.carbon_fraction, o.moisture, o.harvest_index)
                    else {
                        return Err(StageError::data(format!(
                            "crop override `{crop}`: a new crop needs `carbon_fraction`, `moisture` and `harvest_index`"
                        )));
                    };
                    CropParameters {
                        carbon_fraction: c,
                        moisture: w,
                        harvest_index: h,
                    }
                }
            };
            check_crop(crop, &p).map_err(StageError::data)?;
            map.insert(crop.clone(), p);
        }
        Ok(map)
    }
}

/// Parameters of `sink`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Land-use coefficients (classes with a value < 0 are sinks here). Use the same choice as
    /// the `emission` stage.
    #[serde(default)]
    pub coefficients: CoefficientChoice,
    /// `none` (default), `coefficient` or `crop_yield`.
    #[serde(default)]
    pub cultivated_sink: CultivatedSink,
    /// Crop parameters for `crop_yield`.
    #[serde(default)]
    pub crop_parameters: CropChoice,
    /// `error` (default), `zero` or `interpolate` for unit-years missing from `crops`.
    #[serde(default)]
    pub missing: MissingPolicy,
    /// Columns of `crops` that this stage must not read (notes, codes); any other unread
    /// column is an error naming it.
    #[serde(default)]
    pub ignore_columns: Vec<String>,
}

/// The embedded presets this kind reads, and their digest pinned with `VERSION`. Presets are
/// code: editing one changes results without changing any study, so the test
/// `presets_are_pinned_to_version` fails until the pin is updated, and `VERSION` bumped when a
/// value changed (not for comments or the cited ranges, which no output reads).
#[cfg_attr(not(test), allow(dead_code))]
const PRESETS_PINNED: (u32, &str) = (
    3,
    "30264998b455bca6101980bade64aea9f8a52504f26c587ede1e0083f1b02ec0",
);
#[cfg_attr(not(test), allow(dead_code))]
const PRESET_FILES_USED: &[&str] = &["set1.csv", "set2.csv", "mixed.csv", "crops_tian.csv"];

const PARAMS: &[ParamDoc] = &[
    ParamDoc {
        name: "coefficients",
        ty: "{preset, override}",
        default: "",
        doc: "land-use coefficients t C/ha/a (as for `emission`); classes with value < 0 are sinks",
    },
    ParamDoc {
        name: "cultivated_sink",
        ty: "none|coefficient|crop_yield",
        default: "",
        doc: "cropland sink method; recorded in the `method` column",
    },
    ParamDoc {
        name: "crop_parameters",
        ty: "{preset, override}",
        default: "",
        doc: "crop c, w, H for `crop_yield`; `override: {crop: {carbon_fraction, moisture, harvest_index}}`",
    },
    ParamDoc {
        name: "missing",
        ty: "error|zero|interpolate",
        default: "",
        doc: "policy for unit-years without crop yields",
    },
    ParamDoc {
        name: "ignore_columns",
        ty: "list of columns",
        default: "",
        doc: "columns of `crops` left unread on purpose; any other column besides unit_id, year, crop, yield_t is an error",
    },
];

impl Stage for Sink {
    const KIND: &'static str = "sink";
    const VERSION: u32 = 3;
    const DOC: &'static str = "Gross carbon absorption (t C, ≥ 0) per unit, year and land class: area × |coefficient| for sink classes; \
        cultivated land by none, a coefficient, or crop yields (c·Y·(1 − w)/H).";
    const PARAMS: &'static [ParamDoc] = PARAMS;
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        vec![Example::new(json!({}), vec![("areas", study::land_areas())])]
    }

    fn ports(params: &Params) -> Vec<Port> {
        let mut ports = vec![
            Port::required("areas", "class areas per unit and year (landuse `areas`)")
                .with_columns(["unit_id", "year", "class", "area_ha"]),
        ];
        if params.cultivated_sink == CultivatedSink::CropYield {
            ports.push(
                Port::required("crops", "crop yields: unit_id, year, crop, yield_t")
                    .with_columns(["unit_id", "year", "crop", "yield_t"]),
            );
        }
        ports
    }

    fn outputs(_params: &Params) -> Vec<OutputDecl> {
        vec![schema().decl()]
    }

    fn sources(params: &Params) -> Vec<Source> {
        params.coefficients.sources()
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        params.coefficients.validate()?;
        if params.cultivated_sink == CultivatedSink::CropYield {
            params.crop_parameters.load()?;
        }
        Ok(())
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let coefficients = params.coefficients.load(ctx)?;
        let area_panel = area_panel(inputs, ctx)?;
        let areas = area_panel.unit_years();
        let label = params.coefficients.label();
        if coefficients.get("cultivated").is_some_and(|c| *c < 0.0)
            && params.cultivated_sink != CultivatedSink::None
        {
            return Err(StageError::data("the `cultivated` coefficient is negative (a sink) and `cultivated_sink` is also set")
                .with_hint("count cultivated land once: set `cultivated_sink: none` or make the `cultivated` coefficient ≥ 0"));
        }
        let cultivated_coef = match params.cultivated_sink {
            CultivatedSink::Coefficient => {
                Some(*coefficients.get("cultivated_sink").ok_or_else(|| {
                    StageError::data(format!(
                        "preset `{}` has no `cultivated_sink` coefficient",
                        params.coefficients.preset
                    ))
                    .with_hint("add `coefficients: { override: { cultivated_sink: -0.007 } }`")
                })?)
            }
            _ => None,
        };
        let crops = match params.cultivated_sink {
            CultivatedSink::CropYield => Some(crop_carbon(params, inputs, &areas, ctx)?),
            _ => None,
        };

        let area_method = format!("area_coefficient:{label}");
        let cultivated_method = match params.cultivated_sink {
            CultivatedSink::Coefficient => format!("coefficient:{label}"),
            CultivatedSink::CropYield => format!("crop_yield:{}", params.crop_parameters.preset),
            CultivatedSink::None => params.cultivated_sink.name().to_owned(),
        };
        let methods = (area_method.as_str(), cultivated_method.as_str());
        let layout = sink_rows(params, &coefficients, &areas, methods, ctx)?;
        let coef = layout.coefficients(&coefficients)?;
        let values = layout
            .rows
            .iter()
            .map(|&(k, at)| {
                let ua = &areas[k];
                Ok(match (at, params.cultivated_sink, cultivated_coef, &crops) {
                    (Some((j, c)), ..) => area_sink_t_c(ua.area_at(j), coef[c]),
                    (None, CultivatedSink::Coefficient, Some(c), _) => {
                        area_sink_t_c(ua.area("cultivated"), c)
                    }
                    (None, CultivatedSink::CropYield, _, Some(crops)) => crops.t_c[k],
                    (None, ..) => 0.0,
                })
            })
            .collect::<Result<Vec<f64>, StageError>>()?;
        for warning in crops.iter().flat_map(|c| &c.warnings) {
            ctx.warn(warning.clone());
        }
        Ok(vec![(
            "sink".to_owned(),
            layout.with_values("sink_t_c", values)?,
        )])
    }
}

/// The crop-yield sink of each unit-year, and the warnings its lookups give.
struct CropCarbon {
    /// t C per unit-year, in the order of the grouped `areas`.
    t_c: Vec<f64>,
    /// Values the `missing` policy filled, crop units the study does not have.
    warnings: Vec<String>,
}

/// The crop-yield sink of each unit-year of `areas`. Only the crop parameters and the `crops`
/// and `areas` tables decide it, so a sweep's draws that vary the land coefficients look it up
/// once (and sort the crop rows once even when `areas` changes between draws).
fn crop_carbon(
    params: &Params,
    inputs: &Inputs,
    areas: &[UnitYearAreas<'_>],
    ctx: &StageContext,
) -> Result<Arc<CropCarbon>, StageError> {
    let crop = &params.crop_parameters;
    let key = (crop, params.missing, &params.ignore_columns);
    let values = ctx.reuse("crop_panel", &["crops"], &key, || {
        let table = crops_table(inputs, &params.ignore_columns)?;
        Ok(crop_panel(table, &crop.load()?, params.missing, ctx)?.values())
    })?;
    ctx.reuse("crop_carbon", &["crops", "areas"], &key, || {
        // A panel of its own, so that its record of filled values is this lookup's.
        let panel = Panel::over(Arc::clone(&values));
        let t_c = areas
            .iter()
            .map(|ua| panel.get(ua.unit, ua.year, 0, params.missing))
            .collect::<Result<Vec<f64>, StageError>>()?;
        // The unit-years are sorted by unit.
        let mut known: Vec<&str> = areas.iter().map(|a| a.unit).collect();
        known.dedup();
        let unused = panel.unused_units_warning(&|u| known.binary_search(&u).is_ok());
        Ok(CropCarbon {
            t_c,
            warnings: panel
                .filled_warning(params.missing)
                .into_iter()
                .chain(unused)
                .collect(),
        })
    })
}

/// The rows of the output: per unit-year, a row per land class with a negative coefficient,
/// and one for cultivated land unless its coefficient is negative. Which rows there are
/// depends only on `areas` and on which coefficients are negative, so a sweep's draws find
/// the rows once and then only multiply.
fn sink_rows(
    params: &Params,
    coefficients: &BTreeMap<String, f64>,
    areas: &[UnitYearAreas<'_>],
    (area_method, cultivated_method): (&str, &str),
    ctx: &StageContext,
) -> Result<Arc<ClassRows>, StageError> {
    let key = (
        class_row_key(coefficients, |c| c < 0.0),
        area_method,
        cultivated_method,
    );
    ctx.reuse("sink_rows", &["areas"], &key, || {
        let classes: Vec<String> = coefficients
            .iter()
            .filter(|(c, v)| **v < 0.0 && *c != "construction")
            .map(|(c, _)| c.clone())
            .collect();
        let arrange = |here: &mut Vec<ClassRow<'_>>| {
            if !here.iter().any(|(class, _)| *class == "cultivated") {
                here.push(("cultivated", None));
                here.sort_by(|a, b| a.0.cmp(b.0));
            }
        };
        let (rows, out) = rows_by_class(
            areas,
            &classes,
            coefficients,
            &params.coefficients,
            arrange,
            |ua, (class, at)| Row {
                unit: ua.unit,
                year: ua.year,
                class,
                sink_t_c: 0.0,
                method: if at.is_some() {
                    area_method
                } else {
                    cultivated_method
                },
            },
        )?;
        let template = schema().build(&out)?.1;
        Ok(ClassRows {
            classes,
            rows,
            template,
        })
    })
}

/// One row of the output: a unit's sink of one land class in one year.
struct Row<'a> {
    unit: &'a str,
    year: i64,
    class: &'a str,
    sink_t_c: f64,
    method: &'a str,
}

/// The output, declared once for `outputs()` and `run()`.
fn schema<'a>() -> TableSchema<Row<'a>> {
    TableSchema::<Row<'a>>::new("sink", "unit_id, year, class, sink_t_c (t C, ≥ 0), method")
        .text("unit_id", |r| r.unit)
        .int("year", |r| r.year)
        .text("class", |r| r.class)
        .float("sink_t_c", |r| r.sink_t_c)
        .text("method", |r| r.method)
}

/// The `crops` table, refusing a column it does not read (a misspelt `yield_t` would
/// otherwise be reported as missing while the values sit in the other column).
fn crops_table<'a>(
    inputs: &'a Inputs,
    ignore_columns: &[String],
) -> Result<&'a arrow_array::RecordBatch, StageError> {
    let table = inputs.table("crops")?;
    let columns = ["unit_id", "year", "crop", "yield_t"];
    refuse_unused_columns(
        table,
        &inputs.label("crops"),
        &columns,
        &columns,
        ignore_columns,
    )?;
    Ok(table)
}

/// Cropland sink per unit and year from a long crop-yield table.
///
/// An empty (NaN) yield follows `missing`: `error` stops, naming the crop; `zero` counts that
/// crop as 0 (with a warning); `interpolate` makes the whole unit-year missing, so it is
/// interpolated from the unit's other years.
fn crop_panel(
    table: &arrow_array::RecordBatch,
    params: &BTreeMap<String, CropParameters>,
    missing: MissingPolicy,
    ctx: &StageContext,
) -> Result<Panel, StageError> {
    let units = str_col(table, "crops", "unit_id", true)?;
    let years = i64s(table, "crops", "year")?;
    let crops = str_col(table, "crops", "crop", false)?;
    let yields = f64s(table, "crops", "yield_t")?;
    // unit → year → (carbon, crops seen)
    // Visit rows sorted by (unit, year, crop), so each unit-year's crops are summed in the same
    // order however the table's rows are ordered (float addition is not associative).
    let key = |i: usize| (units.get(i), years[i]);
    let full_key = |i: usize| (units.get(i), years[i], crops.get(i));
    let mut order: Vec<usize> = (0..years.len()).collect();
    if !(1..years.len()).all(|k| full_key(k - 1) <= full_key(k)) {
        order.sort_by(|&a, &b| full_key(a).cmp(&full_key(b)));
    }
    let mut rows: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
    let mut seen: Vec<&str> = Vec::new();
    let mut run: Option<((&str, i64), f64)> = None;
    let flush = |rows: &mut BTreeMap<String, BTreeMap<i64, Vec<f64>>>,
                 (unit, year): (&str, i64),
                 carbon: f64| {
        let by_year = match rows.get_mut(unit) {
            Some(m) => m,
            None => rows.entry(unit.to_owned()).or_default(),
        };
        by_year.insert(year, vec![carbon]);
    };
    let mut zeroed = 0usize;
    for i in order {
        let ((unit, year), crop, mut y) = (key(i), crop_name(crops.get(i)), yields[i]);
        if y.is_nan() {
            match missing {
                MissingPolicy::Error => {
                    return Err(StageError::data(format!(
                        "`crops` row {}: unit `{unit}`, year {year}, crop `{crop}`: yield_t is empty",
                        i + 1
                    ))
                    .with_hint("give the yield, or set `missing: zero` or `missing: interpolate`"));
                }
                MissingPolicy::Zero => {
                    zeroed += 1;
                    y = 0.0;
                }
                MissingPolicy::Interpolate => {}
            }
        }
        if y.is_infinite() || y < 0.0 {
            return Err(StageError::data(format!(
                "`crops` row {}: unit `{unit}`, year {year}, crop `{crop}`: yield_t is {y}",
                i + 1
            ))
            .with_hint("yields must be finite and ≥ 0 t"));
        }
        let p = params.get(crop).ok_or_else(|| {
            StageError::data(format!("`crops` row {}: crop `{crop}` has no parameters", i + 1)).with_hint(format!(
                "known crops: {}; or add `crop_parameters: {{ override: {{ {crop}: {{carbon_fraction, moisture, harvest_index}} }} }}`",
                params.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        match &mut run {
            Some((k, carbon)) if *k == (unit, year) => {
                if seen.contains(&crop) {
                    return Err(StageError::data(format!(
                        "`crops`: unit `{unit}`, year {year}: crop `{crop}` appears twice"
                    )));
                }
                // NaN yields stay NaN so that the unit-year counts as missing.
                *carbon += crop_sink_t_c(y, p);
            }
            _ => {
                if let Some((k, carbon)) = run {
                    flush(&mut rows, k, carbon);
                }
                seen.clear();
                run = Some(((unit, year), crop_sink_t_c(y, p)));
            }
        }
        seen.push(crop);
    }
    if let Some((k, carbon)) = run {
        flush(&mut rows, k, carbon);
    }
    if zeroed > 0 {
        ctx.warn(format!(
            "`crops`: {zeroed} empty yield(s) counted as zero by `missing: zero`"
        ));
    }
    Ok(Panel::from_rows("crops", &["crop carbon"], rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::table::{TableBuilder, strings};
    use arrow_array::RecordBatch;

    fn areas_table() -> RecordBatch {
        // unit a: cultivated 1000, forest 2000, construction 300; unit b: cultivated 500, water 100, unused 40
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
                    "unused",
                ],
            )
            .f64("area_ha", vec![1000.0, 2000.0, 300.0, 500.0, 100.0, 40.0])
            .build()
            .unwrap()
    }

    type SinkRow = (String, String, f64, String);

    fn run(
        params: serde_json::Value,
        tables: Vec<(&str, RecordBatch)>,
    ) -> Result<(Vec<SinkRow>, Vec<String>), StageError> {
        let (out, warnings) = crate::stages::testing::run::<Sink>(params, tables)?;
        let t = &out[0].1;
        let rows = strings(t, "s", "unit_id")
            .unwrap()
            .into_iter()
            .zip(strings(t, "s", "class").unwrap())
            .zip(f64s(t, "s", "sink_t_c").unwrap())
            .zip(strings(t, "s", "method").unwrap())
            .map(|(((u, c), s), m)| (u, c, s, m))
            .collect();
        Ok((rows, warnings))
    }

    #[test]
    fn area_coefficients_default_preset() {
        let (r, _) = run(serde_json::json!({}), vec![("areas", areas_table())]).unwrap();
        // a: cultivated 0 (none), forest 2000 × 0.644 = 1288
        // b: cultivated 0, unused 40 × 0.005 = 0.2, water 100 × 0.253 = 25.3
        let got: Vec<(&str, &str, f64)> = r
            .iter()
            .map(|(u, c, s, _)| (u.as_str(), c.as_str(), *s))
            .collect();
        assert_eq!(got[0], ("a", "cultivated", 0.0));
        assert_eq!(got[1].1, "forest");
        assert!((got[1].2 - 1288.0).abs() < 1e-9);
        assert_eq!(got[2], ("b", "cultivated", 0.0));
        assert!((got[3].2 - 0.2).abs() < 1e-12 && got[3].1 == "unused");
        assert!((got[4].2 - 25.3).abs() < 1e-9 && got[4].1 == "water");
        assert_eq!(r[0].3, "none");
        assert!(r.iter().all(|x| x.2 >= 0.0));
    }

    #[test]
    fn runs_sharing_reused_rows_give_what_separate_runs_give() {
        // As a sweep's draws: one store for runs that vary the forest coefficient. A positive
        // one drops the forest rows, so the rows are found again.
        let store =
            Arc::new(crate::engine::reuse::ReuseStore::new(["areas".to_owned()]));
        for forest in [-0.644, -0.6, 0.1, -0.581] {
            let params = serde_json::json!({
                "cultivated_sink": "coefficient",
                "coefficients": {"preset": "set1", "override": {"forest": forest}},
            });
            let shared = crate::stages::testing::run_sharing::<Sink>(
                &store,
                params.clone(),
                vec![("areas", areas_table())],
            )
            .unwrap();
            let alone =
                crate::stages::testing::run::<Sink>(params, vec![("areas", areas_table())])
                    .unwrap();
            assert_eq!(shared, alone, "forest {forest}");
        }
    }

    #[test]
    fn cultivated_coefficient() {
        let (r, _) = run(serde_json::json!({"cultivated_sink": "coefficient", "coefficients": {"preset": "set1"}}), vec![("areas", areas_table())]).unwrap();
        // a: cultivated 1000 × 0.007 = 7; forest (set1) 2000 × 0.581 = 1162
        assert!((r[0].2 - 7.0).abs() < 1e-9 && r[0].3 == "coefficient:set1");
        assert!((r[1].2 - 1162.0).abs() < 1e-9);
    }

    #[test]
    fn crop_sums_do_not_depend_on_row_order() {
        // Three crops whose carbon equals their yield (c = 1, w = 0, H = 1). Summed in crop
        // order, 1e16 + 0.6 + 0.6 stays 1e16 (the spacing of doubles there is 2, so each 0.6
        // rounds away); summed as 0.6 + 0.6 + 1e16 it would be 1e16 + 2.
        let one =
            serde_json::json!({"carbon_fraction": 1.0, "moisture": 0.0, "harvest_index": 1.0});
        let params = serde_json::json!({
            "cultivated_sink": "crop_yield",
            "crop_parameters": {"override": {"x": one, "y": one, "z": one}},
        });
        let crops = |order: [usize; 3]| {
            let names = ["x", "y", "z"];
            let yields = [1e16, 0.6, 0.6];
            TableBuilder::new()
                .str("unit_id", &["a", "a", "a", "b"])
                .i64("year", vec![2000; 4])
                .str(
                    "crop",
                    &[names[order[0]], names[order[1]], names[order[2]], "x"],
                )
                .f64(
                    "yield_t",
                    vec![yields[order[0]], yields[order[1]], yields[order[2]], 1.0],
                )
                .build()
                .unwrap()
        };
        for order in [[0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            let (r, _) = run(
                params.clone(),
                vec![("areas", areas_table()), ("crops", crops(order))],
            )
            .unwrap();
            assert_eq!(
                r[0].2.to_bits(),
                1e16f64.to_bits(),
                "rows {order:?}: {}",
                r[0].2
            );
        }
    }

    #[test]
    fn crop_yield_method() {
        let crops = TableBuilder::new()
            .str("unit_id", &["a", "a", "b"])
            .i64("year", vec![2000, 2000, 2000])
            .str("crop", &["wheat", "maize", "wheat"])
            .f64("yield_t", vec![1000.0, 5000.0, 0.0])
            .build()
            .unwrap();
        let (r, _) = run(
            serde_json::json!({"cultivated_sink": "crop_yield"}),
            vec![("areas", areas_table()), ("crops", crops.clone())],
        )
        .unwrap();
        // a: wheat 0.485 × 1000 × 0.88 / 0.40 = 1067; maize 0.471 × 5000 × 0.87 / 0.40 = 5122.125 -> 6189.125
        assert!((r[0].2 - 6189.125).abs() < 1e-9, "{}", r[0].2);
        assert_eq!(r[0].3, "crop_yield:tian");
        assert_eq!(r[2].2, 0.0);
        // an override changes the number: wheat H = 0.5 -> 0.485 × 1000 × 0.88 / 0.5 = 853.6; + 5122.125 = 5975.725
        let params = serde_json::json!({"cultivated_sink": "crop_yield", "crop_parameters": {"override": {"wheat": {"harvest_index": 0.5}}}});
        let (r, _) = run(params, vec![("areas", areas_table()), ("crops", crops)]).unwrap();
        assert!((r[0].2 - 5975.725).abs() < 1e-9, "{}", r[0].2);
    }

    #[test]
    fn chinese_crop_names_need_no_recode() {
        let crops = TableBuilder::new()
            .str("unit_id", &["a", "a", "b"])
            .i64("year", vec![2000, 2000, 2000])
            .str("crop", &["小麦", "玉米", "wheat"])
            .f64("yield_t", vec![1000.0, 5000.0, 0.0])
            .build()
            .unwrap();
        let (r, _) = run(
            serde_json::json!({"cultivated_sink": "crop_yield"}),
            vec![("areas", areas_table()), ("crops", crops)],
        )
        .unwrap();
        // As `crop_yield_method`: wheat 1067 + maize 5122.125 = 6189.125 t C.
        assert!((r[0].2 - 6189.125).abs() < 1e-9, "{}", r[0].2);
        // 小麦 and wheat are one crop: listing both is listing it twice.
        let twice = TableBuilder::new()
            .str("unit_id", &["a", "a"])
            .i64("year", vec![2000, 2000])
            .str("crop", &["小麦", "wheat"])
            .f64("yield_t", vec![1.0, 1.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"cultivated_sink": "crop_yield"}),
            vec![("areas", areas_table()), ("crops", twice)],
        )
        .err()
        .unwrap();
        assert!(
            err.message.contains("crop `wheat` appears twice"),
            "{}",
            err.message
        );
    }

    #[test]
    fn crop_errors() {
        let crops = TableBuilder::new()
            .str("unit_id", &["a"])
            .i64("year", vec![2000])
            .str("crop", &["quinoa"])
            .f64("yield_t", vec![1.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"cultivated_sink": "crop_yield"}),
            vec![("areas", areas_table()), ("crops", crops)],
        )
        .err()
        .unwrap();
        assert!(err.message.contains("crop `quinoa`"), "{}", err.message);
        let crops = TableBuilder::new()
            .str("unit_id", &["a"])
            .i64("year", vec![2000])
            .str("crop", &["wheat"])
            .f64("yield_t", vec![1.0])
            .build()
            .unwrap();
        // unit b has no yields
        let err = run(
            serde_json::json!({"cultivated_sink": "crop_yield"}),
            vec![("areas", areas_table()), ("crops", crops.clone())],
        )
        .err()
        .unwrap();
        assert!(
            err.message.contains("`crops` has no row for unit `b`"),
            "{}",
            err.message
        );
        let (r, w) = run(
            serde_json::json!({"cultivated_sink": "crop_yield", "missing": "zero"}),
            vec![("areas", areas_table()), ("crops", crops)],
        )
        .unwrap();
        assert_eq!(r[2].2, 0.0);
        assert_eq!(w.len(), 1);
        let crops = TableBuilder::new()
            .str("unit_id", &["a"])
            .i64("year", vec![2000])
            .str("crop", &["wheat"])
            .f64("yield_t", vec![-5.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"cultivated_sink": "crop_yield"}),
            vec![("areas", areas_table()), ("crops", crops)],
        )
        .err()
        .unwrap();
        assert!(err.message.contains("yield_t is -5"), "{}", err.message);
    }

    #[test]
    fn empty_yield_follows_missing_policy() {
        let crops = TableBuilder::new()
            .str("unit_id", &["a", "a", "b"])
            .i64("year", vec![2000, 2000, 2000])
            .str("crop", &["maize", "wheat", "wheat"])
            .f64("yield_t", vec![f64::NAN, 1000.0, 0.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"cultivated_sink": "crop_yield"}),
            vec![("areas", areas_table()), ("crops", crops.clone())],
        )
        .err()
        .unwrap();
        assert!(
            err.message.contains("crop `maize`: yield_t is empty"),
            "{}",
            err.message
        );
        // zero: maize counts 0, wheat 0.485 × 1000 × 0.88 / 0.40 = 1067 remains
        let (r, w) = run(
            serde_json::json!({"cultivated_sink": "crop_yield", "missing": "zero"}),
            vec![("areas", areas_table()), ("crops", crops)],
        )
        .unwrap();
        assert!((r[0].2 - 1067.0).abs() < 1e-9, "{}", r[0].2);
        assert!(w.iter().any(|w| w.contains("1 empty yield")), "{w:?}");
    }

    #[test]
    fn repeated_crop_is_an_error() {
        let crops = TableBuilder::new()
            .str("unit_id", &["a", "b", "a"])
            .i64("year", vec![2000, 2000, 2000])
            .str("crop", &["wheat", "wheat", "wheat"])
            .f64("yield_t", vec![1.0, 1.0, 2.0])
            .build()
            .unwrap();
        let err = run(
            serde_json::json!({"cultivated_sink": "crop_yield"}),
            vec![("areas", areas_table()), ("crops", crops)],
        )
        .err()
        .unwrap();
        assert!(
            err.message
                .contains("unit `a`, year 2000: crop `wheat` appears twice"),
            "{}",
            err.message
        );
    }

    #[test]
    fn presets_are_pinned_to_version() {
        let digest = crate::methods::coefficients::presets_digest(PRESET_FILES_USED);
        assert_eq!(
            (Sink::VERSION, digest.as_str()),
            PRESETS_PINNED,
            "an embedded preset changed: if any value it gives changed, bump `Sink::VERSION`; then set PRESETS_PINNED to (VERSION, \"{digest}\")"
        );
    }
}
