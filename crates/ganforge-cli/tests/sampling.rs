//! Bulk sampling as StyleGAN2-ADA's generate.py does it: `sample --seeds` (one image per
//! seed, in files or one .npz) and `sample --interpolate` (walks as GIF or PNG), against the
//! server's images of the same seeds.

mod common;

use std::path::Path;

use common::{fails_with, ok, tiny_run};
use ganforge::burn::tensor::Device;

/// A served run's answer to `path` (a 200 is required).
fn served(server: &ganforge_serve::server::ServeHandle, path: &str) -> Vec<u8> {
    let mut r = ureq::get(&format!("http://{}{path}", server.addr)).call().unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.body_mut().read_to_vec().unwrap()
}

/// The file names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    n.sort();
    n
}

fn pixels(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory(bytes).unwrap().to_rgb8()
}

#[test]
fn a_seed_gives_one_image_whatever_the_batch_and_the_other_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(&dir.path().join("runs"), &[]);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let out = ok(&["sample", "--run", &run, "--seeds", "0-9", "--batch-size", "3", "--out", a.to_str().unwrap()]);
    assert_eq!(out.trim(), a.to_str().unwrap());
    let expect: Vec<String> = (0..10).map(|s| format!("seed{s:04}.png")).collect();
    assert_eq!(names(&a), expect);
    // Other seeds around them, another batch size, the generator file alone: the same bytes.
    let g = format!("{run}/checkpoints/step_000004/g.safetensors");
    ok(&["sample", "--model", &g, "--seeds", "7,2-4,12345", "--batch-size", "64", "--out", b.to_str().unwrap()]);
    assert_eq!(names(&b), ["seed0002.png", "seed0003.png", "seed0004.png", "seed0007.png", "seed12345.png"]);
    for s in ["seed0002.png", "seed0003.png", "seed0004.png", "seed0007.png"] {
        assert_eq!(std::fs::read(a.join(s)).unwrap(), std::fs::read(b.join(s)).unwrap(), "{s}");
    }
    assert_ne!(std::fs::read(a.join("seed0002.png")).unwrap(), std::fs::read(a.join("seed0003.png")).unwrap());
    let img = image::open(a.join("seed0007.png")).unwrap();
    assert_eq!((img.width(), img.height(), img.color()), (16, 16, image::ColorType::L8));

    // The server's image of seed 7, and its grid of seeds 1 to 4.
    let server = ganforge_serve::server::spawn(Path::new(&run), "127.0.0.1:0".parse().unwrap(), Device::flex()).unwrap();
    assert_eq!(pixels(&served(&server, "/api/generate?seed=7")), pixels(&std::fs::read(a.join("seed0007.png")).unwrap()));
    let grid = pixels(&served(&server, "/api/generate?seed=1&n=4"));
    for (i, s) in (1..=4).enumerate() {
        let cell = image::imageops::crop_imm(&grid, 2 + (i as u32 % 2) * 18, 2 + (i as u32 / 2) * 18, 16, 16).to_image();
        assert_eq!(cell, pixels(&std::fs::read(a.join(format!("seed{s:04}.png"))).unwrap()), "seed {s} in the grid");
    }

    // JPEG files of the same images.
    let jpg = dir.path().join("jpg");
    ok(&["sample", "--run", &run, "--seeds", "7", "--format", "jpg", "--out", jpg.to_str().unwrap()]);
    assert_eq!(names(&jpg), ["seed0007.jpg"]);
    let j = image::open(jpg.join("seed0007.jpg")).unwrap().to_luma8();
    let p = image::open(a.join("seed0007.png")).unwrap().to_luma8();
    let worst = j.pixels().zip(p.pixels()).map(|(x, y)| (x.0[0] as i32 - y.0[0] as i32).abs()).max().unwrap();
    assert!(worst <= 24, "JPEG at quality 95 strays {worst} levels from the PNG");

    // --seeds 0-4 as one .npz: the PNGs' pixels, [N, H, W, C], and the seeds.
    let npz = dir.path().join("s.npz");
    ok(&["sample", "--run", &run, "--seeds", "0-4", "--batch-size", "2", "--format", "npz", "--out", npz.to_str().unwrap()]);
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&npz).unwrap()).unwrap();
    let mut entry = |name: &str| {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name(name).unwrap(), &mut bytes).unwrap();
        bytes
    };
    let images = ganforge::npy::decode_u8(&npz, &entry("images.npy")).unwrap();
    assert_eq!(images.shape, [5, 16, 16, 1]);
    for s in 0..5 {
        let png = image::open(a.join(format!("seed{s:04}.png"))).unwrap().to_luma8().into_raw();
        assert_eq!(images.values[s * 256..(s + 1) * 256], png[..], "seed {s}");
    }
    let seeds = ganforge::npy::decode_i64(&npz, &entry("seeds.npy")).unwrap();
    assert_eq!((seeds.shape, seeds.values), (vec![5], vec![0, 1, 2, 3, 4]));
    numpy_reads(&npz);
}

