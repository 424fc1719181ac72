//! Assembles the self-contained HTML report from plain data (no Arrow): maps, charts, tables
//! and provenance, with inline CSS and SVG only (no scripts, no external resources).
//!
//! Classing: every numeric map uses the chosen classing ([`Classing`]) with `n_classes`
//! classes; maps of one variable over the years share breaks computed on the pooled values of
//! all years, so colours compare across years. Diverging variables (NCE around 0, ECC and ESC
//! around 1) get the neutral value added as a break so no class straddles it, and each class is
//! coloured on its side of the palette by its rank away from the neutral value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use geo::MultiPolygon;

use super::charts::{
    Series, bar_chart, fmt_cell, fmt_num, line_chart, stacked_bars, tornado_chart,
};
use super::classing::{Classing, breaks, class_of};
use super::palette;
use super::projection::Albers;
use rayon::prelude::*;

use super::svg_map::{LegendEntry, MapLayer, MapOutlines, ProjectedUnits, escape, map_svg};

/// Pixel width of the main maps and of the small multiples.
const MAP_W: f64 = 520.0;
const SMALL_W: f64 = 250.0;
/// Simplification tolerance of the large maps, pixels.
const MAP_TOLERANCE_PX: f64 = 0.6;
/// Simplification tolerance of the small multiples, pixels: at 250 px a county-level unit is
/// a few pixels wide, and each vertex a browser need not draw counts at national scale.
const SMALL_TOLERANCE_PX: f64 = 1.2;

/// Upper class bounds, class colours and legend of one variable.
type ClassStyle = (Vec<f64>, Vec<String>, Vec<LegendEntry>);
/// Per zone: units, sums of CE, CS, NCE, and the ECC and ESC values for means.
type ZoneTotals = (usize, [f64; 3], [Vec<f64>; 2]);

/// One mapped variable of the `indices` table.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub column: &'static str,
    pub title: &'static str,
    /// Legend heading.
    pub short: &'static str,
    /// `None`: sequential; `Some((neutral, high_is_bad))`: diverging around `neutral`.
    pub diverging: Option<(f64, bool)>,
    /// The column's values are divided by this for display (t C shown in 10⁴ t C, as the
    /// seed studies report them).
    pub display_divisor: f64,
}

/// The numeric variables mapped from `indices`, in report order.
pub const VARIABLES: [Variable; 6] = [
    Variable {
        column: "ce_t_c",
        short: "CE (10⁴ t C)",
        title: "Carbon emission CE (10⁴ t C)",
        display_divisor: 1e4,
        diverging: None,
    },
    Variable {
        column: "cs_t_c",
        short: "CS (10⁴ t C)",
        title: "Carbon sink CS (10⁴ t C)",
        display_divisor: 1e4,
        diverging: None,
    },
    Variable {
        column: "nce_t_c",
        short: "NCE (10⁴ t C)",
        title: "Net carbon emission NCE (10⁴ t C)",
        display_divisor: 1e4,
        diverging: Some((0.0, true)),
    },
    Variable {
        column: "ci_t_per_10k_yuan",
        short: "CI (t C per 10⁴ yuan)",
        title: "Carbon intensity CI (t C per 10⁴ yuan)",
        display_divisor: 1.0,
        diverging: None,
    },
    Variable {
        column: "ecc",
        short: "ECC",
        title: "Economic contribution coefficient ECC",
        display_divisor: 1.0,
        diverging: Some((1.0, false)),
    },
    Variable {
        column: "esc",
        short: "ESC",
        title: "Ecological support coefficient ESC",
        display_divisor: 1.0,
        diverging: Some((1.0, false)),
    },
];

/// The order study B ranks the main functional areas in; other categories follow sorted.
pub const FUNCTIONAL_ORDER: [&str; 5] = [
    "national_key_development",
    "provincial_key_development",
    "agricultural_production",
    "provincial_ecological",
    "national_ecological",
];

/// A unit to draw.
#[derive(Debug, Clone)]
pub struct UnitShape {
    pub id: String,
    pub name: String,
    pub shape: MultiPolygon<f64>,
}

/// A compensation row for the chosen year and convention.
#[derive(Debug, Clone)]
pub struct Flow {
    pub unit_id: String,
    pub role: String,
    pub quantity_t_c: f64,
    pub amount: f64,
}

/// Everything the report shows; absent parts are not rendered.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    pub title: String,
    pub demo_data: bool,
    pub year: i64,
    /// Units sorted by id.
    pub units: Vec<UnitShape>,
    /// `column → (unit_id, year) → value` for the [`VARIABLES`] present.
    pub indices: BTreeMap<String, BTreeMap<(String, i64), f64>>,
    /// LISA class per year (or under the chosen year when the table has no year) and unit.
    pub lisa: BTreeMap<i64, BTreeMap<String, String>>,
    pub clusters: Option<BTreeMap<String, i64>>,
    pub zones: Option<BTreeMap<String, String>>,
    /// One row per year of the `inequality` table.
    pub inequality: Vec<InequalityRow>,
    /// The `weight` of that table: `equal` (its `gini` is the plain Gini of emission per
    /// unit), a column (its `gini` is the carbon Gini against that column), or unknown.
    pub inequality_weight: Option<String>,
    /// Lorenz curve points per year, in step order.
    pub lorenz: BTreeMap<i64, Vec<(f64, f64)>>,
    pub functional: Option<BTreeMap<String, String>>,
    pub flows: Option<(String, String, Vec<Flow>)>,
    /// `(year, class) → area_ha`, region totals.
    pub landuse: BTreeMap<(i64, String), f64>,
    pub provenance: Vec<(String, String)>,
    /// `(port, rows, columns, blake3 of the Parquet bytes)`.
    pub inputs: Vec<(String, usize, usize, String)>,
    pub classing: Option<Classing>,
    pub n_classes: usize,
    pub albers: Option<Albers>,
    /// Show carbon masses as CO₂ (× 44/12) instead of C.
    pub co2: bool,
    /// What a `sweep` stage found, when its outputs are wired.
    pub robustness: Robustness,
}

/// The robustness of the results under a `sweep`'s sampled parameters.
#[derive(Debug, Clone, Default)]
pub struct Robustness {
    /// unit → (modal zone, its probability over the draws), from `<zone>_summary`.
    pub modal_zone: BTreeMap<String, (String, f64)>,
    /// (convention, unit → probability of the `payer` role in the map year), from `<role>_summary`.
    pub payer: Option<(String, BTreeMap<String, f64>)>,
    /// (collected name, parameter, PRCC), from `sensitivity`.
    pub prcc: Vec<(String, String, f64)>,
}

