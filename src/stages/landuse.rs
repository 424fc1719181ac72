//! `landuse`: per unit and year, the area of the six carbon classes from categorical land-use
//! GeoTIFFs (zonal histogram by the pixel-centre rule, reclassified by a scheme), the transfer
//! matrices between consecutive years, and the raw code histogram; or the same tables from
//! yearbook areas given as a table.
//!
//! Rasters on one grid are rasterised against the units once and read together, chunk by chunk,
//! in parallel (one decoder per worker); results are added up in chunk order, so outputs do not
//! depend on the number of threads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use geo::{BoundingRect, MultiPolygon};
use serde::{Deserialize, Serialize};

use crate::engine::stage::{
    Inputs, OutputDecl, Outputs, ParamDoc, Port, Shard, Source, Stage, StageContext, StageError,
};
use crate::io::geotiff::GeoTransform;
use crate::io::mosaic::Mosaic;
use crate::io::mosaic_parts::MosaicPart;
use crate::io::raster_crs::{raster_crs, reproject};
use crate::io::raster_pass::{PassError, PassObserver, histogram_pass};
use crate::io::raster_region::{Group, YearFiles, group_years, open_raster};
use crate::methods::land_counts::{CountMap, PixelArea, class_lut, classify_pairs, pass_plan};
use crate::methods::land_dynamics::{
    comprehensive_dynamic_degree_from_sums_pct_per_year, single_dynamic_degree_pct_per_year,
};
use crate::methods::landuse_scheme::{CodeClass, LandClass, Scheme, scheme_from_rows};
use crate::methods::pixel_area::row_areas_cm2;
use crate::methods::rasterize::{Grid, Spans, rasterize};
use crate::table::schema::TableSchema;
use crate::table::{self, TableBuilder};

/// The `landuse` stage kind.
pub struct LandUse;

/// Parameters of `landuse`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Year → categorical GeoTIFF: one path, a list of paths, or a file-name pattern (`*`, `?`);
    /// the files of a year are read as one mosaic. Empty with the tabular `areas` input.
    #[serde(default)]
    pub rasters: BTreeMap<String, RasterFiles>,
    /// `clcd`, `cnlucc`, `igbp`, or the path of a `code,class` CSV. Required with rasters and
    /// with a tabular input that has a `code` column.
    #[serde(default)]
    pub scheme: Option<String>,
    /// The rasters' CRS (`EPSG:<code>` or a PROJ string), overriding their GeoKeys; for files
    /// without GeoKeys or with a projection the reader does not know.
    #[serde(default)]
    pub crs: Option<String>,
    /// Keep units without a single data pixel (outside the rasters, or smaller than a pixel)
    /// with zero areas instead of failing; with the `areas` table, units whose areas are all 0.
    #[serde(default)]
    pub allow_empty_units: bool,
    /// The least share of the units' polygon area (on the ellipsoid) that must have data in
    /// each year; below it the rasters and units most likely do not overlap.
    #[serde(default = "default_min_coverage")]
    pub min_coverage: f64,
    /// Where wetland codes (CLCD 9, CNLUCC 64, IGBP 11, `wetland` rows) go: `water` (default,
    /// the published six-class tables) or `class`, a seventh class `wetland`.
    #[serde(default, skip_serializing_if = "Wetland::is_default")]
    pub wetland: Wetland,
}

fn default_min_coverage() -> f64 {
    0.5
}

/// The files of one year: a path (which may be a file-name pattern) or a list of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RasterFiles {
    One(PathBuf),
    Several(Vec<PathBuf>),
}

impl RasterFiles {
    fn paths(&self) -> &[PathBuf] {
        match self {
            RasterFiles::One(p) => std::slice::from_ref(p),
            RasterFiles::Several(v) => v,
        }
    }
}

/// What `landuse` does with wetland codes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wetland {
    /// Fold them into the class the scheme gives them (water; unused for CNLUCC marsh).
    #[default]
    Water,
    /// Keep them apart as a seventh class `wetland`.
    Class,
}

impl Wetland {
    fn is_default(&self) -> bool {
        *self == Wetland::Water
    }

    /// The classes the `areas` and transfer-matrix rows list.
    fn classes(self) -> &'static [LandClass] {
        match self {
            Wetland::Water => &LandClass::ALL,
            Wetland::Class => &LandClass::WITH_WETLAND,
        }
    }

    fn apply(self, scheme: Scheme) -> Scheme {
        match self {
            Wetland::Water => scheme,
            Wetland::Class => scheme.with_wetland_class(),
        }
    }
}

/// The id the unit polygons come with.
const UNIT_ID: &str = "unit_id";

impl Params {
    /// The years, parsed and sorted, with their paths.
    fn years(&self) -> Result<Vec<(i64, RasterFiles)>, StageError> {
        let mut out: Vec<(i64, RasterFiles)> = Vec::new();
        for (key, files) in &self.rasters {
            let year = key
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|y| (1000..=9999).contains(y))
                .ok_or_else(|| {
                    StageError::data(format!("`rasters` key `{key}` is not a year")).with_hint(
                        "write one `<year>: <path>` line per raster, e.g. `2000: data/lu_2000.tif`",
                    )
                })?;
            if out.iter().any(|(y, _)| *y == year) {
                return Err(StageError::data(format!(
                    "`rasters` lists year {year} twice"
                )));
            }
            if files.paths().is_empty() {
                return Err(
                    StageError::data(format!("`rasters` year {year} lists no file")).with_hint(
                        "give a path, a list of paths or a pattern such as `tiles/lu_2000_*.tif`",
                    ),
                );
            }
            out.push((year, files.clone()));
        }
        out.sort_by_key(|(y, _)| *y);
        Ok(out)
    }

    fn scheme_path(&self) -> Option<&str> {
        self.scheme
            .as_deref()
            .filter(|s| !Scheme::BUILTIN.contains(s))
    }
}

fn source_name(year: i64) -> String {
    format!("raster.{year}")
}

/// How many paths (or patterns) a year lists.
fn year_paths(files: &RasterFiles) -> usize {
    match files {
        RasterFiles::One(_) => 1,
        RasterFiles::Several(v) => v.len(),
    }
}

/// The shard of the files of the `i`-th path of a year listed as several.
fn tile_shard(year: i64, i: usize) -> String {
    format!("{year}-t{i}")
}

/// The shard of the overlaps and gaps of a year listed as several paths.
fn overlaps_shard(year: i64) -> String {
    format!("{year}-overlaps")
}

/// The shard that counts `part` of a year of several files, whose file `source` names: the
/// year's own shard when it lists one path (a pattern's files are only known once the study
/// is planned, after its shards are named).
fn part_shard(year: i64, paths: usize, part: MosaicPart, source: &str) -> String {
    if paths < 2 {
        return year.to_string();
    }
    match part {
        MosaicPart::Shared => overlaps_shard(year),
        MosaicPart::Alone(_) => {
            // `raster.<year>.<i>`, or `raster.<year>.<i>/<n>` for the n-th file of a pattern.
            let path_index = source
                .strip_prefix(&format!("{}.", source_name(year)))
                .and_then(|rest| rest.split('/').next())
                .and_then(|i| i.parse::<usize>().ok())
                .expect("the files of a year listed as several paths are named by their index");
            tile_shard(year, path_index)
        }
    }
}

/// The sources of one year: `raster.<year>` for one path, `raster.<year>.<i>` for the i-th
/// of a list; a path with `*` or `?` in its file name is a pattern.
fn year_sources(year: i64, files: &RasterFiles) -> Vec<Source> {
    let source = |name: String, path: &PathBuf| {
        if crate::engine::pattern::is_pattern(&path.to_string_lossy()) {
            Source::pattern(name, path)
        } else {
            Source::new(name, path)
        }
    };
    match files {
        RasterFiles::One(p) => vec![source(source_name(year), p)],
        RasterFiles::Several(v) => v
            .iter()
            .enumerate()
            .map(|(i, p)| source(format!("{}.{i}", source_name(year)), p))
            .collect(),
    }
}

/// The files of one year as the plan resolved them: (source name, path), in order.
fn year_files(
    year: i64,
    files: &RasterFiles,
    ctx: &StageContext,
) -> Result<Vec<(String, PathBuf)>, StageError> {
    let mut out = Vec::new();
    for s in year_sources(year, files) {
        let found = ctx.sources_matching(&s.name);
        if found.is_empty() {
            return Err(StageError::internal(format!(
                "source `{}` was not resolved",
                s.name
            )));
        }
        out.extend(found.into_iter().map(|(n, p)| (n, p.to_owned())));
    }
    Ok(out)
}

impl Stage for LandUse {
    const KIND: &'static str = "landuse";
    const VERSION: u32 = 5;
    const DOC: &'static str = "Areas of the six carbon classes (cultivated, forest, grassland, water, construction, \
unused; and wetland with `wetland: class`) per unit and year from categorical land-use GeoTIFFs (CLCD, CNLUCC, MODIS IGBP or any coded map): a pixel \
belongs to a unit when its centre lies inside the unit's polygon (even-odd rule, holes excluded); pixel area is \
computed per row on the WGS84 ellipsoid for lon/lat rasters and is constant on projected ones; unit polygons are \
reprojected to the raster's CRS. A year may be several files on one pixel grid (provincial files, export tiles), read \
as one mosaic. Also the transfer matrix between consecutive years, the raw code histogram and NoData per unit \
(`coverage`); a year without data inside the units, or covering less than `min_coverage` of their area, fails. \
With the `areas` input instead of rasters, yearbook areas (unit_id, year, class or code, area_ha) are validated \
and reclassified into the same `areas` table.";
    const PARAMS: &'static [ParamDoc] = &[
        ParamDoc {
            name: "rasters",
            ty: "map year → path | [path, …] | pattern",
            default: "{}",
            doc: "Categorical GeoTIFFs per year (8/16-bit unsigned, stripped or tiled, none/DEFLATE/LZW/PackBits): one path, a list, or a file-name pattern such as `tiles/CLCD_v01_2000_*.tif` (`*`, `?`; matches sorted by name). The files of a year are read as one mosaic without copying: they must share CRS and pixel grid, and where they overlap their data must agree. Years on one CRS and grid are read in one pass over the union of their extents; transitions use the pixels both years cover.",
        },
        ParamDoc {
            name: "scheme",
            ty: "string",
            default: "required with rasters",
            doc: "Code → class table: `clcd` (values 1–9), `cnlucc` (codes 1–6, 11–67, 111–124), `igbp` (MODIS 0–16, 255 fill), or a CSV path with columns code,class (class `excluded` for fill codes).",
        },
        ParamDoc {
            name: "crs",
            ty: "string",
            default: "from the GeoKeys",
            doc: "The rasters' CRS as `EPSG:<code>` or a PROJ string, when the files lack GeoKeys or use a projection the reader does not know. A raster without georeferencing tags is placed by a `.tfw` world file beside it (with `crs:`).",
        },
        ParamDoc {
            name: "allow_empty_units",
            ty: "bool",
            default: "false",
            doc: "Keep units with no data pixel in a year (outside the rasters, or smaller than a pixel), or with all-zero areas in the `areas` table, with zero areas (one warning) instead of failing.",
        },
        ParamDoc {
            name: "min_coverage",
            ty: "number",
            default: "0.5",
            doc: "The least share (0–1) of the units' polygon area, measured on the WGS84 ellipsoid, that must have data in every year; below it the study fails, as rasters and units most likely do not overlap (wrong CRS, swapped lat/lon, shifted units). A year with no data inside any unit always fails.",
        },
        ParamDoc {
            name: "wetland",
            ty: "water|class",
            default: "water",
            doc: "Wetland codes (CLCD 9, IGBP 11, CNLUCC 64 marsh, `wetland` rows of a scheme CSV or an areas table): `water` folds them into the scheme's class (water; unused for CNLUCC marsh), `class` keeps a seventh class `wetland` so a preset's wetland coefficient (set2 −0.567) applies.",
        },
    ];
    type Params = Params;

    #[cfg(test)]
    fn declaration_examples() -> Vec<crate::engine::stage::Example> {
        use crate::engine::stage::Example;
        use crate::stages::testing::study;
        use serde_json::json;
        vec![Example::new(json!({}), vec![("areas", study::areas())])]
    }

    fn ports(_params: &Params) -> Vec<Port> {
        vec![
            Port::optional(
                "units",
                "unit polygons (from `ingest`): unit_id and a WKB lon/lat `geometry`",
            )
            .with_columns([UNIT_ID, "geometry"]),
            Port::optional(
                "areas",
                "tabular areas instead of rasters: unit_id, year, class or code, area_ha",
            )
            .with_columns([UNIT_ID, "year", "area_ha"]),
        ]
    }

    fn outputs(_params: &Params) -> Vec<OutputDecl> {
        vec![
            areas_schema().decl(),
            transitions_schema().decl(),
            transitions_total_schema().decl(),
            codes_schema().decl(),
            dynamics_schema().decl(),
            coverage_schema().decl(),
        ]
    }

    fn sources(params: &Params) -> Vec<Source> {
        let mut out: Vec<Source> = match params.years() {
            Ok(years) => years
                .iter()
                .flat_map(|(y, files)| {
                    let rasters = year_sources(*y, files);
                    // A world file beside a raster georeferences it when its tags do not.
                    let sidecars: Vec<Source> = rasters
                        .iter()
                        .filter(|s| !s.pattern)
                        .map(|s| {
                            Source::optional(
                                format!("{}.tfw", s.name),
                                s.path.with_extension("tfw"),
                            )
                        })
                        .collect();
                    rasters.into_iter().chain(sidecars)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        if let Some(path) = params.scheme_path() {
            out.push(Source::new("scheme", path));
        }
        out
    }

    fn validate(params: &Params) -> Result<(), StageError> {
        let years = params.years()?;
        if !years.is_empty() && params.scheme.is_none() {
            return Err(
                StageError::data("`scheme` is required with `rasters`").with_hint(format!(
                    "add `scheme: clcd` (or {}, or a code,class CSV path)",
                    Scheme::BUILTIN.join(", ")
                )),
            );
        }
        if let Some(path) = params.scheme_path()
            && !(path.to_ascii_lowercase().ends_with(".csv")
                || path.contains('/')
                || path.contains('\\'))
        {
            return Err(StageError::data(format!(
                "`scheme: {path}` is neither a built-in scheme nor a CSV path"
            ))
            .with_hint(format!(
                "built-in schemes: {}; a user table is a `.csv` file with columns code,class",
                Scheme::BUILTIN.join(", ")
            )));
        }
        if !(0.0..=1.0).contains(&params.min_coverage) {
            return Err(StageError::data(format!(
                "`min_coverage: {}` is not a share between 0 and 1",
                params.min_coverage
            ))
            .with_hint("e.g. `min_coverage: 0.2` accepts rasters covering a fifth of the units"));
        }
        if let Some(crs) = &params.crs {
            proj4rs::Proj::from_user_string(crs).map_err(|e| {
                StageError::data(format!("`crs: {crs}` is not a CRS proj4rs knows: {e}")).with_hint("give `EPSG:<code>` or a PROJ string such as `+proj=aea +lat_1=25 +lat_2=47 +lon_0=105 +ellps=WGS84`")
            })?;
        }
        Ok(())
    }

    fn run(params: &Params, inputs: &Inputs, ctx: &StageContext) -> Result<Outputs, StageError> {
        run_rasters(params, inputs, ctx, None)
    }

    /// One shard per year (its histograms) and one per consecutive pair of years (their
    /// transitions), so a batch executor reads the years in parallel and a rerun after one
    /// year's raster changed recomputes that year, its two pairs and the merge. A year listed
    /// as several paths has, instead of its own shard, one per path (`<year>-t<i>`, the pixels
    /// only that path's files cover) and one for the pixels where files overlap or no file
    /// lies (`<year>-overlaps`); see [`MosaicPart`].
    fn shards(params: &Params) -> Vec<Shard> {
        let Ok(years) = params.years() else {
            return Vec::new();
        };
        let deps = |year: i64, files: &RasterFiles| {
            year_sources(year, files)
                .into_iter()
                .map(|s| format!("source:{}", s.name))
                .collect::<Vec<_>>()
        };
        let units = || vec!["port:units".to_owned()];
        let mut shards: Vec<Shard> = Vec::new();
        for (year, files) in &years {
            let paths = year_paths(files);
            if paths < 2 {
                shards.push(Shard {
                    name: year.to_string(),
                    depends_on: [units(), deps(*year, files)].concat(),
                });
                continue;
            }
            shards.extend((0..paths).map(|i| Shard {
                name: tile_shard(*year, i),
                depends_on: [
                    units(),
                    vec![format!("source:{}.{i}", source_name(*year))],
                ]
                .concat(),
            }));
            shards.push(Shard {
                name: overlaps_shard(*year),
                depends_on: [units(), deps(*year, files)].concat(),
            });
        }
        shards.extend(years.windows(2).map(|w| Shard {
            name: format!("{}-{}", w[0].0, w[1].0),
            depends_on: [units(), deps(w[0].0, &w[0].1), deps(w[1].0, &w[1].1)].concat(),
        }));
        shards
    }

    fn run_shard(
        params: &Params,
        shard: &str,
        inputs: &Inputs,
        ctx: &StageContext,
    ) -> Result<(), StageError> {
        run_rasters(params, inputs, ctx, Some(shard)).map(|_| ())
    }
}

/// The stage's run; with `only`, just the memos of that shard (and no outputs).
fn run_rasters(
    params: &Params,
    inputs: &Inputs,
    ctx: &StageContext,
    only: Option<&str>,
) -> Result<Outputs, StageError> {
    {
        let scheme = load_scheme(params, ctx)?.map(|s| params.wetland.apply(s));
        if let Some(table) = inputs.optional("areas") {
            if !params.rasters.is_empty() {
                return Err(StageError::data("`landuse` got both `rasters` and an `areas` input")
                    .with_hint("use rasters with `inputs: { units: ... }`, or a table with `inputs: { areas: ... }`"));
            }
            return tabular(
                table,
                scheme.as_ref(),
                params.allow_empty_units,
                params.wetland,
                ctx,
            );
        }
        let units = inputs.table("units").map_err(|e| {
            e.with_hint("wire `units: <ingest stage>` (polygons) or `areas: <table>`")
        })?;
        let years = params.years()?;
        if years.is_empty() {
            return Err(StageError::data("`landuse` has no `rasters`")
                .with_hint("add `rasters: { 2000: data/lu_2000.tif, ... }`"));
        }
        let scheme =
            scheme.ok_or_else(|| StageError::data("`scheme` is required with `rasters`"))?;
        from_rasters(params, units, &years, &scheme, ctx, only)
    }
}

fn load_scheme(params: &Params, ctx: &StageContext) -> Result<Option<Scheme>, StageError> {
    let Some(name) = params.scheme.as_deref() else {
        return Ok(None);
    };
    if let Some(s) = Scheme::builtin(name) {
        return Ok(Some(s));
    }
    let path = ctx.source("scheme")?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(path)
        .map_err(|e| {
            StageError::data(format!("cannot read scheme table {}: {e}", path.display())).with_hint(
                format!(
                    "`scheme` is a built-in name ({}) or a CSV with columns code,class",
                    Scheme::BUILTIN.join(", ")
                ),
            )
        })?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| StageError::data(format!("{}: {e}", path.display())))?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let (Some(ci), Some(ki)) = (
        headers.iter().position(|h| h == "code"),
        headers.iter().position(|h| h == "class"),
    ) else {
        return Err(StageError::data(format!(
            "scheme table {} has columns {}, expected code,class",
            path.display(),
            headers.join(",")
        ))
        .with_hint("the first line must be `code,class`"));
    };
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| StageError::data(format!("{}: {e}", path.display())))?;
        let line = i + 2;
        let (Some(code), Some(class)) = (rec.get(ci), rec.get(ki)) else {
            return Err(StageError::data(format!(
                "{} line {line}: expected code,class",
                path.display()
            )));
        };
        rows.push((line, code.to_owned(), class.to_owned()));
    }
    scheme_from_rows(&path.display().to_string(), &rows)
        .map(Some)
        .map_err(|e| {
            StageError::data(format!("scheme table {}: {e}", path.display())).with_hint(
                "classes: cultivated, forest, grassland, water, construction, unused, wetland, excluded",
            )
        })
}

