//! `BENCHMARKS.md` and its plot (`BENCHMARKS.svg`): a table per figure with the median and
//! spread, the target and whether it was met, the machine and the commit.

use std::fmt::Write as _;

use crate::stats::{Spread, percentile};

/// A figure's verdict against its target.
pub fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// `median (min–max)` with `digits` decimals.
pub fn spread_cell(spread: Option<Spread>, digits: usize) -> String {
    match spread {
        Some(s) if s.n > 1 => format!("{:.digits$} ({:.digits$}–{:.digits$})", s.median, s.min, s.max),
        Some(s) => format!("{:.digits$}", s.median),
        None => "–".to_owned(),
    }
}

/// A Markdown table.
pub fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", header.iter().map(|_| " --- ").collect::<Vec<_>>().join("|"));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

/// Percentiles of one latency figure on one backend for the plot, as fractions of its target.
#[derive(Debug, Clone)]
pub struct LatencyBars {
    pub label: String,
    pub backend: String,
    pub target_ms: f64,
    pub values_ms: Vec<f64>,
}

const PERCENTILES: [f64; 3] = [50.0, 90.0, 99.0];

/// An SVG with the latency percentiles of every figure and backend relative to each one's
/// target (1.0 = the target) across the top, and below it one panel per backend with the
/// offered rate and backlog per second of its first throughput run.
pub fn plot(latencies: &[LatencyBars], timelines: &[(String, Vec<(u64, i64)>)]) -> String {
    let (w, h, pad) = (960.0, 680.0, 48.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="{w}" height="{h}" fill="white"/>
"#
    );
    // Top: p50/p90/p99 of each latency figure, as a fraction of its target (capped at 3x).
    let (x0, x1, y0, y1) = (pad, w - pad, 300.0, pad);
    let scale = |ratio: f64| y0 - (ratio.min(3.0) / 3.0) * (y0 - y1);
    let _ = writeln!(
        svg,
        r#"<text x="{x0}" y="{}">Latency percentiles (p50, p90, p99) relative to each backend's target (capped at 3x)</text>"#,
        y1 - 16.0
    );
    let _ = writeln!(svg, r#"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>"#);
    let target_y = scale(1.0);
    let _ = writeln!(
        svg,
        r##"<line x1="{x0}" y1="{target_y}" x2="{x1}" y2="{target_y}" stroke="#c00" stroke-dasharray="4"/><text x="{}" y="{}" fill="#c00">target</text>"##,
        x1 - 40.0,
        target_y - 4.0
    );
    let group = (x1 - x0) / latencies.len().max(1) as f64;
    let colors = ["#8ecae6", "#219ebc", "#023047"];
    for (g, bars) in latencies.iter().enumerate() {
        let gx = x0 + g as f64 * group;
        for (i, p) in PERCENTILES.iter().enumerate() {
            let Some(v) = percentile(&bars.values_ms, *p) else { continue };
            let bw = group / 4.0;
            let x = gx + bw * (i as f64 + 0.5);
            let y = scale(v / bars.target_ms);
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} p{p}: {v:.1} ms</title></rect>"#,
                bw * 0.9,
                y0 - y,
                colors[i],
                escape(&bars.backend)
            );
            let _ = writeln!(svg, r#"<text x="{x:.1}" y="{:.1}" font-size="10">{v:.0}</text>"#, y - 3.0);
        }
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{}">{}</text>"#, gx + 4.0, y0 + 16.0, escape(&bars.label));
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="10">{}, target {} ms</text>"#,
            gx + 4.0,
            y0 + 30.0,
            escape(&bars.backend),
            bars.target_ms
        );
    }
    // Below: one panel per backend, offered creations per second (bars) and backlog (line).
    let (y0, y1) = (h - pad, 400.0);
    let width = (w - pad) / timelines.len().max(1) as f64;
    for (n, (backend, timeline)) in timelines.iter().enumerate() {
        let (x0, x1) = (pad + n as f64 * width, pad + (n + 1) as f64 * width - pad);
        let _ = writeln!(
            svg,
            r#"<text x="{x0}" y="{}">{}: throughput run, offered per second (bars), backlog (line)</text>"#,
            y1 - 16.0,
            escape(backend)
        );
        let _ = writeln!(svg, r#"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>"#);
        let max_rate = timeline.iter().map(|(r, _)| *r).max().unwrap_or(1).max(1) as f64;
        let max_backlog = timeline.iter().map(|(_, b)| *b).max().unwrap_or(1).max(1) as f64;
        let step = (x1 - x0) / timeline.len().max(1) as f64;
        let mut line = String::new();
        for (i, (rate, backlog)) in timeline.iter().enumerate() {
            let x = x0 + i as f64 * step;
            let y = y0 - (*rate as f64 / max_rate) * (y0 - y1);
            let _ = writeln!(
                svg,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="#8ecae6"/>"##,
                step * 0.8,
                y0 - y
            );
            let by = y0 - (*backlog as f64 / max_backlog) * (y0 - y1);
            let _ = write!(line, "{:.1},{by:.1} ", x + step * 0.4);
        }
        let _ = writeln!(svg, r##"<polyline points="{line}" fill="none" stroke="#fb8500" stroke-width="2"/>"##);
        let _ = writeln!(
            svg,
            r#"<text x="{x0}" y="{}">0 to {max_rate:.0}/s; backlog 0 to {max_backlog:.0}; {} s</text>"#,
            y0 + 16.0,
            timeline.len()
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// The section of `doc` under the level-2 heading that starts with `heading` (`## 1M tasks`):
/// from its heading line to the next level-2 heading or the end, as it is; `None` without one.
pub fn section<'a>(doc: &'a str, heading: &str) -> Option<&'a str> {
    let (start, end) = section_span(doc, heading)?;
    Some(&doc[start..end])
}

/// `doc` with the section under `heading` replaced by `new` (which starts with that heading),
/// or with `new` appended when there is none; the rest of the document is kept as it is.
pub fn replace_section(doc: &str, heading: &str, new: &str) -> String {
    let new = format!("{}\n", new.trim_end());
    match section_span(doc, heading) {
        Some((start, end)) => {
            let rest = doc[end..].trim_start_matches(['\n', '\r']);
            let gap = if rest.is_empty() { "" } else { "\n" };
            format!("{}{new}{gap}{rest}", &doc[..start])
        }
        None if doc.trim().is_empty() => new,
        None => format!("{}\n\n{new}", doc.trim_end()),
    }
}

/// Byte range of the section under `heading`: its heading line (`## ` + `heading`...) to the
/// start of the next `## ` line, trailing blank lines left out.
fn section_span(doc: &str, heading: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    let mut start = None;
    for line in doc.split_inclusive('\n') {
        let text = line.trim_end_matches(['\n', '\r']);
        if start.is_none() && text.starts_with(heading) && heading.starts_with("## ") {
            start = Some(offset);
        } else if let Some(start) = start
            && text.starts_with("## ")
        {
            return Some((start, start + doc[start..offset].trim_end().len()));
        }
        offset += line.len();
    }
    let start = start?;
    Some((start, start + doc[start..].trim_end().len()))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_tables() {
        assert_eq!(spread_cell(Spread::of(&[1.0, 2.0, 4.0]), 1), "2.0 (1.0–4.0)");
        assert_eq!(spread_cell(Spread::of(&[3.0]), 0), "3");
        assert_eq!(spread_cell(None, 1), "–");
        assert_eq!(verdict(Some(false)), "**missed**");
        let mut out = String::new();
        table(&mut out, &["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(out, "| a | b |\n| --- | --- |\n| 1 | 2 |\n\n");
    }

    #[test]
    fn a_section_is_replaced_in_place_or_appended() {
        let doc = "# B\n\nintro\n\n## A\n\na\n\n## 1M tasks\n\nold\n\n### sub\n\nold too\n\n## C\n\nc\n";
        assert_eq!(section(doc, "## 1M tasks"), Some("## 1M tasks\n\nold\n\n### sub\n\nold too"));
        let new = "## 1M tasks\n\nnew\n";
        assert_eq!(
            replace_section(doc, "## 1M tasks", new),
            "# B\n\nintro\n\n## A\n\na\n\n## 1M tasks\n\nnew\n\n## C\n\nc\n"
        );
        let last = "# B\n\n## 1M tasks\n\nold\n\n\n";
        assert_eq!(replace_section(last, "## 1M tasks", new), "# B\n\n## 1M tasks\n\nnew\n");
        assert_eq!(
            replace_section("# B\n\n## A\n\na\n", "## 1M tasks", new),
            "# B\n\n## A\n\na\n\n## 1M tasks\n\nnew\n"
        );
        assert_eq!(replace_section("", "## 1M tasks", new), new);
        assert_eq!(section("# B\n### 1M tasks\n", "## 1M tasks"), None, "a level-3 heading is not the section");
        assert_eq!(section(doc, "## Z"), None);
    }

    #[test]
    fn the_plot_is_one_svg_with_a_bar_per_percentile_and_backend() {
        let bars = [
            LatencyBars {
                label: "a<b".into(),
                backend: "devhost".into(),
                target_ms: 100.0,
                values_ms: vec![10.0, 20.0],
            },
            LatencyBars { label: "a<b".into(), backend: "platform".into(), target_ms: 250.0, values_ms: vec![300.0] },
        ];
        let timelines = [("devhost".to_owned(), vec![(10, 0), (20, 5)]), ("platform".to_owned(), vec![(5, 9)])];
        let svg = plot(&bars, &timelines);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<title>devhost p").count(), 3);
        assert_eq!(svg.matches("<title>platform p").count(), 3);
        assert_eq!(svg.matches("<polyline").count(), 2, "one throughput panel per backend");
        assert!(svg.contains("a&lt;b"));
    }
}
