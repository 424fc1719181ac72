//! Coefficient tables as data: land-use carbon coefficients (t C/ha/a), energy factors
//! (standard-coal conversion and carbon factor per fuel) and crop parameters for the
//! crop-yield cropland sink. Built-in presets are CSV files under `src/presets/`, embedded in
//! the binary; a study may also point at its own file of the same shape.
//!
//! This module parses CSV *text* and applies overrides; it does no file I/O.
//!
//! Embedded presets are part of the code: editing one changes results without touching the
//! study, so the stages that use them pin each preset's BLAKE3 next to their `VERSION` in a
//! test ([`PRESET_FILES`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Every embedded preset file, by file name, with its text.
pub const PRESET_FILES: &[(&str, &str)] = &[
    ("set1.csv", include_str!("../presets/set1.csv")),
    ("set2.csv", include_str!("../presets/set2.csv")),
    ("mixed.csv", include_str!("../presets/mixed.csv")),
    (
        "energy_liu2017.csv",
        include_str!("../presets/energy_liu2017.csv"),
    ),
    (
        "energy_xia2017.csv",
        include_str!("../presets/energy_xia2017.csv"),
    ),
    ("crops_tian.csv", include_str!("../presets/crops_tian.csv")),
    (
        "activities_wu2017.csv",
        include_str!("../presets/activities_wu2017.csv"),
    ),
];

/// The BLAKE3 digest (hex) of the embedded presets named, in the order given: what a stage
/// pins next to its `VERSION`.
#[must_use]
pub fn presets_digest(files: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for f in files {
        let text = preset_text(f).unwrap_or_default();
        h.update(f.as_bytes());
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

/// Names of the built-in land-use coefficient presets (file `<name>.csv`).
pub const LAND_PRESETS: &[&str] = &["mixed", "set1", "set2"];
/// Names of the built-in energy-factor presets (file `energy_<name>.csv`).
pub const ENERGY_PRESETS: &[&str] = &["liu2017", "xia2017"];
/// Names of the built-in presets of other emission sources (file `activities_<name>.csv`).
pub const ACTIVITY_PRESETS: &[&str] = &["wu2017"];
/// Names of the built-in crop-parameter presets (file `crops_<name>.csv`).
pub const CROP_PRESETS: &[&str] = &["tian"];

/// The text of an embedded preset file.
#[must_use]
pub fn preset_text(file: &str) -> Option<&'static str> {
    PRESET_FILES
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, text)| *text)
}

/// Every embedded preset file by name, parsed by one parser (an error for the files of other
/// shapes, which no caller asks that parser for).
type ParsedPresets<T> = OnceLock<Vec<(&'static str, Result<T, String>)>>;

/// An embedded preset file parsed once per process: its text never changes, and a `sweep`
/// prepares the stages that read it once per draw.
fn parsed_once<T: Send + Sync>(
    cell: &'static ParsedPresets<T>,
    file: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Option<&'static Result<T, String>> {
    let all = cell.get_or_init(|| {
        PRESET_FILES
            .iter()
            .map(|(name, text)| (*name, parse(text)))
            .collect()
    });
    all.iter().find(|(name, _)| *name == file).map(|(_, r)| r)
}

/// The embedded land-use coefficient file `file` (e.g. `mixed.csv`), parsed once.
#[must_use]
pub fn land_preset(file: &str) -> Option<&'static Result<Vec<LandCoefficient>, String>> {
    static CELL: ParsedPresets<Vec<LandCoefficient>> = OnceLock::new();
    parsed_once(&CELL, file, parse_land_coefficients)
}

/// The embedded energy-factor file `file` (e.g. `energy_liu2017.csv`), parsed once.
#[must_use]
pub fn fuel_preset(file: &str) -> Option<&'static Result<Vec<FuelRow>, String>> {
    static CELL: ParsedPresets<Vec<FuelRow>> = OnceLock::new();
    parsed_once(&CELL, file, parse_fuel_rows)
}

