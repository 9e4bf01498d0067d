//! ganforge's web side, apart from the training library: [`server`] (the "this X does not
//! exist" page, its HTTP API and the live dashboard), [`report`] (one self-contained HTML file
//! per run) and [`chart`] (the SVG curves both use).

pub mod chart;
pub mod report;
pub mod server;
