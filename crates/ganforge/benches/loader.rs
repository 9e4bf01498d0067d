//! Loader throughput per data format against what DCGAN-64 training consumes, side by side in
//! one run: images/s that the loader thread delivers as 64x64 float batches (decode, crop,
//! resize, scale, batch), and images/s that one DCGAN-64 training step uses (batch 64 / step
//! time on the same machine).
//!
//!     cargo bench -p ganforge --bench loader            # all formats
//!     cargo bench -p ganforge --bench loader -- --photos 2000 --batches 40
//!
//! Data: the bundled MNIST; the real CIFAR-10 JPEGs and Quick, Draw! sheep drawings from
//! ../shared/data when present; synthetic files in each publisher's format for the rest
//! (CIFAR binary batches, numpy_bitmap, SVHN .mat, and Stanford Dogs-sized JPEG photos in the
//! published layout, since the real dogs are not on this machine).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: ganforge::alloc::MiMalloc = ganforge::alloc::MiMalloc;

use ganforge::burn::tensor::{Tensor, TensorData};
use ganforge::config::{DataConfig, GanConfig, TricksConfig};
use ganforge::data::loader::{Loader, LoaderOptions};
use ganforge::data::Source;
use ganforge::optim::Optimizer;
use ganforge::rng::{GanRng, Stream};
use ganforge::train::step::{train_step, Gan, RealBatch, StepNoise, StepRules};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Images/s the loader delivers at 64x64 with `channels`, over `batches` batches of 64.
fn loader_rate(source: Arc<dyn Source>, channels: usize, batches: usize) -> f64 {
    let opts = LoaderOptions { batch_size: 64, image_size: 64, channels, seed: 1, prefetch: 2, hflip: true, part: None };
    let loader = Loader::spawn(source, opts, 0).expect("loader");
    loader.next_batch().expect("batch"); // thread start, first decode
    let t0 = Instant::now();
    for _ in 0..batches {
        loader.next_batch().expect("batch");
    }
    (batches * 64) as f64 / t0.elapsed().as_secs_f64()
}

