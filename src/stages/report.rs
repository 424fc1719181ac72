//! `report`: one self-contained HTML report of a study (maps, charts, tables, provenance) and
//! GeoJSON layers, as tables of file contents for the engine to publish.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Stage, StageContext, StageError,
};
use crate::report::classing::Classing;
use crate::report::geojson_out::{Feature, Prop, feature_collection};
use crate::report::html::{
    Flow, InequalityRow, ReportData, Robustness, UnitShape, VARIABLES, render,
};
use crate::report::projection::Albers;
use crate::table::schema::TableSchema;
use crate::table::{f64s, has_column, i64s, ids, polygons, strings};

/// The `report` stage kind.
pub struct Report;

fn default_title() -> String {
    "Carbon budget and compensation zoning".into()
}
fn default_true() -> bool {
    true
}
fn default_classes() -> Classing {
    Classing::Quantile
}
fn default_n_classes() -> usize {
    5
}
fn default_file_name() -> String {
    "report.html".into()
}
/// Columns that hold unit names in boundary files as they are distributed: ours, the common
/// shapefile spelling, and the Chinese headers of county tables.
const NAME_COLUMNS: [&str; 4] = ["name", "NAME", "名称", "县名"];
fn default_category_column() -> String {
    "category".into()
}

/// The display projection: Albers equal-area conic on WGS 84.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionParams {
    pub lat_1: f64,
    pub lat_2: f64,
    pub lon_0: f64,
}

impl Default for ProjectionParams {
    /// The CLCD/CNLUCC grid: 25°, 47°, 105°E.
    fn default() -> Self {
        Self {
            lat_1: 25.0,
            lat_2: 47.0,
            lon_0: 105.0,
        }
    }
}

/// The mass unit of the report's carbon maps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mass {
    #[default]
    Carbon,
    Co2,
}

/// Parameters of `report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "default_title")]
    pub title: String,
    /// The year of the single-year maps and tables; default the latest year in `indices`.
    #[serde(default)]
    pub year: Option<i64>,
    /// Shows the "Demonstration data, not official statistics" banner.
    #[serde(default = "default_true")]
    pub demo_data: bool,
    #[serde(default = "default_classes")]
    pub classes: Classing,
    #[serde(default = "default_n_classes")]
    pub n_classes: usize,
    #[serde(default)]
    pub projection: ProjectionParams,
    /// Free text lines shown under "Provenance" (e.g. filled by the engine).
    #[serde(default)]
    pub provenance: BTreeMap<String, String>,
    /// Name of the HTML file in the `html` output.
    #[serde(default = "default_file_name")]
    pub file_name: String,
    /// Column of `units` with the unit names; default: the first of `name`, `NAME`, `名称`,
    /// `县名` the table has (else the report shows unit ids, with a warning).
    #[serde(default)]
    pub name_column: Option<String>,
    /// Column of `functional_areas` with the category.
    #[serde(default = "default_category_column")]
    pub category_column: String,
    /// Compensation convention to show; default the first in sorted order.
    #[serde(default)]
    pub convention: Option<String>,
    /// `carbon` (t C, the default) or `co2` (× 44/12) for the maps of CE, CS, NCE and CI.
    #[serde(default)]
    pub mass: Mass,
}

const PORTS: [&str; 13] = [
    "units",
    "indices",
    "inequality",
    "lorenz",
    "autocorrelation",
    "clusters",
    "zones",
    "compensation",
    "functional_areas",
    "landuse",
    "zone_summary",
    "role_summary",
    "sensitivity",
];