/// Molar mass ratio CO₂ : C, for the CO₂ view (a presentation option; outputs stay in t C).
pub const CO2_PER_C: f64 = 44.0 / 12.0;

/// Draws one map's SVG.
type MapJob<'a> = Box<dyn Fn() -> String + Send + Sync + 'a>;

/// The maps of the page, drawn once its text is written: all of them at once on the stage's
/// threads, then each put back where it belongs, so the page is the same whatever the number
/// of threads.
#[derive(Default)]
struct DeferredMaps<'a> {
    /// `(byte offset in the page, job)`, offsets in page order.
    jobs: Vec<(usize, MapJob<'a>)>,
}

impl<'a> DeferredMaps<'a> {
    /// A map to draw at the end of the page written so far.
    fn push(&mut self, h: &str, job: impl Fn() -> String + Send + Sync + 'a) {
        self.jobs.push((h.len(), Box::new(job)));
    }

    /// One titled map of the single-year grid.
    fn cell(&mut self, h: &mut String, title: &str, job: impl Fn() -> String + Send + Sync + 'a) {
        let _ = write!(h, "<div class=\"cell\"><h3>{}</h3>", escape(title));
        self.push(h, job);
        h.push_str("</div>\n");
    }

    /// One titled map of categories on the single-year grid: each unit's category from
    /// `value_of`, coloured by `colour_of` (category, its index among those shown).
    #[allow(clippy::too_many_arguments)]
    fn categorical_cell(
        &mut self,
        h: &mut String,
        data: &'a ReportData,
        big: &'a ProjectedUnits,
        title: String,
        legend_title: &'static str,
        value_of: impl Fn(&str) -> Option<String> + Send + Sync + 'a,
        colour_of: impl Fn(&str, usize) -> String + Send + Sync + 'a,
    ) {
        self.cell(h, &title.clone(), move || {
            let layer = categorical_layer(data, &title, legend_title, &value_of, &colour_of);
            map_svg(big, &layer, false)
        });
    }

    /// One small multiple of a row, under its year.
    fn year_cell(
        &mut self,
        h: &mut String,
        year: i64,
        job: impl Fn() -> String + Send + Sync + 'a,
    ) {
        let _ = write!(h, "<div class=\"cell\"><div class=\"note\">{year}</div>");
        self.push(h, job);
        h.push_str("</div>");
    }

    /// The page with every map drawn in its place.
    fn draw_into(self, h: &str) -> String {
        let svgs: Vec<String> = self.jobs.par_iter().map(|(_, job)| job()).collect();
        let mut page = String::with_capacity(h.len() + svgs.iter().map(String::len).sum::<usize>());
        let mut at = 0;
        for ((offset, _), svg) in self.jobs.iter().zip(svgs) {
            page.push_str(&h[at..*offset]);
            page.push_str(&svg);
            at = *offset;
        }
        page.push_str(&h[at..]);
        page
    }
}

/// A variable's title, legend heading and display divisor, in the report's mass unit.
fn shown(var: &Variable, co2: bool) -> (String, String, f64) {
    if co2 && var.title.contains("t C") {
        (
            var.title.replace("t C", "t CO₂"),
            var.short.replace("t C", "t CO₂"),
            var.display_divisor / CO2_PER_C,
        )
    } else {
        (
            var.title.to_owned(),
            var.short.to_owned(),
            var.display_divisor,
        )
    }
}

impl ReportData {
    fn years(&self) -> Vec<i64> {
        let set: BTreeSet<i64> = self
            .indices
            .values()
            .flat_map(|m| m.keys().map(|k| k.1))
            .collect();
        set.into_iter().collect()
    }
    fn name_of(&self, id: &str) -> &str {
        self.units
            .binary_search_by(|u| u.id.as_str().cmp(id))
            .map_or("", |i| self.units[i].name.as_str())
    }
}

/// Breaks for a variable: the chosen classing, plus the neutral value for diverging ones.
fn variable_breaks(values: &[f64], var: &Variable, classing: Classing, n: usize) -> Vec<f64> {
    let mut b = breaks(values, n, classing);
    if let Some((neutral, _)) = var.diverging {
        let min = values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(f64::INFINITY, f64::min);
        if min < neutral && b.last().is_some_and(|&max| max > neutral) && !b.contains(&neutral) {
            b.push(neutral);
            b.sort_by(f64::total_cmp);
        }
    }
    b
}

/// Class colours and legend entries for breaks.
fn class_colours(
    values: &[f64],
    bounds: &[f64],
    var: &Variable,
) -> (Vec<String>, Vec<LegendEntry>) {
    let min = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::INFINITY, f64::min);
    let k = bounds.len();
    // Diverging: classes at or below the neutral value take the teal side, the others the
    // brown side (or the reverse), darker with each class away from the neutral value.
    let below = var.diverging.map_or(0, |(neutral, _)| {
        bounds.iter().filter(|&&b| b <= neutral).count()
    });
    let above = k - below;
    let mut colours = Vec::with_capacity(k);
    let mut legend = Vec::with_capacity(k);
    let mut lo = min;
    for (i, &hi) in bounds.iter().enumerate() {
        let colour = match var.diverging {
            None => palette::sequential(if k > 1 {
                i as f64 / (k - 1) as f64
            } else {
                0.5
            }),
            Some((_, high_is_bad)) => {
                let t = if i < below {
                    -(0.25 + 0.75 * (below - i) as f64 / below as f64)
                } else {
                    0.25 + 0.75 * (i + 1 - below) as f64 / above as f64
                };
                palette::diverging(if high_is_bad { t } else { -t })
            }
        };
        legend.push(LegendEntry {
            colour: colour.clone(),
            label: format!("{} – {}", fmt_num(lo), fmt_num(hi)),
        });
        colours.push(colour);
        lo = hi;
    }
    (colours, legend)
}