/// The embedded crop-parameter file `file` (e.g. `crops_tian.csv`), parsed once.
#[must_use]
pub fn crop_preset(
    file: &str,
) -> Option<&'static Result<BTreeMap<String, CropParameters>, String>> {
    static CELL: ParsedPresets<BTreeMap<String, CropParameters>> = OnceLock::new();
    parsed_once(&CELL, file, parse_crop_parameters)
}

/// One land-use coefficient: the class it applies to and its signed value.
#[derive(Debug, Clone, PartialEq)]
pub struct LandCoefficient {
    /// Land class (`cultivated`, `forest`, …, or any class the areas table uses), or
    /// `cultivated_sink` for the optional cropland absorption term.
    pub class: String,
    /// t C per ha per year; > 0 a source, < 0 a sink.
    pub value_t_c_per_ha: f64,
    pub citation: String,
    pub confidence: String,
    /// The range of the values cited for the class, when the table gives one.
    pub range: Option<CitedRange>,
}

/// The range of the values the literature cites for one coefficient or factor: the minimum
/// and maximum over the sources, and those sources. A value cited once has `min == max`.
#[derive(Debug, Clone, PartialEq)]
pub struct CitedRange {
    pub min: f64,
    pub max: f64,
    /// The sources of the two ends (or of the single value).
    pub source: String,
}

/// Energy factors of one fuel, converted to the physical unit the energy table uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FuelFactor {
    /// Standard-coal conversion, tce per unit of the energy table's column.
    pub theta_tce_per_unit: f64,
    /// Carbon factor, t C per tce.
    pub f_t_c_per_tce: f64,
}

/// One fuel row of an energy-factor preset, as printed.
#[derive(Debug, Clone, PartialEq)]
pub struct FuelRow {
    pub fuel: String,
    /// Standard-coal conversion as printed, in `theta_unit`.
    pub theta: f64,
    /// E.g. `tce/t`, `tce/10^3 m3`, `tce/MWh`.
    pub theta_unit: String,
    pub f_t_c_per_tce: f64,
    pub citation: String,
    /// The cited ranges of `theta` (in `theta_unit`) and of `f_t_c_per_tce`, when the table
    /// gives them.
    pub ranges: Option<FuelRanges>,
}

/// The cited ranges of a fuel's two factors, with their sources.
#[derive(Debug, Clone, PartialEq)]
pub struct FuelRanges {
    pub theta: CitedRange,
    pub f_t_c_per_tce: CitedRange,
}

/// Crop names as Chinese statistical yearbooks print them → the names of the crop-parameter
/// presets (the rows of Tian Yun et al. / Li Bo et al. tables, `crops_tian.csv`). Totals that
/// contain other rows (油料 = peanut + rapeseed + sesame + …, 粮食) are left out on purpose:
/// summed with their parts they would count a harvest twice.
pub const CHINESE_CROP_NAMES: &[(&str, &str)] = &[
    ("小麦", "wheat"),
    ("玉米", "maize"),
    ("稻谷", "rice"),
    ("水稻", "rice"),
    ("豆类", "beans"),
    ("大豆", "soybean"),
    ("薯类", "tubers"),
    ("棉花", "cotton"),
    ("油菜籽", "rapeseed"),
    ("油菜", "rapeseed"),
    ("花生", "peanut"),
    ("甘蔗", "sugarcane"),
    ("甜菜", "sugar_beet"),
    ("烟叶", "tobacco"),
    ("蔬菜", "vegetables"),
    ("瓜果", "melons"),
    ("瓜类", "melons"),
    ("其他谷物", "other_grains"),
];

/// The preset name of a crop written in Chinese (`小麦` → `wheat`); other names as they are.
///
/// # Examples
/// ```
/// use pipeline::methods::coefficients::crop_name;
/// assert_eq!(crop_name(" 玉米 "), "maize");
/// assert_eq!(crop_name("maize"), "maize");
/// ```
#[must_use]
pub fn crop_name(name: &str) -> &str {
    let trimmed = name.trim();
    CHINESE_CROP_NAMES
        .iter()
        .find(|(zh, _)| *zh == trimmed)
        .map_or(name, |(_, en)| en)
}

