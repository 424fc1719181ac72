//! The `ingest` stage: reads one file (CSV, Parquet, GeoJSON, Shapefile, XLSX) into a table,
//! with the light edits a study needs at its edge: rename columns, force column types, keep
//! the rows matching a filter, keep some columns, and key the table on a unique `unit_id`.
//!
//! The formats live in `crate::io`; this file owns only the order of the edits and the
//! parameters. Vector formats add a `geometry` column (WKB, coordinates as in the file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::BinaryArray;
use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Source, Stage, StageContext, StageError,
};
use crate::io::cells::{Cell, CellTable, ColumnType, UNIT_ID, encoding_for_label};
use crate::io::wkb::{self, GEOMETRY_COLUMN};
use crate::io::yearbook::NameMatch;
use crate::table::TableBuilder;

/// The `ingest` kind.
pub struct Ingest;

/// A file format `ingest` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Parquet,
    Geojson,
    Shapefile,
    Xlsx,
}

impl Format {
    /// The format a file extension implies.
    fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" => Self::Csv,
            "parquet" | "pq" => Self::Parquet,
            "geojson" | "json" => Self::Geojson,
            "shp" => Self::Shapefile,
            "xlsx" | "xlsm" => Self::Xlsx,
            _ => return None,
        })
    }

    fn is_vector(self) -> bool {
        matches!(self, Self::Geojson | Self::Shapefile)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Geojson => "geojson",
            Self::Shapefile => "shapefile",
            Self::Xlsx => "xlsx",
        }
    }
}

/// The parameters as written in the study; [`Params`] fills in the format.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamsAsWritten {
    path: PathBuf,
    #[serde(default)]
    format: Option<Format>,
    #[serde(default)]
    id_column: Option<String>,
    #[serde(default)]
    rename: BTreeMap<String, String>,
    #[serde(default)]
    types: BTreeMap<String, ColumnType>,
    #[serde(default)]
    sheet: Option<String>,
    #[serde(default)]
    filter: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    columns: Option<Vec<String>>,
    #[serde(default)]
    header_row: Option<u32>,
    #[serde(default)]
    melt: Option<Melt>,
    #[serde(default)]
    recode: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    unit_names: Option<UnitNames>,
    #[serde(default)]
    scale: BTreeMap<String, f64>,
    #[serde(default = "default_na_values")]
    na_values: Vec<String>,
}

/// `melt`: a wide table (one column per crop, say) into a long one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Melt {
    /// Columns that identify a row (e.g. the unit's name and the year); kept on every row.
    pub id_columns: Vec<String>,
    /// The new column holding the other columns' names.
    pub names_to: String,
    /// The new column holding their values.
    pub values_to: String,
}

/// `unit_names`: unit ids from the names a yearbook prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitNames {
    /// The table's column of unit names.
    pub column: String,
    /// The column of names in the `units` input; default `name`.
    #[serde(default = "default_units_column")]
    pub units_column: String,
    /// Table name → unit id, for names that differ from the units' (`郑州市区: "410100"`).
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

fn default_units_column() -> String {
    "name".to_owned()
}

/// Cells that mean "no value" in yearbooks: empty, a dash, an ellipsis, `NA`.
fn default_na_values() -> Vec<String> {
    ["", "—", "…", "-", "NA"].map(str::to_owned).to_vec()
}

/// Parameters of `ingest`. The format is always filled in (from the extension when not
/// given), so writing out the default does not change the cache key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "ParamsAsWritten")]
pub struct Params {
    /// The file, relative to the study file's directory.
    pub path: PathBuf,
    /// The file's format; default: from the extension (`.csv`, `.parquet`, `.geojson`/`.json`,
    /// `.shp`, `.xlsx`).
    pub format: Format,
    /// The column holding unit ids; it becomes the first column, `unit_id` (text, unique,
    /// non-empty), and rows are sorted by it. Default: none (rows stay in file order).
    pub id_column: Option<String>,
    /// Column renames, `old: new`, applied first: every other parameter uses the new names.
    pub rename: BTreeMap<String, String>,
    /// Column types (`int`, `float`, `string`, `bool`) overriding the inferred ones.
    pub types: BTreeMap<String, ColumnType>,
    /// The XLSX sheet; default: the first.
    pub sheet: Option<String>,
    /// Keep only rows where each named column equals the value (compared as booleans, numbers
    /// or text).
    pub filter: BTreeMap<String, serde_json::Value>,
    /// Text encoding of a CSV file or a shapefile's DBF (e.g. `GBK`); default: the `.cpg`
    /// file for shapefiles, else UTF-8.
    pub encoding: Option<String>,
    /// Columns to keep (besides `unit_id` and `geometry`, always kept); default: all.
    pub columns: Option<Vec<String>>,
    /// The header's row (1-based, CSV and XLSX): rows above it are titles; the table ends at
    /// the first empty row below it. Default: the first non-empty row, blank rows skipped.
    pub header_row: Option<u32>,
    /// A wide table into a long one, after `rename`.
    pub melt: Option<Melt>,
    /// Value rewrites per column, `column: {from: to}`.
    pub recode: BTreeMap<String, BTreeMap<String, String>>,
    /// Unit ids from names, matched against the `units` input.
    pub unit_names: Option<UnitNames>,
    /// Factors per numeric column (`0.01` for percent, `10000` for 万人 → persons).
    pub scale: BTreeMap<String, f64>,
    /// Whole cells read as nulls; default `["", "—", "…", "-", "NA"]`.
    pub na_values: Vec<String>,
}

impl TryFrom<ParamsAsWritten> for Params {
    type Error = String;

    fn try_from(p: ParamsAsWritten) -> Result<Self, String> {
        let format = match p.format {
            Some(f) => f,
            None => Format::from_path(&p.path).ok_or_else(|| {
                format!(
                    "cannot tell the format of `{}` from its extension; add `format:` (csv, parquet, geojson, shapefile or xlsx)",
                    p.path.display()
                )
            })?,
        };
        Ok(Self {
            path: p.path,
            format,
            id_column: p.id_column,
            rename: p.rename,
            types: p.types,
            sheet: p.sheet,
            filter: p.filter,
            encoding: p.encoding,
            columns: p.columns,
            header_row: p.header_row,
            melt: p.melt,
            recode: p.recode,
            unit_names: p.unit_names,
            scale: p.scale,
            na_values: p.na_values,
        })
    }
}

