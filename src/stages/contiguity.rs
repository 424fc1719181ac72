//! Stage kind `contiguity`: the neighbour graph of the units, from their polygons or from a
//! table of edges, with a report of islands and connected components.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Stage, StageContext, StageError,
};
use crate::io::wkb::GEOMETRY_COLUMN;
use crate::methods::contiguity::{
    ContiguityRule, centroids, components, link_components, median_bbox_diagonal,
    polygon_contiguity,
};
use crate::table::schema::TableSchema;
use crate::stages::shared::units::preview;
use crate::table::{has_column, ids, polygons};

/// Metres per degree of latitude (WGS84 mean), to turn `tolerance_m` into degrees.
const METRES_PER_DEGREE: f64 = 111_320.0;

pub struct Contiguity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Queen,
    Rook,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Islands {
    /// Report islands and components; leave the graph as it is.
    Keep,
    /// Link each island (and each smaller component) to the nearest unit by centroid distance.
    Nearest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `queen` (shared vertex or edge) or `rook` (shared edge of positive length).
    #[serde(default = "default_rule")]
    pub rule: Rule,
    /// Snapping tolerance in metres: boundaries closer than this touch.
    #[serde(default = "default_tolerance_m")]
    pub tolerance_m: f64,
    /// `keep` or `nearest`.
    #[serde(default = "default_islands")]
    pub islands: Islands,
    /// The id column of the `units` table.
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// Accept a `tolerance_m` above the units' median bounding-box diagonal, which otherwise
    /// is an error (such a tolerance makes units neighbours across whole units).
    #[serde(default)]
    pub allow_large_tolerance: bool,
}

fn default_rule() -> Rule {
    Rule::Queen
}
fn default_tolerance_m() -> f64 {
    1.0
}
fn default_islands() -> Islands {
    Islands::Keep
}
fn default_id_column() -> String {
    "unit_id".to_owned()
}

impl Stage for Contiguity {
    const KIND: &'static str = "contiguity";
    const VERSION: u32 = 1;
    /// Neighbours of a few thousand units take well under a second: a batch executor runs it in place.
    const QUICK: bool = true;
    const DOC: &'static str = "Neighbour pairs of the units: queen or rook contiguity of their polygons (with a snapping \
        tolerance for the small gaps and overlaps of real boundary files, found through an R-tree), or a given table of \
        edges. Reports islands and connected components; `islands: nearest` links each island, and each smaller \
        component, to the nearest unit by centroid distance so that clustering gets a connected graph.";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "rule",
            ty: "queen | rook",
            default: "",
            doc: "queen: a shared vertex or edge; rook: a shared stretch of boundary longer than the tolerance",
        },
        ParamDoc {
            name: "tolerance_m",
            ty: "number (m)",
            default: "",
            doc: "boundaries closer than this touch; for lon/lat data converted at 111,320 m per degree",
        },
        ParamDoc {
            name: "islands",
            ty: "keep | nearest",
            default: "",
            doc: "nearest: link islands and smaller components to the nearest unit (centroid distance); needs `units`",
        },
        ParamDoc {
            name: "allow_large_tolerance",
            ty: "bool",
            default: "",
            doc: "accept a `tolerance_m` above the units' median size (bounding-box diagonal), which is otherwise an error",
        },
        ParamDoc {
            name: "id_column",
            ty: "string",
            default: "",
            doc: "the id column of the `units` table",
        },
    ];
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        vec![Example::new(json!({}), vec![("units", study::units())])]
    }

    fn ports(params: &Params) -> Vec<Port> {
        vec![
            Port::optional("units", "unit polygons (id + WKB `geometry`, lon/lat or projected metres); required unless `edges` is wired")
                .with_columns([params.id_column.clone()]),
            Port::optional("edges", "a table of neighbour pairs (`from`, `to` unit ids) to use instead of polygon contiguity")
                .with_columns(["from", "to"]),
        ]
    }

    fn outputs(_params: &Params) -> Vec<OutputDecl> {
        vec![edges_table().decl(), components_table().decl()]
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        if !(params.tolerance_m.is_finite() && params.tolerance_m >= 0.0) {
            return Err(StageError::data(format!(
                "`tolerance_m` is {}, expected a number ≥ 0",
                params.tolerance_m
            ))
            .with_hint("1 (metre) suits most boundary files; 0 requires exactly shared vertices"));
        }
        Ok(())
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let units = read_units(inputs.optional("units"), params)?;
        let edge_table = inputs.optional("edges");
        let names = unit_names(units.as_ref(), edge_table)?;
        let index: BTreeMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str(), i))
            .collect();
        let mut edges = match (edge_table, &units) {
            (Some(t), _) => table_edges(t, &index)?,
            (None, Some(units)) => {
                let ordered = units.polygons_in_order(&index, inputs.optional("units"))?;
                polygon_edges(params, &ordered)?
            }
            (None, None) => unreachable!("unit_names refuses a stage with neither input"),
        };
        edges.sort_unstable();
        edges.dedup();

        let degree_before = degrees(names.len(), &edges);
        let islands: Vec<&str> = (0..names.len())
            .filter(|&i| degree_before[i] == 0)
            .map(|i| names[i].as_str())
            .collect();
        if params.islands == Islands::Nearest {
            let Some(units) = units.as_ref().filter(|u| u.geometry.is_some()) else {
                return Err(StageError::data(
                    "`islands: nearest` needs the unit polygons to find the nearest unit",
                )
                .with_hint("wire `units: <ingest stage>` (with a `geometry` column) as well"));
            };
            let ordered = units.polygons_in_order(&index, inputs.optional("units"))?;
            link_islands(&mut edges, &ordered, &names, ctx);
        } else if !islands.is_empty() {
            ctx.warn(format!(
                "{} unit(s) have no neighbour: {}; clustering needs `islands: nearest`",
                islands.len(),
                preview(&islands)
            ));
        }
        output_tables(params, &names, &edges, &degree_before, ctx)
    }
}

