//! Choropleth maps as inline SVG: units projected to Albers, fitted into a box, simplified
//! with their shared borders kept identical ([`super::topology`]), one
//! `<path class="unit" data-id="…">` per unit on every large map, with a legend, a north arrow
//! and a scale bar. Small multiples draw one path per colour instead.
//!
//! A browser or an HTML parser finds the units of every large map with the CSS selector
//! `svg.map .unit` (one per unit and map); `data-id` holds the unit id and the `<title>`
//! child the tooltip text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use geo::MultiPolygon;

use super::projection::Albers;
use rayon::prelude::*;

use super::topology::{GridPolygon, QUANTUM_PX, SharedBorders, to_grid};

/// The projected rings of one polygon (exterior first).
type Rings = Vec<Vec<(f64, f64)>>;

/// Unit outlines projected and fitted into a `width` × `height` pixel box (y down).
#[derive(Debug, Clone)]
pub struct ProjectedUnits {
    pub width: f64,
    pub height: f64,
    /// Ground metres per SVG pixel (for the scale bar).
    pub metres_per_px: f64,
    /// `(unit id, path data)`, in the order given.
    pub paths: Vec<(String, String)>,
}

/// Unit outlines projected to Albers and cut into shared arcs once ([`SharedBorders`]), to be
/// fitted into maps of any width with [`MapOutlines::fit`].
#[derive(Debug)]
pub struct MapOutlines {
    ids: Vec<String>,
    /// The first projected vertex of each unit (metres), where a unit too small for the grid
    /// gets its mark.
    first: Vec<Option<(f64, f64)>>,
    /// Projected bounding box: `(x0, y0, x1, y1)` in metres; `None` without any vertex.
    bounds: Option<(f64, f64, f64, f64)>,
    borders: SharedBorders,
}