fn filter_cell(column: &str, value: &serde_json::Value) -> Result<Cell, StageError> {
    Ok(match value {
        serde_json::Value::Null => Cell::Null,
        serde_json::Value::Bool(b) => Cell::Bool(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Cell::Float(n.as_f64().unwrap_or(f64::NAN)), Cell::Int),
        serde_json::Value::String(s) => Cell::Text(s.clone()),
        _ => {
            return Err(StageError::data(format!(
                "`filter: {column}` must be one value (text, number or true/false)"
            ))
            .with_hint("to keep several values, ingest all rows and filter in a later stage"));
        }
    })
}

fn encoding(params: &Params) -> Result<Option<&'static encoding_rs::Encoding>, StageError> {
    params
        .encoding
        .as_deref()
        .map(|label| {
            encoding_for_label(label).ok_or_else(|| {
                StageError::data(format!("unknown text encoding `{label}`")).with_hint(
                    "use e.g. `UTF-8`, `GBK` (also written 936 or CP936), `GB18030` or `latin1`",
                )
            })
        })
        .transpose()
}

fn read(params: &Params, path: &Path) -> Result<CellTable, StageError> {
    let shown = params.path.as_path();
    match params.format {
        Format::Csv => Ok(crate::io::csv_table::read(
            path,
            shown,
            encoding(params)?,
            params.header_row,
        )?),
        Format::Geojson => Ok(crate::io::vector::read_geojson(path, shown)?),
        Format::Shapefile => Ok(crate::io::vector::read_shapefile(
            path,
            shown,
            encoding(params)?,
        )?),
        Format::Xlsx => Ok(crate::io::xlsx::read(
            path,
            shown,
            params.sheet.as_deref(),
            params.header_row,
        )?),
        Format::Parquet => {
            let batch = crate::io::parquet::read(path)
                .map_err(|e| StageError::data(format!("cannot read {}: {e}", shown.display())))?;
            if batch.num_rows() == 0 {
                return Err(StageError::data(format!("{} has no rows", shown.display())));
            }
            let columns = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(f, a)| (f.name().clone(), a.clone()))
                .collect();
            Ok(CellTable::from_arrays(shown, columns, batch.num_rows()))
        }
    }
}

/// Checks the yearbook parameters that can be checked before reading the file.
fn validate_yearbook(params: &Params) -> Result<(), StageError> {
    if let Some(h) = params.header_row {
        if !matches!(params.format, Format::Csv | Format::Xlsx) {
            return Err(StageError::data(format!(
                "`header_row` applies to CSV and XLSX files, but the format is {}",
                params.format.name()
            ))
            .with_hint("remove `header_row:`"));
        }
        if h == 0 {
            return Err(
                StageError::data("`header_row: 0`: rows are numbered from 1")
                    .with_hint("write the row number Excel shows next to the header"),
            );
        }
    }
    if params.unit_names.is_some() && params.id_column.is_some() {
        return Err(StageError::data(
            "`unit_names` and `id_column` both make `unit_id`: give one of them",
        )
        .with_hint("use `unit_names` when the table names units, `id_column` when it codes them"));
    }
    if let Some(m) = &params.melt
        && (m.id_columns.is_empty()
            || m.names_to.trim().is_empty()
            || m.values_to.trim().is_empty())
    {
        return Err(StageError::data(
            "`melt` needs `id_columns` (at least one) and non-empty `names_to` and `values_to`",
        )
        .with_hint(
            "e.g. `melt: { id_columns: [县名, 年份], names_to: crop, values_to: yield_t }`",
        ));
    }
    if let Some((column, factor)) = params
        .scale
        .iter()
        .find(|(_, f)| !f.is_finite() || **f == 0.0)
    {
        return Err(StageError::data(format!(
            "`scale: {column}: {factor}`: a factor must be a finite, non-zero number"
        ))
        .with_hint("e.g. 0.01 for percent, 10000 for 万人 → persons"));
    }
    Ok(())
}

/// Applies `melt`, `recode`, `unit_names` and `scale`, in that order, after `rename`.
fn yearbook_edits(
    params: &Params,
    inputs: &Inputs,
    table: &mut CellTable,
) -> Result<(), StageError> {
    if let Some(m) = &params.melt {
        table.melt(&m.id_columns, &m.names_to, &m.values_to)?;
    }
    for (column, map) in &params.recode {
        table.recode(column, map)?;
    }
    if let Some(u) = &params.unit_names {
        let units = inputs.table("units")?;
        let ids = crate::table::ids(units, "units", UNIT_ID)?;
        let names = crate::table::strings(units, "units", &u.units_column)?;
        table.add_unit_ids(&NameMatch {
            column: &u.column,
            units: ids.into_iter().zip(names).collect(),
            units_label: format!("`units` column `{}`", u.units_column),
            aliases: &u.aliases,
        })?;
    }
    for (column, factor) in &params.scale {
        table.scale(column, *factor)?;
    }
    Ok(())
}

/// Warns about unit geometries that later stages may trip on (see
/// [`crate::io::vector::geometry_problem`]), naming the first offender. (Vertices outside
/// their CRS's range are the readers' errors.)
fn check_geometries(table: &CellTable, ctx: &StageContext) {
    let Some(geometries) = &table.geometry else {
        return;
    };
    let problems: Vec<(&String, String)> = geometries
        .iter()
        .zip(&table.rows)
        .filter_map(|(g, row)| crate::io::vector::geometry_problem(g).map(|p| (row, p)))
        .collect();
    if let Some((row, why)) = problems.first() {
        ctx.warn(format!(
            "{} of {} unit geometries are invalid; the first is {row}: {why}",
            problems.len(),
            geometries.len()
        ));
    }
}