struct YearResult {
    codes: CountMap,
    area: Arc<PixelArea>,
    nodata: Option<u32>,
}

struct PairResult {
    from: i64,
    to: i64,
    /// Keyed (unit, class_from·8 + class_to).
    counts: CountMap,
    area: Arc<PixelArea>,
}

fn open_years(
    years: &[(i64, RasterFiles)],
    ctx: &StageContext,
) -> Result<Vec<YearFiles>, StageError> {
    let mut out = Vec::with_capacity(years.len());
    for (year, files) in years {
        let mut opened = YearFiles {
            year: *year,
            sources: Vec::new(),
            infos: Vec::new(),
        };
        for (name, path) in year_files(*year, files, ctx)? {
            let info = open_raster(*year, &path)?;
            opened.sources.push(name);
            opened.infos.push(info);
        }
        out.push(opened);
    }
    Ok(out)
}

fn from_rasters(
    params: &Params,
    units: &arrow_array::RecordBatch,
    years: &[(i64, RasterFiles)],
    scheme: &Scheme,
    ctx: &StageContext,
    only: Option<&str>,
) -> Result<Outputs, StageError> {
    let (ids, geoms) = sorted_units(units)?;
    let opened = open_years(years, ctx)?;
    let groups = group_years(params.crs.is_some(), &opened)?;
    let shapes = UnitShapes {
        ids: &ids,
        geoms: &geoms,
    };
    if only.is_some() {
        for group in &groups {
            read_group(params, group, &opened, &shapes, scheme, ctx, only)?;
        }
        return Ok(Vec::new());
    }
    let (year_results, pair_results) =
        read_all_groups(params, &groups, &opened, &shapes, scheme, ctx)?;
    let year_list: Vec<i64> = years.iter().map(|(y, _)| *y).collect();
    let coverage = coverage_rows(&ids, &year_list, &year_results, scheme);
    check_coverage(params, &coverage, &polygon_areas_ha(&geoms), &opened, ctx)?;
    warn_years_without_transitions(&year_list, &pair_results, ctx);
    let classes = params.wetland.classes();
    let transfers = transfer_tables(&ids, pair_results, classes, ctx)?;
    let per_unit = unit_tables(
        &ids,
        &year_list,
        &year_results,
        scheme,
        classes,
        &transfers.sums,
        ctx,
    )?;
    drop(year_results);
    let mut coverage_table = StreamedTable::new(coverage_schema(), ctx);
    coverage_table.extend(coverage)?;
    Ok(vec![
        per_unit.areas,
        transfers.table,
        transfers.totals,
        per_unit.codes,
        per_unit.dynamics,
        coverage_table.finish()?,
    ])
}

/// Rows on their way to an output written in parts (see [`StageContext::output_writer`]):
/// a national annual study's tables are written as they are made, a part of
/// [`STREAMED_PART_ROWS`] rows at a time, so neither their rows nor their columns are ever
/// all in memory. The table's bytes are those of the whole table built at once.
struct StreamedTable<'c, R> {
    schema: TableSchema<R>,
    writer: crate::engine::output_writer::OutputWriter<'c>,
    rows: Vec<R>,
}

/// Rows a part of a [`StreamedTable`]: large enough that a part's overhead is negligible,
/// small beside the table.
const STREAMED_PART_ROWS: usize = 16_384;

impl<'c, R> StreamedTable<'c, R> {
    fn new(schema: TableSchema<R>, ctx: &'c StageContext) -> Self {
        let writer = ctx.output_writer(&schema.decl().name);
        Self {
            schema,
            writer,
            rows: Vec::new(),
        }
    }

    fn extend(&mut self, rows: impl IntoIterator<Item = R>) -> Result<(), StageError> {
        self.rows.extend(rows);
        if self.rows.len() >= STREAMED_PART_ROWS {
            self.write_rows()?;
        }
        Ok(())
    }

    /// Writes the rows gathered so far as one part (an empty one fixes the schema of an empty
    /// table).
    fn write_rows(&mut self) -> Result<(), StageError> {
        let (_, part) = self.schema.build(&self.rows)?;
        self.rows.clear();
        self.writer.write(part)
    }

    /// The output, as the stage returns it.
    fn finish(mut self) -> Result<(String, arrow_array::RecordBatch), StageError> {
        self.write_rows()?;
        let name = self.schema.decl().name;
        Ok((name, self.writer.finish()?))
    }
}

/// The outputs made a unit at a time.
struct UnitTables {
    areas: (String, arrow_array::RecordBatch),
    codes: (String, arrow_array::RecordBatch),
    dynamics: (String, arrow_array::RecordBatch),
}

/// The `areas` rows (every listed class of every unit and year), the `codes` rows (raw codes
/// but NoData) and the `dynamics` rows, written a unit at a time from the years' count maps,
/// in the order of the tables built whole; codes outside the scheme are warned about, by year.
fn unit_tables<'a>(
    ids: &'a [String],
    years: &[i64],
    results: &[YearResult],
    scheme: &Scheme,
    classes: &[LandClass],
    matrices: &BTreeMap<(&'a str, i64, i64), TransferSums>,
    ctx: &StageContext,
) -> Result<UnitTables, StageError> {
    let mut areas = StreamedTable::new(areas_schema(), ctx);
    let mut codes = StreamedTable::new(codes_schema(), ctx);
    let mut dynamics = StreamedTable::new(dynamics_schema(), ctx);
    let mut unmapped: BTreeMap<(i64, u32), u64> = BTreeMap::new();
    for (u, id) in ids.iter().enumerate() {
        let unit = u32::try_from(u).expect("fewer than 2³² units");
        // Each year's class areas, as `dynamics` adds them up from the `areas` rows.
        let mut by_year: BTreeMap<i64, [f64; 7]> = BTreeMap::new();
        for (res, &year) in results.iter().zip(years) {
            let cells = unit_year_cells(res, unit, year, scheme, &mut unmapped, &mut codes, id)?;
            let sums = by_year.entry(year).or_insert([0.0; 7]);
            areas.extend(classes.iter().map(|&c| {
                let (px, cm2) = cells[c.index()];
                let area_ha = res.area.area_m2(px, cm2) / 1e4;
                sums[c.index()] += area_ha;
                AreaRow {
                    unit: id,
                    year,
                    class: c,
                    pixels: Some(to_i64(px)),
                    area_ha,
                }
            }))?;
        }
        dynamics.extend(unit_dynamics_rows(id, &by_year, matrices, classes))?;
    }
    warn_unmapped(&unmapped, scheme, ctx);
    Ok(UnitTables {
        areas: areas.finish()?,
        codes: codes.finish()?,
        dynamics: dynamics.finish()?,
    })
}

/// One unit's pixels and cm² (lon/lat grids) per class in one year, exact sums turned into
/// areas once; writes its `codes` rows and counts the codes the scheme does not list.
fn unit_year_cells<'a>(
    res: &YearResult,
    unit: u32,
    year: i64,
    scheme: &Scheme,
    unmapped: &mut BTreeMap<(i64, u32), u64>,
    codes: &mut StreamedTable<'_, CodeRow<'a>>,
    id: &'a str,
) -> Result<[(u64, u64); 7], StageError> {
    let mut cells = [(0u64, 0u64); 7];
    let mut rows = Vec::new();
    for (&(_, code), &(px, summed)) in res.codes.range((unit, 0)..=(unit, u32::MAX)) {
        if res.nodata == Some(code) {
            continue;
        }
        rows.push(CodeRow {
            unit: id,
            year,
            code: i64::from(code),
            pixels: to_i64(px),
        });
        match scheme.classify(i64::from(code)) {
            CodeClass::Class(c) => {
                let cell = &mut cells[c.index()];
                cell.0 += px;
                cell.1 += summed;
            }
            CodeClass::Excluded => {}
            CodeClass::Unmapped => *unmapped.entry((year, code)).or_default() += px,
        }
    }
    codes.extend(rows)?;
    Ok(cells)
}

/// The units' ids and polygons, sorted by id; an id given twice is an error.
fn sorted_units(
    units: &arrow_array::RecordBatch,
) -> Result<(Vec<String>, Vec<MultiPolygon<f64>>), StageError> {
    let ids = table::ids(units, "units", UNIT_ID)?;
    let geoms = table::polygons(units, "units", "geometry")?;
    let order = table::sorted_order(&ids);
    let ids: Vec<String> = order.iter().map(|&i| ids[i].clone()).collect();
    let geoms: Vec<MultiPolygon<f64>> = order.iter().map(|&i| geoms[i].clone()).collect();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(
            StageError::data(format!("`units`: unit_id `{}` appears twice", w[0]))
                .with_hint("unit ids must be unique"),
        );
    }
    Ok((ids, geoms))
}

/// Every group's counts: each year's histogram (in the order of the years) and the
/// transitions between consecutive years, by first year.
fn read_all_groups(
    params: &Params,
    groups: &[Group],
    opened: &[YearFiles],
    shapes: &UnitShapes<'_>,
    scheme: &Scheme,
    ctx: &StageContext,
) -> Result<(Vec<YearResult>, Vec<PairResult>), StageError> {
    let mut year_results: Vec<Option<YearResult>> = (0..opened.len()).map(|_| None).collect();
    let mut pair_results: Vec<PairResult> = Vec::new();
    for group in groups {
        let read = read_group(params, group, opened, shapes, scheme, ctx, None)?;
        for (yi, r) in read.years {
            year_results[yi] = Some(r);
        }
        pair_results.extend(read.pairs);
    }
    pair_results.sort_by_key(|p| p.from);
    let year_results = year_results
        .into_iter()
        .map(|r| r.expect("every year belongs to one group"))
        .collect();
    Ok((year_results, pair_results))
}

/// The units' polygon areas in ha on the WGS84 ellipsoid.
fn polygon_areas_ha(geoms: &[MultiPolygon<f64>]) -> Vec<f64> {
    geoms
        .iter()
        // Geodesic areas follow ring orientation (a clockwise ring encloses the rest of the
        // globe): orient exteriors counter-clockwise first.
        .map(|g| {
            let oriented = geo::orient::Orient::orient(g, geo::orient::Direction::Default);
            geo::GeodesicArea::geodesic_area_unsigned(&oriented) / 1e4
        })
        .collect()
}

fn warn_years_without_transitions(years: &[i64], pairs: &[PairResult], ctx: &StageContext) {
    for w in years.windows(2) {
        if !pairs.iter().any(|p| p.from == w[0]) {
            ctx.warn_kind("no_transitions", format!(
                "no transitions {} → {}: the two rasters differ in grid or CRS (warp one onto the other's grid)",
                w[0], w[1]
            ));
        }
    }
}

/// One warning per year with codes the scheme does not list.
fn warn_unmapped(unmapped: &BTreeMap<(i64, u32), u64>, scheme: &Scheme, ctx: &StageContext) {
    let mut by_year: BTreeMap<i64, (Vec<String>, u64)> = BTreeMap::new();
    for ((year, code), px) in unmapped {
        let (list, total) = by_year.entry(*year).or_default();
        list.push(format!("{code} ({px} px)"));
        *total += px;
    }
    // The year losing the most pixels is the worst example of the summary.
    for (year, (list, total_px)) in by_year {
        ctx.warn_scored("codes_outside_scheme", total_px as f64, format!(
            "year {year}: codes not in scheme `{}` left out of `areas` (see output `codes`): {}",
            scheme.name,
            list.join(", ")
        ));
    }
}

/// The `transitions` and `transitions_total` tables and the sums of each unit's transfer
/// matrix (for `dynamics`), made a pair of years at a time: a pair's count map and rows are
/// dropped once its rows are written, so a national annual study (2,852 units × 36 class
/// pairs a year) never holds every pair's rows, counts or columns.
fn transfer_tables<'a>(
    ids: &'a [String],
    pairs: Vec<PairResult>,
    classes: &[LandClass],
    ctx: &StageContext,
) -> Result<Transfers<'a>, StageError> {
    let mut table = StreamedTable::new(transitions_schema(), ctx);
    let mut totals = Vec::with_capacity(pairs.len() * classes.len() * classes.len());
    let mut sums = BTreeMap::new();
    for pair in pairs {
        let (rows, total) = pair_rows(ids, &pair, classes);
        drop(pair);
        sums.extend(transfer_sums(&rows));
        table.extend(rows)?;
        totals.extend(total);
    }
    Ok(Transfers {
        table: table.finish()?,
        totals: transitions_total_schema().build(&totals)?,
        sums,
    })
}

/// The transitions tables and each unit's matrix sums by (unit, year_from, year_to).
struct Transfers<'a> {
    table: (String, arrow_array::RecordBatch),
    totals: (String, arrow_array::RecordBatch),
    sums: BTreeMap<(&'a str, i64, i64), TransferSums>,
}

/// One pair's transfer matrices: per unit, and summed over the units, every listed class pair.
fn pair_rows<'a>(
    ids: &'a [String],
    p: &PairResult,
    classes: &[LandClass],
) -> (Vec<TransitionRow<'a>>, Vec<TransitionRow<'a>>) {
    let mut per_unit = Vec::with_capacity(ids.len() * classes.len() * classes.len());
    let mut total = [[0.0f64; 7]; 7];
    for (u, id) in ids.iter().enumerate() {
        let unit = u32::try_from(u).expect("fewer than 2³² units");
        let mut m = [[0.0f64; 7]; 7];
        for (&(_, pair), &(px, summed)) in p.counts.range((unit, 0)..=(unit, u32::MAX)) {
            let (a, b) = ((pair / 8) as usize, (pair % 8) as usize);
            if a < 7 && b < 7 {
                m[a][b] += p.area.area_m2(px, summed) / 1e4;
            }
        }
        for &a in classes {
            for &b in classes {
                let v = m[a.index()][b.index()];
                total[a.index()][b.index()] += v;
                per_unit.push(TransitionRow::new(id, p, (a, b), v));
            }
        }
    }
    let mut totals = Vec::with_capacity(classes.len() * classes.len());
    for &a in classes {
        for &b in classes {
            let v = total[a.index()][b.index()];
            totals.push(TransitionRow::new("", p, (a, b), v));
        }
    }
    (per_unit, totals)
}

/// The units as the raster path uses them: ids sorted, lon/lat polygons in the same order.
struct UnitShapes<'a> {
    ids: &'a [String],
    geoms: &'a [MultiPolygon<f64>],
}

/// A group's grid as the units see it: which pixels belong to which unit, and pixel areas.
struct GroupGrid {
    spans: Spans,
    area: Arc<PixelArea>,
    transform: GeoTransform,
}

/// Reads one group of years in one pass: their code histograms and the raw transitions between
/// consecutive years of the group; with `only`, just that shard's memos (and an empty result).
fn read_group(
    params: &Params,
    group: &Group,
    years: &[YearFiles],
    units: &UnitShapes<'_>,
    scheme: &Scheme,
    ctx: &StageContext,
    only: Option<&str>,
) -> Result<GroupResult, StageError> {
    let grid = group_grid(params, group, years, units, ctx)?;
    let pairs = consecutive_pairs(&group.years);
    let Some(counts) = group_counts(
        params,
        group,
        years,
        &grid,
        &pairs,
        units.ids.len(),
        ctx,
        only,
    )?
    else {
        return Ok(GroupResult {
            years: Vec::new(),
            pairs: Vec::new(),
        });
    };
    classified_results(group, years, &pairs, counts, &grid.area, scheme)
}