impl MapOutlines {
    /// Projects `units` with `albers` and cuts their outlines into shared arcs.
    pub fn new(units: &[(String, MultiPolygon<f64>)], albers: &Albers) -> Self {
        let projected: Vec<Vec<Rings>> = units
            .par_iter()
            .map(|(_, mp)| {
                mp.0.iter()
                    .map(|p| {
                        std::iter::once(p.exterior())
                            .chain(p.interiors())
                            .map(|ring| ring.0.iter().map(|c| albers.project(c.x, c.y)).collect())
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let mut bounds: Option<(f64, f64, f64, f64)> = None;
        for &(x, y) in projected.iter().flatten().flatten().flatten() {
            let (x0, y0, x1, y1) = bounds.unwrap_or((x, y, x, y));
            bounds = Some((x0.min(x), y0.min(y), x1.max(x), y1.max(y)));
        }
        MapOutlines {
            ids: units.iter().map(|(id, _)| id.clone()).collect(),
            first: projected
                .iter()
                .map(|polys| polys.iter().flatten().flatten().next().copied())
                .collect(),
            bounds,
            borders: SharedBorders::new(&projected),
        }
    }

    /// Fits the outlines into a box `width` pixels wide (y down), simplified with a tolerance
    /// of `tolerance_px` pixels, shared borders kept shared. Every unit gets a path, even one
    /// that would vanish.
    pub fn fit(&self, width: f64, tolerance_px: f64) -> ProjectedUnits {
        let Some((x0, y0, x1, y1)) = self.bounds else {
            return ProjectedUnits {
                width,
                height: width,
                metres_per_px: 1.0,
                paths: Vec::new(),
            };
        };
        let margin = 8.0;
        let span_x = (x1 - x0).max(1.0);
        let span_y = (y1 - y0).max(1.0);
        let scale = (width - 2.0 * margin) / span_x;
        let height = (span_y * scale + 2.0 * margin).ceil();
        let to_px = |(x, y): (f64, f64)| (margin + (x - x0) * scale, margin + (y1 - y) * scale);
        let simplified = self.borders.simplify(&to_px, tolerance_px);
        let paths = self
            .ids
            .par_iter()
            .zip(&simplified)
            .zip(&self.first)
            .map(|((id, polys), first)| {
                let d = if polys.is_empty() {
                    // Smaller than the grid: a mark where it is, so every unit still has a path.
                    first.map_or_else(String::new, |p| {
                        let (x, y) = to_px(p);
                        path_data(&[vec![vec![to_grid(x, y); 3]]])
                    })
                } else {
                    path_data(polys)
                };
                (id.clone(), d)
            })
            .collect();
        ProjectedUnits {
            width,
            height,
            metres_per_px: 1.0 / scale,
            paths,
        }
    }
}

/// Projects and fits the units into a box `width` pixels wide, simplifying outlines with a
/// tolerance of `tolerance_px` pixels and keeping shared borders shared (one map size; maps
/// of several sizes share one [`MapOutlines`]).
pub fn project_units(
    units: &[(String, MultiPolygon<f64>)],
    albers: &Albers,
    width: f64,
    tolerance_px: f64,
) -> ProjectedUnits {
    MapOutlines::new(units, albers).fit(width, tolerance_px)
}

/// SVG path data of polygons on the grid, in grid units (the map scales them by
/// [`QUANTUM_PX`]): each ring's first vertex absolute (`M`), the others relative to the
/// previous one (`l`, repeated implicitly), then `z`. Relative steps between grid vertices are
/// short integers, so this is about a third of the size of absolute decimal coordinates.
fn path_data(polygons: &[GridPolygon]) -> String {
    let mut d = String::new();
    for ring in polygons.iter().flatten() {
        let Some(&first) = ring.first() else {
            continue;
        };
        d.push('M');
        push_step(&mut d, first.0);
        push_step(&mut d, first.1);
        let mut last = first;
        for (k, &p) in ring.iter().enumerate().skip(1) {
            if k == 1 {
                d.push('l');
            }
            push_step(&mut d, p.0 - last.0);
            push_step(&mut d, p.1 - last.1);
            last = p;
        }
        d.push('z');
    }
    d
}

/// Appends an integer, separated from a preceding number by a space unless it starts with a
/// minus sign.
fn push_step(d: &mut String, n: i64) {
    if n >= 0 && d.ends_with(|c: char| c.is_ascii_digit()) {
        d.push(' ');
    }
    let _ = write!(d, "{n}");
}

/// One legend entry: a colour swatch and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    pub colour: String,
    pub label: String,
}

/// What to draw on one map.
#[derive(Debug, Clone)]
pub struct MapLayer<'a> {
    pub title: &'a str,
    /// Short heading of the legend (e.g. "NCE (t C)").
    pub legend_title: &'a str,
    /// Fill per unit, in the order of [`ProjectedUnits::paths`].
    pub fills: Vec<String>,
    /// Tooltip per unit, same order.
    pub tooltips: Vec<String>,
    pub legend: Vec<LegendEntry>,
}

/// Width of the legend column to the right of a map, pixels.
const LEGEND_W: f64 = 170.0;

/// The map as an `<svg class="map">` element. A large map draws one `<path class="unit">` per
/// unit with its tooltip; a `small` one (the small multiples) draws one `<path class="fill">`
/// per colour holding the outlines of all units of that colour, so a page of many small maps
/// stays light for the browser however many units it maps.
pub fn map_svg(units: &ProjectedUnits, layer: &MapLayer<'_>, small: bool) -> String {
    let font = if small { 9.0 } else { 11.0 };
    let legend_h = 18.0 + layer.legend.len() as f64 * (font + 5.0);
    let w = units.width + LEGEND_W;
    let h = units.height.max(legend_h) + 4.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="map" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="img" aria-label="{}">"#,
        escape(layer.title)
    );
    // Even-odd: a hole stays open whichever way its ring turns. Paths are in grid units,
    // scaled to pixels here; the stroke is 0.4 px wide.
    let _ = write!(
        s,
        r##"<g transform="scale({QUANTUM_PX})" stroke="#555555" stroke-width="{}" stroke-linejoin="round" fill-rule="evenodd">"##,
        0.4 / QUANTUM_PX
    );
    if small {
        fills_by_colour(&mut s, units, layer);
    } else {
        unit_paths(&mut s, units, layer);
    }
    s.push_str("</g>");
    north_arrow(
        &mut s,
        units.width - 22.0,
        10.0,
        if small { 0.7 } else { 1.0 },
    );
    scale_bar(&mut s, units, font);
    // Legend.
    let lx = units.width + 6.0;
    let _ = write!(
        s,
        r##"<g font-size="{font}" font-family="sans-serif" fill="#222222">"##
    );
    let _ = write!(
        s,
        r#"<text x="{lx:.0}" y="{:.0}" font-weight="bold">{}</text>"#,
        font + 2.0,
        escape(layer.legend_title)
    );
    for (k, e) in layer.legend.iter().enumerate() {
        let y = 10.0 + font + k as f64 * (font + 5.0);
        let _ = write!(
            s,
            r##"<rect x="{lx:.0}" y="{y:.1}" width="{sw:.0}" height="{sh:.0}" fill="{}" stroke="#555555" stroke-width="0.4"/><text x="{tx:.0}" y="{ty:.1}">{}</text>"##,
            e.colour,
            escape(&e.label),
            sw = font + 3.0,
            sh = font + 1.0,
            tx = lx + font + 8.0,
            ty = y + font,
        );
    }
    s.push_str("</g></svg>");
    s
}

/// One `<path>` per unit, with its fill and tooltip.
fn unit_paths(s: &mut String, units: &ProjectedUnits, layer: &MapLayer<'_>) {
    for (i, (id, d)) in units.paths.iter().enumerate() {
        let fill = layer
            .fills
            .get(i)
            .map_or(super::palette::NO_DATA, String::as_str);
        let _ = write!(
            s,
            r#"<path class="unit" data-id="{}" fill="{fill}" d="{d}"><title>{}</title></path>"#,
            escape(id),
            escape(layer.tooltips.get(i).map_or("", String::as_str))
        );
    }
}

/// One `<path>` per fill colour with the outlines of its units, colours in sorted order.
fn fills_by_colour(s: &mut String, units: &ProjectedUnits, layer: &MapLayer<'_>) {
    let mut by_colour: BTreeMap<&str, String> = BTreeMap::new();
    for (i, (_, d)) in units.paths.iter().enumerate() {
        let fill = layer
            .fills
            .get(i)
            .map_or(super::palette::NO_DATA, String::as_str);
        by_colour.entry(fill).or_default().push_str(d);
    }
    for (fill, d) in by_colour {
        let _ = write!(s, r#"<path class="fill" fill="{fill}" d="{d}"/>"#);
    }
}

fn north_arrow(s: &mut String, x: f64, y: f64, k: f64) {
    let _ = write!(
        s,
        r##"<g class="north-arrow" transform="translate({x:.1} {y:.1}) scale({k})"><path d="M8 0 L16 22 L8 17 L0 22 Z" fill="#222222"/><text x="8" y="34" font-size="11" font-family="sans-serif" text-anchor="middle">N</text></g>"##
    );
}

/// A scale bar of a round length close to a quarter of the map width (true on the standard
/// parallels; the projection is equal-area, so distances elsewhere are off by a few per cent).
fn scale_bar(s: &mut String, units: &ProjectedUnits, font: f64) {
    let target_km = units.width * 0.25 * units.metres_per_px / 1000.0;
    let km = [
        1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
    ]
    .into_iter()
    .rfind(|&k| k <= target_km)
    .unwrap_or(1.0);
    let len = km * 1000.0 / units.metres_per_px;
    let (x, y) = (10.0, units.height - 10.0);
    let _ = write!(
        s,
        r##"<g class="scale-bar" font-size="{font}" font-family="sans-serif"><rect x="{x:.0}" y="{y0:.1}" width="{h:.1}" height="4" fill="#222222"/><rect x="{xh:.1}" y="{y0:.1}" width="{h:.1}" height="4" fill="#ffffff" stroke="#222222" stroke-width="0.6"/><text x="{xe:.1}" y="{y:.1}">{km:.0} km</text></g>"##,
        y0 = y - 4.0,
        h = len / 2.0,
        xh = x + len / 2.0,
        xe = x + len + 4.0,
    );
}

/// Escapes text for HTML/SVG content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn squares() -> Vec<(String, MultiPolygon<f64>)> {
        (0..3)
            .map(|i| {
                let x = 110.0 + f64::from(i);
                let p = polygon![(x: x, y: 34.0), (x: x + 1.0, y: 34.0), (x: x + 1.0, y: 35.0), (x: x, y: 35.0), (x: x, y: 34.0)];
                (format!("u{i}"), MultiPolygon(vec![p]))
            })
            .collect()
    }