fn numeric_layer<'a>(
    data: &ReportData,
    title: &'a str,
    legend_title: &'a str,
    values: &[f64],
    bounds: &[f64],
    colours: &[String],
    legend: &[LegendEntry],
) -> MapLayer<'a> {
    let mut fills = Vec::with_capacity(values.len());
    let mut tooltips = Vec::with_capacity(values.len());
    for (u, &v) in data.units.iter().zip(values) {
        fills.push(
            class_of(v, bounds).map_or_else(|| palette::NO_DATA.to_owned(), |c| colours[c].clone()),
        );
        tooltips.push(format!(
            "{} {}: {}",
            u.id,
            u.name,
            if v.is_finite() {
                fmt_num(v)
            } else {
                "no data".into()
            }
        ));
    }
    let mut legend = legend.to_vec();
    if values.iter().any(|v| !v.is_finite()) {
        legend.push(LegendEntry {
            colour: palette::NO_DATA.into(),
            label: "no data".into(),
        });
    }
    MapLayer {
        title,
        legend_title,
        fills,
        tooltips,
        legend,
    }
}

fn categorical_layer<'a>(
    data: &ReportData,
    title: &'a str,
    legend_title: &'a str,
    value_of: &dyn Fn(&str) -> Option<String>,
    colour_of: &dyn Fn(&str, usize) -> String,
) -> MapLayer<'a> {
    let values: Vec<Option<String>> = data.units.iter().map(|u| value_of(&u.id)).collect();
    let cats: Vec<String> = values
        .iter()
        .flatten()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let colour = |c: &str| colour_of(c, cats.iter().position(|x| x == c).unwrap_or(0));
    let fills = values
        .iter()
        .map(|v| {
            v.as_deref()
                .map_or_else(|| palette::NO_DATA.to_owned(), colour)
        })
        .collect();
    let tooltips = data
        .units
        .iter()
        .zip(&values)
        .map(|(u, v)| format!("{} {}: {}", u.id, u.name, v.as_deref().unwrap_or("no data")))
        .collect();
    let mut legend: Vec<LegendEntry> = cats
        .iter()
        .map(|c| LegendEntry {
            colour: colour(c),
            label: c.clone(),
        })
        .collect();
    if values.iter().any(Option::is_none) {
        legend.push(LegendEntry {
            colour: palette::NO_DATA.into(),
            label: "no data".into(),
        });
    }
    MapLayer {
        title,
        legend_title,
        fills,
        tooltips,
        legend,
    }
}

/// The page's style. Maps skip style, layout and paint while off screen
/// (`content-visibility: auto`; their size is fixed by their `width` and `height`), so a
/// national report with dozens of maps opens at the cost of the maps in view.
const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 40px;color:#222;line-height:1.4}\
h1{margin:18px 0 6px}h2{margin-top:34px;border-bottom:2px solid #ddd;padding-bottom:4px}h3{margin:14px 0 4px;font-size:1em}\
.banner{background:#D55E00;color:#fff;font-weight:bold;padding:10px 14px;margin:12px 0;border-radius:4px;font-size:1.1em}\
.grid{display:flex;flex-wrap:wrap;gap:10px 18px}.cell{flex:0 0 auto}\
.row{display:flex;flex-wrap:nowrap;gap:6px;overflow-x:auto}\
table{border-collapse:collapse;margin:8px 0;font-size:.9em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}\
th{background:#f2f2f2}.note{color:#555;font-size:.9em}svg{background:#fff}svg.map{content-visibility:auto}";

/// Renders the report page, section by section in page order.
pub fn render(data: &ReportData) -> String {
    let albers = data.albers.unwrap_or_else(Albers::china);
    let shapes: Vec<(String, MultiPolygon<f64>)> = data
        .units
        .iter()
        .map(|u| (u.id.clone(), u.shape.clone()))
        .collect();
    // The outlines are cut into shared arcs once, then simplified for both map sizes.
    let outlines = MapOutlines::new(&shapes, &albers);
    let (big, small) = rayon::join(
        || outlines.fit(MAP_W, MAP_TOLERANCE_PX),
        || outlines.fit(SMALL_W, SMALL_TOLERANCE_PX),
    );

    let mut h = String::new();
    let mut maps = DeferredMaps::default();
    header(&mut h, data, &albers);
    let pooled_breaks = single_year_maps(&mut h, &mut maps, data, &big);
    over_the_years(&mut h, &mut maps, data, &small, &pooled_breaks);
    inequality_section(&mut h, data);
    functional_section(&mut h, data);
    landuse_section(&mut h, data);
    robustness_section(&mut h, &mut maps, data, &big);
    zones_section(&mut h, data);
    compensation_section(&mut h, data);
    provenance_section(&mut h, data);
    maps.draw_into(&h)
}

/// The document head, title, demonstration banner and the study line.
fn header(h: &mut String, data: &ReportData, albers: &Albers) {
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        escape(&data.title)
    );
    let _ = writeln!(h, "<h1>{}</h1>", escape(&data.title));
    if data.demo_data {
        h.push_str("<div class=\"banner\" role=\"alert\">Demonstration data, not official statistics. The inputs were generated by <code>pipeline demo-data</code>; no number in this report describes the real region.</div>\n");
    }
    let _ = writeln!(
        h,
        "<p class=\"note\">{} units; map year {}; display projection Albers equal-area conic (lat_1 = {}°, lat_2 = {}°, lon_0 = {}°, WGS 84).</p>",
        data.units.len(),
        data.year,
        albers.lat_1,
        albers.lat_2,
        albers.lon_0
    );
}

/// The values of `table` for `year` in unit order, divided by `divisor`; NaN where absent.
fn year_values(
    data: &ReportData,
    table: &BTreeMap<(String, i64), f64>,
    year: i64,
    divisor: f64,
) -> Vec<f64> {
    data.units
        .iter()
        .map(|u| {
            table
                .get(&(u.id.clone(), year))
                .map_or(f64::NAN, |v| v / divisor)
        })
        .collect()
}

/// The maps of the chosen year: each variable classed on that year's values, then LISA,
/// clusters, zones and compensation roles. Returns each variable's breaks pooled over all
/// years, for the maps over the years.
fn single_year_maps<'d>(
    h: &mut String,
    maps: &mut DeferredMaps<'d>,
    data: &'d ReportData,
    big: &'d ProjectedUnits,
) -> BTreeMap<&'d str, ClassStyle> {
    let classing = data.classing.unwrap_or(Classing::Quantile);
    let n_classes = data.n_classes.max(2);
    h.push_str("<h2 id=\"maps\">Maps</h2>\n");
    let _ = writeln!(
        h,
        "<p class=\"note\">Classes: {} with {} classes; the maps of one year are classed on that year's values, the small multiples over the years share breaks pooled over all years so they can be compared. Sequential colours: viridis; diverging (NCE around 0, ECC and ESC around 1): ColorBrewer BrBG, brown = more emission or less contribution/support; categories: Okabe–Ito.</p>",
        match classing {
            Classing::Quantile => "quantiles (equal counts)",
            Classing::NaturalBreaks => "Jenks natural breaks (Jenks 1967)",
        },
        n_classes
    );
    h.push_str("<div class=\"grid\">\n");
    let mut pooled_breaks: BTreeMap<&str, ClassStyle> = BTreeMap::new();
    for var in &VARIABLES {
        let Some(table) = data.indices.get(var.column) else {
            continue;
        };
        let (var_title, var_short, divisor) = shown(var, data.co2);
        let all: Vec<f64> = table.values().map(|v| v / divisor).collect();
        let pooled_bounds = variable_breaks(&all, var, classing, n_classes);
        let pooled_style = class_colours(&all, &pooled_bounds, var);
        let values = year_values(data, table, data.year, divisor);
        // This year's own classes: pooled breaks can leave a year in one class when a
        // variable trends strongly (carbon intensity halves over two decades).
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let (bounds, (colours, legend)) = if finite.len() > n_classes {
            let bounds = variable_breaks(&finite, var, classing, n_classes);
            let style = class_colours(&finite, &bounds, var);
            (bounds, style)
        } else {
            (pooled_bounds.clone(), pooled_style.clone())
        };
        let title = format!("{var_title}, {}", data.year);
        maps.cell(h, &title.clone(), move || {
            let layer = numeric_layer(
                data, &title, &var_short, &values, &bounds, &colours, &legend,
            );
            map_svg(big, &layer, false)
        });
        pooled_breaks.insert(var.column, (pooled_bounds, pooled_style.0, pooled_style.1));
    }
    categorical_maps(h, maps, data, big);
    h.push_str("</div>\n");
    pooled_breaks
}