impl Stage for Report {
    const KIND: &'static str = "report";
    const VERSION: u32 = 7;
    const DOC: &'static str = "Writes one self-contained HTML report (inline SVG choropleth maps of CE, CS, NCE, CI, ECC, ESC, LISA classes, \
        clusters and zones for `year` and as small multiples over the years (all years up to six, else six: the first, the last and \
        evenly spaced between), each with legend, north arrow and scale bar; outlines simplified with neighbours' borders kept \
        identical; Gini and \
        centralization over the years with the 0.4 warning line (for the Gini of emission per unit; the carbon Gini of emission against \
        sink is charted apart, without it); Lorenz curves; functional-area bars; zone summary; compensation \
        flows; provenance) and GeoJSON layers. Only wired inputs are rendered. Outputs are tables of file contents (`name`, \
        `content`) for the engine to publish.";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "title",
            ty: "string",
            default: "",
            doc: "page title",
        },
        ParamDoc {
            name: "year",
            ty: "integer",
            default: "latest year in `indices`",
            doc: "year of the single-year maps, zone and compensation tables",
        },
        ParamDoc {
            name: "demo_data",
            ty: "bool",
            default: "",
            doc: "show the banner \"Demonstration data, not official statistics\"",
        },
        ParamDoc {
            name: "classes",
            ty: "quantile | natural_breaks",
            default: "",
            doc: "map classing: quantiles or Jenks (1967) natural breaks; breaks pooled over years",
        },
        ParamDoc {
            name: "n_classes",
            ty: "integer",
            default: "",
            doc: "number of classes (2–9); diverging maps add the neutral value as a break",
        },
        ParamDoc {
            name: "projection",
            ty: "{lat_1, lat_2, lon_0}",
            default: "",
            doc: "Albers equal-area conic (WGS 84) of the maps (Snyder 1987)",
        },
        ParamDoc {
            name: "provenance",
            ty: "map of text",
            default: "",
            doc: "extra lines for the provenance table (inputs and their digests are always listed)",
        },
        ParamDoc {
            name: "file_name",
            ty: "string",
            default: "",
            doc: "name of the HTML file in the `html` output",
        },
        ParamDoc {
            name: "name_column",
            ty: "string",
            default: "name, NAME, 名称 or 县名",
            doc: "column of `units` with unit names; without one the report shows unit ids and warns",
        },
        ParamDoc {
            name: "category_column",
            ty: "string",
            default: "",
            doc: "column of `functional_areas` with the category",
        },
        ParamDoc {
            name: "convention",
            ty: "string",
            default: "first in sorted order",
            doc: "compensation convention to show",
        },
        ParamDoc {
            name: "mass",
            ty: "carbon | co2",
            default: "",
            doc: "mass unit of the CE, CS, NCE and CI maps: t C, or t CO₂ (× 44/12); the tables stay in t C",
        },
    ];
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        vec![Example::new(
            json!({}),
            vec![("units", study::units()), ("indices", study::indices().0)],
        )]
    }

    fn ports(params: &Params) -> Vec<Port> {
        vec![
            Port::required("units", "unit polygons: unit_id, geometry (WKB lon/lat), optionally a name column").with_columns(["unit_id", "geometry"]),
            Port::optional("indices", "`indices` output: unit_id, year and any of ce_t_c, cs_t_c, nce_t_c, ci_t_per_10k_yuan, ecc, esc").with_columns(["unit_id", "year"]),
            Port::optional("inequality", "`inequality` output grouped by year: year, gini, centralization").with_columns(["year", "gini", "centralization"]),
            Port::optional("lorenz", "`inequality`'s `lorenz` output grouped by year: year, k, x, y").with_columns(["year", "k", "x", "y"]),
            Port::optional("autocorrelation", "`autocorrelation`'s `local` output: unit_id, class (and year when grouped)").with_columns(["unit_id", "class"]),
            Port::optional("clusters", "`cluster`'s `labels`: unit_id, cluster").with_columns(["unit_id", "cluster"]),
            Port::optional("zones", "`zoning`'s `zones`: unit_id, zone").with_columns(["unit_id", "zone"]),
            Port::optional("compensation", "`compensation` output: unit_id, year, role, convention, quantity_t_c and a value_* column")
                .with_columns(["unit_id", "year", "role"]),
            Port::optional("functional_areas", "unit → main-functional-area lookup").with_columns(["unit_id".to_owned(), params.category_column.clone()]),
            Port::optional("landuse", "`landuse`'s `areas`: unit_id, year, class, area_ha").with_columns(["year", "class", "area_ha"]),
            Port::optional("zone_summary", "a `sweep`'s summary of a collected zone column: unit_id, modal_category, modal_probability").with_columns(["unit_id", "modal_category", "modal_probability"]),
            Port::optional("role_summary", "a `sweep`'s summary of `compensation.role`: unit_id, year, convention, category, probability (of `payer`: the probability of paying)").with_columns(["unit_id", "year", "convention", "category", "probability"]),
            Port::optional("sensitivity", "a `sweep`'s `sensitivity`: output, parameter, prcc (tornado charts)").with_columns(["output", "parameter", "prcc"]),
        ]
    }

    fn outputs(_params: &Params) -> Vec<OutputDecl> {
        vec![html_schema().decl(), geojson_schema().decl()]
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        if !(2..=9).contains(&params.n_classes) {
            return Err(StageError::data(format!(
                "report: n_classes = {} is out of range",
                params.n_classes
            ))
            .with_hint("use 2 to 9 classes"));
        }
        let p = params.projection;
        if !(p.lat_1.abs() < 90.0 && p.lat_2.abs() < 90.0 && (p.lat_1 + p.lat_2).abs() > 1e-9) {
            return Err(StageError::data("report: projection standard parallels must be inside (−90, 90) and not symmetric about the equator")
                .with_hint("the default lat_1: 25, lat_2: 47 suits China"));
        }
        if params.file_name.is_empty() || params.file_name.contains(['/', '\\']) {
            return Err(StageError::data(format!(
                "report: file_name `{}` must be a plain file name",
                params.file_name
            ))
            .with_hint("e.g. report.html"));
        }
        Ok(())
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let data = collect(params, inputs, ctx)?;
        let html = NamedFile {
            name: params.file_name.clone(),
            content: render(&data),
        };
        Ok(vec![
            html_schema().build(&[html])?,
            geojson_schema().build(&geojson_files(&data))?,
        ])
    }
}

/// One file the engine publishes: its name and its text.
struct NamedFile {
    name: String,
    content: String,
}

/// A table of files: `name` and `content`, one row each.
fn files_schema(name: &'static str, doc: &'static str) -> TableSchema<NamedFile> {
    TableSchema::<NamedFile>::new(name, doc)
        .text("name", |f| &f.name)
        .text("content", |f| &f.content)
}

/// The `html` output: the report page, one row.
fn html_schema() -> TableSchema<NamedFile> {
    files_schema(
        "html",
        "one row: name (file name) and content (the self-contained HTML page)",
    )
}

/// The `geojson` output: one row per layer.
fn geojson_schema() -> TableSchema<NamedFile> {
    files_schema(
        "geojson",
        "GeoJSON FeatureCollections: indices_<year>.geojson (and zones.geojson with zones), one row each",
    )
}

/// The GeoJSON layers: the indices of the map year, and the zones when wired.
fn geojson_files(data: &ReportData) -> Vec<NamedFile> {
    let mut files = Vec::new();
    if !data.indices.is_empty() {
        let feats: Vec<Feature<'_>> = data
            .units
            .iter()
            .map(|u| {
                let mut props = vec![
                    ("name".to_owned(), Prop::Text(u.name.clone())),
                    ("year".to_owned(), Prop::Integer(data.year)),
                ];
                for var in &VARIABLES {
                    if let Some(t) = data.indices.get(var.column) {
                        props.push((
                            var.column.to_owned(),
                            Prop::Number(
                                t.get(&(u.id.clone(), data.year))
                                    .copied()
                                    .unwrap_or(f64::NAN),
                            ),
                        ));
                    }
                }
                if let Some(c) = data.lisa.get(&data.year).and_then(|m| m.get(&u.id)) {
                    props.push(("lisa".into(), Prop::Text(c.clone())));
                }
                if let Some(c) = data.clusters.as_ref().and_then(|m| m.get(&u.id)) {
                    props.push(("cluster".into(), Prop::Integer(*c)));
                }
                (u.id.as_str(), &u.shape, props)
            })
            .collect();
        let layer = format!("indices_{}", data.year);
        files.push(NamedFile {
            content: feature_collection(&layer, &feats),
            name: format!("{layer}.geojson"),
        });
    }
    if let Some(zones) = &data.zones {
        let feats: Vec<Feature<'_>> = data
            .units
            .iter()
            .map(|u| {
                let zone = zones
                    .get(&u.id)
                    .map_or(Prop::Text(String::new()), |z| Prop::Text(z.clone()));
                (
                    u.id.as_str(),
                    &u.shape,
                    vec![
                        ("name".to_owned(), Prop::Text(u.name.clone())),
                        ("zone".to_owned(), zone),
                    ],
                )
            })
            .collect();
        files.push(NamedFile {
            name: "zones.geojson".to_owned(),
            content: feature_collection("zones", &feats),
        });
    }
    files
}