/// numpy.load reads the .npz (with $PYTHON, else python3); skipped when there is no Python
/// with NumPy.
fn numpy_reads(npz: &Path) {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let has_numpy = std::process::Command::new(&python).args(["-c", "import numpy"]).output().is_ok_and(|o| o.status.success());
    if !has_numpy {
        eprintln!("skipping the numpy.load check: no NumPy for {python} (set PYTHON to a Python that has it)");
        return;
    }
    let script = "import sys, numpy as np\n\
                  f = np.load(sys.argv[1])\n\
                  assert f['images'].dtype == np.uint8 and f['images'].shape == (5, 16, 16, 1), f['images'].shape\n\
                  assert f['seeds'].dtype == np.int64 and f['seeds'].tolist() == [0, 1, 2, 3, 4]\n\
                  print('numpy ok')";
    let o = std::process::Command::new(&python).args(["-c", script, npz.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("numpy ok"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A conditional G: seed S is class S mod classes, as the server draws it; --class and
/// --truncation as the server's class= and truncation=.
#[test]
fn conditional_seeds_are_the_servers() {
    let dir = tempfile::tempdir().unwrap();
    let biggan = ["--preset", "biggan", "--set", "biggan.ch=8", "--set", "biggan.shared_dim=8", "--set", "biggan.attn_res=8"];
    let run = tiny_run(&dir.path().join("runs"), &[&biggan[..], &["--set", "train.batch_size=4", "--set", "eval.every=1000"]].concat());
    let server = ganforge_serve::server::spawn(Path::new(&run), "127.0.0.1:0".parse().unwrap(), Device::flex()).unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    ok(&["sample", "--run", &run, "--seeds", "3-4", "--batch-size", "1", "--out", o]);
    for s in [3, 4] {
        let file = pixels(&std::fs::read(out.join(format!("seed{s:04}.png"))).unwrap());
        assert_eq!(file, pixels(&served(&server, &format!("/api/generate?seed={s}"))), "seed {s}");
        assert_eq!(file, pixels(&served(&server, &format!("/api/generate?seed={s}&class={s}"))), "seed {s} is class {s}");
    }
    let k = dir.path().join("k");
    ok(&["sample", "--run", &run, "--seeds", "3", "--class", "5", "--truncation", "0.5", "--out", k.to_str().unwrap()]);
    let file = pixels(&std::fs::read(k.join("seed0003.png")).unwrap());
    assert_eq!(file, pixels(&served(&server, "/api/generate?seed=3&class=5&truncation=0.5")));
    assert_ne!(file, pixels(&std::fs::read(out.join("seed0003.png")).unwrap()));
}

/// StyleGAN2: the style-mixing grid's first row and column are the seeds' own images and its
/// cells differ from them; truncation acts in w (file and server agree); --noise-mode changes
/// the image; the options are refused where they do not apply.
#[test]
fn stylegan2_style_mixing_truncation_and_noise() {
    let dir = tempfile::tempdir().unwrap();
    let sg =
        ["--preset", "stylegan2", "--set", "stylegan2.channel_base=64", "--set", "stylegan2.channel_max=8", "--set", "stylegan2.w_dim=16"];
    let run = tiny_run(&dir.path().join("runs"), &[&sg[..], &["--set", "model.nz=16", "--set", "stylegan2.mapping_layers=2"]].concat());
    let seeds = dir.path().join("seeds");
    ok(&["sample", "--run", &run, "--seeds", "1-2,10-12", "--out", seeds.to_str().unwrap()]);
    let seed = |s: u64| pixels(&std::fs::read(seeds.join(format!("seed{s:04}.png"))).unwrap());

    let mix = dir.path().join("mix.png");
    ok(&["sample", "--run", &run, "--style-mix", "1-2", "10-12", "--styles", "0-2", "--out", mix.to_str().unwrap()]);
    let grid = pixels(&std::fs::read(&mix).unwrap());
    // 3 rows of 4 cells of 16 pixels, 2-pixel borders.
    assert_eq!((grid.width(), grid.height()), (2 + 4 * 18, 2 + 3 * 18));
    let cell = |r: u32, c: u32| image::imageops::crop_imm(&grid, 2 + c * 18, 2 + r * 18, 16, 16).to_image();
    assert!(cell(0, 0).pixels().all(|p| p.0 == [0, 0, 0]), "a black corner");
    for (j, s) in [10, 11, 12].into_iter().enumerate() {
        assert_eq!(cell(0, j as u32 + 1), seed(s), "column seed {s} on top");
    }
    for (i, s) in [1, 2].into_iter().enumerate() {
        assert_eq!(cell(i as u32 + 1, 0), seed(s), "row seed {s} on the left");
        assert_ne!(cell(i as u32 + 1, 1), seed(s), "row seed {s} with column seed 10's coarse styles");
    }
    fails_with(&["sample", "--run", &run, "--style-mix", "1", "2", "--styles", "0-99", "--out", mix.to_str().unwrap()], "out of range");

    // Truncation in w: the file and the server agree, and it changes the image.
    let t = dir.path().join("t");
    ok(&["sample", "--run", &run, "--seeds", "1", "--truncation", "0.5", "--out", t.to_str().unwrap()]);
    let truncated = pixels(&std::fs::read(t.join("seed0001.png")).unwrap());
    assert_ne!(truncated, seed(1));
    let server = ganforge_serve::server::spawn(Path::new(&run), "127.0.0.1:0".parse().unwrap(), Device::flex()).unwrap();
    assert_eq!(truncated, pixels(&served(&server, "/api/generate?seed=1&truncation=0.5")));
    assert_eq!(seed(1), pixels(&served(&server, "/api/generate?seed=1")));

    let quiet = dir.path().join("quiet");
    ok(&["sample", "--run", &run, "--seeds", "1", "--noise-mode", "none", "--out", quiet.to_str().unwrap()]);
    assert_ne!(pixels(&std::fs::read(quiet.join("seed0001.png")).unwrap()), seed(1), "noise made no difference");
    let dcgan = tiny_run(&dir.path().join("dcgan"), &[]);
    fails_with(&["sample", "--run", &dcgan, "--seeds", "1", "--noise-mode", "none", "--out", quiet.to_str().unwrap()], "StyleGAN2");
    fails_with(&["sample", "--run", &dcgan, "--style-mix", "1", "2", "--out", mix.to_str().unwrap()], "StyleGAN2");
}

#[test]
fn walks_between_seeds_as_gif_and_png() {
    use image::AnimationDecoder;
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(&dir.path().join("runs"), &[]);
    let gif = dir.path().join("walk.gif");
    ok(&["sample", "--run", &run, "--interpolate", "1,2", "--frames", "60", "--batch-size", "16", "--out", gif.to_str().unwrap()]);
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(std::fs::File::open(&gif).unwrap())).unwrap();
    let frames = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 60);
    assert!(frames.iter().all(|f| f.buffer().dimensions() == (16, 16)));
    assert_ne!(frames[0].buffer(), frames[59].buffer(), "the walk moves");

    // Two walks in a PNG: a row each; the first row is the server's strip of the same walk.
    let png = dir.path().join("walks.png");
    let p = png.to_str().unwrap();
    ok(&["sample", "--run", &run, "--interpolate", "1,2", "--interpolate", "3,4", "--frames", "5", "--out", p]);
    let strip = image::open(&png).unwrap().to_rgb8();
    assert_eq!(strip.dimensions(), (5 * 18 + 2, 2 * 18 + 2));
    let server = ganforge_serve::server::spawn(Path::new(&run), "127.0.0.1:0".parse().unwrap(), Device::flex()).unwrap();
    let first = pixels(&served(&server, "/api/interpolate?from=1&to=2&steps=5"));
    assert_eq!(image::imageops::crop_imm(&strip, 0, 0, 5 * 18 + 2, 20).to_image(), first);
    let second = pixels(&served(&server, "/api/interpolate?from=3&to=4&steps=5"));
    assert_eq!(image::imageops::crop_imm(&strip, 0, 18, 5 * 18 + 2, 20).to_image(), second);
    // Its ends are the seeds' own images.
    let seeds = dir.path().join("seeds");
    ok(&["sample", "--run", &run, "--seeds", "1-2", "--out", seeds.to_str().unwrap()]);
    assert_eq!(image::imageops::crop_imm(&strip, 2, 2, 16, 16).to_image(), pixels(&std::fs::read(seeds.join("seed0001.png")).unwrap()));
    assert_eq!(
        image::imageops::crop_imm(&strip, 2 + 4 * 18, 2, 16, 16).to_image(),
        pixels(&std::fs::read(seeds.join("seed0002.png")).unwrap())
    );

    // Two walks in a GIF: each frame shows both, side by side.
    ok(&["sample", "--run", &run, "--interpolate", "1,2", "--interpolate", "3,4", "--frames", "3", "--out", gif.to_str().unwrap()]);
    let decoder = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(std::fs::File::open(&gif).unwrap())).unwrap();
    let frames = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| f.buffer().dimensions() == (2 * 18 + 2, 18 + 2)));
}

