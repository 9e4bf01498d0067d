//! Seeded outputs pinned to the values commit 2340d05 made (rand 0.9, rand_chacha 0.9,
//! rand_distr 0.5, before ganforge moved to the rand 0.10 that burn 0.22 depends on): a seed
//! names the same initial weights, latents and images on every later version. The pinned
//! numbers were printed by that commit's code; the image fixture
//! tests/fixtures/seed_123_old_run_c47ce6c.png is what it generated for seed 123.

use std::path::{Path, PathBuf};

use ganforge::burn::tensor::Device;
use ganforge::params::named_tensors;
use ganforge::sample::Sampler;

mod common;
use common::fnv;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Initial weights are host draws (the Init stream) written into the tensors as they are: they
/// are exact on any machine.
#[test]
fn a_seed_makes_the_initial_weights_it_made() {
    let device = Device::flex();
    for (preset, sets, pin) in [
        (None, vec![], PIN_DCGAN_INIT),
        (Some("biggan"), vec!["biggan.ch=8", "biggan.shared_dim=8", "biggan.attn_res=8"], PIN_BIGGAN_INIT),
    ] {
        let mut all: Vec<String> = ["model.image_size=16", "dcgan.ngf=8", "dcgan.ndf=8"].iter().map(|s| s.to_string()).collect();
        all.extend(sets.iter().map(|s| s.to_string()));
        let cfg = ganforge::config::GanConfig::resolve(preset, None, &all).unwrap();
        let (g, d) = ganforge::nets::build(&cfg.families(), cfg.seed, &device);
        let hash = |m: std::collections::BTreeMap<String, ganforge::params::HostTensor>| {
            fnv(m.into_iter().flat_map(|(k, t)| k.into_bytes().into_iter().map(u64::from).chain(t.values.into_iter().map(|v| v.to_bits() as u64))))
        };
        let got = [hash(named_tensors(&g)), hash(named_tensors(&d))];
        assert_eq!(got, pin, "{preset:?}: initial weights of seed {}", cfg.seed);
    }
}

/// `ganforge sample` and the server's `/api/generate?seed=S` draw seed S's latents with
/// `Sampler::latents` (and `latents_truncated` for `truncation=`): exact host values.
#[test]
fn a_seed_makes_the_latents_and_image_it_made() {
    let device = Device::flex();
    let s = Sampler::load(&fixture("old_run_c47ce6c"), None, &device).unwrap();
    let z = s.latents(4, 123);
    let t = s.latents_truncated(4, 123, 0.5);
    assert_eq!(bits(&z[..4]), PIN_LATENTS_123);
    assert_eq!(fnv(z.iter().map(|v| v.to_bits() as u64)), PIN_LATENTS_123_FNV);
    assert_eq!(fnv(t.iter().map(|v| v.to_bits() as u64)), PIN_TRUNCATED_123_FNV);

    // The images go through G's float kernels, whose last bits may differ on another CPU: a
    // pixel may be one level off at a rounding boundary, never more.
    let images = s.generate(&z, None);
    let grid = images.grid(2);
    let want = image::open(fixture("seed_123_old_run_c47ce6c.png")).unwrap().to_rgb8();
    assert_eq!(grid.dimensions(), want.dimensions());
    let worst = grid.as_raw().iter().zip(want.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 1, "seed 123's images differ from commit 2340d05's by up to {worst} levels");
}

// Printed by commit 2340d05's code.
const PIN_DCGAN_INIT: [u64; 2] = [0x35ec406a31f19b7, 0x26ef12e34ad99686];
const PIN_BIGGAN_INIT: [u64; 2] = [0x29717d5f4bd5456, 0xe4b2b354904f242d];
const PIN_LATENTS_123: [u32; 4] = [1059785361, 3196595507, 1059497457, 1071467270];
const PIN_LATENTS_123_FNV: u64 = 0xb359a681dc92f84b;
const PIN_TRUNCATED_123_FNV: u64 = 0xd425e5d86573d1e6;
