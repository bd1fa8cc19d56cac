//! docs/cost.svg, written by hand (no crate): the monthly cost of all functions per profile for
//! each way of scaling them (grouped bars), and one function's pods over one day under the
//! shipped settings (a step line, the most pods of each minute). Pure: returns the text.

use std::fmt::Write as _;

use crate::doc::{STRATEGIES, total};
use crate::replay::Second;
use crate::report::Row;
use crate::traffic::Profile;

const WIDTH: f64 = 960.0;
const COLORS: [&str; 3] = ["#2b7bb9", "#b9472b", "#7a7a7a"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The chart: bars from `rows`, and the timeline of `timeline` titled `timeline_title`.
pub fn chart(rows: &[Row], timeline_title: &str, timeline: &[Second]) -> String {
    let mut s = String::new();
    let height = 620.0;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{WIDTH}" height="{height}" fill="white"/>"#);
    bars(&mut s, rows);
    pods(&mut s, timeline_title, timeline, 340.0);
    s.push_str("</svg>\n");
    s
}

fn bars(s: &mut String, rows: &[Row]) {
    let (left, top, plot_h, plot_w) = (70.0, 50.0, 200.0, WIDTH - 100.0);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="24" font-size="15" font-weight="bold">$/month, all functions, per traffic profile (replay model; Fargate prices)</text>"#
    );
    let totals: Vec<[f64; 3]> = Profile::ALL
        .iter()
        .map(|p| {
            let mut v = [0.0; 3];
            for (i, strategy) in STRATEGIES.iter().enumerate() {
                v[i] = total(rows, *p, strategy).0.dollars;
            }
            v
        })
        .collect();
    let max = totals.iter().flatten().copied().fold(1.0f64, f64::max);
    let step = nice_step(max / 4.0);
    let top_value = (max / step).ceil() * step;
    let mut tick = 0.0;
    while tick <= top_value + 1e-9 {
        let y = top + plot_h - plot_h * tick / top_value;
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{tick:.0}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0
        );
        tick += step;
    }
    let group_w = plot_w / Profile::ALL.len() as f64;
    let bar_w = group_w / 4.5;
    for (g, (profile, values)) in Profile::ALL.iter().zip(&totals).enumerate() {
        let x0 = left + g as f64 * group_w + bar_w * 0.5;
        for (i, v) in values.iter().enumerate() {
            let h = plot_h * v / top_value;
            let x = x0 + i as f64 * bar_w * 1.2;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{h:.1}" fill="{}"><title>{}: {} ${v:.2}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{v:.0}</text>"#,
                top + plot_h - h,
                COLORS[i],
                escape(profile.name()),
                escape(STRATEGIES[i]),
                x + bar_w / 2.0,
                top + plot_h - h - 3.0,
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x0 + bar_w * 1.7,
            top + plot_h + 16.0,
            escape(profile.name())
        );
    }
    for (i, strategy) in STRATEGIES.iter().enumerate() {
        let x = left + i as f64 * 170.0;
        let y = top + plot_h + 36.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
            y - 10.0,
            COLORS[i],
            x + 16.0,
            escape(strategy)
        );
    }
}

fn pods(s: &mut String, title: &str, timeline: &[Second], top: f64) {
    let (left, plot_h, plot_w) = (70.0, 200.0, WIDTH - 100.0);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="{:.1}" font-size="15" font-weight="bold">{}</text>"#,
        top - 16.0,
        escape(title)
    );
    let minutes: Vec<u32> = timeline.chunks(60).map(|c| c.iter().map(|x| x.pods).max().unwrap_or(0)).collect();
    let max = minutes.iter().copied().max().unwrap_or(0).max(1);
    for tick in 0..=max {
        let y = top + plot_h - plot_h * f64::from(tick) / f64::from(max);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{tick}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0
        );
    }
    let day_minutes = 24.0 * 60.0;
    for hour in (0..=24).step_by(3) {
        let x = left + plot_w * f64::from(hour) * 60.0 / day_minutes;
        let _ =
            writeln!(s, r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{hour:02}:00</text>"#, top + plot_h + 16.0);
    }
    let mut path = String::new();
    for (m, n) in minutes.iter().enumerate() {
        let x = left + plot_w * m as f64 / day_minutes;
        let y = top + plot_h - plot_h * f64::from(*n) / f64::from(max);
        let _ = write!(path, "{}{x:.1},{y:.1} H{:.1} ", if m == 0 { "M" } else { "L" }, x + plot_w / day_minutes);
    }
    let _ = writeln!(s, r#"<path d="{}" fill="none" stroke="{}" stroke-width="1.2"/>"#, path.trim_end(), COLORS[0]);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="{:.1}">pods (most in each minute); time of day</text>"#,
        top + plot_h + 36.0
    );
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(13.0), 20.0);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn an_empty_chart_is_still_a_document() {
        let svg = chart(&[], "nothing & nobody", &[Second::default(); 120]);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("nothing &amp; nobody"));
    }
}