/// The single-year maps of categories: LISA clusters, spatial clusters, zones, roles.
fn categorical_maps<'d>(
    h: &mut String,
    maps: &mut DeferredMaps<'d>,
    data: &'d ReportData,
    big: &'d ProjectedUnits,
) {
    let year = data.year;
    if let Some(lisa) = data.lisa.get(&year) {
        let title =
            format!("LISA clusters (local Moran's I of the `autocorrelation` variable), {year}");
        maps.categorical_cell(
            h,
            data,
            big,
            title,
            "LISA class",
            |id| lisa.get(id).cloned(),
            |c, _| palette::lisa(c).to_owned(),
        );
    }
    if let Some(clusters) = &data.clusters {
        let title = "Spatially constrained clusters".to_owned();
        maps.categorical_cell(
            h,
            data,
            big,
            title,
            "Cluster",
            |id| clusters.get(id).map(|c| format!("cluster {c:02}")),
            |_, k| palette::categorical(k).to_owned(),
        );
    }
    if let Some(zones) = &data.zones {
        let title = "Compensation zones".to_owned();
        maps.categorical_cell(
            h,
            data,
            big,
            title,
            "Zone",
            |id| zones.get(id).cloned(),
            |_, k| palette::categorical(k).to_owned(),
        );
    }
    if let Some((convention, _, flows)) = &data.flows {
        let roles: BTreeMap<&str, &str> = flows
            .iter()
            .map(|f| (f.unit_id.as_str(), f.role.as_str()))
            .collect();
        let title = format!("Compensation role ({convention}), {year}");
        let colour = |c: &str, _: usize| {
            match c {
                "payer" => "#D55E00",
                "receiver" => "#009E73",
                _ => "#F0E442",
            }
            .to_owned()
        };
        maps.categorical_cell(
            h,
            data,
            big,
            title,
            "Role",
            move |id| roles.get(id).map(|r| (*r).to_owned()),
            colour,
        );
    }
}

/// At most this many small multiples per row: one row of 38 maps is unreadable (and at
/// national scale too heavy for a page).
const MAX_YEAR_MAPS: usize = 6;

/// The years the small multiples show: all of them up to [`MAX_YEAR_MAPS`], else the first,
/// the last and the years closest to even spacing between them.
fn readable_years(years: &[i64]) -> Vec<i64> {
    let n = years.len();
    if n <= MAX_YEAR_MAPS {
        return years.to_vec();
    }
    let steps = MAX_YEAR_MAPS - 1;
    (0..=steps)
        .map(|k| years[(k * (n - 1) + steps / 2) / steps])
        .collect()
}

/// Small multiples of every variable (on breaks pooled over the years) and of LISA classes,
/// for the [`readable_years`].
fn over_the_years<'d>(
    h: &mut String,
    maps: &mut DeferredMaps<'d>,
    data: &'d ReportData,
    small: &'d ProjectedUnits,
    pooled_breaks: &BTreeMap<&str, ClassStyle>,
) {
    let all_years = data.years();
    if all_years.len() <= 1 || data.indices.is_empty() {
        return;
    }
    let years = readable_years(&all_years);
    h.push_str("<h2 id=\"over-time\">Over the years</h2>\n");
    if years.len() < all_years.len() {
        let _ = writeln!(
            h,
            "<p class=\"note\">{} of the {} years: the first, the last and evenly spaced between them (the <code>indices</code> table and the GeoJSON layers hold every year).</p>",
            years.len(),
            all_years.len()
        );
    }
    for var in &VARIABLES {
        let (Some(table), Some((bounds, colours, legend))) =
            (data.indices.get(var.column), pooled_breaks.get(var.column))
        else {
            continue;
        };
        let (var_title, var_short, divisor) = shown(var, data.co2);
        let _ = writeln!(h, "<h3>{}</h3><div class=\"row\">", escape(&var_title));
        for &y in &years {
            let values = year_values(data, table, y, divisor);
            let title = format!("{var_title}, {y}");
            let (var_short, style) = (
                var_short.clone(),
                (bounds.clone(), colours.clone(), legend.clone()),
            );
            maps.year_cell(h, y, move || {
                let (bounds, colours, legend) = &style;
                let layer =
                    numeric_layer(data, &title, &var_short, &values, bounds, colours, legend);
                map_svg(small, &layer, true)
            });
        }
        h.push_str("</div>\n");
    }
    if data.lisa.len() > 1 {
        h.push_str("<h3>LISA clusters</h3><div class=\"row\">");
        let lisa_years: Vec<i64> = data.lisa.keys().copied().collect();
        for y in readable_years(&lisa_years) {
            let lisa = &data.lisa[&y];
            let title = format!("LISA, {y}");
            maps.year_cell(h, y, move || {
                let layer = categorical_layer(
                    data,
                    &title,
                    "LISA class",
                    &|id| lisa.get(id).cloned(),
                    &|c, _| palette::lisa(c).to_owned(),
                );
                map_svg(small, &layer, true)
            });
        }
        h.push_str("</div>\n");
    }
}