/// The unit names: from `name_column` when given (it must exist), else from the first of
/// [`NAME_COLUMNS`] present; `None`, with a warning, when the table has none.
fn unit_names(
    units_t: &RecordBatch,
    name_column: Option<&str>,
    ctx: &StageContext,
) -> Result<Option<Vec<String>>, StageError> {
    if let Some(column) = name_column {
        return strings(units_t, "units", column).map(Some);
    }
    match NAME_COLUMNS.into_iter().find(|c| has_column(units_t, c)) {
        Some(column) => strings(units_t, "units", column).map(Some),
        None => {
            ctx.warn(format!(
                "`units` has no column of unit names ({}); the report shows unit ids instead",
                NAME_COLUMNS.join(", ")
            ));
            Ok(None)
        }
    }
}

/// Reads the wired inputs into the report's plain data.
fn collect(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<ReportData, StageError> {
    let units = read_units(params, inputs, ctx)?;
    let indices = read_indices(inputs)?;
    let year = map_year(params, &indices)?;
    let lisa = read_lisa(inputs, year)?;
    let clusters = match inputs.optional("clusters") {
        Some(t) => Some(one_year_by_unit(t, "clusters", year, |t| {
            i64s(t, "clusters", "cluster")
        })?),
        None => None,
    };
    let zones = match inputs.optional("zones") {
        Some(t) => Some(one_year_by_unit(t, "zones", year, |t| {
            strings(t, "zones", "zone")
        })?),
        None => None,
    };
    let (inequality, inequality_weight) = match inputs.optional("inequality") {
        Some(t) => inequality_rows(t)?,
        None => (Vec::new(), None),
    };
    let functional = match inputs.optional("functional_areas") {
        Some(t) => Some(
            ids(t, "functional_areas", "unit_id")?
                .into_iter()
                .zip(strings(t, "functional_areas", &params.category_column)?)
                .collect(),
        ),
        None => None,
    };
    let flows = match inputs.optional("compensation") {
        Some(t) => compensation_flows(params, t, year, ctx)?,
        None => None,
    };
    Ok(ReportData {
        title: params.title.clone(),
        demo_data: params.demo_data,
        year,
        units,
        indices,
        lisa,
        clusters,
        zones,
        inequality,
        inequality_weight,
        lorenz: read_lorenz(inputs)?,
        functional,
        flows,
        landuse: read_landuse(inputs)?,
        provenance: provenance(params, ctx, year),
        inputs: input_digests(inputs)?,
        classing: Some(params.classes),
        n_classes: params.n_classes,
        albers: Some(Albers {
            lat_1: params.projection.lat_1,
            lat_2: params.projection.lat_2,
            lon_0: params.projection.lon_0,
            ..Albers::china()
        }),
        co2: params.mass == Mass::Co2,
        robustness: robustness(params, inputs, year)?,
    })
}

/// The units with their names and shapes, sorted by id; a repeated id is a data error.
fn read_units(
    params: &Params,
    inputs: &Inputs,
    ctx: &StageContext,
) -> Result<Vec<UnitShape>, StageError> {
    let units_t = inputs.table("units")?;
    let unit_ids = ids(units_t, "units", "unit_id")?;
    let shapes = polygons(units_t, "units", crate::io::wkb::GEOMETRY_COLUMN)?;
    let names = unit_names(units_t, params.name_column.as_deref(), ctx)?
        .unwrap_or_else(|| vec![String::new(); unit_ids.len()]);
    let mut units: Vec<UnitShape> = unit_ids
        .into_iter()
        .zip(names)
        .zip(shapes)
        .map(|((id, name), shape)| UnitShape { id, name, shape })
        .collect();
    units.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = units.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(
            StageError::data(format!("`units`: unit_id `{}` appears twice", w[0].id))
                .with_hint("give every unit one row"),
        );
    }
    Ok(units)
}

/// `column → (unit_id, year) → value`.
type IndexValues = BTreeMap<String, BTreeMap<(String, i64), f64>>;

/// The values of the mapped [`VARIABLES`] the `indices` table has.
fn read_indices(inputs: &Inputs) -> Result<IndexValues, StageError> {
    let mut indices = IndexValues::new();
    let Some(t) = inputs.optional("indices") else {
        return Ok(indices);
    };
    let uid = ids(t, "indices", "unit_id")?;
    let year = i64s(t, "indices", "year")?;
    for var in &VARIABLES {
        if has_column(t, var.column) {
            let v = f64s(t, "indices", var.column)?;
            let m = indices.entry(var.column.to_owned()).or_default();
            for ((u, y), x) in uid.iter().zip(&year).zip(v) {
                m.insert((u.clone(), *y), x);
            }
        }
    }
    Ok(indices)
}