    /// Counts the unit paths of an SVG or HTML document, as a browser test would with the
    /// selector `.unit`.
    pub(crate) fn count_unit_paths(doc: &str) -> usize {
        doc.matches(r#"<path class="unit" data-id=""#).count()
    }

    #[test]
    fn one_path_per_unit_with_id_and_furniture() {
        let units = squares();
        let p = project_units(&units, &Albers::china(), 300.0, 0.5);
        // Independent check with pyproj 3.7.2 (same Albers): the corners of lon 110–113,
        // lat 34–35 span 277 483.5 m × 130 364.5 m, so with 8 px margins the height is
        // 130 364.5 × 284 / 277 483.5 + 16 = 149.43 → 150 px after rounding up.
        assert_eq!(p.height, 150.0);
        let layer = MapLayer {
            title: "Test",
            legend_title: "Test",
            fills: vec!["#000000".into(); 3],
            tooltips: vec!["a".into(), "b".into(), "c&d".into()],
            legend: vec![LegendEntry {
                colour: "#000000".into(),
                label: "all".into(),
            }],
        };
        let svg = map_svg(&p, &layer, false);
        assert_eq!(count_unit_paths(&svg), 3);
        assert!(svg.contains(r#"data-id="u2""#) && svg.contains("c&amp;d"));
        assert!(svg.contains("north-arrow") && svg.contains("scale-bar"));
    }

    #[test]
    fn path_data_is_relative_in_grid_units() {
        // By hand: (1234, 567) absolute, then steps (+12, −3), (+5, +20), (−100, 0).
        let ring = vec![(1234, 567), (1246, 564), (1251, 584), (1151, 584)];
        assert_eq!(
            path_data(&[vec![ring, vec![(0, 0), (5, 0), (0, -5)]]]),
            "M1234 567l12-3 5 20-100 0zM0 0l5 0-5-5z"
        );
    }

    #[test]
    fn tiny_units_still_get_a_path() {
        let tiny = polygon![(x: 110.0, y: 34.0), (x: 110.0001, y: 34.0), (x: 110.0001, y: 34.0001), (x: 110.0, y: 34.0)];
        let mut units = squares();
        units.push(("tiny".into(), MultiPolygon(vec![tiny])));
        let p = project_units(&units, &Albers::china(), 300.0, 2.0);
        assert_eq!(p.paths.len(), 4);
        assert!(p.paths.iter().all(|(_, d)| d.starts_with('M')));
    }
}