/// The group's grid, the units rasterised on it (reprojected to its CRS first), and its pixel
/// areas; warns about units reaching beyond the rasters and about a CRS that is not equal-area.
fn group_grid(
    params: &Params,
    group: &Group,
    years: &[YearFiles],
    units: &UnitShapes<'_>,
    ctx: &StageContext,
) -> Result<GroupGrid, StageError> {
    let years_text = group
        .years
        .iter()
        .map(|&i| years[i].year.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let first = &years[group.years[0]].infos[0];
    let year0 = years[group.years[0]].year;
    let crs = raster_crs(params.crs.as_deref(), first, year0)?;
    if crs.datum_ignored {
        ctx.warn_kind("raster_datum_ignored", format!(
            "raster {} (year {year0}) is in {}; it is read as WGS84 lon/lat (datum shift ignored)",
            first.path.display(),
            crs.description
        ));
    }
    let t = group.transform;
    let grid = Grid {
        x0: t.x0,
        y0: t.y0,
        dx: t.dx,
        dy: t.dy,
        width: group.width,
        height: group.height,
    };
    let projected;
    let shapes: &[MultiPolygon<f64>] = match &crs.proj {
        Some(p) => {
            projected = reproject(units.geoms, p, units.ids, &crs.description)?;
            &projected
        }
        None => units.geoms,
    };
    let spans = rasterize(&grid, shapes);
    warn_units_beyond(&grid, shapes, &spans, units.ids, &years_text, ctx);
    let area = Arc::new(if crs.geographic {
        PixelArea::PerRow(row_areas_cm2(t.y0, t.dy, t.dx, group.height))
    } else {
        if !crs.equal_area {
            ctx.warn(format!(
                "the raster of year(s) {years_text} is in {}, which is not an equal-area projection: areas are map-plane areas (use an Albers grid)",
                crs.description
            ));
        }
        PixelArea::Constant((t.dx * t.dy).abs() * crs.to_meter * crs.to_meter)
    });
    Ok(GroupGrid {
        spans,
        area,
        transform: t,
    })
}

fn warn_units_beyond(
    grid: &Grid,
    shapes: &[MultiPolygon<f64>],
    spans: &Spans,
    ids: &[String],
    years_text: &str,
    ctx: &StageContext,
) {
    let pixels = spans.pixels_per_unit(ids.len());
    let (gx0, gy0, gx1, gy1) = grid.extent();
    let beyond: Vec<&str> = shapes
        .iter()
        .zip(ids)
        .enumerate()
        .filter(|&(u, (shape, _))| {
            pixels[u] > 0
                && shape.bounding_rect().is_some_and(|r| {
                    r.min().x < gx0 || r.min().y < gy0 || r.max().x > gx1 || r.max().y > gy1
                })
        })
        .map(|(_, (_, id))| id.as_str())
        .collect();
    if let Some(example) = beyond.first() {
        ctx.warn(format!(
            "{} unit(s) extend beyond the raster of year(s) {years_text} (e.g. `{example}`); only the parts inside are counted (see output `coverage`)",
            beyond.len()
        ));
    }
}

/// Pairs (positions within `layout`, ascending year indices) of years consecutive in the
/// whole list of years.
fn consecutive_pairs(layout: &[usize]) -> Vec<(usize, usize)> {
    layout
        .iter()
        .enumerate()
        .filter_map(|(a, &i)| layout.iter().position(|&j| j == i + 1).map(|b| (a, b)))
        .collect()
}

/// The raw count maps of a group (each layer, then each pair), from the memos where they are
/// and from one pass over the layers the missing ones need; `None` when only a shard's memos
/// were wanted.
#[allow(clippy::too_many_arguments)]
fn group_counts(
    params: &Params,
    group: &Group,
    years: &[YearFiles],
    grid: &GroupGrid,
    pairs: &[(usize, usize)],
    n_units: usize,
    ctx: &StageContext,
    only: Option<&str>,
) -> Result<Option<Vec<CountMap>>, StageError> {
    // The grid and each file's place on it: a world file beside a raster moves them.
    let placement: Vec<Vec<(usize, usize)>> = group
        .mosaics
        .iter()
        .map(|m| m.files.iter().map(|f| (f.col, f.row)).collect())
        .collect();
    let memos = LayerMemos::new(params, group, years, pairs, &placement);
    let parts = PartMemos::new(params, group, years);
    let (by_parts, part_counts) = if only.is_some() {
        // A shard counts its part of a year of several files (see PartMemos).
        let wanted_parts = parts.shard_parts(only);
        let counts = parts.counts(&wanted_parts, group, grid, n_units, ctx)?;
        (parts.layers(), counts)
    } else {
        // Counts and areas (pixels, whole cm²) are integers, so the sum of a year's parts
        // equals the year read whole: memoised parts serve when all are there, and otherwise
        // the year is read in the pass with the others, once.
        parts.memoised(ctx)?
    };
    let wanted: Vec<usize> = match only {
        Some(shard) => memos.shard_layers(shard),
        None => (0..memos.len()).collect(),
    }
    .into_iter()
    .filter(|j| !by_parts.contains(j))
    .collect();
    if only.is_some() && wanted.is_empty() && part_counts.is_empty() {
        return Ok(None);
    }
    let mut found = memos.lookup(&wanted, ctx)?;
    let missing: Vec<usize> = wanted
        .iter()
        .copied()
        .filter(|&j| found[j].is_none())
        .collect();
    if !missing.is_empty() {
        let layers: Vec<&Mosaic> = group.mosaics.iter().collect();
        let computed = count_missing(&layers, pairs, &missing, grid, n_units, ctx)?;
        for (j, layer) in computed {
            memos.store(j, &layer, ctx)?;
            found[j] = Some(layer);
        }
    }
    if only.is_some() {
        return Ok(None);
    }
    for (k, counts) in parts.sum_by_layer(part_counts) {
        found[k] = Some(counts);
    }
    Ok(Some(
        found
            .into_iter()
            .map(|c| c.expect("every layer and pair was found or computed"))
            .collect(),
    ))
}

/// One pass over the layers the `missing` entries (layers, then pairs) need; the count map of
/// each missing entry, by entry.
fn count_missing(
    layers: &[&Mosaic],
    pairs: &[(usize, usize)],
    missing: &[usize],
    grid: &GroupGrid,
    n_units: usize,
    ctx: &StageContext,
) -> Result<Vec<(usize, CountMap)>, StageError> {
    let (sub, sub_pairs) = pass_plan(layers.len(), pairs, missing);
    let sub_layers: Vec<&Mosaic> = sub.iter().map(|&k| layers[k]).collect();
    note_pass(&sub_layers);
    let counts = histogram_pass(
        &sub_layers,
        &sub_pairs,
        &grid.spans,
        n_units,
        grid.area.rows_cm2(),
        &grid.transform,
        &StageObserver(ctx),
    )
    .map_err(|e| match e {
        PassError::Io(e) => StageError::from(e),
        PassError::Cancelled => StageError::failed("cancelled"),
    })?;
    let targets = sub.iter().copied().chain(sub_pairs.iter().map(|&(a, b)| {
        let pair = (sub[a], sub[b]);
        layers.len()
            + pairs
                .iter()
                .position(|&p| p == pair)
                .expect("a pass pair is a group pair")
    }));
    Ok(targets
        .zip(counts)
        .filter(|(j, _)| missing.contains(j))
        .collect())
}

/// The group's count maps as results: each year's codes, and each pair's raw code pairs folded
/// into class pairs by the scheme.
fn classified_results(
    group: &Group,
    years: &[YearFiles],
    pairs: &[(usize, usize)],
    mut counts: Vec<CountMap>,
    area: &Arc<PixelArea>,
    scheme: &Scheme,
) -> Result<GroupResult, StageError> {
    let layers = &group.mosaics;
    let layout = &group.years;
    let class_luts: Vec<Box<[u8; 1 << 16]>> =
        layers.iter().map(|m| class_lut(m.nodata, scheme)).collect();
    for (p, &(a, b)) in pairs.iter().enumerate() {
        check_pair_codes(&counts[a], &layers[a])?;
        check_pair_codes(&counts[b], &layers[b])?;
        let raw = std::mem::take(&mut counts[layers.len() + p]);
        counts[layers.len() + p] = classify_pairs(raw, &class_luts[a], &class_luts[b]);
    }
    let mut counts = counts.into_iter();
    let year_out = layout
        .iter()
        .zip(layers)
        .map(|(&i, layer)| {
            let codes = counts.next().expect("one layer per raster");
            let result = YearResult {
                codes,
                area: Arc::clone(area),
                nodata: layer.nodata,
            };
            (i, result)
        })
        .collect();
    let pair_out = pairs
        .iter()
        .map(|&(a, b)| PairResult {
            from: years[layout[a]].year,
            to: years[layout[b]].year,
            counts: counts.next().expect("one layer per pair"),
            area: Arc::clone(area),
        })
        .collect();
    Ok(GroupResult {
        years: year_out,
        pairs: pair_out,
    })
}

/// The memos of one group: a histogram per year (`histogram`) and raw transitions per pair of
/// consecutive years (`transitions`), in that order. They do not depend on the scheme: each is
/// keyed on the units, its years' rasters, the CRS and its place on the group's grid, so a
/// changed reclassification, or a changed raster of another year, reuses it.
struct LayerMemos {
    /// (memo name, inputs it depends on, its parameters, shard name) per layer then pair.
    entries: Vec<(&'static str, Vec<String>, serde_json::Value, String)>,
}

impl LayerMemos {
    fn new(
        params: &Params,
        group: &Group,
        years: &[YearFiles],
        pairs: &[(usize, usize)],
        placement: &[Vec<(usize, usize)>],
    ) -> Self {
        let t = group.transform;
        let depends = |ks: &[usize]| -> Vec<String> {
            std::iter::once("port:units".to_owned())
                .chain(ks.iter().flat_map(|&k| {
                    years[group.years[k]]
                        .sources
                        .iter()
                        .map(|s| format!("source:{s}"))
                }))
                .collect()
        };
        let year = |k: usize| years[group.years[k]].year;
        let mut entries = Vec::new();
        for (k, place) in placement.iter().enumerate() {
            let memo_params = serde_json::json!({
                "crs": params.crs,
                "grid": [t.x0, t.y0, t.dx, t.dy, group.width, group.height],
                "placement": place,
                "year": year(k),
            });
            entries.push(("histogram", depends(&[k]), memo_params, year(k).to_string()));
        }
        for &(a, b) in pairs {
            let memo_params = serde_json::json!({
                "crs": params.crs,
                "grid": [t.x0, t.y0, t.dx, t.dy, group.width, group.height],
                "placement": [&placement[a], &placement[b]],
                "years": [year(a), year(b)],
            });
            let name = format!("{}-{}", year(a), year(b));
            entries.push(("transitions", depends(&[a, b]), memo_params, name));
        }
        Self { entries }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entries shard `shard` computes (none when its years are not in this group).
    fn shard_layers(&self, shard: &str) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&j| self.entries[j].3 == shard)
            .collect()
    }

    /// The memoised count maps of `wanted`, by entry; `None` where not memoised.
    fn lookup(
        &self,
        wanted: &[usize],
        ctx: &StageContext,
    ) -> Result<Vec<Option<CountMap>>, StageError> {
        let mut found = vec![None; self.entries.len()];
        for &j in wanted {
            let (name, depends, memo_params, _) = &self.entries[j];
            if let Some(table) = ctx.memo_lookup(name, depends, memo_params)? {
                found[j] = table_to_layers(&table, 1)?.pop();
            }
        }
        Ok(found)
    }

    fn store(&self, j: usize, counts: &CountMap, ctx: &StageContext) -> Result<(), StageError> {
        let (name, depends, memo_params, _) = &self.entries[j];
        let table = layers_to_table(std::slice::from_ref(counts))?;
        ctx.memo_store(name, depends, memo_params, &table)
    }
}

/// The memos of the years of a group made of several files, one per part of each such year
/// (each file's pixels alone, then the shared pixels: [`MosaicPart`]), counted by the shards
/// of a SLURM run. A year's histogram is the sum of its parts; counts and areas (whole cm²)
/// are integers, so that sum equals the year read whole in a local run, byte for byte. A
/// file's part is keyed on that file, the units and every file's extent, so new data in
/// another file of the year leaves it valid.
struct PartMemos {
    /// Per part: its layer in the group, the part, and the memo's name, inputs, parameters and
    /// shard, in layer then part order.
    entries: Vec<PartEntry>,
}

/// Count maps of parts, each with its index into [`PartMemos`]' entries.
type PartCounts = Vec<(usize, CountMap)>;

struct PartEntry {
    layer: usize,
    part: MosaicPart,
    depends: Vec<String>,
    memo_params: serde_json::Value,
    shard: String,
}

impl PartMemos {
    fn new(params: &Params, group: &Group, years: &[YearFiles]) -> Self {
        let t = group.transform;
        let listed = params.years().unwrap_or_default();
        let mut entries = Vec::new();
        for (k, mosaic) in group.mosaics.iter().enumerate() {
            if mosaic.files.len() < 2 {
                continue;
            }
            let y = &years[group.years[k]];
            let paths = listed
                .iter()
                .find(|(year, _)| *year == y.year)
                .map_or(1, |(_, files)| year_paths(files));
            let rects: Vec<[usize; 4]> = mosaic
                .files
                .iter()
                .map(|f| [f.col, f.row, f.info.width, f.info.height])
                .collect();
            let source = |s: &String| format!("source:{s}");
            for part in MosaicPart::all(mosaic) {
                let (depends_on, which, file_source) = match part {
                    MosaicPart::Alone(i) => (
                        vec![source(&y.sources[i])],
                        serde_json::json!(i),
                        y.sources[i].as_str(),
                    ),
                    MosaicPart::Shared => {
                        (y.sources.iter().map(source).collect(), serde_json::json!("shared"), "")
                    }
                };
                entries.push(PartEntry {
                    layer: k,
                    part,
                    depends: std::iter::once("port:units".to_owned())
                        .chain(depends_on)
                        .collect(),
                    memo_params: serde_json::json!({
                        "crs": params.crs,
                        "grid": [t.x0, t.y0, t.dx, t.dy, group.width, group.height],
                        "rects": rects,
                        "year": y.year,
                        "part": which,
                    }),
                    shard: part_shard(y.year, paths, part, file_source),
                });
            }
        }
        Self { entries }
    }

    /// The group's layers (years) of several files.
    fn layers(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self.entries.iter().map(|e| e.layer).collect();
        out.dedup();
        out
    }

    /// The layers whose parts are all memoised, with those parts' count maps.
    fn memoised(
        &self,
        ctx: &StageContext,
    ) -> Result<(Vec<usize>, PartCounts), StageError> {
        let (mut layers, mut counts) = (Vec::new(), Vec::new());
        for layer in self.layers() {
            let mut found = Vec::new();
            for p in (0..self.entries.len()).filter(|&p| self.entries[p].layer == layer) {
                match self.lookup(p, ctx)? {
                    Some(c) => found.push((p, c)),
                    None => break,
                }
            }
            if found.len() == self.entries.iter().filter(|e| e.layer == layer).count() {
                layers.push(layer);
                counts.extend(found);
            }
        }
        Ok((layers, counts))
    }

    fn lookup(&self, p: usize, ctx: &StageContext) -> Result<Option<CountMap>, StageError> {
        let e = &self.entries[p];
        match ctx.memo_lookup("histogram_part", &e.depends, &e.memo_params)? {
            Some(table) => Ok(Some(table_to_layers(&table, 1)?.pop().unwrap_or_default())),
            None => Ok(None),
        }
    }

    /// The parts shard `only` counts; every part without a shard.
    fn shard_parts(&self, only: Option<&str>) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&p| only.is_none_or(|shard| self.entries[p].shard == shard))
            .collect()
    }

    /// The count maps of the `wanted` parts, from the memos where they are, else counted (and
    /// stored), in the order of `wanted`.
    fn counts(
        &self,
        wanted: &[usize],
        group: &Group,
        grid: &GroupGrid,
        n_units: usize,
        ctx: &StageContext,
    ) -> Result<PartCounts, StageError> {
        let mut out = Vec::with_capacity(wanted.len());
        for &p in wanted {
            let e = &self.entries[p];
            let counts = match self.lookup(p, ctx)? {
                Some(counts) => counts,
                None => {
                    let counts = count_part(&group.mosaics[e.layer], e.part, grid, n_units, ctx)?;
                    let table = layers_to_table(std::slice::from_ref(&counts))?;
                    ctx.memo_store("histogram_part", &e.depends, &e.memo_params, &table)?;
                    counts
                }
            };
            out.push((p, counts));
        }
        Ok(out)
    }

    /// Each year's histogram: the sum of its parts' counts, in part order.
    fn sum_by_layer(&self, parts: PartCounts) -> Vec<(usize, CountMap)> {
        let mut out: Vec<(usize, CountMap)> = Vec::new();
        for (p, counts) in parts {
            let layer = self.entries[p].layer;
            if out.last().is_none_or(|(k, _)| *k != layer) {
                out.push((layer, CountMap::new()));
            }
            let total = &mut out.last_mut().expect("pushed above").1;
            for (key, (pixels, area)) in counts {
                let e = total.entry(key).or_insert((0, 0));
                e.0 += pixels;
                e.1 += area;
            }
        }
        out
    }
}

/// One part of a mosaic counted in a pass of its own: the units' pixels clipped to the part,
/// read through the file alone or through the whole mosaic.
fn count_part(
    mosaic: &Mosaic,
    part: MosaicPart,
    grid: &GroupGrid,
    n_units: usize,
    ctx: &StageContext,
) -> Result<CountMap, StageError> {
    let spans = grid.spans.clipped(|row| part.columns(mosaic, row));
    let layer = part.layer(mosaic).map_err(StageError::internal)?;
    note_pass(&[&layer]);
    let mut counts = histogram_pass(
        &[&layer],
        &[],
        &spans,
        n_units,
        grid.area.rows_cm2(),
        &grid.transform,
        &StageObserver(ctx),
    )
    .map_err(pass_error)?;
    Ok(counts.pop().expect("one count map per layer"))
}

#[cfg(test)]
thread_local! {
    /// The files of each layer of each raster pass this thread made, in order: tests assert
    /// that a run reads each year once.
    static PASSES_READ: std::cell::RefCell<Vec<Vec<Vec<PathBuf>>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Records a pass over `layers` for the tests; nothing outside them.
fn note_pass(layers: &[&Mosaic]) {
    #[cfg(test)]
    PASSES_READ.with_borrow_mut(|passes| {
        passes.push(
            layers
                .iter()
                .map(|m| m.files.iter().map(|f| f.info.path.clone()).collect())
                .collect(),
        );
    });
    #[cfg(not(test))]
    let _ = layers;
}

fn pass_error(e: PassError) -> StageError {
    match e {
        PassError::Io(e) => StageError::from(e),
        PassError::Cancelled => StageError::failed("cancelled"),
    }
}

/// What one group's pass gives: each year's histogram (by index into all years) and the
/// transitions between its consecutive years.
struct GroupResult {
    years: Vec<(usize, YearResult)>,
    pairs: Vec<PairResult>,
}

/// The `coverage` rows, unit-major: row = unit · n_years + year.
fn coverage_rows<'a>(
    ids: &'a [String],
    years: &[i64],
    results: &[YearResult],
    scheme: &Scheme,
) -> Vec<CoverageRow<'a>> {
    let mut out = Vec::with_capacity(ids.len() * years.len());
    for (u, id) in ids.iter().enumerate() {
        let unit = u32::try_from(u).expect("fewer than 2³² units");
        for (res, &year) in results.iter().zip(years) {
            let (mut px, mut nd_px, mut cm2, mut nd_cm2) = (0u64, 0u64, 0u64, 0u64);
            for (&(_, code), &(n, summed_cm2)) in res.codes.range((unit, 0)..=(unit, u32::MAX)) {
                px += n;
                if res.nodata == Some(code)
                    || scheme.classify(i64::from(code)) == CodeClass::Excluded
                {
                    nd_px += n;
                    nd_cm2 += summed_cm2;
                } else {
                    cm2 += summed_cm2;
                }
            }
            out.push(CoverageRow {
                unit: id,
                year,
                pixels: to_i64(px),
                nodata_pixels: to_i64(nd_px),
                area_ha: res.area.area_m2(px - nd_px, cm2) / 1e4,
                nodata_ha: res.area.area_m2(nd_px, nd_cm2) / 1e4,
            });
        }
    }
    out
}

/// The share of NoData above which a unit is reported (a clipped provincial file loses a few
/// per cent of a border county).
const NODATA_SHARE_WARN: f64 = 0.005;