/// Gini and centralization charts, Lorenz curves and the per-year table.
fn inequality_section(h: &mut String, data: &ReportData) {
    if data.inequality.is_empty() && data.lorenz.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"inequality\">Inequality</h2>\n<div class=\"grid\">");
    inequality_charts(h, data);
    if !data.lorenz.is_empty() {
        let n = data.lorenz.len();
        let series: Vec<Series> = data
            .lorenz
            .iter()
            .enumerate()
            .map(|(k, (y, pts))| Series {
                label: y.to_string(),
                colour: palette::sequential(if n > 1 {
                    k as f64 / (n - 1) as f64 * 0.9
                } else {
                    0.0
                }),
                points: pts.clone(),
                dashed: false,
            })
            .collect();
        let _ = write!(
            h,
            "<div class=\"cell\">{}</div>",
            line_chart(
                "Lorenz curves",
                &series,
                None,
                "cumulative share of the reference",
                "cumulative share of the value",
                true
            )
        );
    }
    h.push_str("</div>\n");
    inequality_table(h, data);
}

/// Per main functional area: units, and the finite CI and NCE values of all its years.
type FunctionalValues<'a> = BTreeMap<&'a str, (Vec<f64>, Vec<f64>, usize)>;

fn functional_values<'a>(
    data: &ReportData,
    functional: &'a BTreeMap<String, String>,
) -> FunctionalValues<'a> {
    let mut by_cat: FunctionalValues<'a> = BTreeMap::new();
    for (id, cat) in functional {
        let e = by_cat.entry(cat.as_str()).or_default();
        e.2 += 1;
        for (col, out) in [("ci_t_per_10k_yuan", 0), ("nce_t_c", 1)] {
            if let Some(t) = data.indices.get(col) {
                for ((uid, _), v) in t.range((id.clone(), i64::MIN)..=(id.clone(), i64::MAX)) {
                    if uid == id && v.is_finite() {
                        if out == 0 { e.0.push(*v) } else { e.1.push(*v) }
                    }
                }
            }
        }
    }
    by_cat
}

/// Mean CI and NCE per main functional area, as bar charts and a table.
fn functional_section(h: &mut String, data: &ReportData) {
    let Some(functional) = &data.functional else {
        return;
    };
    let by_cat = functional_values(data, functional);
    let mut cats: Vec<&str> = FUNCTIONAL_ORDER
        .iter()
        .copied()
        .filter(|c| by_cat.contains_key(c))
        .collect();
    cats.extend(
        by_cat
            .keys()
            .copied()
            .filter(|c| !FUNCTIONAL_ORDER.contains(c)),
    );
    let mean = |v: &[f64]| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    h.push_str("<h2 id=\"functional-areas\">Main functional areas</h2>\n<p class=\"note\">Means over all units and years of each category.</p><div class=\"grid\">");
    let ci: Vec<(String, f64)> = cats
        .iter()
        .map(|c| ((*c).to_owned(), mean(&by_cat[c].0)))
        .collect();
    let nce: Vec<(String, f64)> = cats
        .iter()
        .map(|c| ((*c).to_owned(), mean(&by_cat[c].1) / 1e4))
        .collect();
    if ci.iter().any(|c| c.1.is_finite()) {
        let _ = write!(
            h,
            "<div class=\"cell\">{}</div>",
            bar_chart(
                "Mean carbon intensity by functional area",
                &ci,
                "t C per 10⁴ yuan",
                &|_, _| palette::sequential(0.35)
            )
        );
    }
    if nce.iter().any(|c| c.1.is_finite()) {
        let _ = write!(
            h,
            "<div class=\"cell\">{}</div>",
            bar_chart(
                "Mean net emission by functional area",
                &nce,
                "10⁴ t C",
                &|_, v| palette::diverging(if v >= 0.0 { 0.8 } else { -0.8 })
            )
        );
    }
    h.push_str("</div>\n<table><tr><th>category</th><th>units</th><th>mean CI (t C per 10⁴ yuan)</th><th>mean NCE (10⁴ t C)</th></tr>");
    for (c, (cr, nr)) in cats.iter().zip(ci.iter().zip(&nce)) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(c),
            by_cat[c].2,
            fmt_cell(cr.1),
            fmt_cell(nr.1)
        );
    }
    h.push_str("</table>\n");
}