#[test]
fn bad_sampling_requests_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = tiny_run(&dir.path().join("runs"), &[]);
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let base = ["sample", "--run", run.as_str(), "--out", o];
    let s = |extra: &[&'static str]| -> Vec<&str> { base.iter().copied().chain(extra.iter().copied()).collect() };
    fails_with(&s(&["--seeds", "5-2"]), "seed range 5-2 runs backwards: write it as 2-5");
    fails_with(&s(&["--seeds", "abc"]), "'abc' is not a seed");
    fails_with(&s(&["--seeds", "1-3,2"]), "seed 2 is named twice");
    fails_with(&s(&["--seeds", "1", "--format", "bmp"]), "invalid value 'bmp' for '--format");
    let o = common::ganforge(&s(&["--format", "npz"]));
    assert!(!o.ok && o.stderr.contains("required arguments were not provided:\n  --seeds"), "{}", o.stderr);
    fails_with(&s(&["--seeds", "1", "--n", "5"]), "'--seeds <LIST>' cannot be used with '--n <N>'");
    fails_with(&s(&["--seeds", "1", "--interpolate", "1,2"]), "cannot be used with");
    fails_with(&s(&["--seeds", "1", "--format", "npz"]), "name it with --out FILE.npz");
    fails_with(&s(&["--seeds", "1", "--batch-size", "0"]), "--batch-size 0 is out of range");
    fails_with(&s(&["--seeds", "1", "--class", "3"]), "not conditional");
    let gif = dir.path().join("w.gif");
    let gif_base = ["sample", "--run", run.as_str(), "--out", gif.to_str().unwrap()];
    let w = |extra: &[&'static str]| -> Vec<&str> { gif_base.iter().copied().chain(extra.iter().copied()).collect() };
    fails_with(&w(&["--interpolate", "1,2", "--frames", "0"]), "--frames 0 is out of range");
    fails_with(&w(&["--interpolate", "1"]), "'1' is not two seeds");
    fails_with(&s(&["--interpolate", "1,2"]), "name --out walk.gif or walk.png");
    assert!(!out.exists() && !gif.exists(), "nothing written by a refused request");
}