/// Refuses years that cannot be right (no data inside any unit; data over less than
/// `min_coverage` of the units' polygon area) and units without data (unless allowed), and
/// warns once about units with NoData.
fn check_coverage(
    params: &Params,
    cov: &[CoverageRow<'_>],
    polygon_ha: &[f64],
    years: &[YearFiles],
    ctx: &StageContext,
) -> Result<(), StageError> {
    let n_years = years.len();
    let files = |yi: usize| {
        years[yi]
            .infos
            .iter()
            .map(|i| i.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let overlap_hint = "check that the units and the rasters cover the same area: unit polygons are read as lon/lat degrees (a GeoJSON in EPSG:3857, swapped lat/lon or shifted units land elsewhere), and the raster's georeferencing must be right (`gdalinfo <file>`)";
    let total_polygon_ha: f64 = polygon_ha.iter().sum();
    // Rows are unit-major: row = unit · n_years + year.
    for (yi, y) in years.iter().enumerate() {
        let rows = (yi..cov.len()).step_by(n_years);
        let (data_ha, counted_ha) = rows.fold((0.0, 0.0), |(d, c), i| {
            (d + cov[i].area_ha, c + cov[i].area_ha + cov[i].nodata_ha)
        });
        if data_ha == 0.0 {
            return Err(StageError::data(format!(
                "year {}: no pixel inside any unit has data in {} ({counted_ha:.1} ha of the units' {total_polygon_ha:.1} ha fall on the raster, all NoData)",
                y.year,
                files(yi)
            ))
            .with_hint(overlap_hint));
        }
        let share = data_ha / total_polygon_ha;
        if total_polygon_ha > 0.0 && share < params.min_coverage {
            return Err(StageError::data(format!(
                "year {}: only {:.1} % of the units' polygon area ({data_ha:.1} of {total_polygon_ha:.1} ha) has data in {} ({counted_ha:.1} ha fall on the raster at all)",
                y.year,
                100.0 * share,
                files(yi)
            ))
            .with_hint(format!(
                "{overlap_hint}; if the rasters are meant to cover only part of the units, lower `min_coverage` (now {})",
                params.min_coverage
            )));
        }
    }
    let empty: Vec<String> = (0..cov.len())
        .filter(|&i| cov[i].area_ha == 0.0)
        .map(|i| format!("`{}` ({})", cov[i].unit, cov[i].year))
        .collect();
    if !empty.is_empty() {
        let shown = empty
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        let more = if empty.len() > 10 {
            format!(" and {} more", empty.len() - 10)
        } else {
            String::new()
        };
        let text = format!(
            "{} unit-year(s) have no pixel with data: {shown}{more}",
            empty.len()
        );
        if !params.allow_empty_units {
            return Err(StageError::data(text).with_hint(format!(
                "{overlap_hint}; units outside the rasters or smaller than a pixel can be kept with zero areas by `allow_empty_units: true`"
            )));
        }
        ctx.warn(format!(
            "{text}; their areas are 0 (`allow_empty_units: true`)"
        ));
    }
    warn_nodata_share(cov, ctx);
    Ok(())
}

fn warn_nodata_share(cov: &[CoverageRow<'_>], ctx: &StageContext) {
    let mut count = 0;
    let mut worst: Option<(usize, f64)> = None;
    for (i, row) in cov.iter().enumerate() {
        let counted = row.area_ha + row.nodata_ha;
        if row.area_ha == 0.0 || counted == 0.0 {
            continue; // Reported as a unit without data.
        }
        let share = row.nodata_ha / counted;
        if share > NODATA_SHARE_WARN {
            count += 1;
            if worst.is_none_or(|(_, s)| share > s) {
                worst = Some((i, share));
            }
        }
    }
    if let Some((i, share)) = worst {
        ctx.warn(format!(
            "{count} unit-year(s) have more than {} % of their pixels NoData; the worst is `{}` in {} with {:.2} % (see output `coverage`)",
            100.0 * NODATA_SHARE_WARN,
            cov[i].unit,
            cov[i].year,
            100.0 * share
        ));
    }
}

/// One row of `areas`; `pixels` is null for yearbook areas. Rows borrow the unit ids and
/// name classes by value, so that the millions of rows of a national annual study cost a few
/// dozen bytes each (no allocation per row).
struct AreaRow<'a> {
    unit: &'a str,
    year: i64,
    class: LandClass,
    pixels: Option<i64>,
    area_ha: f64,
}

/// One row of `codes`.
struct CodeRow<'a> {
    unit: &'a str,
    year: i64,
    code: i64,
    pixels: i64,
}

/// One row of `transitions`, or of `transitions_total` (whose `unit` stays empty).
struct TransitionRow<'a> {
    unit: &'a str,
    year_from: i64,
    year_to: i64,
    class_from: LandClass,
    class_to: LandClass,
    area_ha: f64,
}

impl<'a> TransitionRow<'a> {
    fn new(unit: &'a str, pair: &PairResult, (a, b): (LandClass, LandClass), area_ha: f64) -> Self {
        Self {
            unit,
            year_from: pair.from,
            year_to: pair.to,
            class_from: a,
            class_to: b,
            area_ha,
        }
    }
}

/// One row of `dynamics`.
struct DynamicsRow<'a> {
    unit: &'a str,
    year_from: i64,
    year_to: i64,
    class: &'static str,
    degree_pct_per_year: Option<f64>,
}

/// One row of `coverage`: NoData accounting per unit and year, every pixel centre inside the
/// unit and how much of it is NoData (the file's NoData value, a pixel no file of the year
/// covers, or a fill code the scheme excludes).
struct CoverageRow<'a> {
    unit: &'a str,
    year: i64,
    pixels: i64,
    nodata_pixels: i64,
    area_ha: f64,
    nodata_ha: f64,
}

fn areas_schema<'a>() -> TableSchema<AreaRow<'a>> {
    TableSchema::<AreaRow<'a>>::new(
        "areas",
        "area of each class per unit and year (every class listed, zeros included)",
    )
    .text(UNIT_ID, |r| r.unit)
    .int("year", |r| r.year)
    .text("class", |r| r.class.as_str())
    .int_or_null("pixels", |r| r.pixels)
    .float("area_ha", |r| r.area_ha)
}

fn transitions_schema<'a>() -> TableSchema<TransitionRow<'a>> {
    TableSchema::<TransitionRow<'a>>::new(
        "transitions",
        "per unit, area that was class_from in year_from and class_to in year_to, for consecutive years (pixels with NoData or an unclassified code in either year left out)",
    )
    .text(UNIT_ID, |r| r.unit)
    .int("year_from", |r| r.year_from)
    .int("year_to", |r| r.year_to)
    .text("class_from", |r| r.class_from.as_str())
    .text("class_to", |r| r.class_to.as_str())
    .float("area_ha", |r| r.area_ha)
}

fn transitions_total_schema<'a>() -> TableSchema<TransitionRow<'a>> {
    TableSchema::<TransitionRow<'a>>::new(
        "transitions_total",
        "the transfer matrices summed over all units",
    )
    .int("year_from", |r| r.year_from)
    .int("year_to", |r| r.year_to)
    .text("class_from", |r| r.class_from.as_str())
    .text("class_to", |r| r.class_to.as_str())
    .float("area_ha", |r| r.area_ha)
}

fn codes_schema<'a>() -> TableSchema<CodeRow<'a>> {
    TableSchema::<CodeRow<'a>>::new(
        "codes",
        "raw pixel counts per unit, year and code before reclassification (NoData left out)",
    )
    .text(UNIT_ID, |r| r.unit)
    .int("year", |r| r.year)
    .int("code", |r| r.code)
    .int("pixels", |r| r.pixels)
}

fn dynamics_schema<'a>() -> TableSchema<DynamicsRow<'a>> {
    TableSchema::<DynamicsRow<'a>>::new(
        "dynamics",
        "per unit and consecutive years: the single dynamic degree K = (A_t2 − A_t1)/A_t1/T × 100 of each class, and class `all` with the comprehensive dynamic degree LC = Σ_i≠j ΔLU_i→j/(2 Σ LU_t1)/T × 100 of the transfer matrix; in % per year, null where A_t1 = 0 (and for `all` without a transfer matrix)",
    )
    .text(UNIT_ID, |r| r.unit)
    .int("year_from", |r| r.year_from)
    .int("year_to", |r| r.year_to)
    .text("class", |r| r.class)
    .float_or_null("degree_pct_per_year", |r| r.degree_pct_per_year)
}

fn coverage_schema<'a>() -> TableSchema<CoverageRow<'a>> {
    TableSchema::<CoverageRow<'a>>::new(
        "coverage",
        "NoData accounting per unit and year: pixel centres inside the unit (NoData included), those with NoData (the file's NoData, outside every file of the year, or a fill code the scheme excludes), and the areas of both; empty for the `areas` table",
    )
    .text(UNIT_ID, |r| r.unit)
    .int("year", |r| r.year)
    .int("pixels", |r| r.pixels)
    .int("nodata_pixels", |r| r.nodata_pixels)
    .float("area_ha", |r| r.area_ha)
    .float("nodata_ha", |r| r.nodata_ha)
}

/// The stage's outputs; `dynamics` follows from the areas and the transfer matrices' sums.
/// Tables of millions of rows come built (`codes`, `transitions`) and the rest are built from
/// rows that are then dropped, so no output's rows outlive its table.
fn tables(
    areas: Vec<AreaRow<'_>>,
    transfers: Transfers<'_>,
    codes: (String, arrow_array::RecordBatch),
    coverage: &[CoverageRow<'_>],
) -> Result<Outputs, StageError> {
    let dynamics = dynamics_table(&areas, &transfers.sums)?;
    Ok(vec![
        areas_schema().build(&areas)?,
        transfers.table,
        transfers.totals,
        codes,
        dynamics,
        coverage_schema().build(coverage)?,
    ])
}

/// The `dynamics` table: per unit and pair of consecutive years, the single dynamic degree of
/// each class and, as class `all`, the comprehensive dynamic degree of the unit's transfer
/// matrix (null without one, as for yearbook areas). Built a unit at a time.
fn dynamics_table(
    areas: &[AreaRow<'_>],
    matrices: &BTreeMap<(&str, i64, i64), TransferSums>,
) -> Result<(String, arrow_array::RecordBatch), StageError> {
    let mut by_unit: BTreeMap<&str, BTreeMap<i64, [f64; 7]>> = BTreeMap::new();
    for r in areas {
        by_unit
            .entry(r.unit)
            .or_default()
            .entry(r.year)
            .or_insert([0.0; 7])[r.class.index()] += r.area_ha;
    }
    // Wetland rows exist only when the study keeps wetland apart.
    let classes: &[LandClass] = if areas.iter().any(|r| r.class == LandClass::Wetland) {
        &LandClass::WITH_WETLAND
    } else {
        &LandClass::ALL
    };
    let pairs: usize = by_unit.values().map(|y| y.len().saturating_sub(1)).sum();
    let schema = dynamics_schema();
    let mut table = schema.parts(pairs * (classes.len() + 1));
    for (unit, by_year) in &by_unit {
        table.append(&unit_dynamics_rows(unit, by_year, matrices, classes));
    }
    table.finish()
}

/// One unit's `dynamics` rows, by consecutive years then class (`all` last).
fn unit_dynamics_rows<'a>(
    unit: &'a str,
    by_year: &BTreeMap<i64, [f64; 7]>,
    matrices: &BTreeMap<(&str, i64, i64), TransferSums>,
    classes: &[LandClass],
) -> Vec<DynamicsRow<'a>> {
    let years: Vec<i64> = by_year.keys().copied().collect();
    let mut out = Vec::with_capacity(years.len() * (classes.len() + 1));
    for pair in years.windows(2) {
        let (y1, y2) = (pair[0], pair[1]);
        let row = |class: &'static str, degree| DynamicsRow {
            unit,
            year_from: y1,
            year_to: y2,
            class,
            degree_pct_per_year: degree,
        };
        for class in classes {
            let a1 = by_year[&y1][class.index()];
            let a2 = by_year[&y2][class.index()];
            out.push(row(
                class.as_str(),
                single_dynamic_degree_pct_per_year(a1, a2, y2 - y1),
            ));
        }
        let lc = matrices.get(&(unit, y1, y2)).and_then(|m| {
            comprehensive_dynamic_degree_from_sums_pct_per_year(m.changed_ha, m.total_ha, y2 - y1)
        });
        out.push(row("all", lc));
    }
    out
}

/// One unit's transfer matrix between two years, summed: all of it and its off-diagonal cells.
#[derive(Default)]
struct TransferSums {
    total_ha: f64,
    changed_ha: f64,
}

/// The sums of each unit's transfer matrix, by (unit, year_from, year_to), each added up in row
/// order. A matrix's rows arrive together, so one lookup serves a run of rows.
fn transfer_sums<'a>(
    transitions: &[TransitionRow<'a>],
) -> BTreeMap<(&'a str, i64, i64), TransferSums> {
    let key = |r: &TransitionRow<'a>| (r.unit, r.year_from, r.year_to);
    let mut sums: BTreeMap<(&str, i64, i64), TransferSums> = BTreeMap::new();
    for run in transitions.chunk_by(|a, b| key(a) == key(b)) {
        let m = sums.entry(key(&run[0])).or_default();
        for r in run {
            m.total_ha += r.area_ha;
            if r.class_from != r.class_to {
                m.changed_ha += r.area_ha;
            }
        }
    }
    sums
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).expect("pixel counts and cm² sums fit i64 (see CM2_PER_M2)")
}

/// The stage's context as a pass sees it: cancellation and progress.
struct StageObserver<'a>(&'a StageContext);

impl PassObserver for StageObserver<'_> {
    fn cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
    fn progress(&self, done: u64, total: u64, unit: &str) {
        self.0.progress(done, total, unit);
    }
}

/// Transitions are counted on raw codes capped at 255: a 16-bit raster whose classes use codes
/// above 254 cannot be told apart there.
fn check_pair_codes(codes: &CountMap, layer: &Mosaic) -> Result<(), StageError> {
    if let Some(&(_, code)) = codes
        .keys()
        .find(|&&(_, c)| c >= 255 && layer.nodata != Some(c))
    {
        return Err(StageError::data(format!(
            "{}: code {code}: transition matrices need class codes below 255",
            layer.files[0].info.path.display()
        ))
        .with_hint(
            "recode the raster (CLCD and CNLUCC codes are all below 255), or list one year only",
        ));
    }
    Ok(())
}

/// The count maps of a pass as a table (layer, unit, code, pixels, area_cm2), for the memo.
fn layers_to_table(layers: &[CountMap]) -> Result<arrow_array::RecordBatch, StageError> {
    let rows = || {
        layers
            .iter()
            .enumerate()
            .flat_map(|(layer, map)| map.iter().map(move |(k, v)| (layer, k, v)))
    };
    TableBuilder::new()
        .i64("layer", rows().map(|(layer, _, _)| layer as i64).collect())
        .i64(
            "unit",
            rows().map(|(_, &(unit, _), _)| i64::from(unit)).collect(),
        )
        .i64(
            "code",
            rows().map(|(_, &(_, code), _)| i64::from(code)).collect(),
        )
        .i64(
            "pixels",
            rows().map(|(_, _, &(pixels, _))| to_i64(pixels)).collect(),
        )
        .i64(
            "area_cm2",
            rows().map(|(_, _, &(_, area))| to_i64(area)).collect(),
        )
        .build()
}

/// The inverse of [`layers_to_table`].
fn table_to_layers(
    t: &arrow_array::RecordBatch,
    n_layers: usize,
) -> Result<Vec<CountMap>, StageError> {
    let name = "landuse histograms";
    let (layer, unit, code) = (
        table::i64s(t, name, "layer")?,
        table::i64s(t, name, "unit")?,
        table::i64s(t, name, "code")?,
    );
    let (pixels, area) = (
        table::i64s(t, name, "pixels")?,
        table::i64s(t, name, "area_cm2")?,
    );
    let mut layers = vec![CountMap::new(); n_layers];
    for i in 0..t.num_rows() {
        let bad = || StageError::internal("a memoised histogram does not fit this raster layout");
        let map = layers
            .get_mut(usize::try_from(layer[i]).map_err(|_| bad())?)
            .ok_or_else(bad)?;
        let key = (
            u32::try_from(unit[i]).map_err(|_| bad())?,
            u32::try_from(code[i]).map_err(|_| bad())?,
        );
        let pixels = u64::try_from(pixels[i]).map_err(|_| bad())?;
        map.insert(key, (pixels, u64::try_from(area[i]).map_err(|_| bad())?));
    }
    Ok(layers)
}

/// The tabular path: yearbook areas per unit, year and class (or code).
fn tabular(
    t: &arrow_array::RecordBatch,
    scheme: Option<&Scheme>,
    allow_empty: bool,
    wetland: Wetland,
    ctx: &StageContext,
) -> Result<Outputs, StageError> {
    let ids = table::ids(t, "areas", UNIT_ID)?;
    let years = table::i64s(t, "areas", "year")?;
    let area = table::f64s(t, "areas", "area_ha")?;
    let classes: Vec<LandClass> = if table::has_column(t, "class") {
        let names = table::strings(t, "areas", "class")?;
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                match LandClass::parse(n) {
                    Some(LandClass::Wetland) if wetland == Wetland::Water => Ok(LandClass::Water),
                    Some(c) => Ok(c),
                    None => Err(StageError::data(format!("`areas` row {} (unit `{}`, year {}): class `{n}` is not a land class", i + 1, ids[i], years[i]))
                        .with_hint("classes: cultivated, forest, grassland, water, construction, unused, wetland (or give a `code` column and a `scheme`)")),
                }
            })
            .collect::<Result<_, _>>()?
    } else if table::has_column(t, "code") {
        let scheme = scheme.ok_or_else(|| {
            StageError::data("`areas` has a `code` column but no `scheme` is given")
                .with_hint("add `scheme: cnlucc` (or clcd, igbp, a CSV)")
        })?;
        let codes = table::i64s(t, "areas", "code")?;
        let mut out = Vec::with_capacity(codes.len());
        for (i, &code) in codes.iter().enumerate() {
            match scheme.classify(code) {
                CodeClass::Class(c) => out.push(Some(c)),
                CodeClass::Excluded => out.push(None),
                CodeClass::Unmapped => {
                    return Err(StageError::data(format!(
                        "`areas` row {} (unit `{}`, year {}): code {code} is not in scheme `{}`",
                        i + 1,
                        ids[i],
                        years[i],
                        scheme.name
                    ))
                    .with_hint("add the code to a scheme CSV (code,class) or fix the table"));
                }
            }
        }
        // Excluded codes (fill, sea) are dropped; keep a placeholder to align rows.
        return tabular_rows(
            &ids,
            &years,
            &area,
            &out,
            wetland.classes(),
            allow_empty,
            ctx,
        );
    } else {
        return Err(
            StageError::column_missing("areas", "class", &table::column_names(t))
                .with_hint("give a `class` column, or a `code` column with a `scheme`"),
        );
    };
    let classes: Vec<Option<LandClass>> = classes.into_iter().map(Some).collect();
    tabular_rows(
        &ids,
        &years,
        &area,
        &classes,
        wetland.classes(),
        allow_empty,
        ctx,
    )
}