/// Crop parameters of the crop-yield sink `C = c·Y·(1 − w)/H`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropParameters {
    /// c: carbon fraction of dry matter (0–1).
    pub carbon_fraction: f64,
    /// w: moisture content of the harvested product (0–1).
    pub moisture: f64,
    /// H: economic coefficient / harvest index (0–1].
    pub harvest_index: f64,
}

/// Parses a CSV text with a header into rows of `column → value`. Lines starting with `#` are
/// comments.
fn parse_rows(text: &str, required: &[&str]) -> Result<Vec<BTreeMap<String, String>>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("reading the header: {e}"))?
        .iter()
        .map(str::to_owned)
        .collect();
    for column in required {
        if !headers.iter().any(|h| h == column) {
            return Err(format!(
                "missing column `{column}` (the header is: {})",
                headers.join(",")
            ));
        }
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("row {}: {e}", i + 1))?;
        rows.push(
            headers
                .iter()
                .cloned()
                .zip(record.iter().map(str::to_owned))
                .collect(),
        );
    }
    Ok(rows)
}

fn number(row: &BTreeMap<String, String>, column: &str, line: usize) -> Result<f64, String> {
    let text = row.get(column).map(String::as_str).unwrap_or_default();
    let v: f64 = text
        .parse()
        .map_err(|_| format!("row {line}: `{column}` holds `{text}`, not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("row {line}: `{column}` is not finite"))
    }
}

fn text(row: &BTreeMap<String, String>, column: &str) -> String {
    row.get(column).cloned().unwrap_or_default()
}

/// The cited range in columns `min_column` and `max_column` around `value`, if the table has
/// those columns and the row fills them. Both cells are filled or both empty; a filled range
/// must be ordered, contain `value` and name its source in `range_source`.
fn cited_range(
    row: &BTreeMap<String, String>,
    (min_column, max_column): (&str, &str),
    value: f64,
    line: usize,
) -> Result<Option<CitedRange>, String> {
    let filled = |c: &str| row.get(c).is_some_and(|t| !t.is_empty());
    match (filled(min_column), filled(max_column)) {
        (false, false) => return Ok(None),
        (true, true) => {}
        _ => {
            return Err(format!(
                "row {line}: `{min_column}` and `{max_column}` must be filled together (or both left empty)"
            ));
        }
    }
    let (min, max) = (
        number(row, min_column, line)?,
        number(row, max_column, line)?,
    );
    if !(min <= value && value <= max) {
        return Err(format!(
            "row {line}: the value {value} lies outside its cited range [{min}, {max}] (`{min_column}`, `{max_column}`)"
        ));
    }
    let source = text(row, "range_source");
    if source.is_empty() {
        return Err(format!(
            "row {line}: `range_source` is empty; name the sources of the range"
        ));
    }
    Ok(Some(CitedRange { min, max, source }))
}

/// Parses a land-use coefficient table (`class,value,unit,citation,confidence`, optionally
/// `min,max,range_source`: the range of the values cited for the class), sorted by class. Units
/// must be `t C/ha/a` (or the synonyms `t C/hm2/a`, `tC/ha/yr`).
///
/// # Errors
/// A missing column, a value that is not a number, a unit other than t C/ha/a, a repeated
/// class, or a range that is half filled, not numbers, unordered, without its source or not
/// around the value.
///
/// # Units
/// Values in t C per ha per year, signed (> 0 source, < 0 sink).
///
/// # References
/// Coefficient sets of the land-use carbon literature, e.g. Fang Jingyun et al. 2007
/// (Sci. China D 37(6)); Lai Li 2010 (`PhD` thesis, Nanjing University).
///
/// # Examples
/// ```
/// use pipeline::methods::coefficients::parse_land_coefficients;
/// let set = parse_land_coefficients("class,value,unit,citation,confidence\nforest,-0.581,t C/ha/a,Fang 2007,L\n").unwrap();
/// assert_eq!(set[0].value_t_c_per_ha, -0.581);
/// ```
pub fn parse_land_coefficients(text_csv: &str) -> Result<Vec<LandCoefficient>, String> {
    let rows = parse_rows(text_csv, &["class", "value", "unit"])?;
    let mut out: Vec<LandCoefficient> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let line = i + 1;
        let class = text(row, "class");
        if class.is_empty() {
            return Err(format!("row {line}: `class` is empty"));
        }
        let unit = text(row, "unit").replace(' ', "").to_ascii_lowercase();
        if !matches!(
            unit.as_str(),
            "tc/ha/a" | "tc/hm2/a" | "tc/ha/yr" | "tc/hm2/yr"
        ) {
            return Err(format!(
                "row {line} (`{class}`): unit `{}` is not t C/ha/a",
                text(row, "unit")
            ));
        }
        if out.iter().any(|c| c.class == class) {
            return Err(format!("row {line}: class `{class}` appears twice"));
        }
        let value_t_c_per_ha = number(row, "value", line)?;
        out.push(LandCoefficient {
            range: cited_range(row, ("min", "max"), value_t_c_per_ha, line)
                .map_err(|e| format!("{e} (class `{class}`)"))?,
            value_t_c_per_ha,
            class,
            citation: text(row, "citation"),
            confidence: text(row, "confidence"),
        });
    }
    out.sort_by(|a, b| a.class.cmp(&b.class));
    Ok(out)
}

