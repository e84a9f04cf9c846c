//! Server-rendered SVG bar charts: no script, no external library, readable by screen readers
//! (`role="img"` with a title and a description; the pages add a data table next to each chart).
//! [`bars`] draws a series over time (usage), [`hbars`] a ranking (billing reports); both escape
//! text with the one [`esc`].

use std::fmt::Write as _;

/// One bar group: a label and two values drawn over each other (errors are a subset of calls).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// Axis label, e.g. `"14:00"` or `"May 28"`.
    pub label: String,
    /// Long label for the tooltip, e.g. `"2026-05-28 14:00 UTC"`.
    pub title: String,
    /// Calls.
    pub calls: i64,
    /// Errors.
    pub errors: i64,
}

const WIDTH: i64 = 720;
const HEIGHT: i64 = 220;
const LEFT: i64 = 48;
const RIGHT: i64 = 8;
const TOP: i64 = 10;
const BOTTOM: i64 = 26;

/// Escape text for SVG/HTML content and attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The axis maximum: four gridline steps of a "nice" size (1, 2 or 5 × 10ⁿ), the smallest that
/// reaches `n`, so every gridline label is a round whole number.
fn nice_max(n: i64) -> i64 {
    let need = (n.max(1) - 1) / 4 + 1;
    let mut step = 1i64;
    loop {
        for m in [1, 2, 5] {
            if let Some(v) = step.checked_mul(m) {
                if v >= need {
                    return v.saturating_mul(4);
                }
            }
        }
        match step.checked_mul(10) {
            Some(s) => step = s,
            None => return i64::MAX,
        }
    }
}

fn short(n: i64) -> String {
    match n {
        n if n >= 1_000_000_000 && n % 1_000_000_000 == 0 => format!("{}B", n / 1_000_000_000),
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => crate::format::count(n),
    }
}

/// An SVG bar chart. `id` prefixes the title/description ids; every `label_every`-th bar gets an
/// axis label.
pub fn bars(id: &str, title: &str, desc: &str, bars: &[Bar], label_every: usize) -> String {
    let max = nice_max(bars.iter().map(|b| b.calls.max(b.errors)).max().unwrap_or(0));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = i64::try_from(bars.len().max(1)).unwrap_or(1);
    let slot = plot_w as f64 / n as f64;
    let bar_w = (slot * 0.72).max(1.0);
    // Integer math for heights: value × plot_h / max, rounded, in i128 so huge counts cannot overflow.
    let h = |v: i64| -> i64 { i64::try_from(i128::from(v.max(0)) * i128::from(plot_h) / i128::from(max.max(1))).unwrap_or(plot_h) };
    let id = esc(id);
    let mut svg = String::with_capacity(256 + bars.len() * 320);
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" preserveAspectRatio="xMidYMid meet"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        esc(title),
        esc(desc)
    );
    for i in 0..=4 {
        let v = max / 4 * i;
        let y = TOP + plot_h - h(v);
        let class = if i == 0 { "axis" } else { "grid" };
        let _ = write!(
            svg,
            r#"<line class="{class}" x1="{LEFT}" x2="{}" y1="{y}" y2="{y}"/><text x="{}" y="{}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6,
            y + 4,
            short(v)
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let x = LEFT as f64 + slot * i as f64 + (slot - bar_w) / 2.0;
        let calls_h = h(b.calls);
        let errors_h = h(b.errors);
        let tip = esc(&format!("{}: {} calls, {} errors", b.title, crate::format::count(b.calls), crate::format::count(b.errors)));
        let _ = write!(svg, "<g><title>{tip}</title>");
        if calls_h > 0 {
            let _ = write!(
                svg,
                r#"<rect class="bar-calls" x="{x:.1}" y="{}" width="{bar_w:.1}" height="{calls_h}" rx="1.5"/>"#,
                TOP + plot_h - calls_h
            );
        }
        if errors_h > 0 {
            let _ = write!(
                svg,
                r#"<rect class="bar-errors" x="{x:.1}" y="{}" width="{bar_w:.1}" height="{errors_h}" rx="1.5"/>"#,
                TOP + plot_h - errors_h
            );
        }
        // An invisible full-height target so thin bars still show their tooltip on hover.
        let _ = write!(svg, r#"<rect x="{x:.1}" y="{TOP}" width="{bar_w:.1}" height="{plot_h}" fill="transparent"/></g>"#);
        if label_every > 0 && i % label_every == 0 {
            let _ = write!(svg, r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#, x + bar_w / 2.0, HEIGHT - 8, esc(&b.label));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A horizontal bar chart of `(label, value, value as shown)`; values below zero draw as zero.
pub fn hbars(title: &str, bars: &[(String, i64, String)]) -> String {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let row_h = 26;
    let height = row_h * bars.len().max(1) + 8;
    let mut svg = format!(
        r#"<svg class="billing-chart" role="img" aria-label="{}" viewBox="0 0 640 {height}" width="100%" xmlns="http://www.w3.org/2000/svg">"#,
        esc(title)
    );
    for (i, (label, value, shown)) in bars.iter().enumerate() {
        let y = 4 + i * row_h;
        let w = i64::try_from(i128::from((*value).max(0)) * 360 / i128::from(max)).unwrap_or(360);
        let _ = write!(
            svg,
            r##"<text x="0" y="{ty}" font-size="12" fill="#334155">{l}</text><rect x="180" y="{y}" width="{w}" height="18" rx="3" fill="#4f46e5"/><text x="{tx}" y="{ty}" font-size="12" fill="#0f172a">{v}</text>"##,
            ty = y + 13,
            l = esc(&label.chars().take(26).collect::<String>()),
            tx = 186 + w,
            v = esc(shown),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0), 4);
        assert_eq!(nice_max(4), 4);
        assert_eq!(nice_max(7), 8);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(150), 200);
        assert_eq!(nice_max(1234), 2000);
        assert_eq!(nice_max(4000), 4000);
        assert_eq!(nice_max(i64::MAX), i64::MAX);
    }

    #[test]
    fn bars_are_accessible_and_escaped() {
        let svg = bars(
            "c",
            "Calls <per> hour",
            "d",
            &[
                Bar { label: "a&b".into(), title: "t".into(), calls: 10, errors: 2 },
                Bar { label: "x".into(), title: "u".into(), calls: 0, errors: 0 },
            ],
            1,
        );
        assert!(svg.starts_with(r#"<svg class="chart""#));
        assert!(svg.contains(r#"role="img" aria-labelledby="c-title c-desc""#));
        assert!(svg.contains("<title id=\"c-title\">Calls &lt;per&gt; hour</title>"));
        assert!(svg.contains(">a&amp;b</text>"));
        assert_eq!(svg.matches("class=\"bar-calls\"").count(), 1, "no zero-height bars");
        assert!(svg.contains("t: 10 calls, 2 errors"));
        // Bars stay inside the plot even for huge values.
        let big = bars("b", "t", "d", &[Bar { label: String::new(), title: String::new(), calls: i64::MAX, errors: i64::MAX }], 0);
        assert!(big.contains(&format!("height=\"{}\"", HEIGHT - TOP - BOTTOM)));
    }

    #[test]
    fn horizontal_bars_escape_labels() {
        let svg = hbars("x", &[("<b>".into(), 5, "5".into()), ("a".into(), 10, "10".into())]);
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        assert!(svg.contains(r#"width="360""#) && svg.contains(r#"width="180""#));
    }
}
