//! Small inline-SVG charts: line charts (with an optional reference line), bar charts with
//! negative values, and stacked bars. No scripts; numbers printed with fixed decimals.

use std::fmt::Write as _;

use super::svg_map::escape;

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub colour: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// Axis frame shared by the charts.
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        self.left
            + (x - self.x0) / (self.x1 - self.x0).max(1e-12) * (self.w - self.left - self.right)
    }
    fn py(&self, y: f64) -> f64 {
        self.h
            - self.bottom
            - (y - self.y0) / (self.y1 - self.y0).max(1e-12) * (self.h - self.top - self.bottom)
    }
}

/// "Nice" tick values covering [lo, hi] (1, 2, 5 × 10^k steps).
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powi(raw.log10().floor() as i32);
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).floor() as i64;
    let end = (hi / step).ceil() as i64;
    (start..=end).map(|k| k as f64 * step).collect()
}

/// Formats a tick or value compactly with a fixed number of significant decimals.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!(
            "{:.2}e{}",
            v / 10f64.powi(a.log10().floor() as i32),
            a.log10().floor() as i32
        )
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.001 {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

/// Table cells: whole numbers with thin-space thousands groups from 1000 up
/// (`17 600 000`), otherwise as [`fmt_num`].
pub fn fmt_cell(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    if v.abs() < 1000.0 {
        return fmt_num(v);
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    if v < 0.0 { format!("−{out}") } else { out }
}

/// Tick labels: like [`fmt_num`] without trailing zeros (`50`, `0.2`).
fn fmt_tick(v: f64) -> String {
    let s = fmt_num(v);
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// A chart's `<svg>` element, opened, with its title above the frame's left edge.
fn chart_start(frame: &Frame, title: &str) -> String {
    let (w, h) = (frame.w, frame.h);
    let mut s = format!(
        r#"<svg class="chart" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="img" aria-label="{}">"#,
        escape(title)
    );
    let _ = write!(
        s,
        r#"<text x="{:.0}" y="16" font-size="12" font-weight="bold" font-family="sans-serif">{}</text>"#,
        frame.left,
        escape(title)
    );
    s
}

fn axes(
    s: &mut String,
    f: &Frame,
    x_ticks: &[f64],
    y_ticks: &[f64],
    x_label: &str,
    y_label: &str,
    x_fmt: &dyn Fn(f64) -> String,
) {
    s.push_str(r##"<g font-size="10" font-family="sans-serif" fill="#333333" stroke="none">"##);
    for &t in y_ticks {
        let y = f.py(t);
        let _ = write!(
            s,
            r##"<line x1="{l:.1}" x2="{r:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e3e3"/><text x="{tx:.1}" y="{ty:.1}" text-anchor="end">{}</text>"##,
            fmt_tick(t),
            l = f.left,
            r = f.w - f.right,
            tx = f.left - 4.0,
            ty = y + 3.0
        );
    }
    for &t in x_ticks {
        let x = f.px(t);
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{y:.1}" text-anchor="middle">{}</text>"#,
            escape(&x_fmt(t)),
            y = f.h - f.bottom + 14.0
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{l:.1}" x2="{r:.1}" y1="{b:.1}" y2="{b:.1}" stroke="#333333"/><line x1="{l:.1}" x2="{l:.1}" y1="{t:.1}" y2="{b:.1}" stroke="#333333"/>"##,
        l = f.left,
        r = f.w - f.right,
        b = f.h - f.bottom,
        t = f.top
    );
    let _ = write!(
        s,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="middle">{}</text>"#,
        escape(x_label),
        x = (f.left + f.w - f.right) / 2.0,
        y = f.h - 4.0
    );
    let _ = write!(
        s,
        r#"<text transform="translate(12 {y:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        escape(y_label),
        y = (f.top + f.h - f.bottom) / 2.0
    );
    s.push_str("</g>");
}

fn legend(s: &mut String, items: &[(&str, &str, bool)], x: f64, y: f64) {
    s.push_str(r##"<g font-size="10" font-family="sans-serif" fill="#222222">"##);
    for (k, (label, colour, dashed)) in items.iter().enumerate() {
        let yy = y + k as f64 * 14.0;
        let dash = if *dashed {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        let _ = write!(
            s,
            r#"<line x1="{x:.1}" x2="{x2:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{tx:.1}" y="{ty:.1}">{}</text>"#,
            escape(label),
            x2 = x + 18.0,
            tx = x + 22.0,
            ty = yy + 3.5
        );
    }
    s.push_str("</g>");
}

/// The smallest box (x0, x1, y0, y1) holding every finite point and the reference line's
/// value; empty (x0 > x1) when there is no finite point.
fn data_bounds(series: &[Series], hline: Option<(f64, &str)>) -> (f64, f64, f64, f64) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
        if x.is_finite() && y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if let Some((v, _)) = hline {
        y0 = y0.min(v);
        y1 = y1.max(v);
    }
    (x0, x1, y0, y1)
}

/// The dashed diagonal of a square chart, from (0, 0) to (1, 1).
fn diagonal(s: &mut String, frame: &Frame) {
    let _ = write!(
        s,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999999" stroke-dasharray="3 3"/>"##,
        frame.px(0.0),
        frame.py(0.0),
        frame.px(1.0),
        frame.py(1.0)
    );
}

/// A dashed horizontal line at `v` across the plot, labelled at its right end.
fn reference_line(s: &mut String, frame: &Frame, v: f64, label: &str) {
    let y = frame.py(v);
    let _ = write!(
        s,
        r##"<line class="reference-line" x1="{l:.1}" x2="{r:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#D55E00" stroke-width="1.5" stroke-dasharray="6 4"/><text x="{r:.1}" y="{ty:.1}" font-size="10" font-family="sans-serif" fill="#D55E00" text-anchor="end">{}</text>"##,
        escape(label),
        l = frame.left,
        r = frame.w - frame.right,
        ty = y - 4.0
    );
}

/// One series as a polyline through its finite points, with a dot on each if `markers`.
fn series_line(s: &mut String, frame: &Frame, se: &Series, markers: bool) {
    let d: Vec<String> = se
        .points
        .iter()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|&(x, y)| format!("{:.1},{:.1}", frame.px(x), frame.py(y)))
        .collect();
    let dash = if se.dashed {
        r#" stroke-dasharray="5 3""#
    } else {
        ""
    };
    let _ = write!(
        s,
        r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
        se.colour,
        d.join(" ")
    );
    if markers {
        for p in &d {
            let (x, y) = p.split_once(',').expect("formatted as x,y");
            let _ = write!(
                s,
                r#"<circle cx="{x}" cy="{y}" r="2.5" fill="{}"/>"#,
                se.colour
            );
        }
    }
}

/// A line chart. `hline` draws a dashed horizontal reference line with a label (e.g. the 0.4
/// warning line); `square` forces equal axes from 0 to 1 with the diagonal (Lorenz curves).
pub fn line_chart(
    title: &str,
    series: &[Series],
    hline: Option<(f64, &str)>,
    x_label: &str,
    y_label: &str,
    square: bool,
) -> String {
    let (w, h) = if square {
        (420.0, 380.0)
    } else {
        (560.0, 300.0)
    };
    let (x0, x1, y0, y1) = match data_bounds(series, hline) {
        (x0, x1, _, _) if square || x0 > x1 => (0.0, 1.0, 0.0, 1.0),
        bounds => bounds,
    };
    let y_ticks = if square {
        ticks(0.0, 1.0, 5)
    } else {
        ticks(y0.min(0.0), y1 * 1.05, 5)
    };
    let x_ticks: Vec<f64> = if square {
        ticks(0.0, 1.0, 5)
    } else {
        distinct_x(series)
    };
    let frame = Frame {
        w,
        h,
        left: 52.0,
        right: if square { 110.0 } else { 150.0 },
        top: 26.0,
        bottom: 34.0,
        x0,
        x1: if x1 > x0 { x1 } else { x0 + 1.0 },
        y0: y_ticks.first().copied().unwrap_or(0.0),
        y1: y_ticks.last().copied().unwrap_or(1.0),
    };
    let mut s = chart_start(&frame, title);
    let x_fmt: &dyn Fn(f64) -> String = if square {
        &|v| format!("{v:.1}")
    } else {
        &|v| format!("{v:.0}")
    };
    axes(&mut s, &frame, &x_ticks, &y_ticks, x_label, y_label, x_fmt);
    if square {
        diagonal(&mut s, &frame);
    }
    if let Some((v, label)) = hline {
        reference_line(&mut s, &frame, v, label);
    }
    for se in series {
        series_line(&mut s, &frame, se, !square);
    }
    let items: Vec<(&str, &str, bool)> = series
        .iter()
        .map(|s| (s.label.as_str(), s.colour.as_str(), s.dashed))
        .collect();
    legend(&mut s, &items, w - frame.right + 10.0, frame.top + 6.0);
    s.push_str("</svg>");
    s
}

fn distinct_x(series: &[Series]) -> Vec<f64> {
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|x| x.is_finite())
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    xs
}

/// One bar of [`bar_chart`] at `x`, `slot` wide with its gap: the bar, its value, and its
/// label below the axis.
fn labelled_bar(
    s: &mut String,
    frame: &Frame,
    x: f64,
    slot: f64,
    label: &str,
    v: f64,
    colour: &str,
) {
    let (ya, yb) = (frame.py(v.max(0.0)), frame.py(v.min(0.0)));
    let _ = write!(
        s,
        r#"<rect x="{x:.1}" y="{ya:.1}" width="{bw:.1}" height="{bh:.1}" fill="{colour}"><title>{}: {}</title></rect>"#,
        escape(label),
        fmt_num(v),
        bw = slot * 0.7,
        bh = (yb - ya).max(0.5)
    );
    let _ = write!(
        s,
        r#"<text x="{cx:.1}" y="{vy:.1}" font-size="10" font-family="sans-serif" text-anchor="middle">{}</text>"#,
        fmt_num(v),
        cx = x + slot * 0.35,
        vy = if v >= 0.0 { ya - 3.0 } else { yb + 11.0 }
    );
    // Category labels wrap on underscores to fit under the bar.
    for (k, part) in label.split('_').enumerate() {
        let _ = write!(
            s,
            r#"<text x="{cx:.1}" y="{ly:.1}" font-size="9" font-family="sans-serif" text-anchor="middle">{}</text>"#,
            escape(part),
            cx = x + slot * 0.35,
            ly = frame.h - frame.bottom + 14.0 + 10.0 * k as f64
        );
    }
}

/// A vertical bar chart of labelled values (negative bars go below the zero line).
pub fn bar_chart(
    title: &str,
    bars: &[(String, f64)],
    y_label: &str,
    colour_of: &dyn Fn(usize, f64) -> String,
) -> String {
    let n = bars.len().max(1);
    let w = (90.0 * n as f64 + 90.0).max(360.0);
    let h = 300.0;
    let lo = bars
        .iter()
        .map(|b| b.1)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::min);
    let hi = bars
        .iter()
        .map(|b| b.1)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let y_ticks = ticks(lo, if hi > lo { hi } else { lo + 1.0 }, 5);
    let frame = Frame {
        w,
        h,
        left: 60.0,
        right: 20.0,
        top: 26.0,
        bottom: 60.0,
        x0: 0.0,
        x1: n as f64,
        y0: y_ticks.first().copied().unwrap_or(0.0),
        y1: y_ticks.last().copied().unwrap_or(1.0),
    };
    let mut s = chart_start(&frame, title);
    axes(&mut s, &frame, &[], &y_ticks, "", y_label, &|v| {
        format!("{v:.0}")
    });
    let slot = (w - frame.left - frame.right) / n as f64;
    for (i, (label, v)) in bars.iter().enumerate() {
        if v.is_finite() {
            let x = frame.left + slot * (i as f64 + 0.15);
            labelled_bar(&mut s, &frame, x, slot, label, *v, &colour_of(i, *v));
        }
    }
    let zero = frame.py(0.0);
    let _ = write!(
        s,
        r##"<line x1="{:.1}" x2="{:.1}" y1="{zero:.1}" y2="{zero:.1}" stroke="#333333"/>"##,
        frame.left,
        w - frame.right
    );
    s.push_str("</svg>");
    s
}

/// Stacked vertical bars: one bar per x label, one segment per part (all ≥ 0).
pub fn stacked_bars(
    title: &str,
    xs: &[String],
    parts: &[(String, String, Vec<f64>)],
    y_label: &str,
) -> String {
    let n = xs.len().max(1);
    let w = (70.0 * n as f64 + 240.0).max(420.0);
    let h = 320.0;
    let totals: Vec<f64> = (0..xs.len())
        .map(|i| {
            parts
                .iter()
                .map(|p| p.2.get(i).copied().unwrap_or(0.0).max(0.0))
                .sum()
        })
        .collect();
    let hi = totals.iter().copied().fold(0.0, f64::max);
    let y_ticks = ticks(0.0, if hi > 0.0 { hi } else { 1.0 }, 5);
    let frame = Frame {
        w,
        h,
        left: 64.0,
        right: 160.0,
        top: 26.0,
        bottom: 34.0,
        x0: 0.0,
        x1: n as f64,
        y0: 0.0,
        y1: y_ticks.last().copied().unwrap_or(1.0),
    };
    let mut s = chart_start(&frame, title);
    axes(&mut s, &frame, &[], &y_ticks, "", y_label, &|v| {
        format!("{v:.0}")
    });
    let slot = (w - frame.left - frame.right) / n as f64;
    for (i, x_label) in xs.iter().enumerate() {
        stacked_bar(&mut s, &frame, slot, i, x_label, parts);
    }
    parts_legend(&mut s, &frame, parts);
    s.push_str("</svg>");
    s
}

/// Bar `i` of [`stacked_bars`]: one segment per part, bottom up, and the bar's label.
fn stacked_bar(
    s: &mut String,
    frame: &Frame,
    slot: f64,
    i: usize,
    x_label: &str,
    parts: &[(String, String, Vec<f64>)],
) {
    let x = frame.left + slot * (i as f64 + 0.2);
    let mut acc = 0.0;
    for (name, colour, values) in parts {
        let v = values.get(i).copied().unwrap_or(0.0).max(0.0);
        let (ya, yb) = (frame.py(acc + v), frame.py(acc));
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{ya:.1}" width="{bw:.1}" height="{bh:.1}" fill="{colour}"><title>{} {}: {}</title></rect>"#,
            escape(x_label),
            escape(name),
            fmt_num(v),
            bw = slot * 0.6,
            bh = (yb - ya).max(0.0)
        );
        acc += v;
    }
    let _ = write!(
        s,
        r#"<text x="{cx:.1}" y="{ly:.1}" font-size="10" font-family="sans-serif" text-anchor="middle">{}</text>"#,
        escape(x_label),
        cx = x + slot * 0.3,
        ly = frame.h - frame.bottom + 14.0
    );
}

/// The legend of [`stacked_bars`], right of the plot: the top part first, as stacked.
fn parts_legend(s: &mut String, frame: &Frame, parts: &[(String, String, Vec<f64>)]) {
    s.push_str(r##"<g font-size="10" font-family="sans-serif" fill="#222222">"##);
    for (k, (name, colour, _)) in parts.iter().enumerate().rev() {
        let y = frame.top + 6.0 + (parts.len() - 1 - k) as f64 * 14.0;
        let _ = write!(
            s,
            r#"<rect x="{x:.1}" y="{y:.1}" width="10" height="10" fill="{colour}"/><text x="{tx:.1}" y="{ty:.1}">{}</text>"#,
            escape(name),
            x = frame.w - frame.right + 12.0,
            tx = frame.w - frame.right + 26.0,
            ty = y + 9.0
        );
    }
    s.push_str("</g>");
}

/// A tornado chart: one horizontal bar per label, longest first, from −1 to 1 around zero
/// (for correlations such as PRCC).
pub fn tornado_chart(title: &str, bars: &[(String, f64)], x_label: &str) -> String {
    let mut bars: Vec<&(String, f64)> = bars.iter().filter(|b| b.1.is_finite()).collect();
    bars.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
    let (label_w, bar_w, row_h) = (330.0, 300.0, 22.0);
    let h = 60.0 + row_h * bars.len() as f64;
    let zero = label_w + bar_w / 2.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{t}\"><text x=\"4\" y=\"16\" font-weight=\"bold\" font-size=\"13\">{t}</text>",
        w = label_w + bar_w + 20.0,
        t = escape(title)
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let y = 30.0 + row_h * i as f64;
        let len = v.abs().min(1.0) * bar_w / 2.0;
        let x = if *v < 0.0 { zero - len } else { zero };
        let colour = super::palette::diverging(if *v >= 0.0 { 0.8 } else { -0.8 });
        let _ = write!(
            s,
            "<text x=\"{lx}\" y=\"{ty}\" font-size=\"11\" text-anchor=\"end\">{l}</text><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{bh}\" fill=\"{colour}\"><title>{l}: {val}</title></rect>",
            lx = label_w - 6.0,
            ty = y + 13.0,
            l = escape(label),
            bh = row_h - 6.0,
            val = fmt_num(*v)
        );
    }
    let bottom = 30.0 + row_h * bars.len() as f64;
    let _ = write!(
        s,
        "<line x1=\"{zero}\" y1=\"26\" x2=\"{zero}\" y2=\"{bottom}\" stroke=\"#333\"/><text x=\"{zero}\" y=\"{ly}\" font-size=\"11\" text-anchor=\"middle\">{xl} (−1 … 1)</text></svg>",
        ly = bottom + 18.0,
        xl = escape(x_label)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_group_thousands() {
        assert_eq!(fmt_cell(17_600_000.4), "17\u{2009}600\u{2009}000");
        assert_eq!(fmt_cell(-1234.0), "−1\u{2009}234");
        assert_eq!(fmt_cell(0.867), "0.867");
    }

    #[test]
    fn nice_ticks() {
        assert_eq!(
            ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(
            ticks(-35.0, 166.0, 5),
            vec![-50.0, 0.0, 50.0, 100.0, 150.0, 200.0]
        );
    }

    #[test]
    fn warning_line_is_drawn() {
        let s = Series {
            label: "Gini".into(),
            colour: "#000000".into(),
            points: vec![(2000.0, 0.35), (2020.0, 0.45)],
            dashed: false,
        };
        let svg = line_chart(
            "Gini",
            &[s],
            Some((0.4, "warning line 0.4")),
            "year",
            "index",
            false,
        );
        assert!(svg.contains("reference-line") && svg.contains("warning line 0.4"));
        assert_eq!(svg.matches("<circle").count(), 2);
    }
}
