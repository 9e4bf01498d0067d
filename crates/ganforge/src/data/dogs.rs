//! Stanford Dogs (Khosla et al. 2011), the photos of Kaggle's "Generative Dog Images":
//! `Images/n02085620-Chihuahua/n02085620_10074.jpg` with its PASCAL VOC annotation at
//! `Annotation/n02085620-Chihuahua/n02085620_10074` (one `<object><bndbox>` per dog).
//!
//! As the competition's top entries did, each dog's bounding box becomes one training image
//! (optionally enlarged to a square so the resize does not stretch it), and boxes with an
//! extreme aspect ratio are dropped. The breed (the folder name after the WordNet id) is the
//! class label.

use std::path::{Path, PathBuf};

use image::DynamicImage;

use super::{check_bad_share, check_header, decode_file, name_skipped, DataError, SkippedFile, Source};

/// Box handling.
#[derive(Clone, Copy, Debug)]
pub struct DogsOptions {
    /// One image per bounding box; false uses whole photos.
    pub crop: bool,
    /// Enlarge each box to a square around its centre (clamped to the photo) before cropping.
    pub square: bool,
    /// Drop boxes whose longer side is more than this many times the shorter.
    pub max_aspect: f64,
}

/// An annotation of another image size: photo, annotated size, photo size.
type Mismatch = (PathBuf, (f64, f64), (u32, u32));

/// A box in pixels: x0, y0 inclusive; x1, y1 exclusive.
type BBox = (u32, u32, u32, u32);

struct Item {
    path: PathBuf,
    bbox: Option<BBox>,
    label: u32,
}

pub struct DogsSet {
    root: PathBuf,
    items: Vec<Item>,
    breeds: Vec<String>,
    /// Photos whose annotation is missing or has no box (left out when cropping).
    pub no_box: usize,
    /// Boxes that reached outside the photo and were clamped to it.
    pub clamped: usize,
    /// Boxes dropped: empty after clamping, or too elongated.
    pub dropped: usize,
    /// Boxes dropped because their annotation states another image size than the photo's:
    /// drawn on another image, so clamping them to this photo would crop a sliver.
    pub size_mismatch: usize,
    mismatch_example: Option<Mismatch>,
    /// Photos `decode_file` would refuse (see `check_header`), left out.
    pub unreadable: Vec<SkippedFile>,
    /// Photos found, readable or not.
    pub photos: usize,
}

/// Text of each `<tag>...</tag>` inside `xml`, in order.
fn tag_texts<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(a) = rest.find(&open) {
        let body = &rest[a + open.len()..];
        let Some(b) = body.find(&close) else { break };
        out.push(&body[..b]);
        rest = &body[b + close.len()..];
    }
    out
}

fn number(xml: &str, tag: &str) -> Option<f64> {
    tag_texts(xml, tag).first()?.trim().parse().ok()
}

/// The boxes of a VOC annotation, as written (may reach outside the photo).
fn boxes(xml: &str) -> Vec<(f64, f64, f64, f64)> {
    tag_texts(xml, "object")
        .into_iter()
        .filter_map(|o| {
            let b = *tag_texts(o, "bndbox").first()?;
            Some((number(b, "xmin")?, number(b, "ymin")?, number(b, "xmax")?, number(b, "ymax")?))
        })
        .collect()
}

