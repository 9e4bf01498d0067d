//! How long pytorch-fid's Inception-v3 takes per image on this machine (`cargo bench -p
//! ganforge --bench inception`): the cost of FID, KID, MiFID and precision/recall with
//! `--features inception`. The weights are random, with the shapes the test fixture lists
//! (tests/fixtures/inception_reference.json): speed does not depend on their values.

use std::collections::BTreeMap;
use std::time::Instant;

use ganforge::burn::tensor::Device;
use ganforge::features::inception::Inception;
use ganforge::image_io::ImageBatch;
use ganforge::params::HostTensor;
use ganforge::rng::{GanRng, Stream};

fn main() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inception_reference.json");
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut rng = GanRng::new(0, Stream::Init);
    let mut weights = BTreeMap::new();
    for p in reference["param_names"].as_array().unwrap() {
        let (name, shape) = (p[0].as_str().unwrap().to_string(), serde_json::from_value::<Vec<usize>>(p[1].clone()).unwrap());
        let n: usize = shape.iter().product();
        let values = if name.ends_with("running_var") { vec![1.0; n] } else { rng.normal_vec(n, 0.0, 0.05) };
        weights.insert(name, HostTensor { shape, values });
    }
    let device = Device::flex();
    let net = Inception::from_weights(&|n| weights.get(n).cloned(), &device).unwrap();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (n, batch) in [(50, 50), (100, 50)] {
        let images = ImageBatch { values: rng.uniform_vec(n * 3 * 64 * 64, -1.0, 1.0), n, channels: 3, height: 64, width: 64 };
        let t = Instant::now();
        let f = net.features(&images, batch);
        let s = t.elapsed().as_secs_f64();
        assert_eq!(f.len(), n);
        println!(
            "inception features: {n} images (64x64 -> 299x299) in {s:.1} s, {:.3} s per image, {:.1} min per 10,000 ({threads} threads)",
            s / n as f64,
            s / n as f64 * 10_000.0 / 60.0
        );
    }
}