/// The ids of the `units` table (checked unique) and its polygons, when it has them.
struct Units {
    ids: Vec<String>,
    geometry: Option<Vec<geo::MultiPolygon<f64>>>,
}

impl Units {
    /// The polygons in the order of `index` (the sorted ids); an error when the table has no
    /// geometry column.
    fn polygons_in_order(
        &self,
        index: &BTreeMap<&str, usize>,
        table: Option<&arrow_array::RecordBatch>,
    ) -> Result<Vec<geo::MultiPolygon<f64>>, StageError> {
        let geometry = self.geometry.as_ref().ok_or_else(|| {
            StageError::column_missing(
                "units",
                GEOMETRY_COLUMN,
                &table.map(crate::table::column_names).unwrap_or_default(),
            )
        })?;
        let mut ordered = vec![geo::MultiPolygon(Vec::new()); index.len()];
        for (id, g) in self.ids.iter().zip(geometry) {
            ordered[index[id.as_str()]] = g.clone();
        }
        Ok(ordered)
    }
}

/// Reads the ids (refusing duplicates) and polygons of the `units` table, when it is wired.
fn read_units(
    table: Option<&arrow_array::RecordBatch>,
    params: &Params,
) -> Result<Option<Units>, StageError> {
    let Some(t) = table else {
        return Ok(None);
    };
    let ids = ids(t, "units", &params.id_column)?;
    let geometry = if has_column(t, GEOMETRY_COLUMN) {
        Some(polygons(t, "units", GEOMETRY_COLUMN)?)
    } else {
        None
    };
    let mut seen = BTreeSet::new();
    if let Some(dup) = ids.iter().find(|id| !seen.insert(id.as_str())) {
        return Err(StageError::data(format!(
            "`units`: unit id `{dup}` appears more than once in `{}`",
            params.id_column
        ))
        .with_hint("unit ids must be unique; dissolve or rename the duplicates"));
    }
    Ok(Some(Units { ids, geometry }))
}

/// The unit list, sorted: the `units` ids, or else every id of the edge table.
fn unit_names(
    units: Option<&Units>,
    edge_table: Option<&arrow_array::RecordBatch>,
) -> Result<Vec<String>, StageError> {
    let mut names: Vec<String> = match (units, edge_table) {
        (Some(units), _) => units.ids.clone(),
        (None, Some(t)) => {
            let mut all = ids(t, "edges", "from")?;
            all.extend(ids(t, "edges", "to")?);
            all
        }
        (None, None) => {
            return Err(StageError::data("neither `units` nor `edges` is wired")
                .with_hint("wire `units: <ingest stage>` for polygon contiguity, or `edges: <table with from, to>`"));
        }
    };
    names.sort();
    names.dedup();
    Ok(names)
}