impl DogsSet {
    pub fn open(root: &Path, opt: DogsOptions) -> Result<Self, DataError> {
        let images = root.join("Images");
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e| DataError::Io { path: p, source: e }
        };
        let mut breed_dirs: Vec<PathBuf> =
            std::fs::read_dir(&images).map_err(io(&images))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
        breed_dirs.sort();
        if breed_dirs.is_empty() {
            return Err(DataError::Empty(format!("no breed folders in {}", images.display())));
        }
        let mut set = Self {
            root: root.to_path_buf(),
            items: vec![],
            breeds: vec![],
            no_box: 0,
            clamped: 0,
            dropped: 0,
            size_mismatch: 0,
            mismatch_example: None,
            unreadable: vec![],
            photos: 0,
        };
        for (label, dir) in breed_dirs.iter().enumerate() {
            let folder = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            set.breeds.push(folder.split_once('-').map_or(folder.clone(), |(_, b)| b.to_string()));
            let mut photos: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(io(dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
                })
                .collect();
            photos.sort();
            if photos.is_empty() {
                return Err(DataError::Empty(format!("breed folder {} holds no JPEG photo", dir.display())));
            }
            set.photos += photos.len();
            for photo in photos {
                let label = label as u32;
                // The header, read now: a file that is no image, or too large, fails here, not mid-run.
                let (pw, ph) = match check_header(&photo) {
                    Ok(size) => size,
                    Err(reason) => {
                        set.unreadable.push(SkippedFile { path: photo, reason });
                        continue;
                    }
                };
                if !opt.crop {
                    set.items.push(Item { path: photo, bbox: None, label });
                    continue;
                }
                let stem = photo.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                let ann = root.join("Annotation").join(&folder).join(stem);
                let xml = std::fs::read_to_string(&ann).unwrap_or_default();
                let found = boxes(&xml);
                if found.is_empty() {
                    set.no_box += 1;
                    continue;
                }
                let (w, h) = (pw as f64, ph as f64);
                if let (Some(aw), Some(ah)) = (number(&xml, "width"), number(&xml, "height")) {
                    // A pixel off is rounding; more means the boxes were drawn on another image.
                    if aw > 0.0 && ah > 0.0 && ((aw - w).abs() > 1.0 || (ah - h).abs() > 1.0) {
                        set.size_mismatch += found.len();
                        set.mismatch_example.get_or_insert((photo.clone(), (aw, ah), (pw, ph)));
                        continue;
                    }
                }
                for (x0, y0, x1, y1) in found {
                    let c = (x0.max(0.0), y0.max(0.0), x1.min(w), y1.min(h));
                    if c != (x0, y0, x1, y1) {
                        set.clamped += 1;
                    }
                    let (bw, bh) = (c.2 - c.0, c.3 - c.1);
                    if bw < 1.0 || bh < 1.0 || bw.max(bh) / bw.min(bh) > opt.max_aspect {
                        set.dropped += 1;
                        continue;
                    }
                    let (mut x0, mut y0, mut x1, mut y1) = c;
                    if opt.square {
                        // Grow the shorter side around the centre, as far as the photo allows.
                        let side = bw.max(bh).min(w).min(h);
                        let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
                        x0 = (cx - side / 2.0).clamp(0.0, w - side);
                        y0 = (cy - side / 2.0).clamp(0.0, h - side);
                        (x1, y1) = (x0 + side.max(bw), y0 + side.max(bh));
                        (x1, y1) = (x1.min(w), y1.min(h));
                    }
                    let bbox = (x0.floor() as u32, y0.floor() as u32, x1.ceil() as u32, y1.ceil() as u32);
                    set.items.push(Item { path: photo.clone(), bbox: Some(bbox), label });
                }
            }
        }
        if set.items.is_empty() {
            return Err(DataError::Empty(format!(
                "{}: no usable dog ({} photos without a box, {} boxes dropped, {} boxes annotated on another image size, {} of {} photos unreadable)",
                root.display(),
                set.no_box,
                set.dropped,
                set.size_mismatch,
                set.unreadable.len(),
                set.photos
            )));
        }
        check_bad_share(format!("photos under {}", images.display()), &images, &set.unreadable, set.photos)?;
        Ok(set)
    }
}

impl Source for DogsSet {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn image(&self, i: usize) -> Result<DynamicImage, DataError> {
        let it = &self.items[i];
        let img = decode_file(&it.path)?;
        Ok(match it.bbox {
            None => img,
            Some((x0, y0, x1, y1)) => {
                // Annotations can disagree with the photo by a pixel; stay inside it.
                let (x1, y1) = (x1.min(img.width()), y1.min(img.height()));
                let (x0, y0) = (x0.min(x1.saturating_sub(1)), y0.min(y1.saturating_sub(1)));
                img.crop_imm(x0, y0, (x1 - x0).max(1), (y1 - y0).max(1))
            }
        })
    }

