//! `transition_carbon`: the carbon attribution of the transfer matrix. For each unit and each
//! class-to-class conversion of `landuse`'s `transitions`, the change in yearly emission (CE)
//! and absorption (CS) that the conversion causes under the area-coefficient method.

use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Source, Stage, StageContext, StageError,
};
use crate::methods::conversion_carbon::conversion_change_t_c;
use crate::table::schema::TableSchema;
use crate::stages::shared::carbon_panel::CoefficientChoice;
use crate::table;

/// The `transition_carbon` kind.
pub struct TransitionCarbon;

/// Parameters of `transition_carbon`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Land-use coefficients, as for `emission` and `sink` (use the same choice). Default
    /// preset `mixed`.
    #[serde(default)]
    pub coefficients: CoefficientChoice,
}

/// The embedded presets this kind reads, and their digest pinned with `VERSION` (as in `sink`).
#[cfg_attr(not(test), allow(dead_code))]
const PRESETS_PINNED: (u32, &str) = (
    1,
    "9a817ec4e200b5286f7bf3e359b2379963a9ea1ff07df698ecc90649a87dfa85",
);
#[cfg_attr(not(test), allow(dead_code))]
const PRESET_FILES_USED: &[&str] = &["set1.csv", "set2.csv", "mixed.csv"];

/// One conversion of one unit, as the output table has it.
struct Row<'a> {
    unit: &'a str,
    year_from: i64,
    year_to: i64,
    class_from: &'a str,
    class_to: &'a str,
    area_ha: f64,
    delta_ce_t_c_per_year: Option<f64>,
    delta_cs_t_c_per_year: f64,
}

/// The output, declared once for `outputs()` and `run()`.
fn schema<'a>() -> TableSchema<Row<'a>> {
    TableSchema::<Row<'a>>::new(
        "transition_carbon",
        "per unit and conversion: area_ha, delta_ce_t_c_per_year (null when a class has no coefficient), delta_cs_t_c_per_year",
    )
    .text("unit_id", |r| r.unit)
    .int("year_from", |r| r.year_from)
    .int("year_to", |r| r.year_to)
    .text("class_from", |r| r.class_from)
    .text("class_to", |r| r.class_to)
    .float("area_ha", |r| r.area_ha)
    .float_or_null("delta_ce_t_c_per_year", |r| r.delta_ce_t_c_per_year)
    .float("delta_cs_t_c_per_year", |r| r.delta_cs_t_c_per_year)
}

