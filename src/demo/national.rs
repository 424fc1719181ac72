//! Demonstration data for a national study: CLCD-coded land-cover rasters of mainland China's
//! 2,852 county-level units in CLCD's Albers grid, one per year, and per-unit economy and energy
//! tables for the same years. Nothing is committed: `pipeline demo-data --national` writes it on
//! demand, at any resolution, strip by strip, so memory stays bounded at 90 m or finer.
//!
//! The maps use the texture of [`super::texture`] over a class mix blended from regional anchors
//! (North China Plain cropland, the forests of the north-east and south, the steppe, the
//! deserts and the plateau); unit polygons are projected to the Albers grid and rasterised by
//! the pixel-centre rule of [`crate::methods::rasterize`], the rule the `landuse` stage uses, so
//! every pixel whose centre is in a unit has a class and all others are NoData (0).
//!
//! The tables split national totals of the right order (population, GDP, energy, electricity,
//! 1985–2022) over the units by their mapped cropland and built-up land, with a seeded jitter
//! per unit; fuels are converted from tce to physical units by the standard-coal coefficients of
//! the `liu2017` preset. No number is a statistic.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use geo::{BoundingRect, Centroid, Coord, LineString, MultiPolygon, Polygon};
use rayon::prelude::*;

use super::texture::{Anchor, CLASSES, ClassMix, Landscape, PixelBase, Seat};
use super::{
    DEMO_NOTE, DemoError, adcode_and_polygons, boundary_error, io_err, read_feature_collection,
};
use crate::io::geotiff_writer::{Crs, GridPlacement, Layout, RasterHeader, StreamingGeoTiff};
use crate::methods::coefficients::{parse_fuel_rows, preset_text, theta_per_input_unit};
use crate::methods::rasterize::{Grid, Spans, rasterize};
use crate::methods::rng::SplitMix64;

/// Default pixel size: a clean clone generates and runs the 38-year example in about a minute
/// on two cores.
pub const DEFAULT_RESOLUTION_M: f64 = 1000.0;
/// The years of CLCD's annual series.
pub const DEFAULT_YEARS: (i64, i64) = (1985, 2022);
/// Bumped when the same configuration would give other bytes; an earlier run is reused only if
/// its README names this version.
const GENERATOR_VERSION: u32 = 3;
/// The boundary file under the data directory's `boundaries/`.
pub const BOUNDARY_FILE: &str = "china_counties.geojson";
/// CLCD's Albers grid (Yang & Huang 2021): WGS 84, standard parallels 25° and 47° N, central
/// meridian 105° E.
const ALBERS_PROJ: &str = "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs";

/// Which files to write for each year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formats {
    /// `landuse_<year>.tif`, LZW strips as CLCD ships.
    Lzw,
    /// `landuse_<year>_tiled.tif`, DEFLATE tiles.
    Deflate,
    Both,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct NationalConfig {
    /// The unit polygons (`china_counties.geojson`).
    pub boundaries: PathBuf,
    /// The output folder.
    pub out: PathBuf,
    pub resolution_m: f64,
    /// First and last year, inclusive.
    pub years: (i64, i64),
    pub formats: Formats,
    pub seed: u64,
}

/// One county-level unit.
struct Unit {
    adcode: u64,
    kind: String,
    /// In the Albers grid's metres.
    albers: MultiPolygon<f64>,
}

/// What was written, and a few lines for the terminal.
#[derive(Debug, Clone)]
pub struct Generated {
    pub files: Vec<PathBuf>,
    pub summary: String,
}