/// Images/s one DCGAN-64 training step consumes (3 channels, widths 64, batch 64).
fn dcgan64_rate() -> f64 {
    let sets = vec!["model.channels=3".to_string()];
    let cfg = GanConfig::resolve(Some("mnist64"), None, &sets).expect("config");
    let device = ganforge::burn::tensor::Device::flex().autodiff();
    let (g, d) = ganforge::nets::build(&cfg.families(), 0, &device);
    let mut gan = Gan { g, d, opt_g: Optimizer::adam(2e-4, 0.5, 0.999, 1e-8), opt_d: Optimizer::adam(2e-4, 0.5, 0.999, 1e-8) };
    let mut rng = GanRng::new(0, Stream::Train);
    let real = rng.uniform_vec(64 * 3 * 64 * 64, -1.0, 1.0);
    let mut times = Vec::new();
    for i in 0..4 {
        let x = Tensor::<4>::from_data(TensorData::new(real.clone(), [64, 3, 64, 64]), &device);
        let noise = StepNoise::draw(&mut rng, 64, 100, 3 * 64 * 64, &TricksConfig::new(), 0.0, 0);
        let t0 = Instant::now();
        gan = train_step(gan, vec![RealBatch { images: x, labels: None }], std::slice::from_ref(&noise), StepRules::default(), &device).0;
        if i > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    64.0 / times[times.len() / 2]
}

fn npy_u8(path: &Path, n: usize, rng: &mut GanRng) {
    let mut header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({n}, 784), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::fs::File::create(path).expect("create npy");
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    let px: Vec<u8> = rng.uniform_vec(n * 784, 0.0, 255.0).into_iter().map(|v| v as u8).collect();
    f.write_all(&px).unwrap();
}

/// An uncompressed MAT v5 file with X uint8 [32, 32, 3, n] and y uint8 [n, 1], as SVHN's.
fn svhn_mat(path: &Path, n: usize, rng: &mut GanRng) {
    fn element(out: &mut Vec<u8>, ty: u32, data: &[u8]) {
        out.extend(ty.to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
        out.resize(out.len().div_ceil(8) * 8, 0);
    }
    fn matrix(name: &str, dims: &[i32], data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        element(&mut body, 6, &[9, 0, 0, 0, 0, 0, 0, 0]); // flags: class mxUINT8
        element(&mut body, 5, &dims.iter().flat_map(|d| d.to_le_bytes()).collect::<Vec<u8>>());
        element(&mut body, 1, name.as_bytes());
        element(&mut body, 2, data);
        let mut m = Vec::new();
        element(&mut m, 14, &body);
        m
    }
    let mut file = vec![b' '; 116];
    file[..19].copy_from_slice(b"MATLAB 5.0 MAT-file");
    file.extend([0u8; 8]);
    file.extend([0x00, 0x01, b'I', b'M']);
    let x: Vec<u8> = rng.uniform_vec(n * 3072, 0.0, 255.0).into_iter().map(|v| v as u8).collect();
    let y: Vec<u8> = (0..n).map(|i| (i % 10 + 1) as u8).collect();
    file.extend(matrix("X", &[32, 32, 3, n as i32], &x));
    file.extend(matrix("y", &[n as i32, 1], &y));
    std::fs::write(path, file).expect("write mat");
}

/// Photos the size of Stanford Dogs' (about 500x375 JPEG), one box each, in its layout.
fn dog_photos(root: &Path, n: usize) {
    let breeds = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog", "n02086079-Pekinese"];
    for (k, breed) in (0..n).map(|k| (k, breeds[k % breeds.len()])) {
        let (img_dir, ann_dir) = (root.join("Images").join(breed), root.join("Annotation").join(breed));
        std::fs::create_dir_all(&img_dir).unwrap();
        std::fs::create_dir_all(&ann_dir).unwrap();
        let photo = image::RgbImage::from_fn(500, 375, |x, y| {
            let v = ((x * 7 + y * 13 + k as u32 * 31) % 256) as u8;
            image::Rgb([v, v.wrapping_mul(3), ((x ^ y) & 0xff) as u8])
        });
        let id = format!("{}_{k}", &breed[..9]);
        photo.save(img_dir.join(format!("{id}.jpg"))).unwrap();
        let xml = format!(
            "<annotation><size><width>500</width><height>375</height></size><object><bndbox><xmin>{}</xmin><ymin>40</ymin><xmax>{}</xmax><ymax>330</ymax></bndbox></object></annotation>",
            60 + k % 50,
            380 + k % 90
        );
        std::fs::write(ann_dir.join(id), xml).unwrap();
    }
}

fn main() {
    ganforge::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let batches = arg(&args, "--batches", 30);
    let photos = arg(&args, "--photos", 640);
    let tmp = tempfile::tempdir().expect("temp dir");
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    let mut rng = GanRng::new(3, Stream::Train);

    eprintln!("timing DCGAN-64 training steps ...");
    let consume = dcgan64_rate();
    println!("DCGAN-64 training (flex, batch 64, 3 channels) consumes {consume:.1} images/s\n");
    println!("| format | spec | images/s | x training |");
    println!("|---|---|---:|---:|");
    let report = |format: &str, spec: &str, rate: f64| {
        println!("| {format} | `{spec}` | {rate:.0} | {:.0}x |", rate / consume);
        println!(
            "{{\"bench\": \"loader\", \"format\": \"{format}\", \"images_per_s\": {rate:.1}, \"training_images_per_s\": {consume:.2}, \"ratio\": {:.2}}}",
            rate / consume
        );
    };
    let open = |spec: &str| ganforge::data::open(&DataConfig::new().with_spec(spec.to_string())).expect(spec);
    let cache_dir = tmp.path().join("cache");

    report("MNIST (bundled IDX, 28 to 64)", "mnist", loader_rate(open("mnist"), 1, batches));

    let npy = tmp.path().join("bitmaps.npy");
    npy_u8(&npy, 5000, &mut rng);
    let spec = format!("quickdraw:{}", npy.display());
    report("Quick, Draw! numpy_bitmap", "quickdraw:FILE.npy", loader_rate(open(&spec), 1, batches));

    let sheep = shared.join("quickdraw-sheep/sheep_raw_23.ndjson");
    if sheep.is_file() {
        // 23 drawings; the loader cycles through them (batch 64 needs 64: repeat the file).
        let text = std::fs::read_to_string(&sheep).unwrap();
        let many = tmp.path().join("sheep.ndjson");
        std::fs::write(&many, text.repeat(12)).unwrap();
        let spec = format!("quickdraw:{}", many.display());
        report("Quick, Draw! ndjson strokes (rasterized)", "quickdraw:FILE.ndjson", loader_rate(open(&spec), 1, batches));
        let t0 = Instant::now();
        let cached = ganforge::data::cache::cached(open(&spec), &cache_dir, 64, 1, &mut |_, _| {}).unwrap();
        eprintln!("ndjson cache built in {:.2} s", t0.elapsed().as_secs_f64());
        report("Quick, Draw! ndjson, cached", "quickdraw:FILE.ndjson", loader_rate(cached, 1, batches));
    }

    let mat = tmp.path().join("train_32x32.mat");
    svhn_mat(&mat, 2000, &mut rng);
    let spec = format!("svhn:{}", mat.display());
    report("SVHN .mat (32 to 64)", "svhn:FILE.mat", loader_rate(open(&spec), 3, batches));

    let bins = tmp.path().join("cifar-bin");
    std::fs::create_dir_all(&bins).unwrap();
    let records: Vec<u8> = (0..5000)
        .flat_map(|k| std::iter::once((k % 10) as u8).chain(rng.uniform_vec(3072, 0.0, 255.0).into_iter().map(|v| v as u8)))
        .collect();
    std::fs::write(bins.join("data_batch_1.bin"), records).unwrap();
    let spec = format!("cifar10:{}", bins.display());
    report("CIFAR-10 binary batches (32 to 64)", "cifar10:DIR", loader_rate(open(&spec), 3, batches));

    let tgz = shared.join("cifar10/cifar10-jpg.tar.gz");
    if tgz.is_file() {
        let jpg = tmp.path().join("cifar-jpg");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&tgz).unwrap()));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let p = entry.path().unwrap().into_owned();
            if let Ok(rest) = p.strip_prefix("test") {
                entry.unpack(jpg.join(rest)).unwrap();
            }
        }
        let spec = format!("cifar10:{}", jpg.display());
        report("CIFAR-10 JPEG class folders (real, 32 to 64)", "cifar10:DIR", loader_rate(open(&spec), 3, batches));
        let t0 = Instant::now();
        let cached = ganforge::data::cache::cached(open(&spec), &cache_dir, 64, 3, &mut |_, _| {}).unwrap();
        eprintln!("CIFAR JPEG cache: 10,000 images in {:.2} s", t0.elapsed().as_secs_f64());
        report("CIFAR-10 JPEG, cached", "cifar10:DIR", loader_rate(cached, 3, batches));
    }

    let dogs = tmp.path().join("dogs");
    eprintln!("writing {photos} 500x375 JPEG photos ...");
    dog_photos(&dogs, photos);
    let spec = format!("stanford-dogs:{}", dogs.display());
    report("Stanford Dogs layout, 500x375 JPEG, box crops", "stanford-dogs:DIR", loader_rate(open(&spec), 3, batches));
    let t0 = Instant::now();
    let cached = ganforge::data::cache::cached(open(&spec), &cache_dir, 64, 3, &mut |_, _| {}).unwrap();
    let build = t0.elapsed().as_secs_f64();
    eprintln!("dogs cache: {photos} photos in {build:.2} s ({:.0} images/s on all cores)", photos as f64 / build);
    report("Stanford Dogs, cached", "stanford-dogs:DIR", loader_rate(cached, 3, batches));
    let spec = format!("folder:{}", dogs.join("Images").display());
    report("folder of 500x375 JPEGs (whole photos)", "folder:DIR", loader_rate(open(&spec), 3, batches));
}