/// Parses an energy-factor table (`fuel,theta,theta_unit,f_t_c_per_tce,citation,confidence`,
/// optionally `theta_min,theta_max,f_min,f_max,range_source`: the ranges of the values cited
/// for the fuel's two factors).
///
/// # Errors
/// A missing column, a factor that is not a number ≥ 0, an empty or repeated fuel, or a range
/// that is half filled, not numbers, unordered, without its source or not around the factor.
///
/// # Units
/// `theta` in tce per the physical unit named by `theta_unit`; `f` in t C per tce.
///
/// # References
/// Liu Xianzhao et al. 2017, Acta Ecologica Sinica 37(7): 2476–2487, Table 1.
///
/// # Examples
/// ```
/// use pipeline::methods::coefficients::parse_fuel_rows;
/// let rows = parse_fuel_rows("fuel,theta,theta_unit,f_t_c_per_tce\ncoke,0.9714,tce/t,0.8550\n").unwrap();
/// assert_eq!(rows[0].theta, 0.9714);
/// ```
pub fn parse_fuel_rows(text_csv: &str) -> Result<Vec<FuelRow>, String> {
    let rows = parse_rows(text_csv, &["fuel", "theta", "theta_unit", "f_t_c_per_tce"])?;
    let mut out: Vec<FuelRow> = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let line = i + 1;
        let fuel = text(row, "fuel");
        if fuel.is_empty() || out.iter().any(|r| r.fuel == fuel) {
            return Err(format!("row {line}: fuel `{fuel}` is empty or repeated"));
        }
        let theta = number(row, "theta", line)?;
        let f_t_c_per_tce = number(row, "f_t_c_per_tce", line)?;
        let in_fuel = |e: String| format!("{e} (fuel `{fuel}`)");
        let theta_range =
            cited_range(row, ("theta_min", "theta_max"), theta, line).map_err(in_fuel)?;
        let f_range = cited_range(row, ("f_min", "f_max"), f_t_c_per_tce, line).map_err(in_fuel)?;
        let ranges = match (theta_range, f_range) {
            (None, None) => None,
            (Some(theta), Some(f_t_c_per_tce)) => Some(FuelRanges {
                theta,
                f_t_c_per_tce,
            }),
            _ => {
                return Err(in_fuel(format!(
                    "row {line}: give the ranges of both factors (`theta_min`, `theta_max`, `f_min`, `f_max`) or of neither"
                )));
            }
        };
        let r = FuelRow {
            theta,
            theta_unit: text(row, "theta_unit"),
            f_t_c_per_tce,
            citation: text(row, "citation"),
            ranges,
            fuel,
        };
        if r.theta < 0.0 || r.f_t_c_per_tce < 0.0 {
            return Err(format!(
                "row {line} (`{}`): factors must not be negative",
                r.fuel
            ));
        }
        out.push(r);
    }
    out.sort_by(|a, b| a.fuel.cmp(&b.fuel));
    Ok(out)
}