/// The year the single-year maps show: `year:` when set (it must be in `indices`), else the
/// latest year of `indices`, else 0.
fn map_year(params: &Params, indices: &IndexValues) -> Result<i64, StageError> {
    let latest = indices.values().flat_map(|m| m.keys().map(|k| k.1)).max();
    let year = params.year.or(latest).unwrap_or(0);
    if let (Some(y), false) = (params.year, indices.is_empty())
        && !indices.values().any(|m| m.keys().any(|k| k.1 == y))
    {
        return Err(
            StageError::data(format!("report: year {y} is not in `indices`"))
                .with_hint("set `year:` to one of the years of the indices table"),
        );
    }
    Ok(year)
}

/// LISA class per year and unit; a table without `year` counts as the map year.
fn read_lisa(
    inputs: &Inputs,
    year: i64,
) -> Result<BTreeMap<i64, BTreeMap<String, String>>, StageError> {
    let mut lisa: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
    let Some(t) = inputs.optional("autocorrelation") else {
        return Ok(lisa);
    };
    let uid = ids(t, "autocorrelation", "unit_id")?;
    let class = strings(t, "autocorrelation", "class")?;
    let years = if has_column(t, "year") {
        i64s(t, "autocorrelation", "year")?
    } else {
        vec![year; uid.len()]
    };
    for ((u, c), y) in uid.into_iter().zip(class).zip(years) {
        lisa.entry(y).or_default().insert(u, c);
    }
    Ok(lisa)
}

/// `unit_id → value` of the map year's rows (all rows when the table has no `year`).
fn one_year_by_unit<T>(
    t: &RecordBatch,
    table: &str,
    year: i64,
    values: impl Fn(&RecordBatch) -> Result<Vec<T>, StageError>,
) -> Result<BTreeMap<String, T>, StageError> {
    let t = one_year(t, table, year)?;
    Ok(ids(&t, table, "unit_id")?
        .into_iter()
        .zip(values(&t)?)
        .collect())
}

/// Lorenz curve points per year, in step (`k`) order.
fn read_lorenz(inputs: &Inputs) -> Result<BTreeMap<i64, Vec<(f64, f64)>>, StageError> {
    let mut lorenz: BTreeMap<i64, Vec<(i64, f64, f64)>> = BTreeMap::new();
    if let Some(t) = inputs.optional("lorenz") {
        let y = i64s(t, "lorenz", "year")?;
        let k = i64s(t, "lorenz", "k")?;
        let x = f64s(t, "lorenz", "x")?;
        let v = f64s(t, "lorenz", "y")?;
        for i in 0..y.len() {
            lorenz.entry(y[i]).or_default().push((k[i], x[i], v[i]));
        }
    }
    Ok(lorenz
        .into_iter()
        .map(|(y, mut pts)| {
            pts.sort_by_key(|p| p.0);
            (y, pts.into_iter().map(|p| (p.1, p.2)).collect())
        })
        .collect())
}

/// Region land-use area (ha) per year and class, summed over units.
fn read_landuse(inputs: &Inputs) -> Result<BTreeMap<(i64, String), f64>, StageError> {
    let mut landuse = BTreeMap::new();
    if let Some(t) = inputs.optional("landuse") {
        let y = i64s(t, "landuse", "year")?;
        let c = strings(t, "landuse", "class")?;
        let a = f64s(t, "landuse", "area_ha")?;
        for ((y, c), a) in y.into_iter().zip(c).zip(a) {
            *landuse.entry((y, c)).or_insert(0.0) += a;
        }
    }
    Ok(landuse)
}

