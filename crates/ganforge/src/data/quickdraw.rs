//! Quick, Draw! (Google, CC BY 4.0): the per-category `numpy_bitmap` files (uint8 [N, 784],
//! 28x28 white-on-black images) and the drawing files in ndjson, raw or simplified strokes,
//! which are rasterized here with anti-aliased lines, white on black like the bitmaps.

use std::path::Path;

use image::{DynamicImage, GrayImage};
use serde::Deserialize;

use super::{DataError, Source};

/// Side of the canvas strokes are drawn on; the loader then resizes to the model's size.
pub const CANVAS: usize = 256;

/// How drawings become pixels.
#[derive(Clone, Copy, Debug)]
pub struct RasterOptions {
    /// Stroke width as a fraction of the image side.
    pub stroke: f32,
    /// Empty border on each side as a fraction of the image side.
    pub padding: f32,
}

/// One drawing: strokes of (x, y) points.
type Drawing = Vec<Vec<(f32, f32)>>;

enum Images {
    Bitmaps(Vec<u8>),
    Drawings(Vec<Drawing>, RasterOptions),
}

pub struct QuickDrawSet {
    name: String,
    images: Images,
    n: usize,
    /// Lines that were not JSON or had malformed strokes.
    pub malformed: usize,
    /// Drawings the game did not recognize (left out, as the bitmaps leave them out).
    pub unrecognized: usize,
}

#[derive(Deserialize)]
struct Record {
    #[serde(default = "yes")]
    recognized: bool,
    drawing: Vec<Vec<Vec<f64>>>,
}

fn yes() -> bool {
    true
}

/// Largest coordinate magnitude accepted. Raw drawings are in screen pixels (a few thousand at
/// most) and simplified ones in 0..=255; a million leaves room for any screen while keeping the
/// drawing's extent (a difference of coordinates) and its scaling far from f32 overflow. JSON
/// numbers such as 1e39 are finite as f64 but infinite as f32, and a single one made every
/// pixel of the drawing NaN, drawn black.
pub const MAX_COORD: f64 = 1e6;

/// Strokes of a record, or None when a stroke is malformed (fewer than 2 coordinate rows,
/// rows of unequal length, no points, values not finite or beyond `MAX_COORD`).
fn strokes(r: &Record) -> Option<Drawing> {
    let mut out = Vec::new();
    for s in &r.drawing {
        let (xs, ys) = (s.first()?, s.get(1)?);
        if xs.len() != ys.len() || xs.is_empty() || xs.iter().chain(ys).any(|v| !v.is_finite() || v.abs() > MAX_COORD) {
            return None;
        }
        out.push(xs.iter().zip(ys).map(|(&x, &y)| (x as f32, y as f32)).collect());
    }
    (!out.is_empty()).then_some(out)
}

impl QuickDrawSet {
    pub fn open(path: &Path, raster: RasterOptions) -> Result<Self, DataError> {
        let bytes = std::fs::read(path).map_err(|e| DataError::Io { path: path.to_path_buf(), source: e })?;
        let name = path.display().to_string();
        if bytes.starts_with(b"\x93NUMPY") {
            let a =
                crate::npy::decode_u8(path, &bytes).map_err(|e| DataError::BadFile { path: path.to_path_buf(), message: e.to_string() })?;
            let [n, 784] = a.shape[..] else {
                return Err(DataError::BadFile {
                    path: path.to_path_buf(),
                    message: format!("shape {:?} is not [N, 784]: a Quick, Draw! numpy_bitmap file holds 28x28 images", a.shape),
                });
            };
            if n == 0 {
                return Err(DataError::Empty(format!("{name} holds no drawings")));
            }
            return Ok(Self { name, images: Images::Bitmaps(a.values), n, malformed: 0, unrecognized: 0 });
        }
        let text = String::from_utf8_lossy(&bytes);
        let (mut drawings, mut malformed, mut unrecognized) = (Vec::new(), 0, 0);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Record>(line).ok().and_then(|r| strokes(&r).map(|s| (r.recognized, s))) {
                Some((true, s)) => drawings.push(s),
                Some((false, _)) => unrecognized += 1,
                None => malformed += 1,
            }
        }
        if drawings.is_empty() {
            return Err(DataError::Empty(format!(
                "{name}: no usable drawing ({malformed} malformed lines, {unrecognized} unrecognized drawings)"
            )));
        }
        let n = drawings.len();
        Ok(Self { name, images: Images::Drawings(drawings, raster), n, malformed, unrecognized })
    }
}