/// What the `table` output holds, as far as the parameters tell before the file is read:
/// `outputs()` declares it and `run()` selects by it, so the two cannot disagree. The other
/// columns are the file's own, known only once it is read, which is why `ingest` declares
/// its output partially rather than with a [`crate::table::schema::TableSchema`].
struct TableShape {
    /// `unit_id` comes first (from `id_column` or `unit_names`).
    unit_id: bool,
    /// The `columns` to keep, with the id column left out: it is kept anyway, as `unit_id`.
    kept: Option<Vec<String>>,
    /// The format's polygons become the last column, `geometry`.
    geometry: bool,
}

impl TableShape {
    fn of(params: &Params) -> Self {
        let kept = params.columns.as_ref().map(|keep| {
            keep.iter()
                .filter(|c| Some(*c) != params.id_column.as_ref())
                .cloned()
                .collect()
        });
        Self {
            unit_id: params.id_column.is_some() || params.unit_names.is_some(),
            kept,
            geometry: params.format.is_vector(),
        }
    }

    fn decl(&self) -> OutputDecl {
        let mut columns = Vec::new();
        if self.unit_id {
            columns.push(UNIT_ID.to_owned());
        }
        if let Some(kept) = &self.kept {
            columns.extend(kept.iter().filter(|c| c.as_str() != UNIT_ID).cloned());
        }
        if self.geometry {
            columns.push(GEOMETRY_COLUMN.to_owned());
        }
        OutputDecl::new("table", "The file's rows as a table.").with_some_columns(columns)
    }
}