/// The provenance items: engine, stage, classing, map year, then the study's own items.
fn provenance(params: &Params, ctx: &StageContext, year: i64) -> Vec<(String, String)> {
    let mut provenance: Vec<(String, String)> = vec![
        (
            "engine".into(),
            format!("pipeline {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "stage".into(),
            format!(
                "{} (kind `{}` version {})",
                ctx.stage(),
                Report::KIND,
                Report::VERSION
            ),
        ),
        (
            "classing".into(),
            format!(
                "{}, {} classes",
                match params.classes {
                    Classing::Quantile => "quantile",
                    Classing::NaturalBreaks => "natural_breaks",
                },
                params.n_classes
            ),
        ),
        ("map year".into(), year.to_string()),
    ];
    provenance.extend(
        params
            .provenance
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    provenance
}

/// `(port, rows, columns, digest)` of every wired input, in port order.
fn input_digests(inputs: &Inputs) -> Result<Vec<(String, usize, usize, String)>, StageError> {
    let mut list = Vec::new();
    for port in PORTS {
        if let Some(t) = inputs.optional(port) {
            list.push((port.to_owned(), t.num_rows(), t.num_columns(), digest(t)?));
        }
    }
    Ok(list)
}

/// What a wired `sweep` says: each unit's modal zone and its probability, its probability of
/// paying under the shown convention in the map year, and each parameter's PRCC.
fn robustness(params: &Params, inputs: &Inputs, year: i64) -> Result<Robustness, StageError> {
    let mut r = Robustness::default();
    if let Some(t) = inputs.optional("zone_summary") {
        let ids = ids(t, "zone_summary", "unit_id")?;
        let modal = strings(t, "zone_summary", "modal_category")?;
        let p = f64s(t, "zone_summary", "modal_probability")?;
        for ((u, z), p) in ids.into_iter().zip(modal).zip(p) {
            r.modal_zone.insert(u, (z, p));
        }
    }
    if let Some(t) = inputs.optional("role_summary") {
        let conventions = strings(t, "role_summary", "convention")?;
        let shown = match &params.convention {
            Some(c) => c.clone(),
            None => conventions.iter().min().cloned().unwrap_or_default(),
        };
        let ids = ids(t, "role_summary", "unit_id")?;
        let years = i64s(t, "role_summary", "year")?;
        let category = strings(t, "role_summary", "category")?;
        let p = f64s(t, "role_summary", "probability")?;
        let mut payer = BTreeMap::new();
        for i in 0..ids.len() {
            if years[i] == year && conventions[i] == shown && category[i] == "payer" {
                payer.insert(ids[i].clone(), p[i]);
            }
        }
        r.payer = Some((shown, payer));
    }
    if let Some(t) = inputs.optional("sensitivity") {
        let output = strings(t, "sensitivity", "output")?;
        let parameter = strings(t, "sensitivity", "parameter")?;
        let prcc = f64s(t, "sensitivity", "prcc")?;
        r.prcc = output
            .into_iter()
            .zip(parameter)
            .zip(prcc)
            .map(|((o, p), v)| (o, p, v))
            .collect();
    }
    Ok(r)
}

/// BLAKE3 of the table's deterministic Parquet encoding.
fn digest(t: &RecordBatch) -> Result<String, StageError> {
    let bytes = crate::io::parquet::to_bytes(t)
        .map_err(|e| StageError::internal(format!("encoding an input for its digest: {e}")))?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// The rows of `year` when the table has a `year` column, else the table.
fn one_year(t: &RecordBatch, table: &str, year: i64) -> Result<RecordBatch, StageError> {
    if !has_column(t, "year") {
        return Ok(t.clone());
    }
    let years = i64s(t, table, "year")?;
    let rows: Vec<usize> = (0..years.len()).filter(|&i| years[i] == year).collect();
    if rows.is_empty() {
        return Err(
            StageError::data(format!("`{table}` has no rows for year {year}"))
                .with_hint("set the report's `year:` to a year the table has"),
        );
    }
    crate::table::take_rows(t, &rows)
}

fn compensation_flows(
    params: &Params,
    t: &RecordBatch,
    year: i64,
    ctx: &StageContext,
) -> Result<Option<(String, String, Vec<Flow>)>, StageError> {
    let cols = crate::table::column_names(t);
    let amount_col = ["value_balanced_", "value_modified_", "value_"]
        .iter()
        .find_map(|p| {
            let mut c: Vec<&String> = cols.iter().filter(|c| c.starts_with(p)).collect();
            c.sort();
            c.first().map(|s| (*s).clone())
        })
        .unwrap_or_else(|| "quantity_t_c".into());
    let uid = ids(t, "compensation", "unit_id")?;
    let years = i64s(t, "compensation", "year")?;
    let role = strings(t, "compensation", "role")?;
    let conv = if has_column(t, "convention") {
        strings(t, "compensation", "convention")?
    } else {
        vec![String::new(); uid.len()]
    };
    let quantity = if has_column(t, "quantity_t_c") {
        f64s(t, "compensation", "quantity_t_c")?
    } else {
        vec![f64::NAN; uid.len()]
    };
    let amount = if has_column(t, &amount_col) {
        f64s(t, "compensation", &amount_col)?
    } else {
        vec![f64::NAN; uid.len()]
    };
    let mut conventions: Vec<&String> = conv.iter().collect();
    conventions.sort();
    conventions.dedup();
    let chosen = match &params.convention {
        Some(c) if conventions.contains(&c) => c.clone(),
        Some(c) => {
            return Err(StageError::data(format!(
                "report: compensation convention `{c}` is not in the table"
            ))
            .with_hint(format!(
                "the table has: {}",
                conventions
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        None => match conventions.first() {
            Some(c) => (*c).clone(),
            None => return Ok(None),
        },
    };
    if params.convention.is_none() && conventions.len() > 1 {
        ctx.warn(format!("report: compensation has {} conventions; showing `{chosen}` (set `convention:` to choose)", conventions.len()));
    }
    let flows: Vec<Flow> = (0..uid.len())
        .filter(|&i| years[i] == year && conv[i] == chosen)
        .map(|i| Flow {
            unit_id: uid[i].clone(),
            role: role[i].clone(),
            quantity_t_c: quantity[i],
            amount: amount[i],
        })
        .collect();
    Ok(Some((chosen, amount_col, flows)))
}

/// The `inequality` table's rows by year, and its `weight` (which index `gini` is).
fn inequality_rows(t: &RecordBatch) -> Result<(Vec<InequalityRow>, Option<String>), StageError> {
    let y = i64s(t, "inequality", "year")?;
    let g = f64s(t, "inequality", "gini")?;
    let c = f64s(t, "inequality", "centralization")?;
    let plain = if has_column(t, "gini_plain") {
        f64s(t, "inequality", "gini_plain")?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None; y.len()]
    };
    let weight = if has_column(t, "weight") {
        strings(t, "inequality", "weight")?.into_iter().next()
    } else {
        None
    };
    let mut rows: Vec<InequalityRow> = (0..y.len())
        .map(|i| InequalityRow {
            year: y[i],
            gini: g[i],
            centralization: c[i],
            gini_plain: plain[i].filter(|v| v.is_finite()),
        })
        .collect();
    rows.sort_by_key(|r| r.year);
    Ok((rows, weight))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::svg_map::escape;
    use crate::table::TableBuilder;
    use geo::polygon;
    use std::collections::BTreeMap as Map;
    use std::sync::Arc;

    fn units_table() -> RecordBatch {
        // Four 0.5° squares in a 2 × 2 block around (113.5, 34.5).
        let mut ids = Vec::new();
        let mut wkb = Vec::new();
        for (i, (x, y)) in [(113.0, 34.5), (113.5, 34.5), (113.0, 34.0), (113.5, 34.0)]
            .into_iter()
            .enumerate()
        {
            let p = polygon![(x: x, y: y), (x: x + 0.5, y: y), (x: x + 0.5, y: y + 0.5), (x: x, y: y + 0.5), (x: x, y: y)];
            ids.push(format!("41010{i}"));
            wkb.push(crate::io::wkb::encode(&geo::MultiPolygon(vec![p])));
        }
        let geom = arrow_array::BinaryArray::from_iter_values(wkb.iter().map(Vec::as_slice));
        TableBuilder::new()
            .str("unit_id", &ids)
            .str("name", &["A", "B", "C<D>", "E"])
            .array("geometry", Arc::new(geom))
            .build()
            .unwrap()
    }

    fn indices_table() -> RecordBatch {
        let mut uid = Vec::new();
        let mut year = Vec::new();
        let mut vals: Map<&str, Vec<f64>> = Map::new();
        for (i, u) in ["410100", "410101", "410102", "410103"]
            .into_iter()
            .enumerate()
        {
            for y in [2015, 2020] {
                uid.push(u.to_owned());
                year.push(y);
                let f = (i + 1) as f64 * if y == 2020 { 1.1 } else { 1.0 };
                for (c, v) in [
                    ("ce_t_c", 100.0 * f),
                    ("cs_t_c", 40.0 * f),
                    ("nce_t_c", 60.0 * f - 100.0),
                    ("ci_t_per_10k_yuan", 0.5 * f),
                    ("ecc", 0.5 + 0.3 * f),
                    ("esc", 1.5 - 0.2 * f),
                ] {
                    vals.entry(c).or_default().push(v);
                }
            }
        }
        let mut b = TableBuilder::new().str("unit_id", &uid).i64("year", year);
        for (c, v) in vals {
            b = b.f64(c, v);
        }
        b.build().unwrap()
    }

    fn params() -> Params {
        serde_json::from_value(serde_json::json!({ "title": "Test report" })).unwrap()
    }

    fn run(tables: Vec<(&str, RecordBatch)>, params: &Params) -> (String, RecordBatch) {
        let map: BTreeMap<String, RecordBatch> =
            tables.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let ctx = StageContext::new("report", std::path::Path::new("."), BTreeMap::new());
        let out = Report::run(params, &Inputs::new(map), &ctx).unwrap();
        let html = strings(&out[0].1, "html", "content").unwrap().remove(0);
        (html, out[1].1.clone())
    }

    #[test]
    fn renders_every_wired_part_self_contained() {
        let zones = TableBuilder::new()
            .str("unit_id", &["410100", "410101", "410102", "410103"])
            .str("zone", &["a", "a", "b", "c"])
            .build()
            .unwrap();
        let ineq = TableBuilder::new()
            .i64("year", vec![2015, 2020])
            .f64("gini", vec![0.35, 0.42])
            .f64("centralization", vec![0.3, 0.41])
            .f64("gini_plain", vec![0.28, 0.39])
            .str("weight", &["cs_t_c", "cs_t_c"])
            .build()
            .unwrap();
        let (html, geo) = run(
            vec![
                ("units", units_table()),
                ("indices", indices_table()),
                ("zones", zones),
                ("inequality", ineq),
            ],
            &params(),
        );
        // 6 maps of 2020 and the zone map draw each of the 4 units; the 2 small multiples of
        // each variable draw one path per colour.
        assert_eq!(
            html.matches(r#"<path class="unit" data-id=""#).count(),
            4 * (6 + 1)
        );
        assert_eq!(html.matches(r#"<svg class="map""#).count(), 6 + 1 + 6 * 2);
        assert!(
            !html.contains("http"),
            "the report must not reference the network"
        );
        assert!(!html.contains("<script"));
        assert!(html.contains("Demonstration data, not official statistics"));
        // The warning line and its caption go with the Gini per unit, once; the carbon Gini of
        // emission against sink has its own chart, named with its weight, without the line.
        assert_eq!(html.matches("warning line 0.4").count(), 1);
        assert!(html.contains("Gini of emission per unit and centralization index"));
        assert!(html.contains("0.4–0.5 large gap"));
        assert!(html.contains("Carbon Gini: emission against sink (weight <code>cs_t_c</code>)"));
        let carbon_chart = html.split("Carbon Gini: emission").nth(1).unwrap();
        let carbon_chart = carbon_chart.split("</p></div>").next().unwrap();
        assert!(
            !carbon_chart.contains("reference-line"),
            "no 0.4 line on the carbon Gini"
        );
        assert!(html.contains(&escape("C<D>")), "names are escaped");
        assert!(!html.contains("C<D>"));
        assert_eq!(
            strings(&geo, "geojson", "name").unwrap(),
            vec!["indices_2020.geojson", "zones.geojson"]
        );
    }

    #[test]
    fn co2_view_relabels_and_rescales_the_carbon_maps_only() {
        let inputs = || vec![("units", units_table()), ("indices", indices_table())];
        let carbon = run(inputs(), &params()).0;
        let mut p = params();
        p.mass = Mass::Co2;
        let co2 = run(inputs(), &p).0;
        assert!(carbon.contains("Carbon emission CE (10⁴ t C), 2020"));
        assert!(co2.contains("Carbon emission CE (10⁴ t CO₂), 2020"));
        assert!(co2.contains("Carbon intensity CI (t CO₂ per 10⁴ yuan), 2020"));
        assert!(co2.contains("Economic contribution coefficient ECC, 2020"));
        // The largest 2020 emission, 4 × 1.1 × 100 t C = 440 t C, tops the CE legend:
        // 0.044 × 10⁴ t C, or 440 × 44/12 = 1,613.3 t CO₂ = 0.161 × 10⁴ t CO₂.
        assert!(carbon.contains("0.044"), "carbon legend");
        assert!(co2.contains("0.161"), "CO₂ legend");
    }

    #[test]
    fn unit_names_are_found_under_common_headers_or_warned_about() {
        let renamed = |from: &str, to: &str| {
            let t = units_table();
            let fields: Vec<arrow_schema::Field> = t
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    let name = if f.name() == from {
                        to
                    } else {
                        f.name().as_str()
                    };
                    f.as_ref().clone().with_name(name)
                })
                .collect();
            RecordBatch::try_new(
                Arc::new(arrow_schema::Schema::new(fields)),
                t.columns().to_vec(),
            )
            .unwrap()
        };
        let warnings = |units: RecordBatch, params: &Params| {
            let ctx = StageContext::new("report", std::path::Path::new("."), BTreeMap::new());
            let names = unit_names(&units, params.name_column.as_deref(), &ctx).unwrap();
            (names, ctx.take_warnings())
        };
        for header in ["NAME", "名称", "县名"] {
            let (names, warned) = warnings(renamed("name", header), &params());
            assert_eq!(names.unwrap()[2], "C<D>", "{header}");
            assert!(warned.is_empty());
        }
        let (names, warned) = warnings(renamed("name", "label"), &params());
        assert!(names.is_none());
        assert_eq!(warned.len(), 1);
        assert!(warned[0].contains("shows unit ids instead"), "{warned:?}");
        let mut p = params();
        p.name_column = Some("label".into());
        let (names, warned) = warnings(renamed("name", "label"), &p);
        assert_eq!(names.unwrap()[0], "A");
        assert!(warned.is_empty());
    }

    #[test]
    fn robustness_maps_the_modal_zone_and_payer_probabilities_and_ranks_parameters() {
        let ids = ["410100", "410101", "410102", "410103"];
        let zone_summary = TableBuilder::new()
            .str("unit_id", &ids)
            .str("modal_category", &["a", "a", "b", "b"])
            .f64("modal_probability", vec![1.0, 0.55, 0.95, 0.4])
            .build()
            .unwrap();
        // Two conventions and two years: only 2020 under `x` counts.
        let mut uid = Vec::new();
        let (mut year, mut conv, mut cat, mut p) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, u) in ids.iter().enumerate() {
            for (y, c) in [(2015, "x"), (2020, "x"), (2020, "y")] {
                for (category, share) in [
                    ("payer", 0.25 * i as f64),
                    ("receiver", 1.0 - 0.25 * i as f64),
                ] {
                    uid.push((*u).to_owned());
                    year.push(y);
                    conv.push(c);
                    cat.push(category);
                    p.push(if y == 2020 && c == "x" { share } else { 0.999 });
                }
            }
        }
        let role_summary = TableBuilder::new()
            .str("unit_id", &uid)
            .i64("year", year)
            .str("convention", &conv)
            .str("category", &cat)
            .f64("probability", p)
            .build()
            .unwrap();
        let sensitivity = TableBuilder::new()
            .str("output", &["nce", "nce", "zone"])
            .str("parameter", &["small.param", "big.param", "big.param"])
            .f64("prcc", vec![0.1, -0.9, 0.5])
            .build()
            .unwrap();
        let mut params = params();
        params.convention = Some("x".into());
        let (html, _) = run(
            vec![
                ("units", units_table()),
                ("indices", indices_table()),
                ("zone_summary", zone_summary),
                ("role_summary", role_summary),
                ("sensitivity", sensitivity),
            ],
            &params,
        );
        assert!(
            html.contains("Probability of the modal zone"),
            "modal-zone map"
        );
        assert!(
            html.contains("410101 B: a, 0.55"),
            "tooltip carries the modal zone"
        );
        assert!(
            html.contains("Probability of paying (x), 2020"),
            "payer map"
        );
        // 410103 pays in 0.75 of the draws (2020, convention x), not 0.999.
        assert!(
            html.contains("410103 E: P(payer) = 0.75"),
            "payer probability"
        );
        let tornado = &html[html.find("What moves `nce`").unwrap()..];
        assert!(
            tornado.find("big.param").unwrap() < tornado.find("small.param").unwrap(),
            "the largest |PRCC| comes first"
        );
        assert!(html.contains("What moves `zone`"));
    }

    #[test]
    fn output_is_deterministic_and_only_units_is_required() {
        let a = run(
            vec![("units", units_table()), ("indices", indices_table())],
            &params(),
        )
        .0;
        let b = run(
            vec![("units", units_table()), ("indices", indices_table())],
            &params(),
        )
        .0;
        assert_eq!(a, b);
        let (html, geo) = run(vec![("units", units_table())], &params());
        assert_eq!(html.matches("class=\"unit\"").count(), 0);
        assert_eq!(geo.num_rows(), 0);
    }

    #[test]
    fn bad_year_and_classes_are_data_errors() {
        let mut p = params();
        p.year = Some(1999);
        let map: BTreeMap<String, RecordBatch> = [
            ("units".to_owned(), units_table()),
            ("indices".to_owned(), indices_table()),
        ]
        .into_iter()
        .collect();
        let ctx = StageContext::new("report", std::path::Path::new("."), BTreeMap::new());
        let err = Report::run(&p, &Inputs::new(map), &ctx).unwrap_err();
        assert!(err.message.contains("year 1999"), "{}", err.message);
        let bad: Result<Params, _> =
            serde_json::from_value(serde_json::json!({ "classes": "jenks" }));
        assert!(bad.is_err());
        let mut p = params();
        p.n_classes = 1;
        assert!(Report::validate(&p).is_err());
    }

    /// unit_id, year, GDP, CE, CS.
    type EcoRow = (String, i64, f64, f64, f64);

    /// The 123 Henan units of the committed boundary file, with indices derived from the
    /// committed demonstration economy table (CE = GDP × energy intensity × 0.67 t C/tce).
    fn henan_inputs() -> Vec<(&'static str, RecordBatch)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/data");
        let text = std::fs::read_to_string(root.join("boundaries/henan_units123.geojson")).unwrap();
        let geojson::GeoJson::FeatureCollection(fc) = text.parse().unwrap() else {
            panic!("collection")
        };
        let mut ids = Vec::new();
        let mut names = Vec::new();
        let mut wkb = Vec::new();
        for f in &fc.features {
            ids.push(f.property("adcode").unwrap().to_string());
            names.push(f.property("name").unwrap().as_str().unwrap().to_owned());
            let shape = match geo::Geometry::<f64>::try_from(&f.geometry.as_ref().unwrap().value)
                .unwrap()
            {
                geo::Geometry::Polygon(p) => geo::MultiPolygon(vec![p]),
                geo::Geometry::MultiPolygon(m) => m,
                _ => panic!("polygons"),
            };
            wkb.push(crate::io::wkb::encode(&shape));
        }
        let geom = arrow_array::BinaryArray::from_iter_values(wkb.iter().map(Vec::as_slice));
        let units = TableBuilder::new()
            .str("unit_id", &ids)
            .str("name", &names)
            .array("geometry", Arc::new(geom))
            .build()
            .unwrap();

        let eco = std::fs::read_to_string(root.join("henan/economy.csv")).unwrap();
        let mut rows: Vec<EcoRow> = Vec::new();
        for line in eco.lines().skip(1) {
            let c: Vec<&str> = line.split(',').collect();
            let gdp: f64 = c[2].parse().unwrap();
            let pop: f64 = c[3].parse().unwrap();
            let ei: f64 = c[7].parse().unwrap();
            rows.push((
                c[0].to_owned(),
                c[1].parse().unwrap(),
                gdp,
                gdp * ei * 0.67,
                pop * 0.4,
            ));
        }
        let mut totals: Map<i64, (f64, f64, f64)> = Map::new();
        for r in &rows {
            let t = totals.entry(r.1).or_default();
            t.0 += r.2;
            t.1 += r.3;
            t.2 += r.4;
        }
        let col = |f: &dyn Fn(&EcoRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
        let indices = TableBuilder::new()
            .str(
                "unit_id",
                &rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
            )
            .i64("year", rows.iter().map(|r| r.1).collect())
            .f64("ce_t_c", col(&|r| r.3))
            .f64("cs_t_c", col(&|r| r.4))
            .f64("nce_t_c", col(&|r| r.3 - r.4))
            .f64("ci_t_per_10k_yuan", col(&|r| r.3 / r.2))
            .f64(
                "ecc",
                col(&|r| (r.2 / totals[&r.1].0) / (r.3 / totals[&r.1].1)),
            )
            .f64(
                "esc",
                col(&|r| (r.4 / totals[&r.1].2) / (r.3 / totals[&r.1].1)),
            )
            .build()
            .unwrap();
        let fa = std::fs::read_to_string(root.join("henan/functional_areas.csv")).unwrap();
        let (fa_ids, fa_cat): (Vec<String>, Vec<String>) = fa
            .lines()
            .skip(1)
            .map(|l| {
                l.split_once(',')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .unwrap()
            })
            .unzip();
        let functional = TableBuilder::new()
            .str("unit_id", &fa_ids)
            .str("category", &fa_cat)
            .build()
            .unwrap();
        vec![
            ("units", units),
            ("indices", indices),
            ("functional_areas", functional),
        ]
    }

    #[test]
    fn henan_report_has_one_path_per_unit_and_map() {
        let (html, geo) = run(henan_inputs(), &params());
        // 6 maps of 2020 with all 123 units each, and 6 rows of 5 small multiples.
        assert_eq!(
            html.matches(r#"<path class="unit" data-id=""#).count(),
            123 * 6
        );
        assert_eq!(html.matches(r#"<svg class="map""#).count(), 6 + 6 * 5);
        assert!(!html.contains("http"));
        assert!(html.len() < 4_000_000, "{} bytes", html.len());
        assert!(html.contains("national_key_development"));
        assert_eq!(geo.num_rows(), 1);
    }

    #[test]
    fn renders_lisa_clusters_lorenz_landuse_and_compensation() {
        let ids4 = ["410100", "410101", "410102", "410103"];
        let lisa = TableBuilder::new()
            .str("unit_id", &ids4)
            .i64("year", vec![2020; 4])
            .str("class", &["HH", "ns", "LL", "ns"])
            .build()
            .unwrap();
        let clusters = TableBuilder::new()
            .str("unit_id", &ids4)
            .i64("cluster", vec![1, 1, 2, 2])
            .build()
            .unwrap();
        let lorenz = TableBuilder::new()
            .i64("year", vec![2020, 2020, 2020])
            .i64("k", vec![2, 0, 1])
            .f64("x", vec![1.0, 0.0, 0.5])
            .f64("y", vec![1.0, 0.0, 0.2])
            .build()
            .unwrap();
        let landuse = TableBuilder::new()
            .str("unit_id", &["410100", "410101", "410100"])
            .i64("year", vec![2020, 2020, 2015])
            .str("class", &["forest", "forest", "cultivated"])
            .f64("area_ha", vec![10.0, 5.0, 7.0])
            .build()
            .unwrap();
        let compensation = TableBuilder::new()
            .str("unit_id", &["410100", "410101", "410102", "410100"])
            .i64("year", vec![2020, 2020, 2020, 2020])
            .str("role", &["payer", "receiver", "balanced", "payer"])
            .str(
                "convention",
                &["own_sink", "own_sink", "own_sink", "zero_sum"],
            )
            .f64("quantity_t_c", vec![50.0, -20.0, 0.0, 10.0])
            .f64("value_balanced_yuan", vec![5000.0, -2000.0, 0.0, 1000.0])
            .build()
            .unwrap();
        let inputs = vec![
            ("units", units_table()),
            ("indices", indices_table()),
            ("autocorrelation", lisa),
            ("clusters", clusters),
            ("lorenz", lorenz),
            ("landuse", landuse),
            ("compensation", compensation),
        ];
        let (html, geo) = run(inputs, &params());
        assert!(html.contains("LISA class") && html.contains("cluster 02"));
        assert!(html.contains("Lorenz curves") && html.contains("Land-use area by class"));
        // own_sink is first in sorted order: paid 5000, received −2000, one balanced unit.
        assert!(html.contains(
            "Convention <code>own_sink</code>; amount column <code>value_balanced_yuan</code>"
        ));
        assert!(
            html.contains("Total paid: <b>5\u{2009}000</b>; total received: <b>−2\u{2009}000</b>")
        );
        assert!(html.contains("1 units balanced"));
        // With the LISA, cluster and role maps: 9 large maps of 4 units.
        assert_eq!(
            html.matches(r#"<path class="unit" data-id=""#).count(),
            4 * (6 + 3)
        );
        let text = strings(&geo, "geojson", "content").unwrap().remove(0);
        assert!(text.contains(r#""lisa":"HH""#) && text.contains(r#""cluster":2"#));
    }
}