/// The pairs of a given edge table as index pairs `(min, max)`, checked against the units.
fn table_edges(
    t: &arrow_array::RecordBatch,
    index: &BTreeMap<&str, usize>,
) -> Result<Vec<(usize, usize)>, StageError> {
    let from = ids(t, "edges", "from")?;
    let to = ids(t, "edges", "to")?;
    let mut out = Vec::with_capacity(from.len());
    for (row, (a, b)) in from.iter().zip(&to).enumerate() {
        let (Some(&i), Some(&j)) = (index.get(a.as_str()), index.get(b.as_str())) else {
            let missing = if index.contains_key(a.as_str()) { b } else { a };
            return Err(StageError::data(format!(
                "`edges` row {}: unit `{missing}` is not in `units`",
                row + 1
            ))
            .with_hint("the edge table and the units table must use the same ids"));
        };
        if i == j {
            return Err(StageError::data(format!(
                "`edges` row {}: unit `{a}` is linked to itself",
                row + 1
            ))
            .with_hint("remove self-links"));
        }
        out.push((i.min(j), i.max(j)));
    }
    Ok(out)
}

/// Polygon contiguity of the units (in sorted-id order) under the stage's rule and tolerance.
fn polygon_edges(
    params: &Params,
    ordered: &[geo::MultiPolygon<f64>],
) -> Result<Vec<(usize, usize)>, StageError> {
    let metres_per_unit = if is_geographic(ordered) {
        METRES_PER_DEGREE
    } else {
        1.0
    };
    check_tolerance(params, ordered, metres_per_unit)?;
    let tolerance = params.tolerance_m / metres_per_unit;
    let rule = match params.rule {
        Rule::Queen => ContiguityRule::Queen,
        Rule::Rook => ContiguityRule::Rook,
    };
    Ok(polygon_contiguity(ordered, rule, tolerance))
}

/// The degree of each of `n` nodes.
fn degrees(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut degree = vec![0usize; n];
    for &(a, b) in edges {
        degree[a] += 1;
        degree[b] += 1;
    }
    degree
}

/// Links each island and smaller component to its nearest unit by centroid, with a warning
/// per link, keeping `edges` sorted and unique.
fn link_islands(
    edges: &mut Vec<(usize, usize)>,
    ordered: &[geo::MultiPolygon<f64>],
    names: &[String],
    ctx: &StageContext,
) {
    let links = link_components(&centroids(ordered), edges, is_geographic(ordered));
    for &(a, b) in &links {
        ctx.warn_kind(
            "island_linked",
            format!(
                "linked `{}` and `{}` (nearest units by centroid) to connect the graph",
                names[a], names[b]
            ),
        );
    }
    edges.extend(links);
    edges.sort_unstable();
    edges.dedup();
}

/// The `edges` and `components` tables (with a warning when the graph is not connected and
/// islands are kept).
fn output_tables(
    params: &Params,
    names: &[String],
    edges: &[(usize, usize)],
    degree_before: &[usize],
    ctx: &StageContext,
) -> Result<Outputs, StageError> {
    let n = names.len();
    let comp = components(n, edges);
    let count = comp.iter().max().map_or(0, |c| c + 1);
    if count > 1 && params.islands == Islands::Keep {
        ctx.warn(format!(
            "the neighbour graph has {count} connected components"
        ));
    }
    // Ids are sorted, so index order is id order and (from, to) pairs are sorted as text.
    let pairs: Vec<EdgeRow<'_>> = edges
        .iter()
        .map(|&(a, b)| EdgeRow {
            from: &names[a],
            to: &names[b],
        })
        .collect();
    let degree = degrees(n, edges);
    let units: Vec<UnitRow<'_>> = (0..n)
        .map(|i| UnitRow {
            unit_id: &names[i],
            component: comp[i],
            degree: degree[i],
            island: degree_before[i] == 0,
        })
        .collect();
    Ok(vec![
        edges_table().build(&pairs)?,
        components_table().build(&units)?,
    ])
}