/// Generates the rasters and tables. `progress(done_rows, total_rows)` is called after every
/// band of rows.
pub fn generate(
    config: &NationalConfig,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Generated, DemoError> {
    if !(config.resolution_m >= 10.0 && config.resolution_m.is_finite()) {
        return Err(DemoError::Config(format!(
            "resolution {} m: use 10 m or more",
            config.resolution_m
        )));
    }
    if config.years.0 > config.years.1 {
        return Err(DemoError::Config(format!(
            "years {}..{}: the first year is after the last",
            config.years.0, config.years.1
        )));
    }
    let units = read_units(&config.boundaries)?;
    std::fs::create_dir_all(&config.out).map_err(|e| io_err(&config.out, e))?;
    let grid = covering_grid(&units, config.resolution_m);
    let shapes: Vec<MultiPolygon<f64>> = units.iter().map(|u| u.albers.clone()).collect();
    let spans = rasterize(&grid, &shapes);
    let landscape = Landscape::new(
        config.seed,
        grid.extent(),
        &anchors()?,
        seats(&units),
        DEFAULT_YEARS,
    );
    let years: Vec<i64> = (config.years.0..=config.years.1).collect();
    let readme_text = readme(config, &grid, &years, units.len());
    if let Some(files) = up_to_date(config, &years, &readme_text) {
        return Ok(Generated {
            files,
            summary: format!(
                "{} is up to date (same generator, resolution, years and seed)",
                config.out.display()
            ),
        });
    }
    let (mut files, counts) = write_rasters(config, &grid, &spans, &landscape, &years, progress)?;
    let tables = tables(config, &units, &years, &counts)?;
    for (name, text) in [
        ("economy.csv", &tables.economy),
        ("energy.csv", &tables.energy),
        ("README.md", &readme_text),
    ] {
        let path = config.out.join(name);
        std::fs::write(&path, text).map_err(|e| io_err(&path, e))?;
        files.push(path);
    }
    files.sort();
    let summary = format!(
        "{} units, {} × {} px of {} m, years {}..{}; {}",
        units.len(),
        grid.width,
        grid.height,
        config.resolution_m,
        config.years.0,
        config.years.1,
        tables.shares
    );
    Ok(Generated { files, summary })
}

/// The files of an earlier run with the same README (which names the generator version, the
/// resolution, years, formats and seed), if all are there; `None` means generate.
fn up_to_date(config: &NationalConfig, years: &[i64], readme_text: &str) -> Option<Vec<PathBuf>> {
    let readme = config.out.join("README.md");
    if std::fs::read_to_string(&readme).ok()? != readme_text {
        return None;
    }
    let mut files = vec![
        readme,
        config.out.join("economy.csv"),
        config.out.join("energy.csv"),
    ];
    for year in years {
        if matches!(config.formats, Formats::Lzw | Formats::Both) {
            files.push(config.out.join(format!("landuse_{year}.tif")));
        }
        if matches!(config.formats, Formats::Deflate | Formats::Both) {
            files.push(config.out.join(format!("landuse_{year}_tiled.tif")));
        }
    }
    files.sort();
    files.iter().all(|f| f.is_file()).then_some(files)
}

fn read_units(path: &Path) -> Result<Vec<Unit>, DemoError> {
    let bad = |message: String| boundary_error(path, message);
    let fc = read_feature_collection(path)?;
    let from = proj4rs::Proj::from_proj_string("+proj=longlat +ellps=WGS84 +no_defs")
        .map_err(|e| bad(format!("WGS84: {e}")))?;
    let to =
        proj4rs::Proj::from_proj_string(ALBERS_PROJ).map_err(|e| bad(format!("Albers: {e}")))?;
    let mut units = Vec::new();
    for (i, f) in fc.features.iter().enumerate() {
        let (adcode, lon_lat) = adcode_and_polygons(path, i, f)?;
        let albers = project(&lon_lat, &from, &to)
            .map_err(|e| bad(format!("unit {adcode}: cannot project to Albers: {e}")))?;
        units.push(Unit {
            adcode,
            kind: f
                .property("kind")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("county")
                .to_owned(),
            albers,
        });
    }
    units.sort_by_key(|u| u.adcode);
    if units.is_empty() {
        return Err(bad("no units".into()));
    }
    Ok(units)
}

fn project(
    shape: &MultiPolygon<f64>,
    from: &proj4rs::Proj,
    to: &proj4rs::Proj,
) -> Result<MultiPolygon<f64>, String> {
    let ring = |ls: &LineString<f64>| -> Result<LineString<f64>, String> {
        let mut pts: Vec<(f64, f64, f64)> =
            ls.0.iter()
                .map(|c| (c.x.to_radians(), c.y.to_radians(), 0.0))
                .collect();
        proj4rs::transform::transform(from, to, pts.as_mut_slice()).map_err(|e| e.to_string())?;
        Ok(LineString(
            pts.into_iter().map(|(x, y, _)| Coord { x, y }).collect(),
        ))
    };
    shape
        .0
        .iter()
        .map(|p| {
            let holes = p
                .interiors()
                .iter()
                .map(ring)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Polygon::new(ring(p.exterior())?, holes))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(MultiPolygon)
}

/// The north-up grid of whole pixels, aligned to multiples of the pixel size, covering every unit.
fn covering_grid(units: &[Unit], px: f64) -> Grid {
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for r in units.iter().filter_map(|u| u.albers.bounding_rect()) {
        x0 = x0.min(r.min().x);
        y0 = y0.min(r.min().y);
        x1 = x1.max(r.max().x);
        y1 = y1.max(r.max().y);
    }
    let x_min = (x0 / px).floor() * px;
    let y_max = (y1 / px).ceil() * px;
    Grid {
        x0: x_min,
        y0: y_max,
        dx: px,
        dy: -px,
        width: ((x1 - x_min) / px).ceil() as usize,
        height: ((y_max - y0) / px).ceil() as usize,
    }
}

/// Each unit's seat: its centroid, with a built-up radius by kind (urban districts largest).
fn seats(units: &[Unit]) -> Vec<Seat> {
    units
        .iter()
        .map(|u| {
            let c = u.albers.centroid().map_or((0.0, 0.0), |p| (p.x(), p.y()));
            let area_m2 = geo::Area::unsigned_area(&u.albers);
            let (share, cap_m) = match u.kind.as_str() {
                "district" => (0.55, 6_000.0),
                "county_city" => (0.3, 3_000.0),
                "county" => (0.2, 1_800.0),
                _ => (0.1, 1_000.0),
            };
            // √(A/π) is the radius of a disc of the unit's area; the square root is exact in IEEE.
            let radius_m = (share * (area_m2 / std::f64::consts::PI).sqrt()).min(cap_m);
            Seat {
                x_m: c.0,
                y_m: c.1,
                radius_m: radius_m.max(200.0),
            }
        })
        .collect()
}

/// Per-unit counts: `[year][code]` pixels.
type UnitCounts = Vec<[u64; CLASSES + 1]>;

/// The rows of one band, as written, and the pixel counts per unit in them.
struct Band {
    /// Per year, the band's rows.
    rows: Vec<Vec<u8>>,
    counts: Vec<(u32, UnitCounts)>,
}

fn write_rasters(
    config: &NationalConfig,
    grid: &Grid,
    spans: &Spans,
    landscape: &Landscape,
    years: &[i64],
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<(Vec<PathBuf>, Vec<UnitCounts>), DemoError> {
    let (mut writers, files) = open_year_writers(config, grid, years)?;
    let mut totals: Vec<UnitCounts> = Vec::new();
    // 256 rows is one tile row; a band's rows are made in parallel.
    let band_rows = 256;
    for start in (0..grid.height).step_by(band_rows) {
        let end = (start + band_rows).min(grid.height);
        let band = make_band(grid, spans, landscape, years, start..end);
        // Each year's files are compressed and written by their own task (and each file's
        // chunks in parallel within it), so no core waits for one file's writer.
        writers
            .par_iter_mut()
            .zip(&band.rows)
            .try_for_each(|(per_year, rows)| {
                per_year.iter_mut().try_for_each(|w| w.write_rows(rows))
            })?;
        for (unit, counts) in band.counts {
            add_unit_counts(&mut totals, unit as usize, &counts, years.len());
        }
        progress(end as u64, grid.height as u64);
    }
    for per_year in writers {
        for w in per_year {
            w.finish()?;
        }
    }
    Ok((files, totals))
}

/// Adds a band's class counts of `unit` (per year) to its totals.
fn add_unit_counts(totals: &mut Vec<UnitCounts>, unit: usize, counts: &UnitCounts, years: usize) {
    if totals.len() <= unit {
        totals.resize(unit + 1, vec![[0; CLASSES + 1]; years]);
    }
    for (t, c) in totals[unit].iter_mut().zip(counts) {
        for (a, b) in t.iter_mut().zip(c) {
            *a += b;
        }
    }
}

/// One writer per chosen format for each year, and the paths they write.
fn open_year_writers(
    config: &NationalConfig,
    grid: &Grid,
    years: &[i64],
) -> Result<(Vec<Vec<StreamingGeoTiff>>, Vec<PathBuf>), DemoError> {
    let mut writers = Vec::new();
    let mut files = Vec::new();
    let width = u32::try_from(grid.width).map_err(|_| too_large(grid))?;
    let height = u32::try_from(grid.height).map_err(|_| too_large(grid))?;
    for &year in years {
        let header = RasterHeader {
            width,
            height,
            placement: GridPlacement {
                x_min: grid.x0,
                y_max: grid.y0,
                pixel_width: grid.dx,
                pixel_height: -grid.dy,
            },
            crs: Crs::albers_china(),
            nodata: Some(0),
            description: Some(format!(
                "{}. CLCD codes 1-9, 0 = outside the units. Year {year}.",
                DEMO_NOTE.replace('—', "-")
            )),
        };
        let mut per_year = Vec::new();
        if matches!(config.formats, Formats::Lzw | Formats::Both) {
            let path = config.out.join(format!("landuse_{year}.tif"));
            let layout = Layout::lzw_strips_for_width(width);
            per_year.push(StreamingGeoTiff::create(&path, header.clone(), layout)?);
            files.push(path);
        }
        if matches!(config.formats, Formats::Deflate | Formats::Both) {
            let path = config.out.join(format!("landuse_{year}_tiled.tif"));
            per_year.push(StreamingGeoTiff::create(
                &path,
                header,
                Layout::DeflateTiles,
            )?);
            files.push(path);
        }
        writers.push(per_year);
    }
    Ok((writers, files))
}

fn too_large(grid: &Grid) -> DemoError {
    DemoError::Config(format!(
        "a {} × {} px grid is too large for a TIFF; use a coarser resolution",
        grid.width, grid.height
    ))
}

/// Classifies the rows `rows` for every year and counts pixels per unit. Rows are made in
/// parallel, each straight into its place in every year's band.
fn make_band(
    grid: &Grid,
    spans: &Spans,
    landscape: &Landscape,
    years: &[i64],
    rows: std::ops::Range<usize>,
) -> Band {
    let w = grid.width;
    let mut band_rows = vec![vec![0u8; rows.len() * w]; years.len()];
    // Row r of every year's band, for the task that makes row r.
    let mut outs: Vec<Vec<&mut [u8]>> = (0..rows.len())
        .map(|_| Vec::with_capacity(years.len()))
        .collect();
    for year_rows in &mut band_rows {
        for (out, row) in outs.iter_mut().zip(year_rows.chunks_mut(w)) {
            out.push(row);
        }
    }
    let counts: Vec<Vec<(u32, UnitCounts)>> = rows
        .into_par_iter()
        .zip(outs)
        .map(|(r, mut out)| make_row(grid, spans, landscape, years, r, &mut out))
        .collect();
    Band {
        rows: band_rows,
        counts: counts.into_iter().flatten().collect(),
    }
}

/// Classifies row `r` into `out` (one slice per year) and returns its pixel counts per unit.
fn make_row(
    grid: &Grid,
    spans: &Spans,
    landscape: &Landscape,
    years: &[i64],
    r: usize,
    out: &mut [&mut [u8]],
) -> Vec<(u32, UnitCounts)> {
    let w = grid.width;
    let mut owner = vec![None; w];
    for s in spans.row(r) {
        owner[s.x0 as usize..s.x1 as usize].fill(Some(s.unit));
    }
    let y = grid.y0 + (r as f64 + 0.5) * grid.dy;
    let mut base = vec![PixelBase::default(); w];
    landscape.base_row(y, grid.x0, grid.dx, &owner, &mut base);
    for (&year, codes) in years.iter().zip(out.iter_mut()) {
        landscape.classify_row(&base, year, codes);
    }
    let mut counts: Vec<(u32, UnitCounts)> = Vec::new();
    for s in spans.row(r) {
        let (a, b) = (s.x0 as usize, s.x1 as usize);
        if !owner[a..b].iter().all(|&o| o == Some(s.unit)) {
            continue; // An overlapped span: counted by the unit drawn over it.
        }
        let mut per_year = vec![[0u64; CLASSES + 1]; years.len()];
        for (c, codes) in per_year.iter_mut().zip(out.iter()) {
            for &code in &codes[a..b] {
                c[usize::from(code)] += 1;
            }
        }
        counts.push((s.unit, per_year));
    }
    counts
}

/// Regional class mixes (codes 1–9: cropland, forest, shrub, grassland, water, snow/ice,
/// barren, impervious, wetland) at lon/lat anchors, projected to the grid.
fn anchors() -> Result<Vec<Anchor>, DemoError> {
    #[rustfmt::skip]
    const PLACES: [(f64, f64, ClassMix); 21] = [
        // North China Plain; the north-east plain; Greater Khingan; Changbai.
        (116.0, 36.0, [0.80, 0.05, 0.00, 0.03, 0.03, 0.00, 0.00, 0.05, 0.00]),
        (125.0, 46.0, [0.65, 0.15, 0.00, 0.08, 0.03, 0.00, 0.01, 0.02, 0.04]),
        (122.0, 50.0, [0.08, 0.80, 0.01, 0.08, 0.01, 0.00, 0.00, 0.00, 0.03]),
        (128.0, 42.5, [0.15, 0.80, 0.00, 0.02, 0.02, 0.00, 0.00, 0.01, 0.00]),
        // Inner Mongolian steppe; Alxa Gobi; Taklimakan; Junggar; Tianshan.
        (113.0, 43.5, [0.12, 0.02, 0.01, 0.75, 0.01, 0.00, 0.08, 0.01, 0.01]),
        (102.0, 41.0, [0.01, 0.00, 0.01, 0.15, 0.00, 0.00, 0.83, 0.00, 0.00]),
        (83.0, 39.0, [0.02, 0.00, 0.00, 0.05, 0.01, 0.00, 0.92, 0.00, 0.00]),
        (86.0, 45.0, [0.10, 0.00, 0.01, 0.35, 0.01, 0.00, 0.52, 0.01, 0.00]),
        (84.0, 43.0, [0.02, 0.10, 0.02, 0.50, 0.01, 0.10, 0.25, 0.00, 0.00]),
        // Tibetan Plateau; Qaidam; the Himalaya.
        (90.0, 33.0, [0.00, 0.00, 0.01, 0.60, 0.03, 0.04, 0.29, 0.00, 0.03]),
        (95.0, 37.0, [0.01, 0.00, 0.01, 0.15, 0.04, 0.01, 0.75, 0.00, 0.03]),
        (87.0, 28.5, [0.01, 0.02, 0.02, 0.30, 0.02, 0.25, 0.38, 0.00, 0.00]),
        // Sichuan Basin; Hengduan; Yunnan-Guizhou; the southern hills; the south-east coast.
        (105.0, 30.5, [0.65, 0.25, 0.02, 0.03, 0.02, 0.00, 0.00, 0.03, 0.00]),
        (100.0, 27.0, [0.10, 0.63, 0.05, 0.20, 0.01, 0.01, 0.00, 0.00, 0.00]),
        (106.0, 26.0, [0.30, 0.50, 0.10, 0.08, 0.01, 0.00, 0.00, 0.01, 0.00]),
        (113.0, 25.0, [0.22, 0.70, 0.02, 0.02, 0.03, 0.00, 0.00, 0.01, 0.00]),
        (119.0, 26.0, [0.20, 0.75, 0.01, 0.01, 0.02, 0.00, 0.00, 0.01, 0.00]),
        // The middle and lower Yangtze plain; the Loess Plateau; Hainan; the Pearl River delta.
        (117.0, 31.0, [0.65, 0.15, 0.00, 0.01, 0.12, 0.00, 0.00, 0.05, 0.02]),
        (109.0, 36.5, [0.40, 0.15, 0.05, 0.35, 0.01, 0.00, 0.02, 0.02, 0.00]),
        (109.7, 19.2, [0.35, 0.60, 0.00, 0.01, 0.02, 0.00, 0.00, 0.02, 0.00]),
        (113.3, 22.8, [0.40, 0.25, 0.00, 0.00, 0.15, 0.00, 0.00, 0.20, 0.00]),
    ];
    let bad = |e: String| DemoError::Config(format!("projecting the landscape anchors: {e}"));
    let from = proj4rs::Proj::from_proj_string("+proj=longlat +ellps=WGS84 +no_defs")
        .map_err(|e| bad(e.to_string()))?;
    let to = proj4rs::Proj::from_proj_string(ALBERS_PROJ).map_err(|e| bad(e.to_string()))?;
    let mut pts: Vec<(f64, f64, f64)> = PLACES
        .iter()
        .map(|(lon, lat, _)| (lon.to_radians(), lat.to_radians(), 0.0))
        .collect();
    proj4rs::transform::transform(&from, &to, pts.as_mut_slice())
        .map_err(|e| bad(e.to_string()))?;
    Ok(PLACES
        .iter()
        .zip(pts)
        .map(|(&(_, _, mix), (x_m, y_m, _))| Anchor { x_m, y_m, mix })
        .collect())
}

/// National totals by year, linearly interpolated between these anchors (orders of magnitude
/// of the China Statistical Yearbook; demonstration values, not statistics): GDP in 10⁴ yuan
/// (nominal), population, energy in tce, electricity in 10⁴ kWh.
#[rustfmt::skip]
const NATIONAL: [(i64, f64, f64, f64, f64); 9] = [
    (1985, 9.1e7, 1.059e9, 7.7e8, 4.1e7),
    (1990, 1.89e8, 1.143e9, 9.9e8, 6.2e7),
    (1995, 6.13e8, 1.211e9, 1.31e9, 1.0e8),
    (2000, 1.0e9, 1.267e9, 1.47e9, 1.35e8),
    (2005, 1.87e9, 1.308e9, 2.61e9, 2.49e8),
    (2010, 4.12e9, 1.341e9, 3.61e9, 4.19e8),
    (2015, 6.89e9, 1.375e9, 4.34e9, 5.8e8),
    (2020, 1.016e10, 1.412e9, 4.98e9, 7.51e8),
    (2022, 1.21e10, 1.412e9, 5.41e9, 8.64e8),
];

/// Fuel shares of energy (tce) in 1985 and 2022, in the order of [`FUELS`]; linear in between.
const FUEL_SHARE_1985: [f64; 8] = [0.80, 0.04, 0.05, 0.03, 0.003, 0.05, 0.02, 0.007];
const FUEL_SHARE_2022: [f64; 8] = [0.62, 0.06, 0.08, 0.05, 0.01, 0.06, 0.01, 0.11];
/// Energy-table columns: the preset's fuel and the column's physical unit.
const FUELS: [(&str, &str); 8] = [
    ("raw_coal", "t"),
    ("coke", "t"),
    ("crude_oil", "t"),
    ("gasoline", "t"),
    ("kerosene", "t"),
    ("diesel", "t"),
    ("fuel_oil", "t"),
    ("natural_gas", "10k_m3"),
];

fn national(year: i64) -> [f64; 4] {
    let at = |i: usize| [NATIONAL[i].1, NATIONAL[i].2, NATIONAL[i].3, NATIONAL[i].4];
    if year <= NATIONAL[0].0 {
        return at(0);
    }
    for i in 1..NATIONAL.len() {
        if year <= NATIONAL[i].0 {
            let t = (year - NATIONAL[i - 1].0) as f64 / (NATIONAL[i].0 - NATIONAL[i - 1].0) as f64;
            let (a, b) = (at(i - 1), at(i));
            return [0, 1, 2, 3].map(|k| a[k] + (b[k] - a[k]) * t);
        }
    }
    at(NATIONAL.len() - 1)
}

struct Tables {
    economy: String,
    energy: String,
    /// National class shares of the first and last year, for the summary.
    shares: String,
}

/// A per-unit multiplier in [1 − a, 1 + a] from the seed, the unit and a stream number.
fn jitter(seed: u64, adcode: u64, stream: u64, amplitude: f64) -> f64 {
    let u =
        (SplitMix64::stream(seed, &[adcode, stream]).next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    1.0 + amplitude * (2.0 * u - 1.0)
}

fn split(total: f64, weights: &[f64]) -> Vec<f64> {
    let sum: f64 = weights.iter().sum();
    weights
        .iter()
        .map(|w| if sum > 0.0 { total * w / sum } else { 0.0 })
        .collect()
}

/// Standard-coal coefficient θ of each of [`FUELS`] in its table unit, from the `liu2017`
/// energy preset (刘贤赵 et al. 2017, *Acta Ecologica Sinica* 37(7), Table 1).
fn fuel_thetas() -> Result<Vec<f64>, DemoError> {
    let preset = parse_fuel_rows(preset_text("energy_liu2017.csv").unwrap_or_default())
        .map_err(|e| DemoError::Config(format!("the liu2017 energy preset: {e}")))?;
    FUELS
        .iter()
        .map(|(fuel, unit)| {
            let row = preset.iter().find(|r| r.fuel == *fuel).ok_or_else(|| {
                DemoError::Config(format!("the liu2017 energy preset lacks `{fuel}`"))
            })?;
            theta_per_input_unit(row.theta, &row.theta_unit, &unit.replace("10k_", "10^4 "))
                .map_err(DemoError::Config)
        })
        .collect()
}

/// One year's national totals spread over the units.
struct YearSpread {
    pop: Vec<f64>,
    gdp_10k_yuan: Vec<f64>,
    tce: Vec<f64>,
    elec_10k_kwh: Vec<f64>,
}

/// Spreads year `year`'s national totals over the units by their land (`px(u, code)`
/// pixels of each class, `area_px` their polygon area in pixels).
fn spread_year(
    seed: u64,
    units: &[Unit],
    year: i64,
    area_px: &[f64],
    px: &dyn Fn(usize, usize) -> f64,
) -> YearSpread {
    let [gdp_total, pop_total, tce_total, elec_total] = national(year);
    // A share by polygon area too, so a unit smaller than a pixel still has people.
    let pop_w: Vec<f64> = (0..units.len())
        .map(|u| {
            let natural = px(u, 2) + px(u, 3) + px(u, 4);
            (0.01 * natural + px(u, 1) + 12.0 * px(u, 8) + 0.05 * area_px[u])
                * jitter(seed, units[u].adcode, 1, 0.15)
        })
        .collect();
    let pop = split(pop_total, &pop_w);
    let gdp_w: Vec<f64> = (0..units.len())
        .map(|u| {
            let all: f64 = (1..=CLASSES).map(|c| px(u, c)).sum();
            let built = if all > 0.0 { px(u, 8) / all } else { 0.0 };
            pop[u] * (0.5 + 6.0 * built) * jitter(seed, units[u].adcode, 2, 0.2)
        })
        .collect();
    let gdp = split(gdp_total, &gdp_w);
    let tce_w: Vec<f64> = (0..units.len())
        .map(|u| gdp[u] * jitter(seed, units[u].adcode, 3, 0.3))
        .collect();
    YearSpread {
        tce: split(tce_total, &tce_w),
        elec_10k_kwh: split(elec_total, &gdp_w),
        pop,
        gdp_10k_yuan: gdp,
    }
}

/// Unit `u`'s `economy.csv` row; `t` is the year's place between 1985 (0) and 2022 (1).
fn economy_line(seed: u64, unit: &Unit, u: usize, year: i64, t: f64, e: &YearSpread) -> String {
    format!(
        "{},{year},{:.1},{:.0},{:.4},{:.4},{:.4}\n",
        unit.adcode,
        e.gdp_10k_yuan[u],
        e.pop[u],
        ((0.237 + (0.652 - 0.237) * t) * jitter(seed, unit.adcode, 4, 0.3)).clamp(0.05, 0.99),
        (0.53 + (0.295 - 0.53) * t) * jitter(seed, unit.adcode, 5, 0.06),
        (0.578 + (0.33 - 0.578) * t) * jitter(seed, unit.adcode, 6, 0.06),
    )
}

/// Unit `u`'s `energy.csv` row: the year's fuel mix, jittered per unit, in physical units.
fn energy_line(
    seed: u64,
    unit: &Unit,
    u: usize,
    year: i64,
    t: f64,
    e: &YearSpread,
    theta: &[f64],
) -> String {
    let mut line = format!("{},{year}", unit.adcode);
    for (j, th) in theta.iter().enumerate() {
        let share = FUEL_SHARE_1985[j] + (FUEL_SHARE_2022[j] - FUEL_SHARE_1985[j]) * t;
        let amount = e.tce[u] * share * jitter(seed, unit.adcode, 10 + j as u64, 0.2) / th;
        let _ = write!(line, ",{amount:.1}");
    }
    let _ = writeln!(line, ",{:.1}", e.elec_10k_kwh[u]);
    line
}

fn tables(
    config: &NationalConfig,
    units: &[Unit],
    years: &[i64],
    counts: &[UnitCounts],
) -> Result<Tables, DemoError> {
    let theta = fuel_thetas()?;
    let empty = vec![[0u64; CLASSES + 1]; years.len()];
    let count = |u: usize| counts.get(u).unwrap_or(&empty);
    let seed = config.seed;
    let pixel_m2 = config.resolution_m * config.resolution_m;
    let area_px: Vec<f64> = units
        .iter()
        .map(|u| geo::Area::unsigned_area(&u.albers) / pixel_m2)
        .collect();
    let mut economy_rows = Vec::new();
    let mut energy_rows = Vec::new();
    for (k, &year) in years.iter().enumerate() {
        let px = |u: usize, code: usize| count(u)[k][code] as f64;
        let e = spread_year(seed, units, year, &area_px, &px);
        let t = ((year - 1985) as f64 / 37.0).clamp(0.0, 1.0);
        for (u, unit) in units.iter().enumerate() {
            let line = economy_line(seed, unit, u, year, t, &e);
            economy_rows.push((unit.adcode, year, line));
            let line = energy_line(seed, unit, u, year, t, &e, &theta);
            energy_rows.push((unit.adcode, year, line));
        }
    }
    // Rows sorted by unit, then year.
    economy_rows.sort_by_key(|(a, y, _)| (*a, *y));
    let mut economy = String::from(
        "unit_id,year,gdp_10k_yuan,population,urbanization_rate,engel_urban,engel_rural\n",
    );
    economy.extend(economy_rows.into_iter().map(|(_, _, l)| l));
    energy_rows.sort_by_key(|(a, y, _)| (*a, *y));
    let mut energy = format!(
        "unit_id,year,{},electricity_10k_kwh\n",
        FUELS
            .iter()
            .map(|(f, u)| format!("{f}_{u}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    energy.extend(energy_rows.into_iter().map(|(_, _, l)| l));
    Ok(Tables {
        economy,
        energy,
        shares: class_shares(counts, years),
    })
}

fn class_shares(counts: &[UnitCounts], years: &[i64]) -> String {
    let mut out = String::new();
    for k in [0, years.len() - 1] {
        let mut total = [0u64; CLASSES + 1];
        for c in counts {
            for (t, v) in total.iter_mut().zip(&c[k]) {
                *t += v;
            }
        }
        let all: u64 = total[1..].iter().sum();
        let _ = write!(out, "{}:", years[k]);
        for (code, v) in total.iter().enumerate().skip(1) {
            let _ = write!(out, " {code}={:.1}%", 100.0 * *v as f64 / all.max(1) as f64);
        }
        out.push_str("; ");
    }
    out
}

fn readme(config: &NationalConfig, grid: &Grid, years: &[i64], units: usize) -> String {
    format!(
        "# Mainland China, {units} county-level units: demonstration data\n\n\
         **{DEMO_NOTE}.** Generated by `pipeline demo-data --national --resolution {res} --years {y0}..{y1}`\n\
         (generator version {GENERATOR_VERSION}, seed {seed}, formats {formats:?}); regenerate rather than commit.\n\n\
         - `landuse_<year>.tif`: CLCD codes 1–9 (0 = outside the units, NoData), {w} × {h} px of {res} m\n  \
         in CLCD's Albers grid (WGS 84, lat_1 = 25, lat_2 = 47, lon_0 = 105), LZW strips;\n  \
         `landuse_<year>_tiled.tif` (with `--format deflate|both`): the same pixels, DEFLATE tiles of 256².\n\
         - `economy.csv`: `unit_id,year,gdp_10k_yuan,population,urbanization_rate,engel_urban,engel_rural`.\n\
         - `energy.csv`: fuels in physical units (t, natural gas in 10⁴ m³) and electricity in 10⁴ kWh.\n\n\
         The maps are a seeded texture (class patches, villages, growing towns, rivers, speckle)\n\
         over regional class mixes; the tables split national totals of the right order over the\n\
         units by their mapped cropland and built-up land. Years: {n} ({y0}–{y1}).\n",
        res = config.resolution_m,
        y0 = config.years.0,
        y1 = config.years.1,
        seed = config.seed,
        formats = config.formats,
        w = grid.width,
        h = grid.height,
        n = years.len(),
    )
}