    fn label(&self, i: usize) -> Option<u32> {
        Some(self.items[i].label)
    }

    fn fingerprint(&self) -> Option<String> {
        // The boxes and labels carry the crop options and the annotations' content.
        Some(self.items.iter().map(|it| format!("{}{:?} {}\n", super::cache::file_stamp(&it.path), it.bbox, it.label)).collect())
    }

    fn class_names(&self) -> Vec<String> {
        self.breeds.clone()
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "{}: {} dog images of {} breeds ({} photos without a box, {} boxes clamped to the photo, {} dropped",
            self.root.display(),
            self.items.len(),
            self.breeds.len(),
            self.no_box,
            self.clamped,
            self.dropped
        );
        if let Some((photo, (aw, ah), (pw, ph))) = &self.mismatch_example {
            let name = photo.strip_prefix(&self.root).unwrap_or(photo).display();
            s += &format!(
                ", {} dropped as annotated on another image size, e.g. {name}: annotation {aw}x{ah}, photo {pw}x{ph}",
                self.size_mismatch
            );
        }
        s += ")";
        if !self.unreadable.is_empty() {
            let names = name_skipped(&self.root, &self.unreadable);
            s += &format!(" (skipped {} of {} photos: {names})", self.unreadable.len(), self.photos);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voc(w: u32, h: u32, boxes: &[(i32, i32, i32, i32)]) -> String {
        let objects: String = boxes
            .iter()
            .map(|b| {
                format!(
                    "<object><name>dog</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>",
                    b.0, b.1, b.2, b.3
                )
            })
            .collect();
        format!("<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>{objects}</annotation>")
    }

    /// The published layout, with every case the loader must handle.
    fn fixture(root: &Path) {
        let photo = image::RgbImage::from_fn(100, 80, |x, _| image::Rgb([if x < 50 { 255 } else { 0 }, 0, 0]));
        for (breed, files) in [
            (
                "n02085620-Chihuahua",
                vec![("a", voc(100, 80, &[(10, 10, 40, 50)])), ("b", voc(100, 80, &[(0, 0, 20, 20), (60, 10, 130, 70)]))],
            ),
            ("n02085782-Japanese_spaniel", vec![("c", voc(100, 80, &[])), ("d", voc(100, 80, &[(0, 0, 99, 5)]))]),
        ] {
            std::fs::create_dir_all(root.join("Images").join(breed)).unwrap();
            std::fs::create_dir_all(root.join("Annotation").join(breed)).unwrap();
            for (id, xml) in files {
                photo.save(root.join("Images").join(breed).join(format!("{id}.jpg"))).unwrap();
                std::fs::write(root.join("Annotation").join(breed).join(id), xml).unwrap();
            }
        }
    }

    const OPT: DogsOptions = DogsOptions { crop: true, square: false, max_aspect: 2.5 };

    #[test]
    fn one_image_per_box_with_breed_labels() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let set = DogsSet::open(dir.path(), OPT).unwrap();
        // a: 1 box; b: 2 boxes, the second clamped to the photo; c: no box; d: 99x5, too elongated.
        assert_eq!((set.len(), set.no_box, set.clamped, set.dropped), (3, 1, 1, 1));
        assert_eq!(set.class_names(), vec!["Chihuahua", "Japanese_spaniel"]);
        assert_eq!((0..3).map(|i| set.label(i).unwrap()).collect::<Vec<_>>(), vec![0, 0, 0]);
        let a = set.image(0).unwrap();
        assert_eq!((a.width(), a.height()), (30, 40));
        let clamped = set.image(2).unwrap();
        assert_eq!((clamped.width(), clamped.height()), (40, 60));
        // The crop is the right part of the photo: x from 60 is black.
        assert!(clamped.to_rgb8().pixels().all(|p| p[0] < 30));
        assert!(set.describe().contains("1 photos without a box"));
    }