/// Parses a crop-parameter table (`crop,carbon_fraction,moisture,harvest_index,…`).
///
/// # Errors
/// A missing column, a parameter out of range, or an empty or repeated crop.
///
/// # Units
/// All three parameters are fractions (moisture 0.12, not 12 %).
///
/// # References
/// The crop table reproduced in Tian Yun / Li Bo agricultural carbon papers.
///
/// # Examples
/// ```
/// use pipeline::methods::coefficients::parse_crop_parameters;
/// let crops = parse_crop_parameters("crop,carbon_fraction,moisture,harvest_index\nwheat,0.485,0.12,0.40\n").unwrap();
/// assert_eq!(crops["wheat"].harvest_index, 0.40);
/// ```
pub fn parse_crop_parameters(text_csv: &str) -> Result<BTreeMap<String, CropParameters>, String> {
    let rows = parse_rows(
        text_csv,
        &["crop", "carbon_fraction", "moisture", "harvest_index"],
    )?;
    let mut out = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let line = i + 1;
        let crop = text(row, "crop");
        let p = CropParameters {
            carbon_fraction: number(row, "carbon_fraction", line)?,
            moisture: number(row, "moisture", line)?,
            harvest_index: number(row, "harvest_index", line)?,
        };
        check_crop(&crop, &p).map_err(|e| format!("row {line}: {e}"))?;
        if crop.is_empty() || out.insert(crop.clone(), p).is_some() {
            return Err(format!("row {line}: crop `{crop}` is empty or repeated"));
        }
    }
    Ok(out)
}

/// Emission factor of an activity (agricultural input, livestock head, person).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityFactor {
    /// t C per unit of the activity amount.
    pub t_c_per_unit: f64,
    /// The amount's unit, as documented (e.g. `t`, `head`, `ha irrigated`).
    pub input_unit: String,
    /// agriculture, livestock, respiration, …
    pub group: String,
}

/// Parses a table of other emission sources (`activity,value,unit,input_unit,group,…`).
/// `unit` must be `t C/<input unit>`.
///
/// # Errors
/// A missing column, a value that is not a finite number ≥ 0, a unit not in t C, or a repeated
/// activity.
///
/// # Units
/// t C per unit of activity.
///
/// # References
/// Wu Haoyue, He Yanqiu, Chen Rou 2017, Chinese Journal of Eco-Agriculture 25(9): 1381–1391,
/// Table 1 (agricultural inputs and livestock, IPCC-based).
///
/// # Examples
/// ```
/// use pipeline::methods::coefficients::parse_activity_factors;
/// let a = parse_activity_factors("activity,value,unit,input_unit,group\nfertilizer,0.8956,t C/t,t,agriculture\n").unwrap();
/// assert_eq!(a["fertilizer"].t_c_per_unit, 0.8956);
/// ```
pub fn parse_activity_factors(text_csv: &str) -> Result<BTreeMap<String, ActivityFactor>, String> {
    let rows = parse_rows(text_csv, &["activity", "value", "unit"])?;
    let mut out = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let line = i + 1;
        let activity = text(row, "activity");
        let value = number(row, "value", line)?;
        if value < 0.0 {
            return Err(format!("row {line} (`{activity}`): value must be ≥ 0"));
        }
        if !text(row, "unit")
            .replace(' ', "")
            .to_ascii_lowercase()
            .starts_with("tc/")
        {
            return Err(format!(
                "row {line} (`{activity}`): unit `{}` is not t C per unit",
                text(row, "unit")
            ));
        }
        let factor = ActivityFactor {
            t_c_per_unit: value,
            input_unit: text(row, "input_unit"),
            group: text(row, "group"),
        };
        if activity.is_empty() || out.insert(activity.clone(), factor).is_some() {
            return Err(format!(
                "row {line}: activity `{activity}` is empty or repeated"
            ));
        }
    }
    Ok(out)
}

