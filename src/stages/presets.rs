//! The built-in coefficient and energy-factor presets as `pipeline stages` prints them: each
//! row's value with the range of the values the literature cites for it and their sources, so
//! a `sweep`'s `vary` block can be written from them. Not a stage kind.

use std::fmt::Write as _;

use crate::methods::coefficients::{
    CitedRange, ENERGY_PRESETS, LAND_PRESETS, parse_fuel_rows, parse_land_coefficients, preset_text,
};

/// The presets section of `pipeline stages`, as text or Markdown.
#[must_use]
pub fn presets_doc(markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        out.push_str("# Presets\n\nEach row's value, and the range (min, max) of the values cited for it with their sources, for `vary` blocks of a `sweep`.\n\n");
    } else {
        out.push_str("presets (value, then the range of the cited values and their sources)\n");
    }
    for name in LAND_PRESETS {
        let rows = parse_land_coefficients(preset_text(&format!("{name}.csv")).unwrap_or(""))
            .unwrap_or_default();
        let title = format!("land-use coefficients `{name}` (t C/ha/a)");
        let cells = rows
            .iter()
            .map(|c| {
                let mut row = vec![c.class.clone(), c.value_t_c_per_ha.to_string()];
                row.extend(range_cells(c.range.as_ref()));
                row.push(source(c.range.as_ref()));
                row
            })
            .collect();
        table(
            &mut out,
            markdown,
            &title,
            &["class", "value", "min", "max", "range_source"],
            cells,
        );
    }
    for name in ENERGY_PRESETS {
        let rows = parse_fuel_rows(preset_text(&format!("energy_{name}.csv")).unwrap_or(""))
            .unwrap_or_default();
        let title = format!("energy factors `{name}` (theta in theta_unit, f in t C/tce)");
        let cells = rows
            .iter()
            .map(|r| {
                let ranges = r.ranges.as_ref();
                let mut row = vec![r.fuel.clone(), r.theta.to_string(), r.theta_unit.clone()];
                row.extend(range_cells(ranges.map(|x| &x.theta)));
                row.push(r.f_t_c_per_tce.to_string());
                row.extend(range_cells(ranges.map(|x| &x.f_t_c_per_tce)));
                row.push(source(ranges.map(|x| &x.theta)));
                row
            })
            .collect();
        table(
            &mut out,
            markdown,
            &title,
            &[
                "fuel",
                "theta",
                "theta_unit",
                "theta_min",
                "theta_max",
                "f_t_c_per_tce",
                "f_min",
                "f_max",
                "range_source",
            ],
            cells,
        );
    }
    out
}

fn range_cells(range: Option<&CitedRange>) -> [String; 2] {
    range.map_or_else(
        || [String::new(), String::new()],
        |r| [r.min.to_string(), r.max.to_string()],
    )
}

fn source(range: Option<&CitedRange>) -> String {
    range.map(|r| r.source.clone()).unwrap_or_default()
}

fn table(out: &mut String, markdown: bool, title: &str, header: &[&str], rows: Vec<Vec<String>>) {
    if markdown {
        let _ = writeln!(out, "## {title}\n");
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for row in rows {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
    } else {
        let _ = writeln!(out, "  {title}");
        for row in rows {
            let (last, first) = row.split_last().expect("rows have cells");
            let _ = writeln!(out, "    {:16} {}", first.join(" "), last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_doc_shows_each_rows_range_and_sources() {
        let md = presets_doc(true);
        // set 2's forest: value -0.644, cited from -0.644 (Li Ying 2008) to -0.581 (Fang 2007).
        let forest = md
            .lines()
            .skip_while(|l| !l.contains("`set2`"))
            .find(|l| l.starts_with("| forest |"))
            .unwrap();
        assert!(
            forest.starts_with("| forest | -0.644 | -0.644 | -0.581 | -0.644: Li Ying"),
            "{forest}"
        );
        let gas = md
            .lines()
            .skip_while(|l| !l.contains("`xia2017`"))
            .find(|l| l.starts_with("| natural_gas |"))
            .unwrap();
        assert!(
            gas.starts_with("| natural_gas | 1.2143 | tce/10^3 m3 | 1.2143 | 1.33 | 0.4483 | 0.4483 | 0.4483 | theta 1.2143: Xia Chuyu"),
            "{gas}"
        );
        let text = presets_doc(false);
        assert!(text.contains("cultivated 0.422 0.422 0.497"), "{text}");
    }
}