/// Region land-use area by class and year, as stacked bars.
fn landuse_section(h: &mut String, data: &ReportData) {
    if data.landuse.is_empty() {
        return;
    }
    let ly: Vec<i64> = data
        .landuse
        .keys()
        .map(|k| k.0)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let classes: Vec<String> = data
        .landuse
        .keys()
        .map(|k| k.1.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let parts: Vec<(String, String, Vec<f64>)> = classes
        .iter()
        .enumerate()
        .map(|(k, c)| {
            (
                c.clone(),
                palette::land_class(c)
                    .unwrap_or_else(|| palette::categorical(k))
                    .to_owned(),
                ly.iter()
                    .map(|y| data.landuse.get(&(*y, c.clone())).copied().unwrap_or(0.0) / 1e4)
                    .collect(),
            )
        })
        .collect();
    h.push_str("<h2 id=\"land-use\">Land use</h2>\n");
    let _ = write!(
        h,
        "{}",
        stacked_bars(
            "Land-use area by class",
            &ly.iter().map(i64::to_string).collect::<Vec<_>>(),
            &parts,
            "area (10⁴ ha)"
        )
    );
}

/// Per zone: units, CE, CS and NCE totals in the map year and mean ECC and ESC.
fn zones_section(h: &mut String, data: &ReportData) {
    let Some(zones) = &data.zones else {
        return;
    };
    let year = data.year;
    h.push_str("<h2 id=\"zones\">Zone summary</h2>\n");
    let mut per: BTreeMap<&str, ZoneTotals> = BTreeMap::new();
    for (id, z) in zones {
        let e = per.entry(z.as_str()).or_default();
        e.0 += 1;
        let value = |col: &str| {
            data.indices
                .get(col)
                .and_then(|t| t.get(&(id.clone(), year)))
        };
        for (k, col) in ["ce_t_c", "cs_t_c", "nce_t_c"].iter().enumerate() {
            if let Some(v) = value(col) {
                e.1[k] += v;
            }
        }
        for (k, col) in ["ecc", "esc"].iter().enumerate() {
            if let Some(v) = value(col) {
                e.2[k].push(*v);
            }
        }
    }
    let _ = write!(
        h,
        "<table><tr><th>zone</th><th>units</th><th>CE {year} (t C)</th><th>CS {year} (t C)</th><th>NCE {year} (t C)</th><th>mean ECC</th><th>mean ESC</th></tr>"
    );
    for (z, (n, sums, means)) in &per {
        let m = |v: &Vec<f64>| {
            if v.is_empty() {
                "–".to_owned()
            } else {
                fmt_cell(v.iter().sum::<f64>() / v.len() as f64)
            }
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{n}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(z),
            fmt_cell(sums[0]),
            fmt_cell(sums[1]),
            fmt_cell(sums[2]),
            m(&means[0]),
            m(&means[1])
        );
    }
    h.push_str("</table>\n");
}

/// Above this many rows the payers and receivers table starts folded (`<details>`).
const FOLDED_TABLE_ROWS: usize = 200;

/// Totals paid and received in the map year, then payers and receivers by amount.
fn compensation_section(h: &mut String, data: &ReportData) {
    let Some((convention, amount_column, flows)) = &data.flows else {
        return;
    };
    let _ = writeln!(
        h,
        "<h2 id=\"compensation\">Compensation, {}</h2>\n<p class=\"note\">Convention <code>{}</code>; amount column <code>{}</code>. Payers by amount, largest first; then receivers, largest receipt first.</p>",
        data.year,
        escape(convention),
        escape(amount_column)
    );
    let total = |role: &str| -> f64 {
        flows
            .iter()
            .filter(|f| f.role == role)
            .map(|f| f.amount)
            .sum()
    };
    let _ = writeln!(
        h,
        "<p>Total paid: <b>{}</b>; total received: <b>{}</b>.</p>",
        fmt_cell(total("payer")),
        fmt_cell(total("receiver"))
    );
    let mut rows: Vec<&Flow> = flows.iter().filter(|f| f.role != "balanced").collect();
    rows.sort_by(|a, b| {
        (a.role != "payer")
            .cmp(&(b.role != "payer"))
            .then(b.amount.abs().total_cmp(&a.amount.abs()))
            .then(a.unit_id.cmp(&b.unit_id))
    });
    // A table of thousands of rows is what a browser pays most for on a national page (its
    // layout took longer than the maps'): a long one starts folded, and is laid out when opened.
    let folded = rows.len() > FOLDED_TABLE_ROWS;
    if folded {
        let _ = write!(
            h,
            "<details><summary>All {} payers and receivers</summary>",
            rows.len()
        );
    }
    h.push_str("<table><tr><th>role</th><th>unit</th><th>name</th><th>quantity (t C)</th><th>amount</th></tr>");
    for f in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&f.role),
            escape(&f.unit_id),
            escape(data.name_of(&f.unit_id)),
            fmt_cell(f.quantity_t_c),
            fmt_cell(f.amount)
        );
    }
    h.push_str(if folded {
        "</table></details>\n"
    } else {
        "</table>\n"
    });
    let balanced = flows.iter().filter(|f| f.role == "balanced").count();
    let _ = writeln!(h, "<p class=\"note\">{balanced} units balanced.</p>");
}

/// The inputs with their digests, the provenance items, and the end of the page.
fn provenance_section(h: &mut String, data: &ReportData) {
    h.push_str("<h2 id=\"provenance\">Provenance</h2>\n<table><tr><th>input</th><th>rows</th><th>columns</th><th>BLAKE3 of the Parquet bytes</th></tr>");
    for (port, rows, cols, digest) in &data.inputs {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{rows}</td><td class=\"num\">{cols}</td><td><code>{}</code></td></tr>",
            escape(port),
            escape(digest)
        );
    }
    h.push_str("</table>\n<table><tr><th>item</th><th>value</th></tr>");
    for (k, v) in &data.provenance {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", escape(k), escape(v));
    }
    h.push_str("</table>\n</body>\n</html>\n");
}

/// One year of the `inequality` table as the report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct InequalityRow {
    pub year: i64,
    /// The table's `gini`: see [`ReportData::inequality_weight`] for which index it is.
    pub gini: f64,
    pub centralization: f64,
    /// The plain Gini of the value per unit (`gini_plain`), when the table has it.
    pub gini_plain: Option<f64>,
}

/// Caption of the 0.4 line: the interpretation bands of the income-Gini convention (滕飞 et
/// al. 2010, 气候变化研究进展 6(6): 449–455), which belong to the plain Gini of a quantity
/// per unit and not to the carbon Gini of emission against sink.
const WARNING_CAPTION: &str = "Dashed line: the 0.4 warning line of the income-Gini convention \
    (&lt; 0.2 absolutely equal; 0.2–0.3 relatively equal; 0.3–0.4 relatively reasonable; 0.4–0.5 large gap; \
    &gt; 0.5 very large gap). It belongs to the Gini of emission per unit (and the centralization index, \
    ≈ that Gini × n/(n − 1)), not to the carbon Gini of emission against sink.";

/// Which index the table's `gini` is, and the plain Gini per year when known.
fn plain_gini(data: &ReportData) -> Option<Vec<(f64, f64)>> {
    let equal = data.inequality_weight.as_deref() == Some("equal");
    let rows = data.inequality.iter();
    if equal {
        return Some(rows.map(|r| (r.year as f64, r.gini)).collect());
    }
    rows.map(|r| r.gini_plain.map(|g| (r.year as f64, g)))
        .collect()
}

