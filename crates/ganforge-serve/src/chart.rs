//! Line charts as SVG text: the report embeds them, the dashboard loads them from the server.
//! No script and no external font: an SVG renders wherever the page does.

use ganforge::plot::tick_label;
use ganforge::run::MetricsLog;

/// One curve: a name for the legend, a CSS colour, (x, y) points.
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub points: Vec<(f64, f64)>,
}

const W: f64 = 640.0;
const H: f64 = 260.0;
const PAD_L: f64 = 56.0;
const PAD_R: f64 = 12.0;
const PAD_T: f64 = 28.0;
const PAD_B: f64 = 30.0;

/// Text made safe inside HTML and SVG.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A chart of `series` with axes, five ticks each way and a legend. Non-finite points are left
/// out; with no points at all the chart says so.
pub fn line_chart(title: &str, x_label: &str, series: &[Series]) -> String {
    let pts: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11" data-points="{}"><rect width="100%" height="100%" fill="white"/><text x="{PAD_L}" y="16" font-size="13" font-weight="bold">{}</text>"#,
        pts.len(),
        esc(title)
    );
    if pts.is_empty() {
        svg.push_str(&format!(r##"<text x="{}" y="{}" fill="#888">no data yet</text></svg>"##, W / 2.0 - 30.0, H / 2.0));
        return svg;
    }
    let (x_min, x_max) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y_min, y_max) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (x_min, x_max) = if x_max > x_min { (x_min, x_max) } else { (x_min - 1.0, x_max + 1.0) };
    // A constant curve (a learning rate) sits in the middle of a band around its value.
    let pad = if y_min == 0.0 { 1.0 } else { y_min.abs() * 0.5 };
    let (y_min, y_max) = if y_max > y_min { (y_min, y_max) } else { (y_min - pad, y_max + pad) };
    let sx = |x: f64| PAD_L + (x - x_min) / (x_max - x_min) * (W - PAD_L - PAD_R);
    let sy = |y: f64| H - PAD_B - (y - y_min) / (y_max - y_min) * (H - PAD_T - PAD_B);
    svg.push_str(&format!(r##"<path d="M{PAD_L} {PAD_T}V{}H{}" fill="none" stroke="#999"/>"##, H - PAD_B, W - PAD_R));
    for k in 0..=4 {
        let (x, y) = (x_min + (x_max - x_min) * k as f64 / 4.0, y_min + (y_max - y_min) * k as f64 / 4.0);
        svg.push_str(&format!(
            r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            sx(x),
            H - PAD_B + 14.0,
            tick_label(x)
        ));
        svg.push_str(&format!(
            r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#555">{}</text>"##,
            PAD_L - 6.0,
            sy(y) + 4.0,
            tick_label(y)
        ));
        svg.push_str(&format!(r##"<path d="M{PAD_L} {:.1}H{}" stroke="#eee"/>"##, sy(y), W - PAD_R));
    }
    svg.push_str(&format!(
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
        (PAD_L + W - PAD_R) / 2.0,
        H - 4.0,
        esc(x_label)
    ));
    let mut legend_x = PAD_L + 8.0 * title.len() as f64 + 20.0;
    for s in series {
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .enumerate()
            .map(|(i, &(x, y))| format!("{}{:.1} {:.1}", if i == 0 { "M" } else { "L" }, sx(x), sy(y)))
            .collect();
        if path.len() == 1 {
            let &(x, y) = s.points.iter().find(|(x, y)| x.is_finite() && y.is_finite()).expect("one point");
            svg.push_str(&format!(r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#, sx(x), sy(y), s.colour));
        } else if !path.is_empty() {
            svg.push_str(&format!(r#"<path d="{}" fill="none" stroke="{}" stroke-width="1.5"/>"#, path.join(""), s.colour));
        }
        svg.push_str(&format!(
            r#"<rect x="{legend_x}" y="8" width="10" height="10" fill="{}"/><text x="{}" y="17">{}</text>"#,
            s.colour,
            legend_x + 14.0,
            esc(&s.name)
        ));
        legend_x += 14.0 + 7.0 * s.name.len() as f64 + 16.0;
    }
    svg.push_str("</svg>");
    svg
}

/// The charts of a run, by name: "loss", "d" (D's outputs), "speed", "lr", "eval" (FID),
/// "coverage".
pub fn run_chart(log: &MetricsLog, which: &str) -> Option<String> {
    let steps = |f: &dyn Fn(&ganforge::run::MetricsRecord) -> f64| log.steps.iter().map(|r| (r.step as f64, f(r))).collect::<Vec<_>>();
    let s = |name: &str, colour, points| Series { name: name.into(), colour, points };
    Some(match which {
        "loss" => {
            line_chart("Losses", "step", &[s("D", "#1f77b4", steps(&|r| r.loss_d as f64)), s("G", "#d62728", steps(&|r| r.loss_g as f64))])
        }
        "d" => line_chart(
            "D's outputs",
            "step",
            &[s("D(x)", "#2ca02c", steps(&|r| r.d_real as f64)), s("D(G(z))", "#ff7f0e", steps(&|r| r.d_fake as f64))],
        ),
        "speed" => line_chart("Images per second", "step", &[s("images/s", "#9467bd", steps(&|r| r.images_per_s))]),
        "lr" => line_chart("Learning rates", "step", &[s("lr_d", "#1f77b4", steps(&|r| r.lr_d)), s("lr_g", "#d62728", steps(&|r| r.lr_g))]),
        "eval" => {
            let fid = log.evals.iter().filter_map(|(step, e)| e.metrics.fid().map(|f| (*step as f64, f.value))).collect();
            line_chart("FID (evaluation)", "step", &[s("FID", "#8c564b", fid)])
        }
        "coverage" => {
            let covered = log.evals.iter().filter_map(|(step, e)| e.metrics.coverage().map(|c| (*step as f64, c.covered as f64))).collect();
            line_chart("Classes covered (evaluation)", "step", &[s("classes covered", "#17becf", covered)])
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_place_points_and_escape_text() {
        let svg = line_chart(
            "a<b",
            "step",
            &[Series { name: "D".into(), colour: "#000", points: vec![(0.0, 0.0), (10.0, 1.0), (20.0, f64::NAN)] }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a&lt;b") && svg.contains(r#"data-points="2""#));
        // First point at the lower left corner of the plot area, second at the upper right.
        assert!(svg.contains(&format!("M{PAD_L:.1} {:.1}L{:.1} {PAD_T:.1}", H - PAD_B, W - PAD_R)), "{svg}");
        assert!(line_chart("x", "step", &[]).contains("no data yet"));
    }
}
