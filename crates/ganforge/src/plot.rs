//! Loss curves as a PNG, drawn directly (lines, axes and a 5x7 pixel font for the numbers and
//! labels), so that a run folder has its picture without a plotting stack or system fonts.
//! Written as `loss.png` at the end of training.

use image::{Rgb, RgbImage};

use crate::run::MetricsRecord;

const W: u32 = 800;
const H: u32 = 420;
const LEFT: u32 = 60;
const RIGHT: u32 = 20;
const TOP: u32 = 30;
const BOTTOM: u32 = 40;

/// Colours of D's and G's curves (and of D(x), D(G(z)) in the lower panel).
pub const D_COLOUR: [u8; 3] = [31, 119, 180];
pub const G_COLOUR: [u8; 3] = [214, 39, 40];

/// 5x7 glyphs, one row per byte, high bit first of 5.
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'o' => [0, 0, 0x0E, 0x11, 0x11, 0x11, 0x0E],
        's' => [0, 0, 0x0F, 0x10, 0x0E, 0x01, 0x1E],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        'e' => [0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        'p' => [0, 0, 0x1E, 0x11, 0x1E, 0x10, 0x10],
        'k' => [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
        _ => [0; 7],
    }
}

fn text(img: &mut RgbImage, x: u32, y: u32, s: &str, colour: [u8; 3]) {
    for (i, c) in s.chars().enumerate() {
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    let (px, py) = (x + i as u32 * 6 + col, y + row as u32);
                    if px < img.width() && py < img.height() {
                        img.put_pixel(px, py, Rgb(colour));
                    }
                }
            }
        }
    }
}

/// A line from (x0, y0) to (x1, y1), two pixels wide.
fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), colour: [u8; 3]) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for k in 0..=steps {
        let t = k as f64 / steps as f64;
        let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
        for (dx, dy) in [(0.0, 0.0), (0.0, 1.0)] {
            let (px, py) = ((x + dx) as i64, (y + dy) as i64);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, Rgb(colour));
            }
        }
    }
}

/// A short tick label: whole numbers as they are, `k` for tens of thousands, small values in
/// scientific notation (learning rates), others with two decimals.
pub fn tick_label(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v != 0.0 && v.abs() < 0.01 {
        format!("{v:.1e}")
    } else if v.abs() >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// D's and G's losses over the steps of `records`: an 800x420 picture with axes, tick labels
/// and a legend ("D loss" blue, "G loss" red).
pub fn loss_plot(records: &[MetricsRecord]) -> RgbImage {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let grey = [120, 120, 120];
    let (x0, x1, y0, y1) = (LEFT as f64, (W - RIGHT) as f64, (H - BOTTOM) as f64, TOP as f64);
    line(&mut img, (x0, y0), (x1, y0), grey);
    line(&mut img, (x0, y0), (x0, y1), grey);
    text(&mut img, W / 2 - 12, H - 14, "step", grey);
    text(&mut img, LEFT, 10, "D loss", D_COLOUR);
    text(&mut img, LEFT + 60, 10, "G loss", G_COLOUR);
    let finite: Vec<&MetricsRecord> = records.iter().filter(|r| r.loss_d.is_finite() && r.loss_g.is_finite()).collect();
    if finite.is_empty() {
        return img;
    }
    let (s_min, s_max) = (finite[0].step as f64, finite[finite.len() - 1].step as f64);
    let values = finite.iter().flat_map(|r| [r.loss_d as f64, r.loss_g as f64]);
    let (v_min, v_max) = values.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (v_min, v_max) = if v_max > v_min { (v_min.min(0.0), v_max) } else { (v_min - 1.0, v_max + 1.0) };
    let sx = |s: f64| if s_max > s_min { x0 + (s - s_min) / (s_max - s_min) * (x1 - x0) } else { (x0 + x1) / 2.0 };
    let sy = |v: f64| y0 - (v - v_min) / (v_max - v_min) * (y0 - y1);
    for k in 0..=4 {
        let v = v_min + (v_max - v_min) * k as f64 / 4.0;
        let y = sy(v);
        line(&mut img, (x0 - 4.0, y), (x0, y), grey);
        text(&mut img, 4, (y - 3.0).max(0.0) as u32, &tick_label(v), grey);
        let s = s_min + (s_max - s_min) * k as f64 / 4.0;
        let x = sx(s);
        line(&mut img, (x, y0), (x, y0 + 4.0), grey);
        text(&mut img, (x - 10.0).max(0.0) as u32, (y0 + 8.0) as u32, &tick_label(s), grey);
    }
    for pair in finite.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        line(&mut img, (sx(a.step as f64), sy(a.loss_d as f64)), (sx(b.step as f64), sy(b.loss_d as f64)), D_COLOUR);
        line(&mut img, (sx(a.step as f64), sy(a.loss_g as f64)), (sx(b.step as f64), sy(b.loss_g as f64)), G_COLOUR);
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(step: u64, loss_d: f32, loss_g: f32) -> MetricsRecord {
        MetricsRecord::planted(step, loss_d, loss_g, 0.5, 0.5)
    }

    /// D's curve is low and flat, G's rises: blue pixels near the bottom, red ones at the top right.
    #[test]
    fn curves_land_where_their_values_are() {
        let records: Vec<MetricsRecord> = (0..50).map(|i| rec(i * 10, 0.1, i as f32 / 10.0)).collect();
        let img = loss_plot(&records);
        assert_eq!(img.dimensions(), (W, H));
        let count = |colour: [u8; 3], xs: std::ops::Range<u32>, ys: std::ops::Range<u32>| {
            xs.flat_map(|x| ys.clone().map(move |y| (x, y))).filter(|&(x, y)| img.get_pixel(x, y).0 == colour).count()
        };
        let bottom = H - BOTTOM;
        assert!(count(D_COLOUR, LEFT..W - RIGHT, bottom - 20..bottom) > 500, "D near 0 for the whole run");
        assert!(count(G_COLOUR, W - RIGHT - 40..W - RIGHT, TOP..TOP + 20) > 5, "G at its maximum at the end");
        assert_eq!(count(G_COLOUR, LEFT + 2..LEFT + 40, TOP..TOP + 100), 0, "G starts low");
        // No records, or non-finite ones: axes only, no panic.
        assert_eq!(loss_plot(&[]).dimensions(), (W, H));
        let _ = loss_plot(&[rec(1, f32::NAN, 1.0)]);
    }
}