/// The carbon Gini's title (`None` when the table's `gini` is the plain Gini).
fn carbon_gini_title(data: &ReportData) -> Option<String> {
    match data.inequality_weight.as_deref() {
        Some("equal") => None,
        Some(weight) => Some(format!(
            "Carbon Gini: emission against sink (weight <code>{weight}</code>)"
        )),
        None => Some("Gini (the reference quantity is not recorded)".to_owned()),
    }
}

/// The plain Gini with centralization and the 0.4 line (its caption below), and the carbon
/// Gini in a chart of its own without the line.
fn inequality_charts(h: &mut String, data: &ReportData) {
    if data.inequality.is_empty() {
        return;
    }
    let years = || data.inequality.iter().map(|r| r.year as f64);
    if let Some(plain) = plain_gini(data) {
        let gini = Series {
            label: "Gini of emission per unit".into(),
            colour: "#0072B2".into(),
            points: plain,
            dashed: false,
        };
        let cent = Series {
            label: "centralization".into(),
            colour: "#009E73".into(),
            points: years()
                .zip(data.inequality.iter().map(|r| r.centralization))
                .collect(),
            dashed: true,
        };
        let _ = write!(
            h,
            "<div class=\"cell\">{}<p class=\"note\">{WARNING_CAPTION}</p></div>",
            line_chart(
                "Gini of emission per unit and centralization index",
                &[gini, cent],
                Some((0.4, "warning line 0.4")),
                "year",
                "index",
                false
            )
        );
    }
    if let Some(title) = carbon_gini_title(data) {
        let carbon = Series {
            label: "carbon Gini".into(),
            colour: "#D55E00".into(),
            points: years()
                .zip(data.inequality.iter().map(|r| r.gini))
                .collect(),
            dashed: false,
        };
        let _ = write!(
            h,
            "<div class=\"cell\"><div class=\"note\">{title}</div>{}<p class=\"note\">The carbon Gini measures the mismatch between where carbon is emitted and where it is absorbed; the income-Gini warning line does not apply to it.</p></div>",
            line_chart("Carbon Gini", &[carbon], None, "year", "index", false)
        );
    }
}

/// The per-year table; `≥ 0.4` flags only the indices the warning line belongs to.
fn inequality_table(h: &mut String, data: &ReportData) {
    if data.inequality.is_empty() {
        return;
    }
    let carbon = carbon_gini_title(data).is_some();
    let plain = plain_gini(data);
    h.push_str("<table><tr><th>year</th>");
    if carbon {
        h.push_str("<th>carbon Gini</th>");
    }
    if plain.is_some() {
        h.push_str("<th>Gini of emission per unit</th>");
    }
    h.push_str("<th>centralization</th><th>≥ 0.4 (Gini per unit or centralization)</th></tr>");
    for (k, r) in data.inequality.iter().enumerate() {
        let _ = write!(h, "<tr><td>{}</td>", r.year);
        if carbon {
            let _ = write!(h, "<td class=\"num\">{:.4}</td>", r.gini);
        }
        let per_unit = plain.as_ref().map(|p| p[k].1);
        if let Some(g) = per_unit {
            let _ = write!(h, "<td class=\"num\">{g:.4}</td>");
        }
        let flagged = per_unit.is_some_and(|g| g >= 0.4) || r.centralization >= 0.4;
        let _ = write!(
            h,
            "<td class=\"num\">{:.4}</td><td>{}</td></tr>",
            r.centralization,
            if flagged { "yes" } else { "no" }
        );
    }
    h.push_str("</table>\n");
}

/// A map of probabilities in fixed classes, so low values (results that are not robust) stand
/// out the same way in every report.
fn probability_layer<'a>(
    data: &ReportData,
    title: &'a str,
    legend_title: &'a str,
    value_of: &dyn Fn(&str) -> Option<(f64, String)>,
) -> MapLayer<'a> {
    const BOUNDS: [f64; 5] = [0.5, 0.75, 0.9, 0.99, 1.0];
    const LABELS: [&str; 5] = ["< 0.5", "0.5 – 0.75", "0.75 – 0.9", "0.9 – 0.99", "≥ 0.99"];
    let class = |p: f64| {
        BOUNDS
            .iter()
            .position(|&b| p < b)
            .unwrap_or(BOUNDS.len() - 1)
    };
    let colour = |k: usize| palette::sequential(k as f64 / (BOUNDS.len() - 1) as f64);
    let mut fills = Vec::with_capacity(data.units.len());
    let mut tooltips = Vec::with_capacity(data.units.len());
    for u in &data.units {
        match value_of(&u.id) {
            Some((p, what)) => {
                fills.push(colour(class(p)));
                tooltips.push(format!("{} {}: {what} {}", u.id, u.name, fmt_num(p)));
            }
            None => {
                fills.push(palette::NO_DATA.to_owned());
                tooltips.push(format!("{} {}: no data", u.id, u.name));
            }
        }
    }
    let legend = LABELS
        .iter()
        .enumerate()
        .map(|(k, l)| LegendEntry {
            colour: colour(k),
            label: (*l).to_owned(),
        })
        .collect();
    MapLayer {
        title,
        legend_title,
        fills,
        tooltips,
        legend,
    }
}