/// Checks that crop parameters are fractions in range.
///
/// # Errors
/// A parameter that is not a fraction (moisture < 1, harvest index > 0).
pub fn check_crop(crop: &str, p: &CropParameters) -> Result<(), String> {
    if !(0.0..=1.0).contains(&p.carbon_fraction)
        || !(0.0..1.0).contains(&p.moisture)
        || p.harvest_index <= 0.0
        || p.harvest_index > 1.0
        || p.harvest_index.is_nan()
    {
        return Err(format!(
            "crop `{crop}`: carbon_fraction {}, moisture {} and harvest_index {} must be fractions (moisture < 1, harvest_index > 0); write 12 % as 0.12",
            p.carbon_fraction, p.moisture, p.harvest_index
        ));
    }
    Ok(())
}

/// Physical units an energy table may use, by dimension, with their size in the dimension's
/// base unit (t, m3, kWh).
const MASS_UNITS: &[(&str, f64)] = &[("kg", 1e-3), ("t", 1.0), ("10^3 t", 1e3), ("10^4 t", 1e4)];
const VOLUME_UNITS: &[(&str, f64)] = &[
    ("m3", 1.0),
    ("10^3 m3", 1e3),
    ("10^4 m3", 1e4),
    ("10^8 m3", 1e8),
];
const ENERGY_UNITS: &[(&str, f64)] = &[
    ("kWh", 1.0),
    ("MWh", 1e3),
    ("10^4 kWh", 1e4),
    ("GWh", 1e6),
    ("10^8 kWh", 1e8),
];

/// The dimension and base-unit size of a physical unit such as `10^4 m3`.
fn physical_unit(unit: &str) -> Option<(&'static str, f64)> {
    let norm = unit.trim();
    for (dim, table) in [
        ("mass", MASS_UNITS),
        ("volume", VOLUME_UNITS),
        ("energy", ENERGY_UNITS),
    ] {
        if let Some((_, size)) = table
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(norm))
        {
            return Some((dim, *size));
        }
    }
    None
}

/// All physical units accepted for energy-table columns.
#[must_use]
pub fn known_physical_units() -> Vec<&'static str> {
    MASS_UNITS
        .iter()
        .chain(VOLUME_UNITS)
        .chain(ENERGY_UNITS)
        .map(|(n, _)| *n)
        .collect()
}