fn tabular_rows(
    ids: &[String],
    years: &[i64],
    area: &[f64],
    classes: &[Option<LandClass>],
    listed: &[LandClass],
    allow_empty: bool,
    ctx: &StageContext,
) -> Result<Outputs, StageError> {
    let mut sums: BTreeMap<(String, i64), [f64; 7]> = BTreeMap::new();
    for i in 0..ids.len() {
        let a = area[i];
        if a.is_nan() {
            return Err(StageError::data(format!(
                "`areas` row {} (unit `{}`, year {}): area_ha is missing",
                i + 1,
                ids[i],
                years[i]
            ))
            .with_hint("fill in the area or remove the row"));
        }
        if a < 0.0 || a.is_infinite() {
            return Err(StageError::data(format!(
                "`areas` row {} (unit `{}`, year {}): area_ha is {a}, expected ≥ 0",
                i + 1,
                ids[i],
                years[i]
            )));
        }
    }
    // Rows of one unit, year and class are added in ascending order of area, so the sums (float
    // addition is not associative) are the same however the table's rows are ordered.
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| {
        (&ids[a], years[a], classes[a].map(LandClass::index))
            .cmp(&(&ids[b], years[b], classes[b].map(LandClass::index)))
            .then(area[a].total_cmp(&area[b]))
    });
    for i in order {
        let entry = sums.entry((ids[i].clone(), years[i])).or_insert([0.0; 7]);
        if let Some(c) = classes[i] {
            entry[c.index()] += area[i];
        }
    }
    let empty: Vec<String> = sums
        .iter()
        .filter(|(_, s)| s.iter().all(|&a| a == 0.0))
        .map(|((id, year), _)| format!("`{id}` ({year})"))
        .collect();
    if !empty.is_empty() {
        let text = format!(
            "`areas`: {} unit-year(s) have all class areas 0: {}",
            empty.len(),
            empty
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !allow_empty {
            return Err(StageError::data(text).with_hint(
                "check the table's area column and units (a misread column reads as zeros); to keep such units with zero areas set `allow_empty_units: true`",
            ));
        }
        ctx.warn(format!("{text}; kept (`allow_empty_units: true`)"));
    }
    let areas: Vec<AreaRow<'_>> = sums
        .iter()
        .flat_map(|((id, year), s)| {
            listed.iter().map(move |&c| AreaRow {
                unit: id,
                year: *year,
                class: c,
                pixels: None,
                area_ha: s[c.index()],
            })
        })
        .collect();
    // Yearbook areas carry no pixels: no transfer matrix and no code histogram.
    let transfers = transfer_tables(&[], Vec::new(), listed, ctx)?;
    tables(areas, transfers, codes_schema().build(&[])?, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stage::{Entry, StageEntry};
    use arrow_array::{BinaryArray, RecordBatch};
    use geo::polygon;
    use std::path::Path;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/landuse")
    }

    /// A units table (unit_id, WKB geometry) from a GeoJSON fixture, parsed with `geojson`.
    fn units_table(name: &str) -> RecordBatch {
        let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
        let fc: geojson::FeatureCollection = text.parse().unwrap();
        let mut ids = Vec::new();
        let mut wkb = Vec::new();
        for f in fc.features {
            let id = f.properties.as_ref().unwrap()["unit_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let g: geo::Geometry<f64> =
                geo::Geometry::try_from(&f.geometry.unwrap().value).unwrap();
            let mp = match g {
                geo::Geometry::Polygon(p) => MultiPolygon(vec![p]),
                geo::Geometry::MultiPolygon(m) => m,
                other => panic!("unexpected {other:?}"),
            };
            ids.push(id);
            wkb.push(crate::io::wkb::encode(&mp));
        }
        TableBuilder::new()
            .str(UNIT_ID, &ids)
            .array(
                "geometry",
                Arc::new(BinaryArray::from_iter_values(wkb.iter())),
            )
            .build()
            .unwrap()
    }

    #[derive(Debug)]
    struct Run {
        outputs: BTreeMap<String, RecordBatch>,
        warnings: Vec<String>,
    }

    fn run(params: serde_json::Value, port: &str, table: RecordBatch) -> Result<Run, StageError> {
        run_in(params, port, table, None).map(|(r, _)| r)
    }

    /// As [`run`], the outputs written in parts going to files of `files` when given; the
    /// tables written to files come back too.
    fn run_in(
        mut params: serde_json::Value,
        port: &str,
        table: RecordBatch,
        files: Option<Arc<dyn crate::engine::output_writer::TempFiles>>,
    ) -> Result<(Run, Vec<crate::engine::output_writer::WrittenTable>), StageError> {
        // The fixture units include U4 (outside the rasters) and U5 (smaller than a pixel):
        // raster tests keep them unless they test the refusal itself.
        if let Some(p) = params.as_object_mut()
            && p.contains_key("rasters")
        {
            p.entry("allow_empty_units")
                .or_insert(serde_json::json!(true));
        }
        let prepared = Entry::<LandUse>::new().prepare(params)?;
        let sources: BTreeMap<String, PathBuf> =
            crate::engine::pattern::expand(&fixtures(), prepared.sources())
                .map_err(StageError::data)?
                .into_iter()
                .map(|s| (s.name, fixtures().join(s.path)))
                .collect();
        let mut ctx = StageContext::new("landuse", &fixtures(), sources);
        if let Some(files) = files {
            ctx = ctx.with_output_files(files);
        }
        let inputs = Inputs::new(BTreeMap::from([(port.to_owned(), table)]));
        let outputs = prepared.run(&inputs, &ctx)?;
        let run = Run {
            outputs: outputs.into_iter().collect(),
            warnings: ctx.take_warnings(),
        };
        Ok((run, ctx.take_written()))
    }

    #[test]
    fn outputs_written_to_files_have_the_bytes_of_the_tables_made_in_memory() {
        let params = serde_json::json!({
            "rasters": { "2000": "proj_u16_strip_deflate_pred2.tif",
                         "2005": "proj_u8_tiled_deflate.tif",
                         "2020": "proj_u8_tiled_deflate_2020.tif" },
            "scheme": "clcd",
        });
        let units = units_table("units_proj_lonlat.geojson");
        let in_memory = run(params.clone(), "units", units.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cache = crate::engine::cache::Cache::open(dir.path()).unwrap();
        let (on_disk, written) = run_in(params, "units", units, Some(Arc::new(cache))).unwrap();
        assert_eq!(on_disk.warnings, in_memory.warnings);
        let streamed = ["areas", "transitions", "codes", "dynamics", "coverage"];
        let names: Vec<&str> = written.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["transitions", "areas", "codes", "dynamics", "coverage"]);
        for w in &written {
            let whole = &in_memory.outputs[&w.name];
            assert!(whole.num_rows() > 0, "{}", w.name);
            assert_eq!(on_disk.outputs[&w.name].num_rows(), 0, "{}", w.name);
            let bytes = crate::io::parquet::to_bytes(whole).unwrap();
            assert!(std::fs::read(w.path()).unwrap() == bytes, "{} differs", w.name);
            assert_eq!(w.rows, whole.num_rows() as u64);
        }
        for (name, table) in &on_disk.outputs {
            if !streamed.contains(&name.as_str()) {
                assert_eq!(table, &in_memory.outputs[name], "{name} is returned whole");
            }
        }
    }

    /// `areas` as (unit, year, class) → (pixels, area_ha).
    fn areas(r: &Run) -> BTreeMap<(String, i64, String), (i64, f64)> {
        let t = &r.outputs["areas"];
        let (u, y, c) = (
            table::ids(t, "a", UNIT_ID).unwrap(),
            table::i64s(t, "a", "year").unwrap(),
            table::strings(t, "a", "class").unwrap(),
        );
        // Null pixels (tabular input) read as -1.
        let p: Vec<i64> = table::f64s(t, "a", "pixels")
            .unwrap()
            .iter()
            .map(|&v| if v.is_nan() { -1 } else { v as i64 })
            .collect();
        let a = table::f64s(t, "a", "area_ha").unwrap();
        (0..t.num_rows())
            .map(|i| ((u[i].clone(), y[i], c[i].clone()), (p[i], a[i])))
            .collect()
    }

    fn codes(r: &Run) -> BTreeMap<(String, i64, i64), i64> {
        let t = &r.outputs["codes"];
        let (u, y) = (
            table::ids(t, "c", UNIT_ID).unwrap(),
            table::i64s(t, "c", "year").unwrap(),
        );
        let (c, p) = (
            table::i64s(t, "c", "code").unwrap(),
            table::i64s(t, "c", "pixels").unwrap(),
        );
        (0..t.num_rows())
            .map(|i| ((u[i].clone(), y[i], c[i]), p[i]))
            .collect()
    }

    /// Hand counts for the 40 × 36 pattern of make_fixtures.py (tests/fixtures/landuse/README.md):
    /// U1 = cols 0..20 × rows 0..18: 180 px of 1 (cultivated) + 180 of 2 (forest).
    /// U2 = cols 5..35 × rows 10..30 (600 px) minus the hole cols 15..25 × rows 15..25 (100 px):
    ///   value 1: 40 (top, cols 5..10) + 120 (bottom, cols 10..20) − 35 (hole) = 125 cultivated;
    ///   2: 80 − 15 = 65 forest; 4: 80 − 15 = 65 grassland; 8: 40 construction; 5: 60 water;
    ///   7: 60 unused; 0 (NoData): 120 − 35 = 85 not counted.
    /// U3 = two parts: cols 30..40 × rows 0..5 (50 px of 8, construction) and cols 20..30 ×
    ///   rows 30..36 (all NoData).
    /// U4 = far outside; U5 = a triangle inside one pixel, covering no centre.
    /// U6 = cols 30..40 × rows 18..36: 174 px of 7 (unused) + 6 px of the unmapped code 12.
    fn expected_pixels() -> Vec<(&'static str, [i64; 6])> {
        // cultivated, forest, grassland, water, construction, unused
        vec![
            ("U1", [180, 180, 0, 0, 0, 0]),
            ("U2", [125, 65, 65, 60, 40, 60]),
            ("U3", [0, 0, 0, 0, 50, 0]),
            ("U4", [0; 6]),
            ("U5", [0; 6]),
            ("U6", [0, 0, 0, 0, 0, 174]),
        ]
    }

    #[test]
    fn projected_rasters_in_every_layout_match_hand_counts() {
        let variants = [
            "proj_u8_tiled_deflate.tif",
            "proj_u16_strip_deflate_pred2.tif",
            "proj_u8_strip_lzw.tif",
            "proj_u16_tiled_lzw.tif",
            "proj_u8_tiled_packbits.tif",
            "proj_u16_strip_packbits.tif",
            "proj_u8_strip_none.tif",
            "proj_u16_tiled_none.tif",
        ];
        for file in variants {
            let params = serde_json::json!({ "rasters": { "2000": file }, "scheme": "clcd" });
            let r = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap();
            let a = areas(&r);
            for (unit, px) in expected_pixels() {
                for c in LandClass::ALL {
                    let (p, ha) = a[&(unit.to_owned(), 2000, c.as_str().to_owned())];
                    assert_eq!(p, px[c.index()], "{file} {unit} {c}");
                    // 30 m × 30 m = 900 m² = 0.09 ha per pixel (Albers is equal-area).
                    assert!(
                        (ha - px[c.index()] as f64 * 0.09).abs() < 1e-9,
                        "{file} {unit} {c}: {ha}"
                    );
                }
            }
            let k = codes(&r);
            // NoData (0) is not in `codes`; the unmapped 12 is, with its 6 pixels.
            assert_eq!(k.get(&("U3".into(), 2000, 8)), Some(&50));
            assert_eq!(k.get(&("U3".into(), 2000, 0)), None);
            assert_eq!(k.get(&("U6".into(), 2000, 12)), Some(&6));
            let w = r.warnings.join("\n");
            assert!(
                w.contains("2 unit-year(s) have no pixel with data: `U4` (2000), `U5` (2000)"),
                "{w}"
            );
            assert!(w.contains("12 (6 px)"), "{w}");
        }
    }

    #[test]
    fn epsg_projected_raster_is_reprojected_and_flagged_as_not_equal_area() {
        // The same pattern and unit boxes on a UTM 50N grid (EPSG:32650 in the GeoKeys, no
        // parameters): units are reprojected through proj4rs' EPSG table.
        let params = serde_json::json!({ "rasters": { "2010": "utm_u8_tiled_deflate.tif" }, "scheme": "clcd" });
        let r = run(params, "units", units_table("units_utm_lonlat.geojson")).unwrap();
        let a = areas(&r);
        for (unit, px) in expected_pixels() {
            for c in LandClass::ALL {
                let (p, ha) = a[&(unit.to_owned(), 2010, c.as_str().to_owned())];
                assert_eq!(p, px[c.index()], "{unit} {c}");
                assert!((ha - px[c.index()] as f64 * 0.09).abs() < 1e-9);
            }
        }
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("EPSG:32650, which is not an equal-area projection")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn partial_units_and_mismatched_tilings_are_warned() {
        // A box across the west edge of the lon/lat raster: lon 112.95–113.05 × lat 34.90–34.95
        // holds the centres of cols 0–4 (113.005 … 113.045) × rows 5–9 → 25 px of value 1.
        let edge = polygon![(x: 112.95, y: 34.90), (x: 113.05, y: 34.90), (x: 113.05, y: 34.95), (x: 112.95, y: 34.95)];
        let wkb = crate::io::wkb::encode(&MultiPolygon(vec![edge]));
        let t = TableBuilder::new()
            .str(UNIT_ID, &["edge"])
            .array("geometry", Arc::new(BinaryArray::from_iter_values([wkb])))
            .build()
            .unwrap();
        // Half the box lies off the raster: accepted with a lower `min_coverage`.
        let params = serde_json::json!({ "rasters": { "2000": "geo_u16_tiled_deflate.tif" }, "scheme": "clcd", "min_coverage": 0.4 });
        let r = run(params, "units", t).unwrap();
        assert_eq!(
            areas(&r)[&("edge".to_owned(), 2000, "cultivated".to_owned())].0,
            25
        );
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("1 unit(s) extend beyond the raster") && w.contains("`edge`")),
            "{:?}",
            r.warnings
        );
        // Different grids (the Albers grid and a copy moved half a pixel east): areas for both
        // years, no transfer matrix, and a warning saying why.
        let dir = tempfile::tempdir().unwrap();
        let moved = dir.path().join("moved.tif");
        {
            use crate::io::geotiff_writer::{
                CategoricalRaster, Crs, GridPlacement, write_categorical,
            };
            let codes: Vec<u8> = (0..36)
                .flat_map(|r| (0..40).map(move |c| pattern(c, r)))
                .collect();
            let raster = CategoricalRaster {
                width: 40,
                height: 36,
                codes: &codes,
                placement: GridPlacement {
                    x_min: 766_035.0,
                    y_max: 3_711_150.0,
                    pixel_width: 30.0,
                    pixel_height: 30.0,
                },
                crs: Crs::albers_china(),
                nodata: Some(0),
                description: None,
            };
            write_categorical(&moved, &raster).unwrap();
        }
        let params = serde_json::json!({
            "rasters": { "2000": "proj_u8_tiled_deflate.tif", "2020": show(&moved) },
            "scheme": "clcd",
        });
        let r = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap();
        assert_eq!(r.outputs["areas"].num_rows(), 6 * 2 * 6);
        assert_eq!(r.outputs["transitions"].num_rows(), 0);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("no transitions 2000 → 2020")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn geographic_raster_uses_row_areas_on_the_ellipsoid() {
        let params = serde_json::json!({ "rasters": { "2005": "geo_u16_tiled_deflate.tif" }, "scheme": "clcd" });
        let r = run(params, "units", units_table("units_geo.geojson")).unwrap();
        let a = areas(&r);
        for (unit, px) in expected_pixels() {
            for c in LandClass::ALL {
                assert_eq!(
                    a[&(unit.to_owned(), 2005, c.as_str().to_owned())].0,
                    px[c.index()],
                    "{unit} {c}"
                );
            }
        }
        // pyproj 3.7.2 Geod(ellps="WGS84").polygon_area_perimeter of the same lon/lat boxes with
        // densified parallels (README): U1 cultivated = lon 113.0–113.1 × lat 34.82–35.0;
        // U3 construction = lon 113.3–113.4 × lat 34.95–35.0; U6 unused = lon 113.3–113.4 ×
        // lat 34.64–34.82 minus the 12-block lon 113.35–113.37 × lat 34.67–34.70.
        let checks = [
            ("U1", "cultivated", 18_249.270_713_745_296),
            ("U1", "forest", 18_249.270_713_745_296),
            ("U3", "construction", 5_065.299_587_724_562),
            ("U6", "unused", 17_678.526_351_526_38),
        ];
        for (unit, class, expect) in checks {
            let got = a[&(unit.to_owned(), 2005, class.to_owned())].1;
            assert!(
                ((got - expect) / expect).abs() < 1e-6,
                "{unit} {class}: {got} vs {expect}"
            );
        }
        // NoData 65535 is not in `codes`.
        assert!(codes(&r).keys().all(|k| k.2 != 65_535));
        // Same numbers on one thread (sums in chunk order, not scheduling order).
        let params = serde_json::json!({ "rasters": { "2005": "geo_u16_tiled_deflate.tif" }, "scheme": "clcd" });
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let one = pool.install(|| run(params, "units", units_table("units_geo.geojson")).unwrap());
        assert_eq!(one.outputs["areas"], r.outputs["areas"]);
    }

    #[test]
    fn transitions_sum_to_the_areas_of_year_from() {
        // 2000 tiled 16 × 16, 2020 tiled the same: chunk for chunk.
        transitions_check("proj_u8_tiled_deflate.tif");
        // 2000 in strips of 8 rows (uint16 DEFLATE, uint8 LZW), 2020 in 16 × 16 tiles: each
        // 40 × 8 strip window of the pass is assembled from parts of three 2020 tiles.
        transitions_check("proj_u16_strip_deflate_pred2.tif");
        transitions_check("proj_u8_strip_lzw.tif");
    }

    #[test]
    fn transitions_of_identical_maps_in_different_tilings_are_diagonal() {
        // The same pattern tiled (2000) and in strips (2005): every pixel keeps its class, so the
        // matrix is diagonal with the 2000 class areas (U2: cultivated 125 px = 11.25 ha).
        let params = serde_json::json!({
            "rasters": { "2000": "proj_u8_tiled_deflate.tif", "2005": "proj_u16_strip_packbits.tif" },
            "scheme": "clcd",
        });
        let r = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap();
        let a = areas(&r);
        let t = &r.outputs["transitions"];
        let u = table::ids(t, "t", UNIT_ID).unwrap();
        let (cf, ct) = (
            table::strings(t, "t", "class_from").unwrap(),
            table::strings(t, "t", "class_to").unwrap(),
        );
        let ha = table::f64s(t, "t", "area_ha").unwrap();
        for i in 0..t.num_rows() {
            let expect = if cf[i] == ct[i] {
                a[&(u[i].clone(), 2000, cf[i].clone())].1
            } else {
                0.0
            };
            assert!(
                (ha[i] - expect).abs() < 1e-9,
                "{} {} → {}: {}",
                u[i],
                cf[i],
                ct[i],
                ha[i]
            );
        }
        assert!((a[&("U2".to_owned(), 2005, "cultivated".to_owned())].1 - 11.25).abs() < 1e-9);
    }

    fn transitions_check(first: &str) {
        let params = serde_json::json!({
            "rasters": { "2000": first, "2020": "proj_u8_tiled_deflate_2020.tif" },
            "scheme": "clcd",
        });
        let r = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap();
        let a = areas(&r);
        let t = &r.outputs["transitions"];
        let (u, yf, yt) = (
            table::ids(t, "t", UNIT_ID).unwrap(),
            table::i64s(t, "t", "year_from").unwrap(),
            table::i64s(t, "t", "year_to").unwrap(),
        );
        let (cf, ct, ha) = (
            table::strings(t, "t", "class_from").unwrap(),
            table::strings(t, "t", "class_to").unwrap(),
            table::f64s(t, "t", "area_ha").unwrap(),
        );
        // 6 units × 36 class pairs, one pair of years.
        assert_eq!(t.num_rows(), 6 * 36);
        assert!(yf.iter().all(|&y| y == 2000) && yt.iter().all(|&y| y == 2020));
        let mut out_of: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut cell: BTreeMap<(String, String, String), f64> = BTreeMap::new();
        for i in 0..t.num_rows() {
            *out_of.entry((u[i].clone(), cf[i].clone())).or_default() += ha[i];
            cell.insert((u[i].clone(), cf[i].clone(), ct[i].clone()), ha[i]);
        }
        // The 2020 raster differs only where no NoData is, so Σ over class_to = area in 2000.
        for ((unit, class), sum) in &out_of {
            let (_, area2000) = a[&(unit.clone(), 2000, class.clone())];
            assert!(
                (sum - area2000).abs() < 1e-9,
                "{unit} {class}: {sum} vs {area2000}"
            );
        }
        // U1: cols 0..5 × rows 0..18 (90 px = 8.1 ha) went from cropland (1) to impervious (8).
        let c = |from: &str, to: &str| cell[&("U1".to_owned(), from.to_owned(), to.to_owned())];
        assert!((c("cultivated", "construction") - 8.1).abs() < 1e-9);
        assert!((c("cultivated", "cultivated") - 8.1).abs() < 1e-9);
        assert!((c("forest", "forest") - 16.2).abs() < 1e-9);
        // The basin total adds the units: U1's 8.1 ha is the only cropland → built-up change.
        let tt = &r.outputs["transitions_total"];
        assert_eq!(tt.num_rows(), 36);
        let (f, to, v) = (
            table::strings(tt, "t", "class_from").unwrap(),
            table::strings(tt, "t", "class_to").unwrap(),
            table::f64s(tt, "t", "area_ha").unwrap(),
        );
        let i = (0..36)
            .find(|&i| f[i] == "cultivated" && to[i] == "construction")
            .unwrap();
        assert!((v[i] - 8.1).abs() < 1e-9);
    }

    /// rasterstats 0.20 `zonal_stats(henan_cities.geojson, mcd12c1_2019_igbp_yrb9.tif,
    /// categorical=True, all_touched=False)` (make_henan.py; GDAL 3.10.3 via rasterio 1.4.4).
    const HENAN_RASTERSTATS: &[(&str, &[(i64, i64)])] = &[
        (
            "410100",
            &[(4, 2), (9, 3), (10, 9), (12, 243), (13, 42), (14, 1)],
        ),
        ("410200", &[(12, 239), (13, 7)]),
        (
            "410300",
            &[
                (0, 1),
                (4, 210),
                (8, 21),
                (9, 16),
                (10, 9),
                (12, 318),
                (13, 17),
                (14, 3),
            ],
        ),
        (
            "410400",
            &[
                (0, 1),
                (4, 39),
                (8, 5),
                (9, 6),
                (11, 1),
                (12, 239),
                (13, 18),
            ],
        ),
        (
            "410500",
            &[(4, 1), (5, 1), (9, 13), (10, 13), (12, 237), (13, 25)],
        ),
        ("410600", &[(10, 5), (12, 78), (13, 5)]),
        (
            "410700",
            &[(4, 2), (5, 2), (9, 9), (10, 16), (12, 275), (13, 19)],
        ),
        (
            "410800",
            &[(4, 7), (5, 2), (9, 7), (10, 6), (12, 113), (13, 25)],
        ),
        ("410900", &[(12, 162), (13, 5)]),
        ("411000", &[(12, 188), (13, 6), (14, 2)]),
        ("411100", &[(12, 100), (13, 5)]),
        (
            "411200",
            &[
                (4, 119),
                (5, 5),
                (8, 11),
                (9, 73),
                (10, 19),
                (12, 157),
                (13, 4),
                (14, 6),
            ],
        ),
        (
            "411300",
            &[
                (0, 12),
                (4, 173),
                (8, 85),
                (9, 89),
                (10, 3),
                (11, 1),
                (12, 645),
                (13, 12),
                (14, 3),
            ],
        ),
        ("411400", &[(12, 411), (13, 8)]),
        (
            "411500",
            &[
                (0, 2),
                (4, 15),
                (5, 10),
                (8, 146),
                (9, 19),
                (11, 3),
                (12, 482),
                (13, 10),
                (14, 30),
            ],
        ),
        ("411600", &[(12, 455), (13, 6)]),
        (
            "411700",
            &[(0, 5), (4, 9), (8, 2), (9, 2), (11, 1), (12, 557), (13, 6)],
        ),
        (
            "419001",
            &[(4, 8), (5, 4), (9, 20), (10, 3), (12, 31), (13, 6), (14, 3)],
        ),
    ];

    #[test]
    fn modis_igbp_on_henan_cities_matches_rasterstats() {
        let params = serde_json::json!({ "rasters": { "2019": "mcd12c1_2019_igbp_yrb9.tif" }, "scheme": "igbp" });
        let r = run(params, "units", units_table("henan_cities.geojson")).unwrap();
        let k = codes(&r);
        let mut expected = BTreeMap::new();
        for (unit, list) in HENAN_RASTERSTATS {
            for &(code, px) in *list {
                expected.insert(((*unit).to_owned(), 2019, code), px);
            }
        }
        assert_eq!(k, expected);
        // Reclassified with the IGBP table: Zhengzhou (410100) cropland = 12 + 14 → 243 + 1.
        let a = areas(&r);
        assert_eq!(
            a[&("410100".to_owned(), 2019, "cultivated".to_owned())].0,
            244
        );
        assert_eq!(a[&("410100".to_owned(), 2019, "forest".to_owned())].0, 2);
        assert_eq!(
            a[&("410100".to_owned(), 2019, "grassland".to_owned())].0,
            12
        );
        assert_eq!(
            a[&("410100".to_owned(), 2019, "construction".to_owned())].0,
            42
        );
        // Pixel area at 34.7° N for 0.05°: ~25.4 km² = 2540 ha, so Zhengzhou's 300 px ≈ 7,600 km²
        // (its official area is 7,567 km²).
        let total: f64 = LandClass::ALL
            .iter()
            .map(|c| a[&("410100".to_owned(), 2019, c.as_str().to_owned())].1)
            .sum();
        assert!((total / 100.0 - 7_600.0).abs() < 150.0, "{total}");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn tabular_sums_do_not_depend_on_row_order() {
        // Three forest rows of one unit-year. Added smallest first, 0.6 + 0.6 = 1.2 and
        // 1.2 + 1e16 rounds to 1e16 + 2 (doubles there are 2 apart); added in table order
        // 1e16 + 0.6 + 0.6 would stay 1e16.
        let areas_ha = [1e16, 0.6, 0.6];
        for order in [[0, 1, 2], [1, 0, 2], [2, 1, 0]] {
            let t = TableBuilder::new()
                .str(UNIT_ID, &["A", "A", "A"])
                .i64("year", vec![2000; 3])
                .str("class", &["forest"; 3])
                .f64("area_ha", order.iter().map(|&i| areas_ha[i]).collect())
                .build()
                .unwrap();
            let r = run(serde_json::json!({}), "areas", t).unwrap();
            let forest = areas(&r)[&("A".to_owned(), 2000, "forest".to_owned())].1;
            assert_eq!(
                forest.to_bits(),
                (1e16f64 + 2.0).to_bits(),
                "rows {order:?}"
            );
        }
    }

    #[test]
    fn dynamic_degrees_by_hand() {
        use arrow_array::Array;
        use arrow_array::cast::AsArray;
        // Unit A, ha: cultivated 100 → 80 → 84, forest 50 → 50 → 50, construction 10 → 30 → 26
        // in 2000, 2010, 2015; the other classes 0. Transfer matrix 2000 → 2010 only:
        // cultivated → cultivated 78, → construction 20, → forest 2; forest → forest 48,
        // → cultivated 2; construction → construction 10 (total 160 ha).
        let class_ha = [
            [100.0, 50.0, 0.0, 0.0, 10.0, 0.0],
            [80.0, 50.0, 0.0, 0.0, 30.0, 0.0],
            [84.0, 50.0, 0.0, 0.0, 26.0, 0.0],
        ];
        let mut areas = Vec::new();
        for (year, ha) in
            [2015, 2000, 2010]
                .into_iter()
                .zip([class_ha[2], class_ha[0], class_ha[1]])
        {
            for c in LandClass::ALL {
                areas.push(AreaRow {
                    unit: "A",
                    year,
                    class: c,
                    pixels: None,
                    area_ha: ha[c.index()],
                });
            }
        }
        let mut tr = Vec::new();
        for (from, to, ha) in [
            ("cultivated", "cultivated", 78.0),
            ("cultivated", "construction", 20.0),
            ("cultivated", "forest", 2.0),
            ("forest", "forest", 48.0),
            ("forest", "cultivated", 2.0),
            ("construction", "construction", 10.0),
        ] {
            tr.push(TransitionRow {
                unit: "A",
                year_from: 2000,
                year_to: 2010,
                class_from: LandClass::parse(from).unwrap(),
                class_to: LandClass::parse(to).unwrap(),
                area_ha: ha,
            });
        }
        let (_, d) = dynamics_table(&areas, &transfer_sums(&tr)).unwrap();
        assert_eq!(d.num_rows(), 14);
        let class = table::strings(&d, "d", "class").unwrap();
        let from = table::i64s(&d, "d", "year_from").unwrap();
        let k = d
            .column_by_name("degree_pct_per_year")
            .unwrap()
            .as_primitive::<arrow_array::types::Float64Type>();
        let get = |y: i64, c: &str| {
            let r = (0..d.num_rows())
                .find(|&r| from[r] == y && class[r] == c)
                .unwrap();
            k.is_valid(r).then(|| k.value(r))
        };
        let close = |got: Option<f64>, want: f64| {
            assert!((got.unwrap() - want).abs() < 1e-12, "{got:?} vs {want}")
        };
        // K = (80 − 100)/100/10 × 100 = −2; construction (30 − 10)/10/10 × 100 = 20; forest 0.
        close(get(2000, "cultivated"), -2.0);
        close(get(2000, "construction"), 20.0);
        close(get(2000, "forest"), 0.0);
        assert_eq!(get(2000, "grassland"), None, "A_t1 = 0");
        // LC = (20 + 2 + 2)/(2 × 160)/10 × 100 = 0.75.
        close(get(2000, "all"), 0.75);
        // 2010 → 2015: cultivated (84 − 80)/80/5 × 100 = 1; no matrix, so `all` is null.
        close(get(2010, "cultivated"), 1.0);
        close(get(2010, "construction"), -(4.0 / 30.0) / 5.0 * 100.0);
        assert_eq!(get(2010, "all"), None);
    }

    #[test]
    fn tabular_areas_are_validated_and_reclassified() {
        let t = TableBuilder::new()
            .str(UNIT_ID, &["A", "A", "A", "B"])
            .i64("year", vec![2000, 2000, 2000, 2000])
            .i64("code", vec![11, 12, 52, 99])
            .f64("area_ha", vec![10.0, 5.0, 2.5, 100.0])
            .build()
            .unwrap();
        let e = run(
            serde_json::json!({ "scheme": "cnlucc" }),
            "areas",
            t.clone(),
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("1 unit-year(s) have all class areas 0: `B` (2000)"),
            "{e}"
        );
        let r = run(
            serde_json::json!({ "scheme": "cnlucc", "allow_empty_units": true }),
            "areas",
            t,
        )
        .unwrap();
        assert!(
            r.warnings.iter().any(|w| w.contains("`B` (2000)")),
            "{:?}",
            r.warnings
        );
        let a = areas(&r);
        // Paddy (11) + dry land (12) = 15 ha cultivated; rural settlement (52) = construction;
        // B's only row is sea (99, excluded): all six classes 0.
        assert_eq!(a[&("A".to_owned(), 2000, "cultivated".to_owned())].1, 15.0);
        assert_eq!(a[&("A".to_owned(), 2000, "construction".to_owned())].1, 2.5);
        assert_eq!(a[&("B".to_owned(), 2000, "water".to_owned())].1, 0.0);
        assert_eq!(r.outputs["areas"].num_rows(), 12);

        let bad = |class: &str, area: f64| {
            let t = TableBuilder::new()
                .str(UNIT_ID, &["C"])
                .i64("year", vec![2015])
                .str("class", &[class])
                .f64("area_ha", vec![area])
                .build()
                .unwrap();
            run(serde_json::json!({}), "areas", t).unwrap_err().message
        };
        assert!(
            bad("marsh", 1.0).contains("unit `C`, year 2015): class `marsh`"),
            "{}",
            bad("marsh", 1.0)
        );
        assert!(bad("forest", -1.0).contains("unit `C`, year 2015): area_ha is -1"));
        assert!(bad("forest", f64::NAN).contains("area_ha is missing"));
    }

    #[test]
    fn parameters_are_checked() {
        let e = Entry::<LandUse>::new();
        let err = e
            .prepare(serde_json::json!({ "rasters": { "year2000": "a.tif" }, "scheme": "clcd" }))
            .err()
            .unwrap();
        assert!(
            err.message.contains("`year2000` is not a year"),
            "{}",
            err.message
        );
        let err = e
            .prepare(serde_json::json!({ "rasters": { "2000": "a.tif" }, "scheme": "cldc" }))
            .err()
            .unwrap();
        assert!(
            err.message.contains("neither a built-in scheme"),
            "{}",
            err.message
        );
        let err = e
            .prepare(serde_json::json!({ "rasters": { "2000": "a.tif" } }))
            .err()
            .unwrap();
        assert!(err.message.contains("`scheme` is required"));
        let p = e.prepare(serde_json::json!({ "rasters": { "2000": "a.tif", "1995": "b.tif" }, "scheme": "my.csv" })).unwrap();
        let names: Vec<String> = p.sources().into_iter().map(|s| s.name).collect();
        // Each raster's world file is an optional source: adding one reruns the stage.
        assert_eq!(
            names,
            [
                "raster.1995",
                "raster.1995.tfw",
                "raster.2000",
                "raster.2000.tfw",
                "scheme"
            ]
        );
        let p = e.prepare(serde_json::json!({ "rasters": { "2000": ["a.tif", "b.tif"], "2005": "t/lu_*.tif" }, "scheme": "clcd" })).unwrap();
        let names: Vec<String> = p.sources().into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "raster.2000.0",
                "raster.2000.1",
                "raster.2000.0.tfw",
                "raster.2000.1.tfw",
                "raster.2005"
            ]
        );
        assert!(p.sources()[4].pattern);
        let err = e
            .prepare(serde_json::json!({ "rasters": { "2000": "a.tif" }, "scheme": "clcd", "min_coverage": 1.5 }))
            .err()
            .unwrap();
        assert!(err.message.contains("`min_coverage: 1.5`"), "{err:?}");
    }

    #[test]
    fn user_scheme_csv_and_crs_mismatch_errors() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("scheme.csv");
        std::fs::write(&csv, "code,class\n1,cultivated\n2,forest\n4,grassland\n5,water\n7,unused\n8,construction\n12,unused\n").unwrap();
        let params = serde_json::json!({ "rasters": { "2000": "proj_u8_tiled_deflate.tif" }, "scheme": csv });
        let r = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap();
        // With 12 mapped to unused, U6 has 174 + 6 = 180 unused pixels and no warning about codes.
        assert_eq!(
            areas(&r)[&("U6".to_owned(), 2000, "unused".to_owned())].0,
            180
        );
        assert!(!r.warnings.iter().any(|w| w.contains("codes not in scheme")));
        // Declaring the Albers raster as lon/lat puts every unit outside it: warned, not mixed.
        let params = serde_json::json!({ "rasters": { "2000": "proj_u8_tiled_deflate.tif" }, "scheme": "clcd", "crs": "EPSG:4326" });
        let e = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap_err();
        assert!(
            e.message
                .contains("year 2000: no pixel inside any unit has data in")
                && e.message.contains("proj_u8_tiled_deflate.tif"),
            "{e}"
        );
    }

    /// Counts what the stage asks of the memo store.
    #[test]
    fn a_new_reclassification_reuses_the_memoised_histograms() {
        use crate::engine::key::Digest;
        use crate::engine::stage::MemoScope;
        let store = Arc::new(crate::stages::testing::MemoryStore::default());
        let dir = tempfile::tempdir().unwrap();
        let run_with = |scheme_text: &str| {
            let csv = dir.path().join("scheme.csv");
            std::fs::write(&csv, scheme_text).unwrap();
            let params = serde_json::json!({
                "rasters": { "2000": "proj_u8_tiled_deflate.tif", "2020": "proj_u8_tiled_deflate_2020.tif" },
                "scheme": csv,
                "allow_empty_units": true,
            });
            let prepared = Entry::<LandUse>::new().prepare(params).unwrap();
            let sources: BTreeMap<String, PathBuf> = prepared
                .sources()
                .into_iter()
                .map(|s| (s.name, fixtures().join(s.path)))
                .collect();
            // The stage's key inputs as the engine would give them; the scheme's digest changes.
            let inputs = BTreeMap::from([
                ("port:units".to_owned(), Digest::of(b"units")),
                ("source:raster.2000".to_owned(), Digest::of(b"r2000")),
                ("source:raster.2020".to_owned(), Digest::of(b"r2020")),
                (
                    "source:scheme".to_owned(),
                    Digest::of(scheme_text.as_bytes()),
                ),
            ]);
            let scope = MemoScope {
                kind: "landuse".into(),
                version: 1,
                inputs,
            };
            let ctx =
                StageContext::new("landuse", &fixtures(), sources).with_memo(store.clone(), scope);
            let table = units_table("units_proj_lonlat.geojson");
            let outputs = prepared
                .run(
                    &Inputs::new(BTreeMap::from([("units".to_owned(), table)])),
                    &ctx,
                )
                .unwrap();
            Run {
                outputs: outputs.into_iter().collect(),
                warnings: ctx.take_warnings(),
            }
        };
        let clcd_like = "code,class\n1,cultivated\n2,forest\n3,forest\n4,grassland\n5,water\n6,unused\n7,unused\n8,construction\n9,water\n12,unused\n";
        let first = run_with(clcd_like);
        assert_eq!(
            store.puts(),
            3,
            "one histogram pass, memoised per year (2) and pair of years (1)"
        );
        // Forest becomes grassland in the table: areas change, the histograms are reused.
        let second = run_with(&clcd_like.replace("2,forest", "2,grassland"));
        assert_eq!(
            store.puts(),
            3,
            "no second pass"
        );
        let (a, b) = (areas(&first), areas(&second));
        assert_ne!(a, b);
        let total = |m: &BTreeMap<(String, i64, String), (i64, f64)>, class: &str| -> i64 {
            m.iter()
                .filter(|(k, _)| k.2 == class)
                .map(|(_, v)| v.0)
                .sum()
        };
        assert_eq!(
            total(&a, "forest") + total(&a, "grassland"),
            total(&b, "forest") + total(&b, "grassland")
        );
        assert!(total(&b, "forest") < total(&a, "forest"));
        // And the same reclassification through a fresh pass gives the same tables.
        let fresh = run(
            serde_json::json!({
                "rasters": { "2000": "proj_u8_tiled_deflate.tif", "2020": "proj_u8_tiled_deflate_2020.tif" },
                "scheme": dir.path().join("scheme.csv"),
            }),
            "units",
            units_table("units_proj_lonlat.geojson"),
        )
        .unwrap();
        assert_eq!(areas(&fresh), b);
        assert_eq!(fresh.outputs["transitions"], second.outputs["transitions"]);
    }

    /// The shards (one per year, one per pair of consecutive years) fill the memos the run then
    /// finds; after one year's raster changes, only that year's and its pair's memos are
    /// computed again, and the tables equal a run without memos.
    #[test]
    fn shards_fill_the_memos_and_a_changed_year_recomputes_only_its_own() {
        use crate::engine::key::Digest;
        use crate::engine::stage::MemoScope;
        let store = Arc::new(crate::stages::testing::MemoryStore::default());
        let params = serde_json::json!({
            "rasters": { "2000": "proj_u8_tiled_deflate.tif", "2020": "proj_u8_tiled_deflate_2020.tif" },
            "scheme": "clcd",
            "allow_empty_units": true,
        });
        let prepared = Entry::<LandUse>::new().prepare(params.clone()).unwrap();
        let names: Vec<String> = prepared.shards().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["2000", "2020", "2000-2020"]);
        let sources: BTreeMap<String, PathBuf> = prepared
            .sources()
            .into_iter()
            .map(|s| (s.name, fixtures().join(s.path)))
            .collect();
        let ctx = |raster_2020: &[u8]| {
            let inputs = BTreeMap::from([
                ("port:units".to_owned(), Digest::of(b"units")),
                ("source:raster.2000".to_owned(), Digest::of(b"r2000")),
                ("source:raster.2020".to_owned(), Digest::of(raster_2020)),
            ]);
            let scope = MemoScope {
                kind: "landuse".into(),
                version: 1,
                inputs,
            };
            StageContext::new("landuse", &fixtures(), sources.clone())
                .with_memo(store.clone(), scope)
        };
        let inputs = || {
            Inputs::new(BTreeMap::from([(
                "units".to_owned(),
                units_table("units_proj_lonlat.geojson"),
            )]))
        };
        let puts = || store.puts();

        let c = ctx(b"r2020");
        for shard in &names {
            prepared.run_shard(shard, &inputs(), &c).unwrap();
        }
        assert_eq!(puts(), 3, "each shard stores its own memo, once");
        let merged = prepared.run(&inputs(), &c).unwrap();
        assert_eq!(puts(), 3, "the merge finds every memo");
        let fresh = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap();
        let merged: BTreeMap<String, RecordBatch> = merged.into_iter().collect();
        assert_eq!(
            merged, fresh.outputs,
            "the same tables as a run without memos"
        );

        // A new 2020 raster: its histogram and the pair are computed again, 2000's is reused.
        let c = ctx(b"another 2020");
        prepared.run(&inputs(), &c).unwrap();
        assert_eq!(puts(), 5);
        prepared.run_shard("1990", &inputs(), &c).unwrap();
        assert_eq!(puts(), 5, "a shard of no group computes nothing");
    }

    /// Codes of the lon/lat tile tests at (col, row): bands of CLCD codes 1–8.
    fn lonlat_code(c: usize, r: usize) -> u8 {
        [1, 2, 4, 5, 8, 1, 2, 7][(c / 5 + r / 6) % 8]
    }

    /// Writes the part cols × rows of a 40 × 36 lon/lat grid of 0.01° pixels whose top-left
    /// corner is (113° E, 35° N), NoData 0, with the codes `code(col, row)` (grid coordinates).
    fn write_lonlat_part(
        path: &Path,
        cols: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        code: impl Fn(usize, usize) -> u8,
    ) -> PathBuf {
        let grid = (113.0, 35.0, 0.01, crate::io::geotiff_writer::Crs::Epsg4326);
        write_grid_part(path, grid, cols, rows, code)
    }

    /// Units on the lon/lat tile grid: `A` straddles the edge of tiles 0 and 1 and their
    /// overlap, `B` the gap no tile covers and tiles 1 and 2, `C` lies in tile 1 alone.
    fn lonlat_tile_units() -> RecordBatch {
        let rect = |(x0, y0, x1, y1): (f64, f64, f64, f64)| {
            crate::io::wkb::encode(&MultiPolygon(vec![polygon![
                (x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)
            ]]))
        };
        // Columns 10..30 × rows 5..20; columns 5..25 × rows 22..34; columns 32..38 × rows 10..30
        // (pixel centres at 113.005 + 0.01·col, 34.995 − 0.01·row).
        let wkb: Vec<Vec<u8>> = [
            (113.10, 34.80, 113.30, 34.95),
            (113.05, 34.66, 113.25, 34.78),
            (113.32, 34.70, 113.38, 34.90),
        ]
        .into_iter()
        .map(rect)
        .collect();
        TableBuilder::new()
            .str(UNIT_ID, &["A", "B", "C"])
            .array(
                "geometry",
                Arc::new(BinaryArray::from_iter_values(wkb.iter())),
            )
            .build()
            .unwrap()
    }

    /// Three overlapping tiles of different extents for one year, on a lon/lat grid (per-row
    /// pixel areas), and the same year as one file:
    /// tile 0 = columns 0..24 × rows 0..22, NoData where col ≥ 20 and row ≥ 10;
    /// tile 1 = columns 16..40 × rows 6..36 (fills tile 0's NoData, agrees on the rest of the
    /// overlap); tile 2 = columns 0..14 × rows 20..36 (overlaps tile 0 in rows 20..22); columns
    /// 14..16 of rows 22..36 lie in no tile and read as NoData.
    fn write_lonlat_tiles(d: &Path) -> (Vec<PathBuf>, PathBuf) {
        let tiles = vec![
            write_lonlat_part(&d.join("t0.tif"), 0..24, 0..22, |c, r| {
                if c >= 20 && r >= 10 { 0 } else { lonlat_code(c, r) }
            }),
            write_lonlat_part(&d.join("t1.tif"), 16..40, 6..36, lonlat_code),
            write_lonlat_part(&d.join("t2.tif"), 0..14, 20..36, lonlat_code),
        ];
        let merged = write_lonlat_part(&d.join("merged.tif"), 0..40, 0..36, |c, r| {
            let in_t1 = c >= 16 && r >= 6;
            let in_t2 = c < 14 && r >= 20;
            let in_t0 = c < 24 && r < 22;
            if in_t0 || in_t1 || in_t2 { lonlat_code(c, r) } else { 0 }
        });
        (tiles, merged)
    }

    /// Each tile's shard counts the pixels only its tile covers and the overlaps shard the
    /// rest, so the shards and the merge give the bytes of the local run, which reads each
    /// year once, whole (on a lon/lat grid, where area sums in floats would depend on the
    /// order, and this fixture's do); a changed tile recomputes its own part and the overlaps
    /// in shards, and the merge then reads the year once with its pair.
    #[test]
    fn tile_shards_and_their_merge_give_the_local_bytes_and_a_changed_tile_recomputes_its_own()
    {
        use crate::engine::key::Digest;
        use crate::engine::stage::MemoScope;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (tiles, merged) = write_lonlat_tiles(d);
        // 2010: the one-file year, with every band moved three columns (transitions).
        let later = write_lonlat_part(&d.join("later.tif"), 0..40, 0..36, |c, r| {
            lonlat_code(c + 3, r)
        });
        let params = serde_json::json!({
            "rasters": { "2000": tiles.iter().map(|p| show(p)).collect::<Vec<_>>(), "2010": show(&later) },
            "scheme": "clcd",
        });
        let passes = || PASSES_READ.with_borrow_mut(std::mem::take);
        passes();
        let local = run(params.clone(), "units", lonlat_tile_units()).unwrap();
        let one_pass = [vec![tiles.clone(), vec![later.clone()]]];
        assert_eq!(
            passes(),
            one_pass,
            "the local run reads each year once, in one pass"
        );

        let prepared = Entry::<LandUse>::new().prepare(params).unwrap();
        let shards = prepared.shards();
        let names: Vec<&str> = shards.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["2000-t0", "2000-t1", "2000-t2", "2000-overlaps", "2010", "2000-2010"]
        );
        assert_eq!(
            shards[1].depends_on,
            ["port:units", "source:raster.2000.1"],
            "a tile's shard reads its own file"
        );
        let sources: BTreeMap<String, PathBuf> = prepared
            .sources()
            .into_iter()
            .map(|s| (s.name, d.join(s.path)))
            .collect();
        let store = Arc::new(crate::stages::testing::MemoryStore::default());
        let ctx = |tile_1: &[u8]| {
            let inputs = BTreeMap::from([
                ("port:units".to_owned(), Digest::of(b"units")),
                ("source:raster.2000.0".to_owned(), Digest::of(b"t0")),
                ("source:raster.2000.1".to_owned(), Digest::of(tile_1)),
                ("source:raster.2000.2".to_owned(), Digest::of(b"t2")),
                ("source:raster.2010".to_owned(), Digest::of(b"2010")),
            ]);
            let scope = MemoScope {
                kind: "landuse".into(),
                version: 1,
                inputs,
            };
            StageContext::new("landuse", d, sources.clone()).with_memo(store.clone(), scope)
        };
        let inputs = || Inputs::new(BTreeMap::from([("units".to_owned(), lonlat_tile_units())]));
        // The fixture's units are all inside the grid with data: no `allow_empty_units`.
        let c = ctx(b"t1");
        for shard in &names {
            prepared.run_shard(shard, &inputs(), &c).unwrap();
        }
        assert_eq!(store.puts(), 6, "4 parts of 2000, the 2010 histogram, the pair");
        let sharded: BTreeMap<String, RecordBatch> =
            prepared.run(&inputs(), &c).unwrap().into_iter().collect();
        assert_eq!(store.puts(), 6, "the merge finds every memo");
        for (name, table) in &local.outputs {
            assert_eq!(
                crate::io::parquet::to_bytes(&sharded[name]).unwrap(),
                crate::io::parquet::to_bytes(table).unwrap(),
                "{name}"
            );
        }

        // The one-file year gives the same tables: areas are exact sums, in any order.
        let whole = run(
            serde_json::json!({ "rasters": { "2000": show(&merged), "2010": show(&later) }, "scheme": "clcd" }),
            "units",
            lonlat_tile_units(),
        )
        .unwrap();
        assert_eq!(local.outputs, whole.outputs);
        assert!(areas(&local).values().any(|&(px, ha)| px > 0 && ha > 0.0));
        // Unit B holds the gap's NoData: columns 14..16 of its rows 22..34, 2 × 12 = 24 px.
        assert_eq!(coverage(&local)[&("B".to_owned(), 2000)].1, 24);
        // These orders matter to floats here: unit A's pixel areas (columns 10..30, rows
        // 5..20) summed as f64 part by part (tile 0 alone, tile 1 alone, shared) and row by
        // row differ in their last bits, so float sums would have failed the checks above.
        let row_m2 = crate::methods::pixel_area::row_areas_m2(35.0, -0.01, 0.01, 36);
        let in_t0 = |c: usize, r: usize| c < 24 && r < 22;
        let in_t1 = |c: usize, r: usize| c >= 16 && r >= 6;
        let unit_a = || (5..20).flat_map(|r| (10..30).map(move |c| (c, r)));
        let by_rows: f64 = unit_a().map(|(_, r)| row_m2[r]).sum();
        let part_of = |c, r| match (in_t0(c, r), in_t1(c, r)) {
            (true, false) => 0,
            (false, true) => 1,
            _ => 2,
        };
        let by_parts: f64 = (0..3)
            .map(|p| {
                unit_a()
                    .filter(|&(c, r)| part_of(c, r) == p)
                    .map(|(_, r)| row_m2[r])
                    .sum::<f64>()
            })
            .sum();
        assert_ne!(by_rows.to_bits(), by_parts.to_bits(), "{by_rows} {by_parts}");

        // Tile 1 changes: the other shards still hold; the merge, missing tile 1's part,
        // reads the year whole once, for its histogram and the pair (two memos).
        let c = ctx(b"another t1");
        for shard in ["2000-t0", "2000-t2", "2010"] {
            prepared.run_shard(shard, &inputs(), &c).unwrap();
        }
        assert_eq!(store.puts(), 6, "the other tiles' shards still hold");
        passes();
        prepared.run(&inputs(), &c).unwrap();
        assert_eq!(store.puts(), 8);
        assert_eq!(passes(), one_pass);
    }

    #[test]
    fn tile_shards_are_named_by_the_listed_path_their_files_come_from() {
        // The 3rd file a pattern listed second matches belongs to that path's shard.
        let alone = MosaicPart::Alone(4);
        assert_eq!(part_shard(2000, 3, alone, "raster.2000.1/2"), "2000-t1");
        assert_eq!(part_shard(2000, 3, alone, "raster.2000.2"), "2000-t2");
        assert_eq!(part_shard(2000, 3, MosaicPart::Shared, ""), "2000-overlaps");
        // A year of one path (a pattern) keeps its own shard for every part.
        assert_eq!(part_shard(2000, 1, alone, "raster.2000/4"), "2000");
        assert_eq!(part_shard(2000, 1, MosaicPart::Shared, ""), "2000");
        // And the shards a list with a pattern declares: one per path, one for overlaps.
        let params = serde_json::json!({
            "rasters": { "2000": ["a.tif", "tiles/b_*.tif"], "2005": "c_*.tif" },
            "scheme": "clcd",
        });
        let shards = Entry::<LandUse>::new().prepare(params).unwrap().shards();
        let names: Vec<&str> = shards.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["2000-t0", "2000-t1", "2000-overlaps", "2005", "2000-2005"]
        );
        assert_eq!(
            shards[2].depends_on,
            ["port:units", "source:raster.2000.0", "source:raster.2000.1"]
        );
    }

    /// On a projected grid the local run reads a year of several files whole, in one pass
    /// with the other years; the tile shards' parts add up to the same integer counts, so
    /// shards and merge still give its bytes.
    #[test]
    fn tile_shards_on_a_projected_grid_add_up_to_the_year_read_whole() {
        use crate::engine::key::Digest;
        use crate::engine::stage::MemoScope;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Tile 0 = columns 0..22, NoData where col ≥ 18 and row ≥ 20; tile 1 = columns 15..40
        // × rows 0..24; tile 2 = columns 20..40 × rows 22..36, which fills tile 0's NoData from
        // column 20. Columns 18..20 of rows 24..36 have no data in any tile.
        let data = |c: usize, r: usize| {
            (c < 22 && !(c >= 18 && r >= 20)) || (c >= 15 && r < 24) || (c >= 20 && r >= 22)
        };
        let tiles = [
            write_part(&d.join("p0.tif"), 0..22, 0..36, |c, r| {
                if c >= 18 && r >= 20 { 0 } else { pattern(c, r) }
            }),
            write_part(&d.join("p1.tif"), 15..40, 0..24, pattern),
            write_part(&d.join("p2.tif"), 20..40, 22..36, pattern),
        ];
        let merged = write_part(&d.join("merged.tif"), 0..40, 0..36, |c, r| {
            if data(c, r) { pattern(c, r) } else { 0 }
        });
        let params = serde_json::json!({
            "rasters": { "2000": tiles.iter().map(|p| show(p)).collect::<Vec<_>>(), "2020": "proj_u8_tiled_deflate_2020.tif" },
            "scheme": "clcd",
            "allow_empty_units": true,
        });
        let units = || units_table("units_proj_lonlat.geojson");
        let local = run(params.clone(), "units", units()).unwrap();
        let mut whole_params = params.clone();
        whole_params["rasters"]["2000"] = serde_json::json!(show(&merged));
        let whole = run(whole_params, "units", units()).unwrap();
        assert_eq!(local.outputs, whole.outputs);

        let prepared = Entry::<LandUse>::new().prepare(params).unwrap();
        let sources: BTreeMap<String, PathBuf> = prepared
            .sources()
            .into_iter()
            .map(|s| (s.name, fixtures().join(s.path)))
            .collect();
        let inputs = BTreeMap::from([
            ("port:units".to_owned(), Digest::of(b"units")),
            ("source:raster.2000.0".to_owned(), Digest::of(b"p0")),
            ("source:raster.2000.1".to_owned(), Digest::of(b"p1")),
            ("source:raster.2000.2".to_owned(), Digest::of(b"p2")),
            ("source:raster.2020".to_owned(), Digest::of(b"2020")),
        ]);
        let scope = MemoScope {
            kind: "landuse".into(),
            version: 1,
            inputs,
        };
        let store = Arc::new(crate::stages::testing::MemoryStore::default());
        let c = StageContext::new("landuse", &fixtures(), sources).with_memo(store.clone(), scope);
        let port = || Inputs::new(BTreeMap::from([("units".to_owned(), units())]));
        for shard in prepared.shards() {
            prepared.run_shard(&shard.name, &port(), &c).unwrap();
        }
        assert_eq!(store.puts(), 6, "4 parts of 2000, the 2020 histogram, the pair");
        let sharded: BTreeMap<String, RecordBatch> =
            prepared.run(&port(), &c).unwrap().into_iter().collect();
        assert_eq!(store.puts(), 6, "the merge finds every memo");
        for (name, table) in &local.outputs {
            assert_eq!(
                crate::io::parquet::to_bytes(&sharded[name]).unwrap(),
                crate::io::parquet::to_bytes(table).unwrap(),
                "{name}"
            );
        }
    }

    /// The CLCD pattern of make_fixtures.py (tests/fixtures/landuse/README.md) at (col, row).
    fn pattern(c: usize, r: usize) -> u8 {
        if (30..33).contains(&r) && (35..37).contains(&c) {
            12
        } else if r < 18 {
            [1, 2, 4, 8][c / 10]
        } else {
            [5, 1, 0, 7][c / 10]
        }
    }

    /// Writes the part cols × rows of a 40 × 36 Albers grid at the fixtures' origin (766020,
    /// 3711150), 30 m, NoData 0, with the codes `code(col, row)` (grid coordinates).
    fn write_part(
        path: &Path,
        cols: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        code: impl Fn(usize, usize) -> u8,
    ) -> PathBuf {
        let grid = (766_020.0, 3_711_150.0, 30.0, crate::io::geotiff_writer::Crs::albers_china());
        write_grid_part(path, grid, cols, rows, code)
    }

    /// Writes the part cols × rows of a grid given as (left, top, pixel size, CRS), NoData 0,
    /// with the codes `code(col, row)` (grid coordinates).
    fn write_grid_part(
        path: &Path,
        (left, top, pixel, crs): (f64, f64, f64, crate::io::geotiff_writer::Crs),
        cols: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        code: impl Fn(usize, usize) -> u8,
    ) -> PathBuf {
        use crate::io::geotiff_writer::{CategoricalRaster, GridPlacement, write_categorical};
        let codes: Vec<u8> = rows
            .clone()
            .flat_map(|r| cols.clone().map(move |c| (c, r)))
            .map(|(c, r)| code(c, r))
            .collect();
        let raster = CategoricalRaster {
            width: u32::try_from(cols.len()).unwrap(),
            height: u32::try_from(rows.len()).unwrap(),
            codes: &codes,
            placement: GridPlacement {
                x_min: left + pixel * cols.start as f64,
                y_max: top - pixel * rows.start as f64,
                pixel_width: pixel,
                pixel_height: pixel,
            },
            crs,
            nodata: Some(0),
            description: None,
        };
        write_categorical(path, &raster).unwrap();
        path.to_owned()
    }

    fn show(p: &Path) -> String {
        p.display().to_string()
    }

    #[test]
    fn a_year_as_tiles_a_list_or_a_pattern_equals_the_merged_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let merged = write_part(&d.join("merged.tif"), 0..40, 0..36, pattern);
        // Two provincial files: bounding boxes that overlap (cols 16..24), each NoData outside
        // its province (west: cols < 20, east: cols >= 20).
        let west = write_part(&d.join("prov_west.tif"), 0..24, 0..36, |c, r| {
            if c < 20 { pattern(c, r) } else { 0 }
        });
        let east = write_part(&d.join("prov_east.tif"), 16..40, 0..36, |c, r| {
            if c >= 20 { pattern(c, r) } else { 0 }
        });
        // Earth Engine export tiles: a 2 × 2 split that overlaps by 3 pixels with equal values.
        std::fs::create_dir(d.join("ee")).unwrap();
        for (i, (cols, rows)) in [
            (0..22, 0..20),
            (19..40, 0..20),
            (0..22, 17..36),
            (19..40, 17..36),
        ]
        .into_iter()
        .enumerate()
        {
            write_part(
                &d.join(format!("ee/lu_2000-{i:04}.tif")),
                cols,
                rows,
                pattern,
            );
        }
        let units = || units_table("units_proj_lonlat.geojson");
        let run_with = |files: serde_json::Value| {
            let params = serde_json::json!({ "rasters": { "2000": files, "2020": show(&merged) }, "scheme": "clcd" });
            run(params, "units", units()).unwrap()
        };
        let reference = run_with(serde_json::json!(show(&merged)));
        let provinces = run_with(serde_json::json!([show(&west), show(&east)]));
        let tiles = run_with(serde_json::json!(show(&d.join("ee/lu_2000-*.tif"))));
        // The hand counts of expected_pixels hold for the merged file ...
        for (unit, px) in expected_pixels() {
            for (c, n) in LandClass::ALL.iter().zip(px) {
                assert_eq!(
                    areas(&reference)[&(unit.to_owned(), 2000, c.as_str().to_owned())].0,
                    n,
                    "{unit} {c:?}"
                );
            }
        }
        // ... and every output is the same table, bit for bit, from the tiles.
        for r in [&provinces, &tiles] {
            for name in ["areas", "codes", "transitions", "transitions_total"] {
                assert_eq!(r.outputs[name], reference.outputs[name], "{name}");
            }
        }
    }

    #[test]
    fn tiles_that_disagree_on_an_overlap_are_an_error_naming_both_files_and_the_pixel() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = write_part(&d.join("a.tif"), 0..22, 0..36, pattern);
        // Column 20, row 3 holds 4 in the pattern; this tile says 1.
        let b = write_part(&d.join("b.tif"), 20..40, 0..36, |c, r| {
            if (c, r) == (20, 3) { 1 } else { pattern(c, r) }
        });
        let params =
            serde_json::json!({ "rasters": { "2000": [show(&a), show(&b)] }, "scheme": "clcd" });
        let e = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap_err();
        let text = e.to_string();
        // The pixel's centre: x = 766020 + 20.5·30 = 766635, y = 3711150 − 3.5·30 = 3711045.
        for want in [
            show(&a),
            show(&b),
            "x = 766635".to_owned(),
            "y = 3711045".to_owned(),
            "(4 and 1)".to_owned(),
        ] {
            assert!(text.contains(&want), "{want} not in {text}");
        }
    }

    #[test]
    fn tiles_off_the_lattice_are_an_error_naming_both_files_and_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = write_part(&d.join("a.tif"), 0..20, 0..36, pattern);
        // The same tile as the east half, moved 15 m (half a pixel) east.
        let b = d.join("b.tif");
        {
            use crate::io::geotiff_writer::{
                CategoricalRaster, Crs, GridPlacement, write_categorical,
            };
            let codes = vec![1u8; 20 * 36];
            let raster = CategoricalRaster {
                width: 20,
                height: 36,
                codes: &codes,
                placement: GridPlacement {
                    x_min: 766_020.0 + 615.0,
                    y_max: 3_711_150.0,
                    pixel_width: 30.0,
                    pixel_height: 30.0,
                },
                crs: Crs::albers_china(),
                nodata: Some(0),
                description: None,
            };
            write_categorical(&b, &raster).unwrap();
        }
        let params =
            serde_json::json!({ "rasters": { "2000": [show(&a), show(&b)] }, "scheme": "clcd" });
        let e = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap_err();
        let text = e.to_string();
        for want in [
            show(&a),
            show(&b),
            "20.5000 columns".to_owned(),
            "year 2000".to_owned(),
        ] {
            assert!(text.contains(&want), "{want} not in {text}");
        }
        // A pattern that matches nothing names itself.
        let params = serde_json::json!({ "rasters": { "2000": show(&d.join("none_*.tif")) }, "scheme": "clcd" });
        let e = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap_err();
        assert!(
            e.to_string().contains("none_*.tif") && e.to_string().contains("matches no file"),
            "{e}"
        );
    }

    #[test]
    fn transitions_between_a_provincial_and_a_national_extent_use_the_pixels_both_cover() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let national = write_part(&d.join("national.tif"), 0..40, 0..36, pattern);
        let province = write_part(&d.join("province.tif"), 0..20, 0..36, pattern);
        let params = serde_json::json!({
            "rasters": { "2000": show(&national), "2020": show(&province) },
            "scheme": "clcd",
            "min_coverage": 0.4,
        });
        let r = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap();
        let t = &r.outputs["transitions"];
        let (u, cf, ct, ha) = (
            table::ids(t, "t", UNIT_ID).unwrap(),
            table::strings(t, "t", "class_from").unwrap(),
            table::strings(t, "t", "class_to").unwrap(),
            table::f64s(t, "t", "area_ha").unwrap(),
        );
        let cell: BTreeMap<(String, String, String), f64> = (0..t.num_rows())
            .map(|i| ((u[i].clone(), cf[i].clone(), ct[i].clone()), ha[i]))
            .collect();
        // U2 within cols 0..20 (by hand from the pattern, 0.09 ha a pixel): rows 10..18 give
        // 40 px of 1 (cols 5..10) and 80 − 15 (hole) = 65 px of 2; rows 18..30 give 60 px of 5
        // and 120 − 35 (hole) = 85 px of 1. So cultivated 125 px, forest 65, water 60.
        let c = |unit: &str, a: &str, b: &str| cell[&(unit.to_owned(), a.to_owned(), b.to_owned())];
        assert!((c("U2", "cultivated", "cultivated") - 125.0 * 0.09).abs() < 1e-9);
        assert!((c("U2", "forest", "forest") - 65.0 * 0.09).abs() < 1e-9);
        assert!((c("U2", "water", "water") - 60.0 * 0.09).abs() < 1e-9);
        let u2_total: f64 = (0..t.num_rows())
            .filter(|&i| u[i] == "U2")
            .map(|i| ha[i])
            .sum();
        assert!((u2_total - 250.0 * 0.09).abs() < 1e-9, "{u2_total}");
        // U6 (cols 30..40) lies outside the province: no transition.
        let u6_total: f64 = (0..t.num_rows())
            .filter(|&i| u[i] == "U6")
            .map(|i| ha[i])
            .sum();
        assert_eq!(u6_total, 0.0);
    }

    /// `coverage` as (unit, year) → (pixels, nodata_pixels, area_ha, nodata_ha).
    fn coverage(r: &Run) -> BTreeMap<(String, i64), (i64, i64, f64, f64)> {
        let t = &r.outputs["coverage"];
        let (u, y) = (
            table::ids(t, "c", UNIT_ID).unwrap(),
            table::i64s(t, "c", "year").unwrap(),
        );
        let (p, n) = (
            table::i64s(t, "c", "pixels").unwrap(),
            table::i64s(t, "c", "nodata_pixels").unwrap(),
        );
        let (a, na) = (
            table::f64s(t, "c", "area_ha").unwrap(),
            table::f64s(t, "c", "nodata_ha").unwrap(),
        );
        (0..t.num_rows())
            .map(|i| ((u[i].clone(), y[i]), (p[i], n[i], a[i], na[i])))
            .collect()
    }

    #[test]
    fn coverage_counts_nodata_per_unit_and_warns_once() {
        let params = serde_json::json!({ "rasters": { "2000": "proj_u8_tiled_deflate.tif" }, "scheme": "clcd" });
        let r = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap();
        let c = coverage(&r);
        // Hand counts (README): U2 has 500 px, 85 of them NoData (0); U3 110 px, 60 NoData;
        // U6 180 px, the unmapped 12 counting as data; 0.09 ha a pixel.
        let want = [
            ("U1", 360, 0),
            ("U2", 500, 85),
            ("U3", 110, 60),
            ("U4", 0, 0),
            ("U5", 0, 0),
            ("U6", 180, 0),
        ];
        for (unit, px, nd) in want {
            let (p, n, a, na) = c[&(unit.to_owned(), 2000)];
            assert_eq!((p, n), (px, nd), "{unit}");
            assert!(
                (a - (px - nd) as f64 * 0.09).abs() < 1e-9 && (na - nd as f64 * 0.09).abs() < 1e-9,
                "{unit}"
            );
        }
        let w: Vec<&String> = r.warnings.iter().filter(|w| w.contains("NoData")).collect();
        // U2 (17 %) and U3 (54.55 %) exceed 0.5 %; U3 is the worst.
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("2 unit-year(s)") && w[0].contains("`U3` in 2000 with 54.55 %"),
            "{}",
            w[0]
        );
    }

    #[test]
    fn rasters_and_units_that_do_not_overlap_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let units = || units_table("units_proj_lonlat.geojson");
        // A raster that is all NoData.
        let blank = write_part(&d.join("blank.tif"), 0..40, 0..36, |_, _| 0);
        let params = serde_json::json!({ "rasters": { "2000": show(&blank) }, "scheme": "clcd" });
        let e = run(params, "units", units()).unwrap_err();
        assert!(
            e.message
                .contains("year 2000: no pixel inside any unit has data")
                && e.message.contains("blank.tif"),
            "{e}"
        );
        // Units somewhere else (the lon/lat fixture boxes lie west of the Albers raster).
        let params = serde_json::json!({ "rasters": { "2000": "proj_u8_tiled_deflate.tif" }, "scheme": "clcd" });
        let e = run(params, "units", units_table("units_geo.geojson")).unwrap_err();
        assert!(
            e.message.contains("no pixel inside any unit has data"),
            "{e}"
        );
        assert!(
            e.hint.as_deref().is_some_and(|h| h.contains("lon/lat")),
            "{e:?}"
        );
        // A raster covering cols 0..10 only: data on U1's 180 px and U2's 100 px of about
        // 1270 px of polygons (22 %), below the default 50 %; accepted when asked for.
        let west = write_part(&d.join("west.tif"), 0..10, 0..36, pattern);
        let params = serde_json::json!({ "rasters": { "2000": show(&west) }, "scheme": "clcd" });
        let e = run(params, "units", units()).unwrap_err();
        assert!(
            e.message.contains("year 2000: only 2") && e.message.contains("west.tif"),
            "{e}"
        );
        assert!(
            e.hint
                .as_deref()
                .is_some_and(|h| h.contains("min_coverage")),
            "{e:?}"
        );
        let params = serde_json::json!({ "rasters": { "2000": show(&west) }, "scheme": "clcd", "min_coverage": 0.2 });
        let r = run(params, "units", units()).unwrap();
        assert_eq!(coverage(&r)[&("U2".to_owned(), 2000)].0, 100);
        // Units without data are refused unless allowed, listed by id.
        let params = serde_json::json!({ "rasters": { "2000": "proj_u8_tiled_deflate.tif" }, "scheme": "clcd", "allow_empty_units": false });
        let e = run(params, "units", units()).unwrap_err();
        assert!(
            e.message
                .contains("2 unit-year(s) have no pixel with data: `U4` (2000), `U5` (2000)"),
            "{e}"
        );
        assert!(
            e.hint
                .as_deref()
                .is_some_and(|h| h.contains("allow_empty_units: true")),
            "{e:?}"
        );
    }

    #[test]
    fn a_world_file_with_crs_georeferences_a_tiff_without_geokeys() {
        let dir = tempfile::tempdir().unwrap();
        let tif = dir.path().join("plain.tif");
        let codes: Vec<u8> = (0..36)
            .flat_map(|r| (0..40).map(move |c| pattern(c, r)))
            .collect();
        {
            let mut file = std::fs::File::create(&tif).unwrap();
            let mut enc = tiff::encoder::TiffEncoder::new(&mut file).unwrap();
            let mut image = enc
                .new_image::<tiff::encoder::colortype::Gray8>(40, 36)
                .unwrap();
            image
                .encoder()
                .write_tag(tiff::tags::Tag::GdalNodata, "0")
                .unwrap();
            image.write_data(&codes).unwrap();
        }
        // The fixtures' grid: corner (766020, 3711150), 30 m; a world file gives pixel centres.
        std::fs::write(
            dir.path().join("plain.tfw"),
            "30\n0\n0\n-30\n766035\n3711135\n",
        )
        .unwrap();
        let units = || units_table("units_proj_lonlat.geojson");
        let albers = "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs";
        let params = serde_json::json!({ "rasters": { "2000": show(&tif) }, "scheme": "clcd", "crs": albers });
        let plain = run(params, "units", units()).unwrap();
        let params = serde_json::json!({ "rasters": { "2000": "proj_u8_tiled_deflate.tif" }, "scheme": "clcd" });
        let reference = run(params, "units", units()).unwrap();
        assert_eq!(areas(&plain), areas(&reference));
        // Without `crs:` the CRS is unknown: the error says how to give it.
        let params = serde_json::json!({ "rasters": { "2000": show(&tif) }, "scheme": "clcd" });
        let e = run(params, "units", units()).unwrap_err();
        assert!(
            e.message.contains("plain.tif")
                && e.hint.as_deref().is_some_and(|h| h.contains("crs: EPSG")),
            "{e:?}"
        );
    }

    #[test]
    fn wetland_pixels_fold_into_water_or_form_a_seventh_class() {
        // IGBP 0 is water and 11 permanent wetland; the counts per city are rasterstats' (see
        // HENAN_RASTERSTATS): 410400 holds 1 px of 11 and 0 px of 0.
        let count = |unit: &str, code: i64| {
            HENAN_RASTERSTATS
                .iter()
                .find(|(u, _)| *u == unit)
                .and_then(|(_, list)| list.iter().find(|(c, _)| *c == code))
                .map_or(0, |(_, px)| *px)
        };
        let by_mode = |wetland: Option<&str>| {
            let mut params = serde_json::json!({ "rasters": { "2019": "mcd12c1_2019_igbp_yrb9.tif" }, "scheme": "igbp" });
            if let Some(w) = wetland {
                params["wetland"] = serde_json::json!(w);
            }
            run(params, "units", units_table("henan_cities.geojson")).unwrap()
        };
        let (default, water, class) = (
            by_mode(None),
            by_mode(Some("water")),
            by_mode(Some("class")),
        );
        assert_eq!(areas(&default), areas(&water));
        assert_eq!(default.outputs["areas"].num_rows(), 18 * 6);
        assert_eq!(class.outputs["areas"].num_rows(), 18 * 7);
        let (folded, kept) = (areas(&default), areas(&class));
        for (unit, _) in HENAN_RASTERSTATS {
            let key = |c: &str| ((*unit).to_owned(), 2019, c.to_owned());
            assert_eq!(
                folded[&key("water")].0,
                count(unit, 0) + count(unit, 11),
                "{unit}"
            );
            assert_eq!(kept[&key("water")].0, count(unit, 0), "{unit}");
            assert_eq!(kept[&key("wetland")].0, count(unit, 11), "{unit}");
            assert!(!folded.contains_key(&key("wetland")));
            for c in [
                "cultivated",
                "forest",
                "grassland",
                "construction",
                "unused",
            ] {
                assert_eq!(folded[&key(c)], kept[&key(c)], "{unit} {c}");
            }
        }
        assert_eq!(
            kept[&("410400".to_owned(), 2019, "wetland".to_owned())].0,
            1
        );
    }

    #[test]
    fn wetland_class_adds_wetland_rows_to_areas_and_dynamics() {
        // Yearbook-style code areas (CLCD): 2000 water 5 ha + wetland 10 ha; 2005 wetland 15 ha.
        let t = TableBuilder::new()
            .str(UNIT_ID, &["A", "A", "A"])
            .i64("year", vec![2000, 2000, 2005])
            .i64("code", vec![5, 9, 9])
            .f64("area_ha", vec![5.0, 10.0, 15.0])
            .build()
            .unwrap();
        let r = run(
            serde_json::json!({ "scheme": "clcd", "wetland": "class" }),
            "areas",
            t.clone(),
        )
        .unwrap();
        let a = areas(&r);
        assert_eq!(a[&("A".to_owned(), 2000, "wetland".to_owned())].1, 10.0);
        assert_eq!(a[&("A".to_owned(), 2000, "water".to_owned())].1, 5.0);
        // Wetland K = (15 − 10)/10/5 × 100 = 10 %/a; water (0 − 5)/5/5 × 100 = −20 %/a.
        let d = &r.outputs["dynamics"];
        let classes = table::strings(d, "d", "class").unwrap();
        let degree = table::f64s(d, "d", "degree_pct_per_year").unwrap();
        let get = |c: &str| degree[classes.iter().position(|x| x == c).unwrap()];
        assert!((get("wetland") - 10.0).abs() < 1e-12);
        assert!((get("water") + 20.0).abs() < 1e-12);
        // Folded into water, the 15 ha stay 15 ha: K = 0.
        let r = run(serde_json::json!({ "scheme": "clcd" }), "areas", t).unwrap();
        let d = &r.outputs["dynamics"];
        let classes = table::strings(d, "d", "class").unwrap();
        assert!(!classes.iter().any(|c| c == "wetland"));
        let degree = table::f64s(d, "d", "degree_pct_per_year").unwrap();
        assert_eq!(
            degree[classes.iter().position(|x| x == "water").unwrap()],
            0.0
        );

        // A `class` column naming wetland: 4 ha water + 6 ha wetland.
        let named = TableBuilder::new()
            .str(UNIT_ID, &["B", "B"])
            .i64("year", vec![2010, 2010])
            .str("class", &["water", "Wetland"])
            .f64("area_ha", vec![4.0, 6.0])
            .build()
            .unwrap();
        let key = |c: &str| ("B".to_owned(), 2010, c.to_owned());
        let folded = areas(&run(serde_json::json!({}), "areas", named.clone()).unwrap());
        assert_eq!(folded[&key("water")].1, 10.0);
        assert!(!folded.contains_key(&key("wetland")));
        let kept = areas(&run(serde_json::json!({ "wetland": "class" }), "areas", named).unwrap());
        assert_eq!((kept[&key("water")].1, kept[&key("wetland")].1), (4.0, 6.0));
    }

    #[test]
    fn wetland_class_splits_the_transfer_matrix_without_changing_its_other_cells() {
        // CLCD with water (5) relabelled wetland: kept apart, the water row and column of the
        // default matrix move to wetland whole, and every other cell stays as it was.
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("scheme.csv");
        std::fs::write(&csv, "code,class\n0,excluded\n1,cultivated\n2,forest\n3,forest\n4,grassland\n5,wetland\n6,unused\n7,unused\n8,construction\n9,water\n").unwrap();
        let by_mode = |wetland: &str| {
            let params = serde_json::json!({
                "rasters": { "2000": "proj_u8_tiled_deflate.tif", "2020": "proj_u8_tiled_deflate_2020.tif" },
                "scheme": csv, "wetland": wetland,
            });
            let r = run(params, "units", units_table("units_proj_lonlat.geojson")).unwrap();
            let t = &r.outputs["transitions"];
            let (u, f, to, a) = (
                table::ids(t, "t", UNIT_ID).unwrap(),
                table::strings(t, "t", "class_from").unwrap(),
                table::strings(t, "t", "class_to").unwrap(),
                table::f64s(t, "t", "area_ha").unwrap(),
            );
            (0..t.num_rows())
                .map(|i| ((u[i].clone(), f[i].clone(), to[i].clone()), a[i]))
                .collect::<BTreeMap<_, _>>()
        };
        let (folded, kept) = (by_mode("water"), by_mode("class"));
        assert_eq!(folded.len(), 6 * 36);
        assert_eq!(kept.len(), 6 * 49);
        let rename = |c: &str| if c == "water" { "wetland" } else { c }.to_owned();
        let mut moved = 0.0;
        for ((unit, from, to), area) in &folded {
            let cell = (unit.clone(), rename(from), rename(to));
            assert_eq!(kept[&cell], *area, "{cell:?}");
            if from == "water" || to == "water" {
                moved += area;
                assert_eq!(kept[&(unit.clone(), from.clone(), to.clone())], 0.0);
            }
        }
        // U2 holds 60 px of water in 2000 (expected_pixels), 0.09 ha each.
        assert!(moved >= 60.0 * 0.09 - 1e-9, "{moved}");
    }
}