/// A row of `edges`: one neighbour pair.
struct EdgeRow<'a> {
    from: &'a str,
    to: &'a str,
}

/// A row of `components`: one unit. `component` counts from 0 (the largest).
struct UnitRow<'a> {
    unit_id: &'a str,
    component: usize,
    degree: usize,
    island: bool,
}

fn edges_table<'a>() -> TableSchema<EdgeRow<'a>> {
    TableSchema::<EdgeRow<'_>>::new("edges", "neighbour pairs, each once with from < to, sorted")
        .text("from", |r| r.from)
        .text("to", |r| r.to)
}

fn components_table<'a>() -> TableSchema<UnitRow<'a>> {
    TableSchema::<UnitRow<'_>>::new(
        "components",
        "per unit: connected component (1 = largest), degree, and whether it had no neighbour before linking",
    )
    .text("unit_id", |r| r.unit_id)
    .int("component", |r| count_i64(r.component) + 1)
    .int("degree", |r| count_i64(r.degree))
    .bool("island", |r| r.island)
}

fn count_i64(count: usize) -> i64 {
    i64::try_from(count).expect("unit counts fit i64")
}

/// Whether every coordinate lies within lon/lat bounds (then the tolerance is in degrees).
/// A tolerance wider than a typical unit (the median bounding-box diagonal, in metres at
/// 111,320 m per degree for lon/lat) makes units neighbours across whole units: an error unless
/// `allow_large_tolerance` says it is meant.
fn check_tolerance(
    params: &Params,
    units: &[geo::MultiPolygon<f64>],
    metres_per_unit: f64,
) -> Result<(), StageError> {
    let Some(median_m) = median_bbox_diagonal(units).map(|d| d * metres_per_unit) else {
        return Ok(());
    };
    if params.tolerance_m <= median_m || params.allow_large_tolerance {
        return Ok(());
    }
    Err(StageError::data(format!(
        "`tolerance_m: {}` is larger than the units' median size, {median_m:.0} m (bounding-box diagonal), so units would be neighbours across whole units",
        params.tolerance_m
    ))
    .with_hint(
        "use a tolerance for the gaps between boundaries (1 m suits most boundary files); \
         set `allow_large_tolerance: true` if it is meant",
    ))
}