impl Stage for TransitionCarbon {
    const KIND: &'static str = "transition_carbon";
    const VERSION: u32 = 1;
    const DOC: &'static str = "Carbon attribution of the transfer matrix: for each unit and conversion class_from → \
        class_to (class_from ≠ class_to) of `landuse`'s `transitions`, the change in yearly emission ΔCE = a·(max(c_to, 0) \
        − max(c_from, 0)) and absorption ΔCS = a·(max(−c_to, 0) − max(−c_from, 0)) in t C per year, from the land-use \
        coefficients c (t C/ha/a, > 0 source, < 0 sink). A class without a coefficient absorbs nothing and its emission \
        is unknown (construction land is accounted from energy use): ΔCE is null for conversions to or from it.";
    const PARAMS: &'static [ParamDoc] = &[ParamDoc {
        name: "coefficients",
        ty: "{preset, override}",
        default: "",
        doc: "land-use coefficients t C/ha/a, as for `emission` and `sink`",
    }];
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        vec![Example::new(json!({}), vec![("transitions", study::transitions())])]
    }

    fn ports(_params: &Params) -> Vec<Port> {
        vec![
            Port::required(
                "transitions",
                "the transfer matrix per unit (`landuse`'s `transitions`)",
            )
            .with_columns([
                "unit_id",
                "year_from",
                "year_to",
                "class_from",
                "class_to",
                "area_ha",
            ]),
        ]
    }

    fn outputs(_params: &Params) -> Vec<OutputDecl> {
        vec![schema().decl()]
    }

    fn sources(params: &Params) -> Vec<Source> {
        params.coefficients.sources()
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        params.coefficients.validate()
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let coefficients = params.coefficients.load(ctx)?;
        let t = inputs.table("transitions")?;
        let units = table::ids(t, "transitions", "unit_id")?;
        let year_from = table::i64s(t, "transitions", "year_from")?;
        let year_to = table::i64s(t, "transitions", "year_to")?;
        let from = table::strings(t, "transitions", "class_from")?;
        let to = table::strings(t, "transitions", "class_to")?;
        let area = table::f64s(t, "transitions", "area_ha")?;
        let mut rows: Vec<usize> = (0..units.len()).filter(|&r| from[r] != to[r]).collect();
        if let Some(&r) = rows
            .iter()
            .find(|&&r| !(area[r].is_finite() && area[r] >= 0.0))
        {
            return Err(StageError::data(format!(
                "`transitions` row {}: unit `{}`, {} → {}: area_ha is {}",
                r + 1,
                units[r],
                from[r],
                to[r],
                area[r]
            ))
            .with_hint("areas are ≥ 0 ha; wire `landuse`'s `transitions` output"));
        }
        rows.sort_by(|&a, &b| {
            (&units[a], year_from[a], year_to[a], &from[a], &to[a]).cmp(&(
                &units[b],
                year_from[b],
                year_to[b],
                &from[b],
                &to[b],
            ))
        });
        let out: Vec<Row<'_>> = rows
            .iter()
            .map(|&r| {
                let (d_ce, d_cs) = conversion_change_t_c(
                    area[r],
                    coefficients.get(&from[r]).copied(),
                    coefficients.get(&to[r]).copied(),
                );
                Row {
                    unit: &units[r],
                    year_from: year_from[r],
                    year_to: year_to[r],
                    class_from: &from[r],
                    class_to: &to[r],
                    area_ha: area[r],
                    delta_ce_t_c_per_year: d_ce,
                    delta_cs_t_c_per_year: d_cs,
                }
            })
            .collect();
        Ok(vec![schema().build(&out)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TableBuilder;

    #[test]
    fn conversions_are_attributed_with_the_preset_coefficients() {
        let t = TableBuilder::new()
            .str("unit_id", &["b", "a", "a", "a"])
            .i64("year_from", vec![2000; 4])
            .i64("year_to", vec![2010; 4])
            .str(
                "class_from",
                &["forest", "cultivated", "cultivated", "forest"],
            )
            .str(
                "class_to",
                &["forest", "construction", "cultivated", "cultivated"],
            )
            .f64("area_ha", vec![50.0, 20.0, 78.0, 10.0])
            .build()
            .unwrap();
        let (out, _) = crate::stages::testing::run::<TransitionCarbon>(
            serde_json::json!({}),
            vec![("transitions", t)],
        )
        .unwrap();
        let o = &out[0].1;
        assert_eq!(table::column_names(o), schema().decl().columns);
        // Persistence rows (b forest → forest, a cultivated → cultivated) are left out.
        assert_eq!(o.num_rows(), 2);
        assert_eq!(
            table::strings(o, "o", "class_to").unwrap(),
            ["construction", "cultivated"]
        );
        let ce = table::f64s(o, "o", "delta_ce_t_c_per_year").unwrap();
        let cs = table::f64s(o, "o", "delta_cs_t_c_per_year").unwrap();
        // Preset `mixed`: cultivated +0.422, forest −0.644, construction has no coefficient.
        // a: 20 ha cultivated → construction: ΔCE unknown (null), ΔCS 0.
        assert!(ce[0].is_nan() && cs[0] == 0.0);
        // a: 10 ha forest → cultivated: ΔCE = 10 × 0.422 = 4.22, ΔCS = −10 × 0.644 = −6.44.
        assert!((ce[1] - 4.22).abs() < 1e-12 && (cs[1] + 6.44).abs() < 1e-12);
    }

    #[test]
    fn presets_are_pinned_to_version() {
        let digest = crate::methods::coefficients::presets_digest(PRESET_FILES_USED);
        assert_eq!(
            (TransitionCarbon::VERSION, digest.as_str()),
            PRESETS_PINNED,
            "an embedded preset changed: if any value it gives changed, bump `TransitionCarbon::VERSION`; then set PRESETS_PINNED to (VERSION, \"{digest}\")"
        );
    }
}