/// Robustness under a sweep: the modal zone's probability, the probability of paying, and a
/// tornado chart of PRCC per collected name.
fn robustness_section<'d>(
    h: &mut String,
    maps: &mut DeferredMaps<'d>,
    data: &'d ReportData,
    big: &'d ProjectedUnits,
) {
    let r = &data.robustness;
    if r.modal_zone.is_empty() && r.payer.is_none() && r.prcc.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"robustness\">Robustness</h2>\n<p class=\"note\">From a <code>sweep</code> stage: the share of draws of the sampled coefficients and factors in which each unit falls in its most frequent (modal) zone, and in which it pays compensation; pale units are robust, dark ones change with defensible parameter choices. The tornado charts rank the parameters by their partial rank correlation (PRCC, Marino et al. 2008) with each collected result.</p>\n<div class=\"grid\">\n");
    if !r.modal_zone.is_empty() {
        let title = "Probability of the modal zone".to_owned();
        maps.cell(h, &title.clone(), move || {
            let layer = probability_layer(data, &title, "P(modal zone)", &|id| {
                r.modal_zone.get(id).map(|(z, p)| (*p, format!("{z},")))
            });
            map_svg(big, &layer, false)
        });
    }
    if let Some((convention, payer)) = &r.payer {
        let title = format!("Probability of paying ({convention}), {}", data.year);
        maps.cell(h, &title.clone(), move || {
            let layer = probability_layer(data, &title, "P(payer)", &|id| {
                payer.get(id).map(|p| (*p, "P(payer) =".to_owned()))
            });
            map_svg(big, &layer, false)
        });
    }
    let outputs: BTreeSet<&str> = r.prcc.iter().map(|x| x.0.as_str()).collect();
    for output in outputs {
        let bars: Vec<(String, f64)> = r
            .prcc
            .iter()
            .filter(|x| x.0 == output)
            .map(|x| (x.1.clone(), x.2))
            .collect();
        let _ = write!(
            h,
            "<div class=\"cell\">{}</div>",
            tornado_chart(&format!("What moves `{output}`"), &bars, "PRCC")
        );
    }
    h.push_str("</div>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    /// A row of `n` one-degree squares with `ce_t_c` for `years`.
    fn row_of_units(n: usize, years: std::ops::RangeInclusive<i64>) -> ReportData {
        let units: Vec<UnitShape> = (0..n)
            .map(|i| {
                let x = 110.0 + i as f64;
                UnitShape {
                    id: format!("u{i}"),
                    name: String::new(),
                    shape: MultiPolygon(vec![
                        polygon![(x: x, y: 34.0), (x: x + 1.0, y: 34.0), (x: x + 1.0, y: 35.0), (x: x, y: 34.0 + 1.0), (x: x, y: 34.0)],
                    ]),
                }
            })
            .collect();
        let mut ce = BTreeMap::new();
        for y in years {
            for (i, u) in units.iter().enumerate() {
                ce.insert((u.id.clone(), y), (i as f64 + 1.0) * 1e4 + y as f64);
            }
        }
        ReportData {
            title: "t".into(),
            year: 2022,
            units,
            indices: BTreeMap::from([("ce_t_c".to_owned(), ce)]),
            n_classes: 3,
            ..ReportData::default()
        }
    }

    fn with_flows(n: usize) -> ReportData {
        let flows = (0..n)
            .map(|i| Flow {
                unit_id: format!("u{i}"),
                role: if i % 2 == 0 { "payer" } else { "receiver" }.to_owned(),
                quantity_t_c: 1.0 + i as f64,
                amount: 10.0 * (1.0 + i as f64),
            })
            .collect();
        ReportData {
            flows: Some(("c".into(), "value".into(), flows)),
            ..row_of_units(2, 2022..=2022)
        }
    }

    #[test]
    fn a_long_payers_table_starts_folded_and_keeps_every_row() {
        for (n, folded) in [(FOLDED_TABLE_ROWS, false), (FOLDED_TABLE_ROWS + 1, true)] {
            let html = render(&with_flows(n));
            let section = &html[html.find("id=\"compensation\"").unwrap()..];
            let section = &section[..section.find("units balanced").unwrap()];
            assert_eq!(section.contains("<details>"), folded, "{n} rows");
            assert_eq!(section.matches("<tr><td>").count(), n, "{n} rows");
            if folded {
                assert!(
                    section.contains(&format!("<summary>All {n} payers and receivers</summary>"))
                );
                assert!(section.contains("</table></details>"));
            }
        }
    }

    #[test]
    fn up_to_six_years_are_all_shown_beyond_that_first_last_and_evenly_spaced() {
        assert_eq!(readable_years(&[2000, 2005, 2010]), vec![2000, 2005, 2010]);
        let six: Vec<i64> = (2000..2006).collect();
        assert_eq!(readable_years(&six), six);
        // 38 years, indices 0..=37 at k × 37 / 5 rounded: 0, 7.4, 14.8, 22.2, 29.6, 37.
        let annual: Vec<i64> = (1985..=2022).collect();
        assert_eq!(
            readable_years(&annual),
            vec![1985, 1992, 2000, 2007, 2015, 2022]
        );
        // Irregular years keep the first and the last.
        assert_eq!(
            readable_years(&[1990, 1995, 2000, 2005, 2010, 2015, 2018, 2020]),
            vec![1990, 1995, 2005, 2010, 2018, 2020]
        );
    }

    #[test]
    fn an_annual_study_draws_six_small_multiples_per_row_with_every_unit() {
        let html = render(&row_of_units(4, 1985..=2022));
        let over = &html[html.find("id=\"over-time\"").unwrap()..];
        assert!(over.contains("6 of the 38 years: the first, the last and evenly spaced"));
        let shown: Vec<&str> = over
            .match_indices("<div class=\"note\">")
            .map(|(i, m)| &over[i + m.len()..i + m.len() + 4])
            .collect();
        assert_eq!(shown, ["1985", "1992", "2000", "2007", "2015", "2022"]);
        // Each small multiple draws every unit once, in one path per colour.
        let maps: Vec<&str> = over.split("<svg class=\"map\"").skip(1).collect();
        assert_eq!(maps.len(), 6);
        for map in maps {
            let rings: usize = map
                .match_indices("<path class=\"fill\"")
                .map(|(i, _)| {
                    let d = &map[i..];
                    d[..d.find("/>").unwrap()].matches('M').count()
                })
                .sum();
            assert_eq!(rings, 4);
        }
    }

    #[test]
    fn the_page_is_the_same_on_one_thread_and_on_two() {
        let mut data = row_of_units(40, 2015..=2022);
        for y in [2015, 2022] {
            let classes = ["HH", "LL", "HL", "LH", "NS"];
            data.lisa.insert(
                y,
                data.units
                    .iter()
                    .enumerate()
                    .map(|(i, u)| (u.id.clone(), classes[(i + y as usize) % 5].to_owned()))
                    .collect(),
            );
        }
        data.clusters = Some(
            data.units
                .iter()
                .enumerate()
                .map(|(i, u)| (u.id.clone(), (i / 7) as i64))
                .collect(),
        );
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| render(&data))
        };
        let one = on(1);
        // 1 large map of CE + LISA + clusters; 6 small multiples of CE + 2 of LISA.
        assert_eq!(one.matches("<svg class=\"map\"").count(), 3 + 6 + 2);
        assert_eq!(one, on(2));
    }

    #[test]
    fn five_years_are_all_drawn_without_a_note() {
        let html = render(&row_of_units(3, 2000..=2004));
        assert_eq!(html.matches("<svg class=\"map\"").count(), 1 + 5);
        assert!(!html.contains("evenly spaced"));
    }
}