fn is_geographic(units: &[geo::MultiPolygon<f64>]) -> bool {
    use geo::CoordsIter;
    units.iter().all(|u| {
        u.coords_iter()
            .all(|c| c.x.abs() <= 180.0 && c.y.abs() <= 90.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::testing;
    use crate::table::TableBuilder;
    use std::sync::Arc;

    use arrow_array::{BinaryArray, RecordBatch};
    use geo::polygon;

    use crate::table::strings;

    /// A units table from a GeoJSON fixture (`adcode` as the id).
    fn units_from_geojson(text: &str) -> RecordBatch {
        let fc: geojson::FeatureCollection = text.parse().unwrap();
        let mut rows: Vec<(String, Vec<u8>)> = fc
            .features
            .iter()
            .map(|f| {
                let id = f.property("adcode").unwrap().to_string();
                let g: geo::Geometry<f64> = f.geometry.clone().unwrap().try_into().unwrap();
                let mp = match g {
                    geo::Geometry::Polygon(p) => geo::MultiPolygon(vec![p]),
                    geo::Geometry::MultiPolygon(mp) => mp,
                    other => panic!("unexpected {other:?}"),
                };
                (id, crate::io::wkb::encode(&mp))
            })
            .collect();
        rows.sort();
        let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let wkb = BinaryArray::from_iter_values(rows.iter().map(|r| r.1.as_slice()));
        TableBuilder::new()
            .str("unit_id", &ids)
            .array("geometry", Arc::new(wkb))
            .build()
            .unwrap()
    }

    fn run(
        params: serde_json::Value,
        tables: Vec<(&str, RecordBatch)>,
    ) -> Result<(Outputs, Vec<String>), StageError> {
        testing::run::<Contiguity>(params, tables)
    }

    /// The libpysal edge list of a fixture, as sorted (from, to) pairs; `rook_only` keeps the
    /// rows whose `rook` column is True.
    fn expected(csv: &str, rook_only: bool) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = csv
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let (a, b) = if f[0] < f[1] {
                    (f[0], f[1])
                } else {
                    (f[1], f[0])
                };
                (!rook_only || f[2] == "True").then(|| (a.to_owned(), b.to_owned()))
            })
            .collect();
        out.sort();
        out
    }

    fn pairs(t: &RecordBatch) -> Vec<(String, String)> {
        let from = strings(t, "edges", "from").unwrap();
        let to = strings(t, "edges", "to").unwrap();
        from.into_iter().zip(to).collect()
    }

    /// Queen and rook contiguity of the real boundaries equal libpysal's lists
    /// (tests/fixtures/cluster/README.md: Henan 123 units, 317 edges; Yellow River 56, 129).
    #[test]
    fn real_boundaries_match_libpysal() {
        for (geojson, csv, n_edges) in [
            (
                include_str!("../../tests/fixtures/cluster/henan_units123.geojson"),
                include_str!("../../tests/fixtures/cluster/henan_units123_adjacency.csv"),
                317,
            ),
            (
                include_str!("../../tests/fixtures/cluster/yrb56.geojson"),
                include_str!("../../tests/fixtures/cluster/yrb56_adjacency.csv"),
                129,
            ),
        ] {
            let units = units_from_geojson(geojson);
            for (rule, rook_only) in [("queen", false), ("rook", true)] {
                let (out, warnings) = run(
                    serde_json::json!({ "rule": rule }),
                    vec![("units", units.clone())],
                )
                .unwrap();
                let got = pairs(&out[0].1);
                let want = expected(csv, rook_only);
                if rule == "queen" {
                    assert_eq!(want.len(), n_edges);
                }
                assert_eq!(got, want, "{rule}");
                assert!(warnings.is_empty(), "{warnings:?}");
                // One component, no islands (README: "components 1, islands none").
                let comp = crate::table::i64s(&out[1].1, "components", "component").unwrap();
                assert!(comp.iter().all(|&c| c == 1));
            }
        }
    }

    #[test]
    fn edge_table_with_island_is_reported_and_linked() {
        // Four unit squares in a row: 0 1 2 _ 4 (3 missing), so unit 4 is an island.
        let sq = |x: f64| {
            crate::io::wkb::encode(&geo::MultiPolygon(vec![
                polygon![(x: x, y: 0.0), (x: x + 1.0, y: 0.0), (x: x + 1.0, y: 1.0), (x: x, y: 1.0)],
            ]))
        };
        let wkb = BinaryArray::from_iter_values([sq(0.0), sq(1.0), sq(2.0), sq(4.0)]);
        let units = TableBuilder::new()
            .str("unit_id", &["a", "b", "c", "e"])
            .array("geometry", Arc::new(wkb))
            .build()
            .unwrap();
        let (out, warnings) = run(
            serde_json::json!({ "rule": "rook", "tolerance_m": 0 }),
            vec![("units", units.clone())],
        )
        .unwrap();
        assert_eq!(
            pairs(&out[0].1),
            vec![("a".into(), "b".into()), ("b".into(), "c".into())]
        );
        assert_eq!(
            crate::table::i64s(&out[1].1, "components", "component").unwrap(),
            vec![1, 1, 1, 2]
        );
        assert_eq!(
            crate::table::bools(&out[1].1, "components", "island").unwrap(),
            vec![false, false, false, true]
        );
        assert!(warnings[0].contains("`e`"), "{warnings:?}");
        // Linked: the island's centroid (4.5) is nearest to c's (2.5).
        let (out, _) = run(
            serde_json::json!({ "rule": "rook", "islands": "nearest" }),
            vec![("units", units)],
        )
        .unwrap();
        assert_eq!(
            pairs(&out[0].1),
            vec![
                ("a".into(), "b".into()),
                ("b".into(), "c".into()),
                ("c".into(), "e".into())
            ]
        );
        // From an edge table, pairs are normalised and sorted.
        let edges = TableBuilder::new()
            .str("from", &["c", "b"])
            .str("to", &["b", "a"])
            .build()
            .unwrap();
        let (out, _) = run(serde_json::json!({}), vec![("edges", edges)]).unwrap();
        assert_eq!(
            pairs(&out[0].1),
            vec![("a".into(), "b".into()), ("b".into(), "c".into())]
        );
    }
}