/// Draws `d` on a `size` x `size` canvas: scaled to fit inside the padding, aspect ratio kept,
/// centred; each segment painted with coverage = clamp(w/2 + 0.5 - distance, 0, 1).
pub fn rasterize(d: &Drawing, size: usize, opt: RasterOptions) -> GrayImage {
    let pts = d.iter().flatten();
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for &(x, y) in pts {
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
    }
    let s = size as f32;
    let half_w = (opt.stroke * s / 2.0).max(0.5);
    let room = s * (1.0 - 2.0 * opt.padding) - 2.0 * half_w;
    let scale = room / (x1 - x0).max(y1 - y0).max(1e-6);
    let (ox, oy) = ((s - (x1 - x0) * scale) / 2.0, (s - (y1 - y0) * scale) / 2.0);
    let map = |(x, y): (f32, f32)| ((x - x0) * scale + ox, (y - y0) * scale + oy);
    let mut img = vec![0f32; size * size];
    for stroke in d {
        let p: Vec<(f32, f32)> = stroke.iter().map(|&q| map(q)).collect();
        let segments: Vec<((f32, f32), (f32, f32))> =
            if p.len() == 1 { vec![(p[0], p[0])] } else { p.windows(2).map(|w| (w[0], w[1])).collect() };
        for (a, b) in segments {
            let r = half_w + 1.0;
            let xa = ((a.0.min(b.0) - r).floor().max(0.0)) as usize;
            let xb = ((a.0.max(b.0) + r).ceil().min(s - 1.0)) as usize;
            let ya = ((a.1.min(b.1) - r).floor().max(0.0)) as usize;
            let yb = ((a.1.max(b.1) + r).ceil().min(s - 1.0)) as usize;
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let len2 = dx * dx + dy * dy;
            for y in ya..=yb {
                for x in xa..=xb {
                    let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                    let t = if len2 > 0.0 { (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
                    let dist = ((px - a.0 - t * dx).powi(2) + (py - a.1 - t * dy).powi(2)).sqrt();
                    let cover = (half_w + 0.5 - dist).clamp(0.0, 1.0);
                    let v = &mut img[y * size + x];
                    *v = v.max(cover);
                }
            }
        }
    }
    GrayImage::from_raw(size as u32, size as u32, img.iter().map(|v| (v * 255.0).round() as u8).collect()).expect("size*size pixels")
}

impl Source for QuickDrawSet {
    fn len(&self) -> usize {
        self.n
    }

    fn image(&self, i: usize) -> Result<DynamicImage, DataError> {
        Ok(DynamicImage::ImageLuma8(match &self.images {
            Images::Bitmaps(px) => GrayImage::from_raw(28, 28, px[i * 784..(i + 1) * 784].to_vec()).expect("784 bytes"),
            Images::Drawings(d, opt) => rasterize(&d[i], CANVAS, *opt),
        }))
    }

    fn fingerprint(&self) -> Option<String> {
        // Bitmaps are in memory at 28x28 already; drawings are worth rasterizing once.
        match &self.images {
            Images::Bitmaps(_) => None,
            Images::Drawings(_, r) => {
                Some(format!("{}stroke {} padding {}\n", super::cache::file_stamp(Path::new(&self.name)), r.stroke, r.padding))
            }
        }
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "{}: {} Quick, Draw! {}",
            self.name,
            self.n,
            match self.images {
                Images::Bitmaps(_) => "bitmaps 28x28",
                Images::Drawings(..) => "drawings (rasterized)",
            }
        );
        if self.malformed + self.unrecognized > 0 {
            s += &format!(" ({} malformed lines skipped, {} unrecognized drawings left out)", self.malformed, self.unrecognized);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPT: RasterOptions = RasterOptions { stroke: 0.03, padding: 0.05 };

    fn shared(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data").join(rel)
    }

    /// The 23 real sheep drawings in ../shared (raw stroke format, all recognized).
    #[test]
    #[ignore = "needs ../shared/data (the workplace's CIFAR-10 JPEGs / Quick, Draw! sheep): run with --include-ignored"]
    fn real_sheep_drawings_rasterize() {
        let set = QuickDrawSet::open(&shared("quickdraw-sheep/sheep_raw_23.ndjson"), OPT).unwrap();
        assert_eq!((set.len(), set.malformed, set.unrecognized), (23, 0, 0));
        for i in 0..set.len() {
            let img = set.image(i).unwrap().to_luma8();
            assert_eq!(img.dimensions(), (256, 256));
            let lit: Vec<(u32, u32)> = img.enumerate_pixels().filter(|p| p.2[0] > 0).map(|p| (p.0, p.1)).collect();
            assert!(lit.len() > 500, "drawing {i} has only {} lit pixels", lit.len());
            // Everything inside the 5% padding (12.8 px), nothing on the border.
            assert!(lit.iter().all(|&(x, y)| (12..=243).contains(&x) && (12..=243).contains(&y)), "drawing {i}");
            // Anti-aliased: some partly covered pixels.
            assert!(img.pixels().any(|p| p[0] > 0 && p[0] < 255));
        }
    }

    #[test]
    fn a_horizontal_stroke_is_centred_and_as_wide_as_asked() {
        let d: Drawing = vec![vec![(0.0, 0.0), (10.0, 0.0)]];
        let img = rasterize(&d, 100, RasterOptions { stroke: 0.04, padding: 0.1 });
        // Middle column: a 4-pixel-wide band around row 50.
        let col: Vec<u8> = (0..100).map(|y| img.get_pixel(50, y)[0]).collect();
        assert_eq!(col.iter().filter(|&&v| v == 255).count(), 4, "{col:?}");
        assert_eq!((col[48], col[51], col[45], col[55]), (255, 255, 0, 0));
        // Ends at the padding: x from 10 + 2 (half width) to 90 - 2.
        assert!(img.get_pixel(13, 50)[0] == 255 && img.get_pixel(8, 50)[0] == 0 && img.get_pixel(92, 50)[0] == 0);
    }

    #[test]
    fn malformed_and_unrecognized_lines_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.ndjson");
        std::fs::write(
            &p,
            concat!(
                "{\"word\":\"sheep\",\"recognized\":true,\"drawing\":[[[0,10,20],[0,5,0]]]}\n",
                "not json at all\n",
                "{\"recognized\":true,\"drawing\":[[[0,10],[0]]]}\n",
                "{\"recognized\":true,\"drawing\":[]}\n",
                "{\"recognized\":false,\"drawing\":[[[0,10],[0,10]]]}\n",
            ),
        )
        .unwrap();
        let set = QuickDrawSet::open(&p, OPT).unwrap();
        assert_eq!((set.len(), set.malformed, set.unrecognized), (1, 3, 1));
        assert!(set.describe().contains("3 malformed lines skipped"));
        std::fs::write(&p, "garbage\n").unwrap();
        let e = QuickDrawSet::open(&p, OPT).err().unwrap().to_string();
        assert!(e.contains("no usable drawing (1 malformed"), "{e}");
    }

    /// Coordinates finite as f64 but not as f32 (or absurdly large) made blank images; now the
    /// line is malformed, and a file of nothing else is an error.
    #[test]
    fn coordinates_that_overflow_f32_are_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.ndjson");
        let good = "{\"drawing\":[[[0,10,20],[0,5,0]]]}\n";
        let bad = [
            "{\"drawing\":[[[0,1e300,-1e300],[0,1e39,5]]]}\n",
            "{\"drawing\":[[[0,3e38],[0,-3e38]]]}\n",
            "{\"drawing\":[[[0,2e6],[0,1]]]}\n",
        ];
        std::fs::write(&p, bad.concat() + good).unwrap();
        let set = QuickDrawSet::open(&p, OPT).unwrap();
        assert_eq!((set.len(), set.malformed), (1, 3));
        let img = set.image(0).unwrap().to_luma8();
        assert!(img.pixels().filter(|p| p[0] == 255).count() > 100, "the good drawing is drawn");
        std::fs::write(&p, bad.concat()).unwrap();
        let e = QuickDrawSet::open(&p, OPT).err().unwrap().to_string();
        assert!(e.contains("no usable drawing (3 malformed lines"), "{e}");
    }

    /// numpy_bitmap files as np.save writes them (tests/fixtures/make_fixtures.py).
    #[test]
    fn numpy_bitmaps_load_and_bad_ones_are_refused() {
        let set = QuickDrawSet::open(&crate::fixture("quickdraw_bitmap_3.npy"), OPT).unwrap();
        assert_eq!(set.len(), 3);
        let img = set.image(2).unwrap().to_luma8();
        assert_eq!(img.dimensions(), (28, 28));
        assert_eq!((img.get_pixel(0, 0)[0], img.get_pixel(27, 27)[0]), (2, (2 + 783) as u8));
        let e = QuickDrawSet::open(&crate::fixture("quickdraw_bad_shape.npy"), OPT).err().unwrap().to_string();
        assert!(e.contains("is not [N, 784]"), "{e}");
        let e = QuickDrawSet::open(&crate::fixture("latents_3x4.npy"), OPT).err().unwrap().to_string();
        assert!(e.contains("expected '|u1'"), "{e}");
        let bytes = std::fs::read(crate::fixture("quickdraw_bitmap_3.npy")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.npy");
        std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
        let e = QuickDrawSet::open(&cut, OPT).err().unwrap().to_string();
        assert!(e.contains("needs 2352 bytes"), "{e}");
    }
}