    #[test]
    fn square_boxes_and_whole_photos() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let set = DogsSet::open(dir.path(), DogsOptions { square: true, ..OPT }).unwrap();
        let a = set.image(0).unwrap();
        assert_eq!((a.width(), a.height()), (40, 40));
        let whole = DogsSet::open(dir.path(), DogsOptions { crop: false, ..OPT }).unwrap();
        assert_eq!(whole.len(), 4);
        assert_eq!(whole.image(3).unwrap().width(), 100);
    }

    /// An annotation drawn on a 10000x10000 image, for a 60x50 photo: dropped and said, not
    /// clamped into a sliver of the photo.
    #[test]
    fn annotations_of_another_image_size_are_dropped_and_said() {
        let dir = tempfile::tempdir().unwrap();
        fixture(dir.path());
        let chihuahua = dir.path().join("Images/n02085620-Chihuahua");
        image::RgbImage::from_pixel(60, 50, image::Rgb([0, 0, 200])).save(chihuahua.join("e.jpg")).unwrap();
        std::fs::write(dir.path().join("Annotation/n02085620-Chihuahua/e"), voc(10000, 10000, &[(100, 100, 9000, 9000)])).unwrap();
        let set = DogsSet::open(dir.path(), OPT).unwrap();
        assert_eq!((set.len(), set.size_mismatch, set.clamped, set.dropped), (3, 1, 1, 1));
        let d = set.describe();
        assert!(
            d.contains(
                "1 dropped as annotated on another image size, e.g. Images/n02085620-Chihuahua/e.jpg: annotation 10000x10000, photo 60x50"
            ),
            "{d}"
        );
        // A pixel of disagreement is rounding, and the box is kept.
        std::fs::write(dir.path().join("Annotation/n02085620-Chihuahua/e"), voc(61, 50, &[(5, 5, 40, 40)])).unwrap();
        let set = DogsSet::open(dir.path(), OPT).unwrap();
        assert_eq!((set.len(), set.size_mismatch), (4, 0));
    }

    /// Zero-byte and random-byte "JPEGs" are named and left out at open; more than 10% of
    /// them is an error.
    #[test]
    fn unreadable_photos_are_named_and_too_many_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let breed = dir.path().join("Images/n1-Pug");
        std::fs::create_dir_all(&breed).unwrap();
        for k in 0..10 {
            image::RgbImage::from_pixel(20, 16, image::Rgb([k * 20, 0, 0])).save(breed.join(format!("p{k}.jpg"))).unwrap();
        }
        std::fs::write(breed.join("zero.jpg"), b"").unwrap();
        let whole = DogsOptions { crop: false, ..OPT };
        let set = DogsSet::open(dir.path(), whole).unwrap();
        assert_eq!((set.len(), set.unreadable.len()), (10, 1));
        let d = set.describe();
        assert!(d.contains("(skipped 1 of 11 photos: Images/n1-Pug/zero.jpg (not a readable image: "), "{d}");
        let noise: Vec<u8> = (0..3000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
        std::fs::write(breed.join("noise.jpg"), noise).unwrap();
        let e = DogsSet::open(dir.path(), whole).err().unwrap().to_string();
        assert!(e.contains("Images: 2 of 12 cannot be used, more than the 10% allowed: n1-Pug/noise.jpg (not a readable image"), "{e}");
        assert!(e.contains("n1-Pug/zero.jpg ("), "{e}");
    }

    #[test]
    fn bad_layouts_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DogsSet::open(dir.path(), OPT).err().unwrap().to_string().contains("Images"));
        std::fs::create_dir_all(dir.path().join("Images/n1-Pug")).unwrap();
        let e = DogsSet::open(dir.path(), OPT).err().unwrap().to_string();
        assert!(e.contains("n1-Pug holds no JPEG photo"), "{e}");
    }
}
