//! Small self-contained SVG charts: bars, grouped bars and a heat map. No
//! scripts, no external files: a report opens in any browser, offline.

use std::fmt::Write;

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const PALETTE: [&str; 6] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1"];

/// Formats a value shortly: integers as such, others with 3 decimals.
fn short(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 { format!("{v:.0}") } else { format!("{v:.3}") }
}

/// Horizontal bars, one per `(label, value)`, longest first as given.
///
/// ```
/// let svg = sentio_cli::report::svg::bars("rows per class", &[("happy".into(), 3.0), ("sad".into(), 1.0)]);
/// assert!(svg.starts_with("<svg") && svg.contains("happy") && svg.matches("<rect").count() == 2);
/// ```
pub fn bars(title: &str, items: &[(String, f64)]) -> String {
    let (label_w, bar_w, row_h) = (150.0, 360.0, 22.0);
    let max = items.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE);
    let height = 30.0 + row_h * items.len() as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{w}" height="{height}" viewBox="0 0 {w} {height}"><title>{t}</title>"#,
        w = label_w + bar_w + 70.0,
        t = esc(title)
    );
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 20.0 + row_h * i as f64;
        let len = (v / max * bar_w).max(0.0);
        let _ = write!(
            s,
            r#"<text x="{lx}" y="{ty}" text-anchor="end" font-size="12">{l}</text><rect x="{label_w}" y="{y}" width="{len:.1}" height="{bh}" fill="{c}"/><text x="{vx:.1}" y="{ty}" font-size="12">{val}</text>"#,
            lx = label_w - 6.0,
            ty = y + 14.0,
            l = esc(label),
            bh = row_h - 6.0,
            c = PALETTE[0],
            vx = label_w + len + 4.0,
            val = short(*v)
        );
    }
    s.push_str("</svg>");
    s
}

/// Vertical bars grouped by `groups` (e.g. folds), one series per metric;
/// values in [0, 1] (a missing value draws no bar).
pub fn grouped_bars(title: &str, groups: &[String], series: &[(String, Vec<Option<f64>>)]) -> String {
    let (left, plot_h, group_w, bar_w) = (40.0, 200.0, 20.0 + 14.0 * series.len() as f64, 14.0);
    let width = left + group_w * groups.len() as f64 + 160.0;
    let height = plot_h + 60.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}"><title>{}</title>"#,
        esc(title)
    );
    for tick in [0.0, 0.5, 1.0] {
        let y = 10.0 + plot_h * (1.0 - tick);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end" font-size="11">{tick}</text>"##,
            x2 = width - 160.0,
            tx = left - 4.0,
            ty = y + 4.0
        );
    }
    for (g, group) in groups.iter().enumerate() {
        let x0 = left + group_w * g as f64 + 6.0;
        for (k, (_, values)) in series.iter().enumerate() {
            if let Some(v) = values.get(g).copied().flatten() {
                let h = plot_h * v.clamp(0.0, 1.0);
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w}" height="{h:.1}" fill="{c}"><title>{v:.3}</title></rect>"#,
                    x = x0 + bar_w * k as f64,
                    y = 10.0 + plot_h - h,
                    w = bar_w - 2.0,
                    c = PALETTE[k % PALETTE.len()]
                );
            }
        }
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{y}" text-anchor="middle" font-size="11">{}</text>"#,
            esc(group),
            x = x0 + bar_w * series.len() as f64 / 2.0,
            y = plot_h + 26.0
        );
    }
    for (k, (name, _)) in series.iter().enumerate() {
        let y = 16.0 + 18.0 * k as f64;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{ry}" width="12" height="12" fill="{c}"/><text x="{tx}" y="{ty}" font-size="12">{}</text>"#,
            esc(name),
            x = width - 150.0,
            ry = y - 10.0,
            c = PALETTE[k % PALETTE.len()],
            tx = width - 132.0,
            ty = y
        );
    }
    s.push_str("</svg>");
    s
}

/// A heat map of `matrix[row][column]` (rows: true labels, columns:
/// predicted), each cell shaded by its share of its row and labelled with its
/// count.
pub fn heatmap(title: &str, labels: &[String], matrix: &[Vec<f64>]) -> String {
    let (left, top, cell) = (110.0, 40.0, 64.0);
    let n = labels.len() as f64;
    let (width, height) = (left + cell * n + 20.0, top + cell * n + 20.0);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}"><title>{}</title>"#,
        esc(title)
    );
    for (j, l) in labels.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{x}" y="{y}" text-anchor="middle" font-size="12">{}</text>"#,
            esc(l),
            x = left + cell * (j as f64 + 0.5),
            y = top - 8.0
        );
    }
    for (i, row) in matrix.iter().enumerate() {
        let total: f64 = row.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let y = top + cell * i as f64;
        let _ = write!(
            s,
            r#"<text x="{x}" y="{ty}" text-anchor="end" font-size="12">{}</text>"#,
            esc(labels.get(i).map(String::as_str).unwrap_or("?")),
            x = left - 8.0,
            ty = y + cell / 2.0 + 4.0
        );
        for (j, v) in row.iter().enumerate() {
            let share = v / total;
            let _ = write!(
                s,
                r##"<rect x="{x}" y="{y}" width="{c}" height="{c}" fill="#4e79a7" fill-opacity="{o:.3}" stroke="#fff"/><text x="{tx}" y="{ty}" text-anchor="middle" font-size="12" fill="{tc}">{val}</text>"##,
                x = left + cell * j as f64,
                c = cell,
                o = 0.08 + 0.92 * share,
                tx = left + cell * (j as f64 + 0.5),
                ty = y + cell / 2.0 + 4.0,
                tc = if share > 0.5 { "#fff" } else { "#000" },
                val = short(*v)
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        let svg = bars("<b>", &[("a<b & \"c\"".into(), 1.0)]);
        assert!(svg.contains("a&lt;b &amp; &quot;c&quot;") && !svg.contains("<b>"), "{svg}");
    }

    #[test]
    fn heatmap_has_one_cell_per_pair() {
        let l: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let svg = heatmap("cm", &l, &[vec![3.0, 1.0], vec![0.0, 4.0]]);
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(svg.contains(">3<") && svg.contains(">4<"));
    }

    #[test]
    fn grouped_bars_skip_missing_values() {
        let g: Vec<String> = ["1", "2"].iter().map(|s| s.to_string()).collect();
        let svg = grouped_bars("cv", &g, &[("accuracy".into(), vec![Some(0.5), None])]);
        // one bar and one legend swatch
        assert_eq!(svg.matches("<rect").count(), 2);
    }
}
