//! `ganforge report RUN_DIR`: one self-contained HTML file (no scripts, fonts or files beside
//! it) with the run's config, its curves, a timeline of its sample grids, its evaluations and
//! what the doctor found.

use std::path::Path;

use base64::Engine;
use ganforge::run::EvalReport;

use crate::chart::{esc, run_chart};
use crate::server::sample_names;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Run(#[from] ganforge::run::RunError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// At most `k` items spread evenly over `items`, the last always in.
fn spread<T: Clone>(items: &[T], k: usize) -> Vec<T> {
    if items.len() <= k {
        return items.to_vec();
    }
    (0..k).map(|i| items[i * (items.len() - 1) / (k - 1)].clone()).collect()
}

/// The report of `run` as an HTML document.
pub fn build(run: &Path) -> Result<String, ReportError> {
    let dir = ganforge::run::RunDir::open(run)?;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ReportError::Io { path, source }
    };
    let config = std::fs::read_to_string(dir.config_path()).map_err(io(&dir.config_path()))?;
    let log = dir.log().unwrap_or_default();
    let name = run.file_name().and_then(|n| n.to_str()).unwrap_or("run");
    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ganforge report: {n}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}}pre{{background:#f6f6f6;padding:1em;overflow:auto;max-height:30em}}\
         .charts{{display:flex;flex-wrap:wrap;gap:1em}}.timeline{{display:flex;flex-wrap:wrap;gap:1em}}.timeline figure{{margin:0}}\
         .timeline img{{width:256px;image-rendering:pixelated;border:1px solid #ddd}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ddd;padding:.3em .6em;text-align:right}}.finding{{background:#fff4e5;border-left:4px solid #f0a020;padding:.5em .8em;margin:.4em 0}}\
         </style></head><body><h1>ganforge report: {n}</h1>",
        n = esc(name)
    );
    match log.steps.last() {
        Some(last) => html.push_str(&format!(
            "<p>{} steps (epoch {}), {:.0} s of training; at the end: loss D {:.3}, G {:.3}, D(x) {:.3}, D(G(z)) {:.3}, {:.0} images/s.</p>",
            last.step, last.epoch, last.elapsed_s, last.loss_d, last.loss_g, last.d_real, last.d_fake, last.images_per_s
        )),
        None => html.push_str("<p>No training steps logged yet.</p>"),
    }
    html.push_str("<h2>Curves</h2><div class=\"charts\">");
    for chart in ["loss", "d", "speed", "lr", "eval", "coverage"] {
        if (chart == "eval" || chart == "coverage") && log.evals.is_empty() {
            continue;
        }
        html.push_str(&run_chart(&log, chart).expect("known chart"));
    }
    html.push_str("</div><h2>Samples</h2><div class=\"timeline\">");
    let samples = sample_names(run);
    for s in spread(&samples, 12) {
        let p = run.join("samples").join(&s);
        let bytes = std::fs::read(&p).map_err(io(&p))?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        html.push_str(&format!(
            "<figure><img alt=\"{s}\" src=\"data:image/png;base64,{b64}\"><figcaption>{}</figcaption></figure>",
            esc(&s.replace(".png", ""))
        ));
    }
    if samples.is_empty() {
        html.push_str("<p>No sample grids yet.</p>");
    }
    html.push_str("</div><h2>Evaluation</h2>");
    let mut evals: Vec<(String, EvalReport)> = log.evals.iter().map(|(s, e)| (format!("step {s} (during training)"), e.clone())).collect();
    if let Ok(entries) = std::fs::read_dir(run.join("eval")) {
        let mut files: Vec<_> =
            entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
        files.sort();
        for f in files {
            if let Some(v) = std::fs::read_to_string(&f).ok().and_then(|t| serde_json::from_str(&t).ok()) {
                evals.push((format!("ganforge eval: {}", f.file_name().and_then(|n| n.to_str()).unwrap_or("")), v));
            }
        }
    }
    if evals.is_empty() {
        html.push_str("<p>No evaluations (train with <code>--set eval.every=500</code> or run <code>ganforge eval</code>).</p>");
    } else {
        html.push_str("<table><tr><th>when</th><th>images</th><th>features</th><th>metrics</th></tr>");
        for (when, e) in &evals {
            let metrics: Vec<String> = e.metrics.0.iter().map(|(m, v)| esc(&format!("{m}: {v}"))).collect();
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td><td style=\"text-align:left\">{}</td></tr>",
                esc(when),
                e.n_fake,
                esc(&e.features),
                metrics.join("<br>")
            ));
        }
        html.push_str("</table>");
    }
    html.push_str("<h2>Doctor</h2>");
    if log.findings.is_empty() {
        html.push_str("<p>The live doctor logged nothing.</p>");
    }
    for f in &log.findings {
        html.push_str(&format!(
            "<div class=\"finding\"><b>{} at step {}</b><br>{} Remedy: {}</div>",
            esc(&f.kind),
            f.step,
            esc(&f.evidence),
            esc(&f.remedy)
        ));
    }
    html.push_str(&format!("<h2>Config</h2><pre>{}</pre></body></html>\n", esc(&config)));
    Ok(html)
}