impl Stage for Ingest {
    const KIND: &'static str = "ingest";
    const VERSION: u32 = 2;
    /// Reading one table takes well under a second: a batch executor runs it in place.
    const QUICK: bool = true;
    const DOC: &'static str = "Reads one file (CSV, Parquet, GeoJSON, Shapefile or XLSX) into a table. Column types are \
        inferred (int, float, bool, else string; empty cells are null) unless `types` names them. With `id_column`, the ids \
        become the first column `unit_id` (text, unique) and rows are sorted by it. GeoJSON and Shapefile polygons become a \
        WKB `geometry` column (last). Yearbook tables: numbers may carry thousands separators and full-width digits; the \
        edits apply in the order header_row → rename → melt → recode → unit_names → scale → types → filter → columns.";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "path",
            ty: "path",
            default: "",
            doc: "The file, relative to the study file's directory.",
        },
        ParamDoc {
            name: "format",
            ty: "csv | parquet | geojson | shapefile | xlsx",
            default: "from the extension",
            doc: "The file's format.",
        },
        ParamDoc {
            name: "id_column",
            ty: "column",
            default: "",
            doc: "Column of unit ids: renamed `unit_id`, moved first, checked non-empty and unique; rows sorted by it.",
        },
        ParamDoc {
            name: "rename",
            ty: "map old → new",
            default: "",
            doc: "Column renames, applied before every other parameter.",
        },
        ParamDoc {
            name: "types",
            ty: "map column → int | float | string | bool",
            default: "",
            doc: "Column types overriding inference; a value that does not convert is an error naming its row.",
        },
        ParamDoc {
            name: "sheet",
            ty: "text",
            default: "the first sheet",
            doc: "The XLSX sheet to read.",
        },
        ParamDoc {
            name: "filter",
            ty: "map column → value",
            default: "",
            doc: "Keep only rows where each column equals its value, e.g. `yrb56: true`.",
        },
        ParamDoc {
            name: "encoding",
            ty: "text",
            default: "the .cpg file, else UTF-8",
            doc: "Text encoding of a CSV file or a shapefile's attributes, e.g. `GBK`.",
        },
        ParamDoc {
            name: "columns",
            ty: "list of columns",
            default: "all",
            doc: "Columns to keep, besides `unit_id` and `geometry`.",
        },
        ParamDoc {
            name: "header_row",
            ty: "row number (1-based)",
            default: "the first non-empty row",
            doc: "CSV and XLSX: the header's row; rows above are titles, the table ends at the first empty row below (later rows, e.g. 注：…, are ignored with a warning).",
        },
        ParamDoc {
            name: "melt",
            ty: "{id_columns, names_to, values_to}",
            default: "",
            doc: "Wide to long: every column not in `id_columns` becomes rows of `names_to` (its name) and `values_to` (its value).",
        },
        ParamDoc {
            name: "recode",
            ty: "map column → {from: to}",
            default: "",
            doc: "Rewrites values, e.g. `{category: {国家级重点开发区: national_key_development}}`; others stay.",
        },
        ParamDoc {
            name: "unit_names",
            ty: "{column, units_column, aliases}",
            default: "",
            doc: "Adds `unit_id` by matching `column` to the names of the `units` input (`units_column`, default `name`), after trimming and full-width folding; `aliases: {name: unit_id}`.",
        },
        ParamDoc {
            name: "scale",
            ty: "map column → factor",
            default: "",
            doc: "Multiplies numeric columns: 0.01 for percent, 10000 for 万人 → persons or 亿元 → 万元.",
        },
        ParamDoc {
            name: "na_values",
            ty: "list of text",
            default: "",
            doc: "Whole cells read as missing (null).",
        },
    ];
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use serde_json::json;
        vec![Example::new(json!({"path": "economy.csv"}), vec![]).with_file("economy.csv", "unit_id,year,gdp_10k_yuan\na,2000,1.5\n")]
    }
    const DESCRIBED_DEFAULTS: &'static [&'static str] = &["format"];
    fn required_example() -> serde_json::Value {
        serde_json::json!({"path": "units.geojson"})
    }

    fn ports(params: &Params) -> Vec<Port> {
        match &params.unit_names {
            Some(u) => vec![
                Port::required("units", "the units whose names `unit_names` matches")
                    .with_columns([UNIT_ID.to_owned(), u.units_column.clone()]),
            ],
            None => Vec::new(),
        }
    }

    fn outputs(params: &Params) -> Vec<OutputDecl> {
        vec![TableShape::of(params).decl()]
    }

    fn sources(params: &Params) -> Vec<Source> {
        let mut sources = vec![Source::new("path", &params.path)];
        if params.format == Format::Shapefile {
            sources.push(Source::new("dbf", params.path.with_extension("dbf")));
            // The sidecars that change what is read: the index, the CRS and the encoding.
            for ext in ["shx", "prj", "cpg"] {
                sources.push(Source::optional(ext, params.path.with_extension(ext)));
            }
        }
        sources
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        if params.sheet.is_some() && params.format != Format::Xlsx {
            return Err(StageError::data(format!(
                "`sheet` applies to XLSX files, but the format is {}",
                params.format.name()
            ))
            .with_hint("remove `sheet:`"));
        }
        if params.encoding.is_some() && !matches!(params.format, Format::Csv | Format::Shapefile) {
            return Err(StageError::data(format!(
                "`encoding` applies to CSV files and shapefiles, but the format is {}",
                params.format.name()
            ))
            .with_hint("remove `encoding:`"));
        }
        encoding(params)?;
        validate_yearbook(params)?;
        if let Some(id) = &params.id_column
            && let Some(typed) = [id.as_str(), UNIT_ID]
                .into_iter()
                .find(|c| params.types.contains_key(*c))
        {
            return Err(StageError::data(format!(
                "`types` names `{typed}`, the id column: unit ids are always text"
            ))
            .with_hint(format!("remove `{typed}` from `types:`")));
        }
        for (column, value) in &params.filter {
            filter_cell(column, value)?;
        }
        if params.columns.as_ref().is_some_and(Vec::is_empty) {
            return Err(StageError::data("`columns` is empty")
                .with_hint("list the columns to keep, or remove `columns:` to keep all"));
        }
        Ok(())
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        let path = ctx.source("path")?;
        if !path.is_file() {
            return Err(StageError::data(format!(
                "{}: no such file (looked for {})",
                params.path.display(),
                path.display()
            ))
            .with_hint("check `path:`; a relative path is taken from the study file's directory"));
        }
        let shape = TableShape::of(params);
        let mut table = read(params, path)?;
        table.null_na_values(&params.na_values);
        for note in std::mem::take(&mut table.notes) {
            ctx.warn(note);
        }
        table.rename(&params.rename)?;
        yearbook_edits(params, inputs, &mut table)?;
        for (column, value) in &params.filter {
            table.filter(column, &filter_cell(column, value)?)?;
        }
        check_geometries(&table, ctx); // only the units kept are checked and warned about
        if let Some(id) = &params.id_column {
            table.set_unit_id(id)?;
        }
        if let Some(keep) = &shape.kept {
            table.select(keep)?;
        }
        let geometry = table.geometry.take();
        if geometry.is_some() && table.columns.iter().any(|(n, _)| n == GEOMETRY_COLUMN) {
            return Err(StageError::data(format!(
                "{}: an attribute is named `geometry`, like the polygon column",
                table.source
            ))
            .with_hint("rename it with `rename: {geometry: <new name>}`"));
        }
        let mut builder = TableBuilder::new();
        for (name, array) in table.build(&params.types)? {
            builder = builder.array(&name, array);
        }
        if let Some(geometry) = geometry {
            let wkb: Vec<Vec<u8>> = geometry.iter().map(wkb::encode).collect();
            builder = builder.array(
                GEOMETRY_COLUMN,
                Arc::new(BinaryArray::from_iter_values(wkb)),
            );
        }
        Ok(vec![("table".to_owned(), builder.build()?)])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use arrow_array::RecordBatch;
    use arrow_schema::DataType;
    use geo::{Area, GeodesicArea, Validation};
    use serde_json::json;

    use super::*;
    use crate::engine::stage::{Entry, StageEntry};
    use crate::table::{bools, column_names, f64s, i64s, ids, polygons, strings};

    fn repo(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    /// A scratch folder holding the GBK-encoded fixture shapefile as `u.shp`, `.shx` and
    /// `.dbf`, without `.cpg` or `.prj`.
    fn gbk_shapefile_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for ext in ["shp", "shx", "dbf"] {
            std::fs::copy(
                repo(&format!("tests/fixtures/ingest/gbk_units.{ext}")),
                dir.path().join(format!("u.{ext}")),
            )
            .unwrap();
        }
        dir
    }

    /// Runs `ingest` with `params` (JSON), resolving `path` against `dir` as the engine would.
    fn ingest_in(
        dir: &Path,
        params: serde_json::Value,
    ) -> Result<(RecordBatch, Vec<String>), StageError> {
        let (mut out, warnings) = crate::stages::testing::run_in::<Ingest>(dir, params, vec![])?;
        Ok((out.remove(0).1, warnings))
    }

    /// Runs `ingest` on `file` (written into a temp dir) with three Henan units wired to `units`.
    fn yearbook_in(
        file: &str,
        bytes: &[u8],
        params: serde_json::Value,
    ) -> Result<(RecordBatch, Vec<String>), StageError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), bytes).unwrap();
        let mut p = json!({ "path": file });
        p.as_object_mut()
            .unwrap()
            .extend(params.as_object().unwrap().clone());
        let units = TableBuilder::new()
            .str("unit_id", &["410100", "410122", "410425"])
            .str("name", &["郑州市市辖区", "中牟县", "郏县"])
            .build()
            .unwrap();
        let (mut out, warnings) =
            crate::stages::testing::run_in::<Ingest>(dir.path(), p, vec![("units", units)])?;
        Ok((out.remove(0).1, warnings))
    }

    fn ingest(params: serde_json::Value) -> Result<RecordBatch, StageError> {
        ingest_in(Path::new(env!("CARGO_MANIFEST_DIR")), params).map(|(t, _)| t)
    }

    fn csv_in(text: &str, params: serde_json::Value) -> Result<RecordBatch, StageError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.csv"), text).unwrap();
        let mut p = json!({"path": "t.csv"});
        p.as_object_mut()
            .unwrap()
            .extend(params.as_object().unwrap().clone());
        ingest_in(dir.path(), p).map(|(t, _)| t)
    }

    #[test]
    fn a_kept_id_column_is_declared_and_written_as_unit_id() {
        let params = json!({"path": "t.csv", "id_column": "code", "columns": ["code", "pop"]});
        let typed: Params = serde_json::from_value(params.clone()).unwrap();
        assert_eq!(Ingest::outputs(&typed)[0].columns, ["unit_id", "pop"]);
        // The harness also fails if a declared column is not written.
        let t = csv_in("code,name,pop\n2,b,20\n1,a,10\n", params).unwrap();
        assert_eq!(column_names(&t), ["unit_id", "pop"]);
        assert_eq!(ids(&t, "t", "unit_id").unwrap(), ["1", "2"]);
    }

    #[test]
    fn henan_units123_gives_123_unique_units_with_valid_polygons() {
        let (t, warnings) = ingest_in(
            Path::new(env!("CARGO_MANIFEST_DIR")),
            json!({"path": "pipelines/data/boundaries/henan_units123.geojson", "id_column": "adcode"}),
        )
        .unwrap();
        // geo's full OGC validation (below) and ingest's own quicker check agree: all valid.
        assert!(warnings.is_empty(), "{warnings:?}");
        // 123 units, as the boundaries README says (17 merged urban units + 85 counties + 20
        // county-level cities + Jiyuan).
        assert_eq!(t.num_rows(), 123);
        assert_eq!(
            column_names(&t),
            [
                "unit_id",
                "name",
                "pref_adcode",
                "pref_name",
                "members",
                "area_km2",
                "geometry"
            ]
        );
        assert_eq!(t.schema().field(0).data_type(), &DataType::Utf8);
        assert_eq!(t.schema().field(2).data_type(), &DataType::Int64);
        let unit_ids = ids(&t, "t", "unit_id").unwrap();
        assert_eq!(unit_ids.iter().collect::<BTreeSet<_>>().len(), 123);
        assert!(
            unit_ids.windows(2).all(|w| w[0] < w[1]),
            "sorted and unique"
        );
        assert_eq!(unit_ids[0], "410100");
        assert_eq!(strings(&t, "t", "name").unwrap()[0], "郑州市市辖区");
        let geoms = polygons(&t, "t", "geometry").unwrap();
        assert!(geoms.iter().all(Validation::is_valid));
        // Each polygon's ellipsoidal area agrees with the file's `area_km2` (computed by
        // geopandas in an Albers equal-area projection, see the README) to 0.1 %.
        let area_km2 = f64s(&t, "t", "area_km2").unwrap();
        for ((g, &expected), id) in geoms.iter().zip(&area_km2).zip(&unit_ids) {
            let km2 = g.geodesic_area_unsigned() / 1e6;
            assert!(
                (km2 - expected).abs() / expected < 1e-3,
                "{id}: {km2} vs {expected}"
            );
        }
        // Henan's total, 165,592 km² in the README; the file's own areas sum to it within 0.1 %.
        let total: f64 = geoms
            .iter()
            .map(|g| g.geodesic_area_unsigned())
            .sum::<f64>()
            / 1e6;
        assert!((total - 165_592.0).abs() / 165_592.0 < 1e-3, "{total}");
    }

    #[test]
    fn yrb56_filter_keeps_56_cities() {
        let t = ingest(json!({
            "path": "pipelines/data/boundaries/yrb_cities.geojson",
            "id_column": "adcode",
            "filter": {"yrb56": true},
            "columns": ["name", "province_name", "yrb_tier"],
        }))
        .unwrap();
        // README: "That rule gives exactly 56 units": 39 core + 17 mainstem.
        assert_eq!(t.num_rows(), 56);
        assert_eq!(
            column_names(&t),
            ["unit_id", "name", "province_name", "yrb_tier", "geometry"]
        );
        let tiers = strings(&t, "t", "yrb_tier").unwrap();
        assert_eq!(tiers.iter().filter(|t| *t == "core").count(), 39);
        assert_eq!(tiers.iter().filter(|t| *t == "mainstem").count(), 17);
        // Every edge of the 56-unit adjacency list joins two of the ingested units.
        let units: BTreeSet<String> = ids(&t, "t", "unit_id").unwrap().into_iter().collect();
        let edges =
            ingest(json!({"path": "pipelines/data/boundaries/yrb56_adjacency.csv"})).unwrap();
        assert_eq!(edges.num_rows(), 129);
        for col in ["a_adcode", "b_adcode"] {
            assert!(
                ids(&edges, "e", col)
                    .unwrap()
                    .iter()
                    .all(|id| units.contains(id))
            );
        }
    }

    #[test]
    fn gbk_shapefile_reads_names_rings_and_types() {
        let t = ingest(json!({"path": "tests/fixtures/ingest/gbk_units.shp", "id_column": "CODE"}))
            .unwrap();
        assert_eq!(
            column_names(&t),
            ["unit_id", "NAME", "GDP", "YRB", "geometry"]
        );
        assert_eq!(
            ids(&t, "t", "unit_id").unwrap(),
            ["410100", "410200", "410300"]
        );
        assert_eq!(
            strings(&t, "t", "NAME").unwrap(),
            ["郑州市", "开封市", "洛阳市"]
        );
        assert_eq!(f64s(&t, "t", "GDP").unwrap(), [12003.04, 2345.5, 5000.0]);
        assert_eq!(bools(&t, "t", "YRB").unwrap(), [true, false, true]);
        let g = polygons(&t, "t", "geometry").unwrap();
        // Areas by hand (fixture README): 1 − 0.0625, 1 − 0.0625 + 0.25, 0.5.
        let areas: Vec<f64> = g.iter().map(Area::unsigned_area).collect();
        assert_eq!(areas, [0.9375, 1.1875, 0.5]);
        assert_eq!(g[1].0.len(), 2);
        assert_eq!(
            (g[1].0[0].interiors().len(), g[1].0[1].interiors().len()),
            (1, 0)
        );
    }

    #[test]
    fn shapefile_without_cpg_needs_the_encoding_parameter() {
        let dir = gbk_shapefile_dir();
        let err = ingest_in(dir.path(), json!({"path": "u.shp"})).unwrap_err();
        assert!(
            err.message.starts_with("u.shp: record 1:"),
            "{}",
            err.message
        );
        assert!(
            err.hint.as_deref().unwrap().contains("encoding: GBK"),
            "{:?}",
            err.hint
        );
        for label in ["GBK", "936", "CP936"] {
            let (t, _) =
                ingest_in(dir.path(), json!({"path": "u.shp", "encoding": label})).unwrap();
            assert_eq!(strings(&t, "t", "NAME").unwrap()[2], "洛阳市");
        }
    }

    #[test]
    fn shapefile_sidecars_are_noticed() {
        // A projected .prj and a .cpg naming an unknown encoding are both reported.
        let dir = gbk_shapefile_dir();
        std::fs::write(dir.path().join("u.cpg"), "EBCDIC-FANTASY").unwrap();
        // A .prj naming a projection without its parameters cannot be converted: an error.
        std::fs::write(
            dir.path().join("u.prj"),
            "PROJCS[\"CGCS2000_3_Degree_GK_CM_114E\"]",
        )
        .unwrap();
        let err = ingest_in(dir.path(), json!({"path": "u.shp", "encoding": "GBK"})).unwrap_err();
        assert_eq!(err.message, "u.prj: the .prj's PROJCS has no PROJECTION");
        std::fs::remove_file(dir.path().join("u.prj")).unwrap();
        let (t, warnings) =
            ingest_in(dir.path(), json!({"path": "u.shp", "encoding": "GBK"})).unwrap();
        assert_eq!(t.num_rows(), 3);
        assert!(
            warnings.is_empty(),
            "the encoding parameter wins over the .cpg: {warnings:?}"
        );
        let err = ingest_in(dir.path(), json!({"path": "u.shp"})).unwrap_err();
        assert!(err.hint.unwrap().contains("encoding: GBK"));
    }

    #[test]
    fn shapefile_language_driver_id_names_gbk() {
        // No .cpg, but byte 29 of the DBF header set to 0x4D (ESRI: code page 936, GBK).
        let dir = gbk_shapefile_dir();
        let mut dbf = std::fs::read(dir.path().join("u.dbf")).unwrap();
        dbf[29] = 0x4D;
        std::fs::write(dir.path().join("u.dbf"), dbf).unwrap();
        let (t, _) = ingest_in(dir.path(), json!({"path": "u.shp"})).unwrap();
        assert_eq!(strings(&t, "t", "NAME").unwrap()[0], "郑州市");
    }

    #[test]
    fn xlsx_sheet_rows_and_types() {
        let t = ingest(json!({"path": "tests/fixtures/ingest/yearbook.xlsx", "id_column": "code", "rename": {"地区": "name"}})).unwrap();
        assert_eq!(
            column_names(&t),
            ["unit_id", "name", "year", "gdp_10k_yuan", "note"]
        );
        assert_eq!(
            ids(&t, "t", "unit_id").unwrap(),
            ["410100", "410200", "410300"]
        );
        assert_eq!(i64s(&t, "t", "year").unwrap(), [2020, 2020, 2020]);
        assert_eq!(
            f64s(&t, "t", "gdp_10k_yuan").unwrap(),
            [12003.04, 2371.83, 5128.0]
        );
        assert_eq!(t.column(4).null_count(), 2);
        let pop =
            ingest(json!({"path": "tests/fixtures/ingest/yearbook.xlsx", "sheet": "population"}))
                .unwrap();
        assert_eq!(f64s(&pop, "t", "pop_10k").unwrap(), [1260.06]);
        let err =
            ingest(json!({"path": "tests/fixtures/ingest/yearbook.xlsx", "sheet": "populaton"}))
                .unwrap_err();
        assert!(err.hint.unwrap().contains("did you mean `population`"));
        // The blank sheet row 4 is skipped, and rows keep their Excel numbers in messages.
        let err = ingest(
            json!({"path": "tests/fixtures/ingest/yearbook.xlsx", "types": {"note": "int"}}),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "tests/fixtures/ingest/yearbook.xlsx: sheet `gdp` row 3, cell E3: column `note`: `revised` is not an integer"
        );
    }

    /// A yearbook table as a GBK CSV: a title line, Chinese headers with full-width brackets,
    /// padded names, thousands separators, 万人, percent, a dash for a missing value, rows in
    /// year order, and a footnote after an empty line.
    const GBK_YEARBOOK: &str = "表 1 主要经济指标,,,\n\
        县名,年份,地区生产总值（万元）,年末总人口（万人）,城镇化率（%）\n\
        郑州市区,2000,\"5,758,213.8\",494.7369,62.82\n\
        郏\u{3000}县,2000,\"１２３,４５６\",57.58,—\n\
        中牟县,2000, 8000.5 ,70.1,0.57\n\
        郑州市区,2005,\"11,896,573.8\",498.661,81.58\n\
        ,,,,\n\
        注：本表为演示数据。,,,,\n\
        资料来源：演示。,,,,\n";

    fn gbk(text: &str) -> Vec<u8> {
        encoding_rs::GBK.encode(text).0.into_owned()
    }

    fn economy_params() -> serde_json::Value {
        json!({
            "encoding": "GBK",
            "header_row": 2,
            "rename": {"年份": "year", "地区生产总值（万元）": "gdp_10k_yuan", "年末总人口（万人）": "population", "城镇化率（%）": "urbanization_rate"},
            "unit_names": {"column": "县名", "aliases": {"郑州市区": "410100"}},
            "scale": {"population": 10000, "urbanization_rate": 0.01},
            "columns": ["year", "gdp_10k_yuan", "population", "urbanization_rate"],
        })
    }

    #[test]
    fn gbk_yearbook_csv_reads_as_the_coded_table() {
        let (t, warnings) = yearbook_in("e.csv", &gbk(GBK_YEARBOOK), economy_params()).unwrap();
        assert_eq!(
            column_names(&t),
            [
                "unit_id",
                "year",
                "gdp_10k_yuan",
                "population",
                "urbanization_rate"
            ]
        );
        // Sorted by unit id, a unit's years in file order.
        assert_eq!(
            ids(&t, "t", "unit_id").unwrap(),
            ["410100", "410100", "410122", "410425"]
        );
        assert_eq!(i64s(&t, "t", "year").unwrap(), [2000, 2005, 2000, 2000]);
        assert_eq!(
            f64s(&t, "t", "gdp_10k_yuan").unwrap(),
            [5_758_213.8, 11_896_573.8, 8000.5, 123_456.0]
        );
        // 万人 × 10000 moves the point: persons exactly, as integers.
        assert_eq!(t.schema().field(3).data_type(), &DataType::Int64);
        assert_eq!(
            i64s(&t, "t", "population").unwrap(),
            [4_947_369, 4_986_610, 701_000, 575_800]
        );
        let rate = f64s(&t, "t", "urbanization_rate").unwrap();
        assert_eq!(rate[..3], [0.6282, 0.8158, 0.0057]);
        assert!(rate[3].is_nan(), "the dash is a missing value");
        assert_eq!(
            warnings,
            [
                "e.csv: the table ends at the empty row 7; 2 row(s) below it are ignored, the first (row 8) reads `注：本表为演示数据。`"
            ]
        );
    }

    #[test]
    fn unmatched_names_are_listed_with_suggestions_and_cells() {
        let mut params = economy_params();
        params["unit_names"] = json!({"column": "县名"});
        let err = yearbook_in("e.csv", &gbk(GBK_YEARBOOK), params).unwrap_err();
        assert_eq!(
            err.message,
            "e.csv: 1 name(s) in column `县名` match no unit (`units` column `name`):\n  e.csv:3, cell A3: `郑州市区`: did you mean `郑州市市辖区` (410100)?\n1 unit(s) have no row: 郑州市市辖区 (410100)"
        );
        let hint = err.hint.unwrap();
        assert!(hint.contains("aliases: { 郑州市区: \"410100\" }"), "{hint}");
        assert!(
            !hint.contains("missing"),
            "no `missing: zero` for economic tables: {hint}"
        );
        // A bad number names the file, the row and column letter as a spreadsheet shows them,
        // and the cell's text.
        let mut params = economy_params();
        params["types"] = json!({"gdp_10k_yuan": "float"});
        let text = GBK_YEARBOOK
            .replace("\" 8000.5 \"", "8000,5")
            .replace(" 8000.5 ", "8000.5x");
        let err = yearbook_in("e.csv", &gbk(&text), params).unwrap_err();
        assert_eq!(
            err.message,
            "e.csv:5, cell C5: column `gdp_10k_yuan`: `8000.5x` is not a number"
        );
    }

    #[test]
    fn wide_xlsx_crop_table_melts_into_long_rows() {
        use crate::io::xlsx_writer::{XlsxCell, XlsxSheet, workbook};
        let text = |s: &str| XlsxCell::Text(s.to_owned());
        let num = |s: &str| XlsxCell::Number(s.to_owned());
        let sheet = XlsxSheet {
            name: "农作物".into(),
            rows: vec![
                vec![text("表 3 主要农作物产量（吨）")],
                vec![text("县名"), text("年份"), text("小麦"), text("玉米")],
                vec![text("中牟县"), num("2000"), num("1000"), num("5000")],
                vec![text("郑州市区"), num("2000"), num("200"), text("abc")],
                vec![],
                vec![text("注：演示数据。")],
            ],
            merge_title: true,
        };
        let bytes = workbook(&[sheet]);
        let params = json!({
            "sheet": "农作物",
            "header_row": 2,
            "rename": {"年份": "year"},
            "melt": {"id_columns": ["县名", "year"], "names_to": "crop", "values_to": "yield_t"},
            "unit_names": {"column": "县名", "aliases": {"郑州市区": "410100"}},
            "types": {"yield_t": "float"},
            "columns": ["year", "crop", "yield_t"],
        });
        let err = yearbook_in("y.xlsx", &bytes, params.clone()).unwrap_err();
        assert_eq!(
            err.message,
            "y.xlsx: sheet `农作物` row 4, cell D4: column `yield_t`: `abc` is not a number"
        );
        let fixed = XlsxSheet {
            name: "农作物".into(),
            rows: vec![
                vec![text("表 3")],
                vec![text("县名"), text("年份"), text("小麦"), text("玉米")],
                vec![text("中牟县"), num("2000"), num("1000"), num("5000")],
                vec![text("郑州市区"), num("2000"), num("200"), text("—")],
            ],
            merge_title: false,
        };
        let (t, warnings) = yearbook_in("y.xlsx", &workbook(&[fixed]), params).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(column_names(&t), ["unit_id", "year", "crop", "yield_t"]);
        assert_eq!(
            ids(&t, "t", "unit_id").unwrap(),
            ["410100", "410100", "410122", "410122"]
        );
        assert_eq!(
            strings(&t, "t", "crop").unwrap(),
            ["小麦", "玉米", "小麦", "玉米"]
        );
        let y = f64s(&t, "t", "yield_t").unwrap();
        assert_eq!((y[0], y[2], y[3]), (200.0, 1000.0, 5000.0));
        assert!(y[1].is_nan());
    }

    #[test]
    fn recode_rewrites_values_before_unit_names() {
        let csv = "县名,主体功能区\n中牟县,国家级重点开发区\n郑州市区,农产品主产区\n";
        let (t, _) = yearbook_in(
            "f.csv",
            csv.as_bytes(),
            json!({
                "rename": {"主体功能区": "category"},
                "recode": {"category": {"国家级重点开发区": "national_key_development", "农产品主产区": "agricultural_production"}},
                "unit_names": {"column": "县名", "aliases": {"郑州市区": "410100"}},
                "columns": ["category"],
            }),
        )
        .unwrap();
        assert_eq!(
            strings(&t, "t", "category").unwrap(),
            ["agricultural_production", "national_key_development"]
        );
        let err = yearbook_in(
            "f.csv",
            csv.as_bytes(),
            json!({"unit_names": {"column": "县名"}, "id_column": "县名"}),
        )
        .unwrap_err();
        assert!(err.message.contains("give one of them"), "{}", err.message);
    }

    #[test]
    fn suspicious_geometries_are_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        // Feature 0 is a bow-tie (its edges cross at (1, 1)); feature 1 is a valid triangle.
        let features = |second: &str| {
            format!(
                r#"{{"type":"FeatureCollection","features":[
            {{"type":"Feature","properties":{{"id":"a"}},"geometry":{{"type":"Polygon","coordinates":[[[0,0],[2,2],[2,0],[0,2],[0,0]]]}}}},
            {{"type":"Feature","properties":{{"id":"b"}},"geometry":{{"type":"Polygon","coordinates":[[{second}]]}}}}]}}"#
            )
        };
        let path = dir.path().join("w.geojson");
        std::fs::write(&path, features("[5,0],[5.1,0],[5.1,0.1],[5,0]")).unwrap();
        let (t, warnings) =
            ingest_in(dir.path(), json!({"path": "w.geojson", "id_column": "id"})).unwrap();
        assert_eq!(t.num_rows(), 2);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(
                "1 of 2 unit geometries are invalid; the first is w.geojson: feature index 0: "
            ),
            "{}",
            warnings[0]
        );
        // Metres in a file that declares no CRS cannot be longitude/latitude: an error.
        std::fs::write(
            &path,
            features("[500000,0],[500100,0],[500100,100],[500000,0]"),
        )
        .unwrap();
        let err =
            ingest_in(dir.path(), json!({"path": "w.geojson", "id_column": "id"})).unwrap_err();
        assert!(
            err.message.starts_with(
                "w.geojson: feature index 1: the vertex [500000, 0] is not a longitude/latitude"
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn csv_types_rename_and_columns() {
        let t = csv_in(
            "id,Name,v,code\n2,b,1.5,007\n1,a,2,010\n",
            json!({"id_column": "id", "rename": {"Name": "name"}, "types": {"v": "string"}, "columns": ["name", "v", "code"]}),
        )
        .unwrap();
        assert_eq!(column_names(&t), ["unit_id", "name", "v", "code"]);
        assert_eq!(ids(&t, "t", "unit_id").unwrap(), ["1", "2"]);
        assert_eq!(strings(&t, "t", "v").unwrap(), ["2", "1.5"]);
        // Leading zeros make `code` text, so they survive.
        assert_eq!(strings(&t, "t", "code").unwrap(), ["010", "007"]);
    }

    #[test]
    fn bad_value_names_file_line_and_column() {
        let err = csv_in("id,v\na,1\nb,x\n", json!({"types": {"v": "float"}})).unwrap_err();
        assert_eq!(
            err.message,
            "t.csv:3, cell B3: column `v`: `x` is not a number"
        );
        let err = csv_in("id,v\na,1\nb,2,3\n", json!({})).unwrap_err();
        assert!(
            err.message
                .starts_with("t.csv:3: the row has 3 fields but the header has 2"),
            "{}",
            err.message
        );
    }

    #[test]
    fn duplicate_ids_name_both_lines() {
        let err = csv_in(
            "code,v\n410100,1\n410200,2\n410100,3\n",
            json!({"id_column": "code"}),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "t.csv: unit id `410100` (column `code`) appears twice: t.csv:2 and t.csv:4"
        );
        let err = csv_in("code,v\n410100,1\n,2\n", json!({"id_column": "code"})).unwrap_err();
        assert_eq!(err.message, "t.csv:3: id column `code` is empty");
    }

    #[test]
    fn missing_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = ingest_in(dir.path(), json!({"path": "nope.csv"})).unwrap_err();
        assert!(
            err.message
                .starts_with("nope.csv: no such file (looked for "),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains(&dir.path().join("nope.csv").display().to_string())
        );
        assert!(err.hint.is_some());
        std::fs::write(dir.path().join("empty.geojson"), "").unwrap();
        let err = ingest_in(dir.path(), json!({"path": "empty.geojson"})).unwrap_err();
        assert_eq!(err.message, "empty.geojson is empty");
        let err = csv_in("", json!({})).unwrap_err();
        assert_eq!(err.message, "t.csv is empty");
        std::fs::write(dir.path().join("bad.xlsx"), "not a zip").unwrap();
        let err = ingest_in(dir.path(), json!({"path": "bad.xlsx"})).unwrap_err();
        assert!(
            err.message
                .starts_with("cannot open bad.xlsx as an XLSX workbook"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unknown_column_suggests_a_name() {
        let err = csv_in("code,value\n1,2\n", json!({"id_column": "cdoe"})).unwrap_err();
        assert_eq!(err.message, "t.csv has no column `cdoe`");
        assert!(err.hint.unwrap().contains("did you mean `code`"));
        let err = csv_in("code,value\n1,2\n", json!({"filter": {"value": 3}})).unwrap_err();
        assert_eq!(err.message, "t.csv: no row has `value` equal to `3`");
    }

    #[test]
    fn parquet_round_trip_and_types() {
        let dir = tempfile::tempdir().unwrap();
        let t = TableBuilder::new()
            .i64("code", vec![2, 1])
            .str("v", &["1.5", "x"])
            .build()
            .unwrap();
        crate::io::parquet::write(&dir.path().join("t.parquet"), &t).unwrap();
        let (back, _) = ingest_in(dir.path(), json!({"path": "t.parquet"})).unwrap();
        assert_eq!(back, t);
        let (keyed, _) = ingest_in(
            dir.path(),
            json!({"path": "t.parquet", "id_column": "code"}),
        )
        .unwrap();
        assert_eq!(ids(&keyed, "t", "unit_id").unwrap(), ["1", "2"]);
        let err = ingest_in(
            dir.path(),
            json!({"path": "t.parquet", "types": {"v": "float"}}),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "t.parquet: row 2: column `v`: `x` is not a number"
        );
    }

    #[test]
    fn params_fill_in_the_format_and_declare_columns() {
        let entry = Entry::<Ingest>::new();
        let a = entry
            .prepare(json!({"path": "u.geojson", "id_column": "adcode"}))
            .unwrap();
        let b = entry
            .prepare(json!({"path": "u.geojson", "format": "geojson", "id_column": "adcode"}))
            .unwrap();
        assert_eq!(a.canonical_params(), b.canonical_params());
        assert_eq!(a.outputs()[0].columns, ["unit_id", "geometry"]);
        assert_eq!(a.sources()[0].name, "path");
        let err = entry.prepare(json!({"path": "u.txt"})).err().unwrap();
        assert!(err.message.contains("add `format:`"), "{}", err.message);
        let err = entry
            .prepare(json!({"path": "u.csv", "sheet": "x"}))
            .err()
            .unwrap();
        assert!(
            err.message.contains("`sheet` applies to XLSX"),
            "{}",
            err.message
        );
        assert!(
            entry
                .prepare(json!({"path": "u.csv", "encodng": "GBK"}))
                .is_err()
        );
        assert!(
            entry
                .prepare(json!({"path": "u.shp", "encoding": "klingon"}))
                .is_err()
        );
    }
}