/// Converts a standard-coal coefficient printed per `theta_unit` (e.g. `tce/10^3 m3`) to tce
/// per `input_unit` (e.g. `10^4 m3`), refusing a change of dimension (a mass column for a gas).
///
/// # Errors
/// An unknown unit, or units of different dimensions (mass, volume, energy).
///
/// # Units
/// Returns tce per one `input_unit`.
///
/// # References
/// Unit conventions of the China Energy Statistical Yearbook as used by Liu Xianzhao et al. 2017.
///
/// # Examples
/// ```
/// use pipeline::methods::coefficients::theta_per_input_unit;
/// // natural gas 1.33 tce per 10^3 m3 -> 13.3 tce per 10^4 m3
/// assert!((theta_per_input_unit(1.33, "tce/10^3 m3", "10^4 m3").unwrap() - 13.3).abs() < 1e-12);
/// ```
pub fn theta_per_input_unit(theta: f64, theta_unit: &str, input_unit: &str) -> Result<f64, String> {
    let per = theta_unit
        .trim()
        .strip_prefix("tce/")
        .ok_or_else(|| format!("theta unit `{theta_unit}` does not start with `tce/`"))?;
    let (dim_theta, size_theta) =
        physical_unit(per).ok_or_else(|| format!("unknown unit `{per}` in `{theta_unit}`"))?;
    let (dim_input, size_input) = physical_unit(input_unit).ok_or_else(|| {
        format!(
            "unknown unit `{input_unit}` (known: {})",
            known_physical_units().join(", ")
        )
    })?;
    if dim_theta != dim_input {
        return Err(format!(
            "unit `{input_unit}` is a {dim_input} but the factor is per {per} (a {dim_theta})"
        ));
    }
    Ok(theta * size_input / size_theta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_presets_parse() {
        for name in LAND_PRESETS {
            let set =
                parse_land_coefficients(preset_text(&format!("{name}.csv")).unwrap()).unwrap();
            assert!(set.iter().any(|c| c.class == "forest"), "{name}");
        }
        for name in ENERGY_PRESETS {
            assert_eq!(
                parse_fuel_rows(preset_text(&format!("energy_{name}.csv")).unwrap())
                    .unwrap()
                    .len(),
                9,
                "{name}"
            );
        }
        assert_eq!(
            parse_crop_parameters(preset_text("crops_tian.csv").unwrap())
                .unwrap()
                .len(),
            // The 14 crops of the table, plus `soybean` repeating the beans row.
            15
        );
        let a = parse_activity_factors(preset_text("activities_wu2017.csv").unwrap()).unwrap();
        assert_eq!(a.len(), 16);
        // livestock rows are enteric + manure of Wu et al. 2017 Table 1 in t: dairy cow
        // (416.02 + 122.76) / 1000 = 0.53878; pig (6.82 + 27.28) / 1000 = 0.0341
        assert!((a["dairy_cow"].t_c_per_unit - 0.538_78).abs() < 1e-12);
        assert!((a["pig"].t_c_per_unit - 0.0341).abs() < 1e-12);
    }

    #[test]
    fn embedded_presets_carry_cited_ranges() {
        // Forest -0.581 (set 1, Fang et al. 2007, Sci. China D) and -0.644 (set 2, Li Ying et al.
        // 2008, Trans. CSAE);
        // cultivated 0.422 (set 1) and 0.497 (set 2). Every row of every preset has a range.
        for name in LAND_PRESETS {
            let set =
                parse_land_coefficients(preset_text(&format!("{name}.csv")).unwrap()).unwrap();
            for c in &set {
                let r = c
                    .range
                    .as_ref()
                    .unwrap_or_else(|| panic!("{name}: {}", c.class));
                assert!(r.min <= c.value_t_c_per_ha && c.value_t_c_per_ha <= r.max);
            }
            let range = |class: &str| {
                let r = set
                    .iter()
                    .find(|c| c.class == class)
                    .unwrap()
                    .range
                    .clone()
                    .unwrap();
                (r.min, r.max)
            };
            assert_eq!(range("forest"), (-0.644, -0.581), "{name}");
            assert_eq!(range("cultivated"), (0.422, 0.497), "{name}");
            assert_eq!(range("water"), (-0.253, -0.253), "{name}");
        }
        // Natural gas theta 1.2143 (Xia et al. 2017, Acta Ecol. Sin. 37(11)) or 1.33 (Liu et al.
        // 2017, Acta Ecol. Sin. 37(7), Table 1); electricity 0.1229 or 0.4040 tce/MWh with f 0.68
        // (Huang & Wang 2017) or 0.7935 (Xia et al. 2017).
        for name in ENERGY_PRESETS {
            let rows =
                parse_fuel_rows(preset_text(&format!("energy_{name}.csv")).unwrap()).unwrap();
            let get = |fuel: &str| {
                let r = rows
                    .iter()
                    .find(|r| r.fuel == fuel)
                    .unwrap()
                    .ranges
                    .clone()
                    .unwrap();
                (
                    r.theta.min,
                    r.theta.max,
                    r.f_t_c_per_tce.min,
                    r.f_t_c_per_tce.max,
                )
            };
            assert!(rows.iter().all(|r| r.ranges.is_some()), "{name}");
            assert_eq!(get("natural_gas"), (1.2143, 1.33, 0.4483, 0.4483));
            assert_eq!(get("electricity"), (0.1229, 0.404, 0.68, 0.7935));
            assert_eq!(get("raw_coal"), (0.7143, 0.7143, 0.726, 0.7559));
        }
    }

    #[test]
    fn ranges_are_optional_but_checked_when_given() {
        let head = "class,value,unit,min,max,range_source\n";
        let parse = |row: &str| parse_land_coefficients(&format!("{head}{row}\n"));
        assert_eq!(parse("forest,-0.6,t C/ha/a,,,").unwrap()[0].range, None);
        let r = parse("forest,-0.6,t C/ha/a,-0.644,-0.581,Li 2008; Fang 2007").unwrap()[0]
            .range
            .clone()
            .unwrap();
        assert_eq!(
            (r.min, r.max, r.source.as_str()),
            (-0.644, -0.581, "Li 2008; Fang 2007")
        );
        let half = parse("forest,-0.6,t C/ha/a,-0.644,,x").unwrap_err();
        assert!(
            half.contains("filled together") && half.contains("forest"),
            "{half}"
        );
        let outside = parse("forest,-0.7,t C/ha/a,-0.644,-0.581,x").unwrap_err();
        assert!(outside.contains("outside its cited range"), "{outside}");
        let unordered = parse("forest,-0.6,t C/ha/a,-0.581,-0.644,x").unwrap_err();
        assert!(unordered.contains("outside its cited range"), "{unordered}");
        assert!(
            parse("forest,-0.6,t C/ha/a,-0.644,-0.581,")
                .unwrap_err()
                .contains("range_source")
        );
        assert!(
            parse("forest,-0.6,t C/ha/a,low,-0.581,x")
                .unwrap_err()
                .contains("not a number")
        );
        let fuel = parse_fuel_rows(
            "fuel,theta,theta_unit,f_t_c_per_tce,theta_min,theta_max,f_min,f_max,range_source\ncoke,0.97,tce/t,0.85,0.9,1,,,x\n",
        )
        .unwrap_err();
        assert!(
            fuel.contains("both factors") && fuel.contains("coke"),
            "{fuel}"
        );
    }

    #[test]
    fn default_preset_matches_the_decisions() {
        // The default mixed set: cultivated +0.422, forest -0.644, grassland -0.021, water -0.253, unused -0.005.
        let set = parse_land_coefficients(preset_text("mixed.csv").unwrap()).unwrap();
        let get = |c: &str| set.iter().find(|x| x.class == c).unwrap().value_t_c_per_ha;
        assert_eq!(get("cultivated"), 0.422);
        assert_eq!(get("forest"), -0.644);
        assert_eq!(get("grassland"), -0.021);
        assert_eq!(get("water"), -0.253);
        assert_eq!(get("unused"), -0.005);
    }

    #[test]
    fn unit_conversion() {
        // electricity 0.1229 tce/MWh; 10^4 kWh = 10 MWh -> 1.229 tce per 10^4 kWh.
        assert!(
            (theta_per_input_unit(0.1229, "tce/MWh", "10^4 kWh").unwrap() - 1.229).abs() < 1e-12
        );
        // coal 0.7143 tce/t, table in 10^4 t -> 7143 tce per 10^4 t.
        assert!((theta_per_input_unit(0.7143, "tce/t", "10^4 t").unwrap() - 7143.0).abs() < 1e-9);
        let err = theta_per_input_unit(0.7143, "tce/t", "10^4 m3").unwrap_err();
        assert!(err.contains("volume"), "{err}");
        assert!(theta_per_input_unit(0.7143, "tce/t", "barrels").is_err());
    }

    #[test]
    fn rejects_bad_tables() {
        assert!(
            parse_land_coefficients("class,value,unit\nforest,-0.5,t CO2/ha/a\n")
                .unwrap_err()
                .contains("unit")
        );
        assert!(
            parse_land_coefficients("class,value,unit\nforest,x,t C/ha/a\n")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse_land_coefficients("class,value\nforest,1\n")
                .unwrap_err()
                .contains("missing column `unit`")
        );
        assert!(
            parse_crop_parameters(
                "crop,carbon_fraction,moisture,harvest_index\nwheat,0.485,12,0.4\n"
            )
            .unwrap_err()
            .contains("fractions")
        );
    }
}
