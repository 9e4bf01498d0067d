//! Will it fit? An estimate, from the config alone, of the memory a run or a batch of images
//! needs, checked against what the machine has before anything is allocated: a width of a
//! million or a batch of a million images must be a clear error, not an abort of the process
//! ("memory allocation of 128000000000000 bytes failed") or an hour of swapping.
//!
//! The estimate counts parameters (weights, gradients, two Adam moments, the moving average:
//! [`BYTES_PER_PARAM`]) and the activations one image leaves for the backward pass, times the
//! batch ([`ACTIVATION_FACTOR`]). It is calibrated on the peak RSS that bench/compare.py
//! measured for two DCGANs (bench/results/2026-11-28-cpu-2threads.json), and errs high.

use crate::config::GanConfig;
use crate::nets::{Arch, Families};

/// f32 weight, its gradient, Adam's two moments, G's moving average and a spare copy while an
/// update is applied: six floats a parameter.
pub const BYTES_PER_PARAM: u64 = 6 * 4;

/// Bytes a layer output costs a training step for each of its floats (six f32): the output, its
/// batch-norm and activation results kept for the backward pass, their gradients and the
/// im2col buffers of the convolutions reading them. Calibrated so that the estimate is about
/// 1.5x the peak RSS measured for small32 and dcgan64 (a test checks both).
pub const ACTIVATION_FACTOR: u64 = 4 * 6;

/// What the process holds besides the networks: the binary with the bundled MNIST, the
/// loader's prefetched batches, the allocator's slack.
pub const BASELINE: u64 = 64 << 20;

/// Parameter and activation counts of G and D, from the config alone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Footprint {
    pub g_params: u64,
    pub d_params: u64,
    /// Floats of all layer outputs for one image through G, and through D.
    pub g_floats: u64,
    pub d_floats: u64,
}

/// Saturating sums and products: a config may name any width, and an estimate that wrapped
/// around would let the very allocation through that the check exists to stop.
fn sum(xs: impl IntoIterator<Item = u64>) -> u64 {
    xs.into_iter().fold(0u64, |a, x| a.saturating_add(x))
}

fn prod(xs: &[u64]) -> u64 {
    xs.iter().fold(1u64, |a, &x| a.saturating_mul(x))
}

/// Counts G's and D's sizes without building them (building is what would abort).
pub fn footprint(f: &Families) -> Footprint {
    let s = f.shape;
    let (size, c) = (s.image_size as u64, s.channels as u64);
    let nz = (s.nz as u64).saturating_add(if s.classes > 0 { s.label_dim as u64 } else { 0 });
    // Doublings from 4x4 up to the image.
    let n = (size.max(4).trailing_zeros() as u64).saturating_sub(2).max(1);
    let image = prod(&[c, size, size]);
    match s.arch {
        Arch::Dcgan => {
            let (ngf, ndf, k) = (f.dcgan.ngf as u64, f.dcgan.ndf as u64, (f.dcgan.g_kernel as u64).max(3));
            let gw = |st: u64| ngf.saturating_mul(1 << (n - 1 - st)); // ngf * 2^(n-1-st)
            let dw = |st: u64| ndf.saturating_mul(1 << st);
            let side = |st: u64| 4u64 << st; // G's side at stage st, D's at n-1-st
            let g_params = sum([prod(&[nz, gw(0), 16]), sum((1..n).map(|st| prod(&[gw(st - 1), gw(st), k, k]))), prod(&[ngf, c, k, k])]);
            let d_params = sum([prod(&[c, ndf, 16]), sum((1..n).map(|st| prod(&[dw(st - 1), dw(st), 16]))), prod(&[dw(n - 1), 16])]);
            let g_floats = sum((0..n).map(|st| prod(&[gw(st), side(st), side(st)])).chain([image]));
            let d_floats = sum((0..n).map(|st| prod(&[dw(st), side(n - 1 - st), side(n - 1 - st)])).chain([image]));
            Footprint { g_params, d_params, g_floats, d_floats }
        }
        Arch::Fc => {
            let h = f.fc.hidden as u64;
            let g_params = sum([prod(&[nz, h]), prod(&[h, 2, h]), prod(&[2, h, 4, h]), prod(&[4, h, image])]);
            let d_params = sum([prod(&[image, 4, h]), prod(&[4, h, 2, h]), prod(&[2, h, h]), h]);
            let floats = sum([prod(&[7, h]), image]);
            Footprint { g_params, d_params, g_floats: floats, d_floats: floats }
        }
        Arch::Biggan => {
            let ch = f.biggan.ch as u64;
            // Residual blocks: two 3x3 convolutions and a 1x1 skip at each resolution.
            let w = |st: u64| ch.saturating_mul(1 << (n - st).min(4));
            let block = |a: u64, b: u64| sum([prod(&[a, b, 9]), prod(&[b, b, 9]), prod(&[a, b])]);
            let blocks = sum((1..=n).map(|st| block(w(st - 1), w(st))));
            // Self-attention at attn_res keeps an [r^2, r^2 / 4] map an image.
            let r = f.biggan.attn_res as u64;
            let attention = if r > 0 { prod(&[r, r, r, r]) / 4 } else { 0 };
            let floats = sum((0..=n).map(|st| prod(&[w(st), 3, 4 << st, 4 << st])).chain([image, attention]));
            Footprint { g_params: sum([prod(&[nz, w(0), 16]), blocks]), d_params: sum([blocks, w(0)]), g_floats: floats, d_floats: floats }
        }
        Arch::Stylegan2 => {
            let sg = f.stylegan2;
            let (wd, side) = (sg.w_dim as u64, f.shape.image_size as u64);
            let ch = |r: u64| (sg.channel_base as u64 / r).min(sg.channel_max as u64);
            let res: Vec<u64> = (0..=n).map(|st| 4u64 << st).filter(|&r| r <= side).collect();
            let mapping = sum([prod(&[nz, wd]), prod(&[sg.mapping_layers.saturating_sub(1) as u64, wd, wd])]);
            // Per resolution: two 3x3 convolutions (the first from the coarser width) with their
            // affine layers; activations about four maps each (modulated input, convolution,
            // demodulated and activated output).
            let convs = |r: u64| {
                let (a, b) = (ch((r / 2).max(4)), ch(r));
                sum([prod(&[a, b, 9]), prod(&[b, b, 9]), prod(&[wd, a + 2 * b])])
            };
            let maps = sum(res.iter().map(|&r| prod(&[ch(r), r, r, 8])).chain([image]));
            let blocks = sum(res.iter().map(|&r| convs(r)));
            Footprint {
                g_params: sum([mapping, blocks]),
                d_params: sum([blocks, prod(&[ch(4), ch(4), 16])]),
                g_floats: maps,
                d_floats: maps,
            }
        }
    }
}

/// Bytes a training step of `cfg` needs at batch size `batch`.
pub fn training_bytes(cfg: &GanConfig, batch: u64) -> u64 {
    let f = footprint(&cfg.families());
    let params = f.g_params.saturating_add(f.d_params).saturating_mul(BYTES_PER_PARAM);
    // D sees a real and a fake batch; G's step runs G and D again.
    let per_image = f.g_floats.saturating_add(f.d_floats.saturating_mul(2)).saturating_mul(ACTIVATION_FACTOR);
    BASELINE.saturating_add(params).saturating_add(per_image.saturating_mul(batch))
}

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error(
        "this run needs about {} of memory (G {} and D {} parameters, batches of {batch} images of {size}x{size}), but the machine has {} available. {fits} (GANFORGE_MEMORY=BYTES overrides what is available)",
        gib(*need), count(*g_params), count(*d_params), gib(*have)
    )]
    Training { need: u64, have: u64, g_params: u64, d_params: u64, batch: u64, size: usize, fits: String },
    #[error("{what}: {n} images ({floats} floats each) need about {} of memory, but the machine has {} available; at most {max} fit", gib(*need), gib(*have))]
    Images { what: String, n: usize, floats: usize, need: u64, have: u64, max: usize },
}

/// Bytes for people: "1.5 GiB", "3 TiB".
pub fn gib(b: u64) -> String {
    if b >= 1 << 40 {
        format!("{:.0} TiB", b as f64 / (1u64 << 40) as f64)
    } else {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    }
}

/// A count for people: "1.2M", "3.4k", "512".
pub fn count(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}G", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Memory this process may still use: MemAvailable of /proc/meminfo, or the `GANFORGE_MEMORY`
/// environment variable (bytes) when set; None where neither tells (the check is then skipped).
pub fn available() -> Option<u64> {
    if let Some(v) = std::env::var("GANFORGE_MEMORY").ok().and_then(|v| v.trim().parse().ok()) {
        return Some(v);
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The generator a file's metadata describes, refused before it is built when its parameters
/// could not be in a file of `file_len` bytes (4 bytes each) or would not fit into `have`:
/// a model file is outside input, and building what its config says is what would abort.
pub fn check_model_file(cfg: &GanConfig, file_len: u64, have: Option<u64>) -> Result<(), String> {
    let g = footprint(&cfg.families()).g_params;
    if g.saturating_mul(4) > file_len.saturating_mul(2) {
        return Err(format!("its config describes a generator of {} parameters, which a file of {file_len} bytes cannot hold", count(g)));
    }
    match have {
        Some(have) if g.saturating_mul(BYTES_PER_PARAM).saturating_add(BASELINE) > have => Err(format!(
            "its generator of {} parameters needs about {}, more than the {} available",
            count(g),
            gib(g * BYTES_PER_PARAM),
            gib(have)
        )),
        _ => Ok(()),
    }
}

/// Refuses a run whose estimate exceeds `have` bytes, saying which batch size or which widths
/// would fit.
pub fn check_training(cfg: &GanConfig, have: u64) -> Result<(), MemoryError> {
    let batch = cfg.train.batch_size as u64;
    let need = training_bytes(cfg, batch);
    if need <= have {
        return Ok(());
    }
    let f = footprint(&cfg.families());
    let max_batch = (1..=batch).rev().find(|&b| training_bytes(cfg, b) <= have);
    let widths = match cfg.model.arch {
        Arch::Dcgan => "dcgan.ngf and dcgan.ndf",
        Arch::Fc => "fc.hidden",
        Arch::Biggan => "biggan.ch",
        Arch::Stylegan2 => "stylegan2.channel_base and stylegan2.channel_max",
    };
    let fits = match max_batch {
        Some(b) if b >= 2 => format!("At most train.batch_size = {b} fits, or lower {widths} or model.image_size."),
        _ => format!("The networks alone do not fit at any batch size: lower {widths} or model.image_size."),
    };
    Err(MemoryError::Training { need, have, g_params: f.g_params, d_params: f.d_params, batch, size: cfg.model.image_size, fits })
}

/// Refuses holding `n` images of `floats` f32 values each (pixels, or features and class
/// scores) when they would not fit into `have` bytes.
pub fn check_images(what: &str, n: usize, floats: usize, have: u64) -> Result<(), MemoryError> {
    let per = (floats as u64).saturating_mul(4);
    let need = BASELINE.saturating_add(per.saturating_mul(n as u64));
    if need <= have {
        return Ok(());
    }
    let max = (have.saturating_sub(BASELINE) / per.max(1)) as usize;
    Err(MemoryError::Images { what: what.to_string(), n, floats, need, have, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(sets: &[&str]) -> GanConfig {
        GanConfig::resolve(Some("mnist64"), None, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    /// DCGAN-64 (ngf = ndf = 64, 3 channels) has PyTorch's DCGAN example's parameter counts:
    /// G 3,576,704 and D 2,765,568 (`sum(p.numel() for p in net.parameters())`, batch-norm
    /// affine parameters left out here as they are noise next to the convolutions: 1,920 in G
    /// and 1,792 in D).
    #[test]
    fn dcgan_parameter_counts_match_pytorch() {
        let c = cfg(&["model.channels=3"]);
        let f = footprint(&c.families());
        assert_eq!(f.g_params, 3_576_704 - 1_920);
        assert_eq!(f.d_params, 2_765_568 - 1_792);
    }

    /// The estimate against the peak RSS that bench/compare.py measured (bench/results/
    /// 2026-11-28-cpu-2threads.json): small32 86 MiB, dcgan64 520 MiB. It must not be below
    /// (the check would let an abort through), nor far above (it would refuse runs that fit).
    #[test]
    fn estimate_is_calibrated_on_measured_peaks() {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let small32 = cfg(&["model.image_size=32", "dcgan.ngf=32", "dcgan.ndf=32"]);
        let dcgan64 = cfg(&["model.channels=3"]);
        for (c, measured) in [(small32, 86.4), (dcgan64, 520.4)] {
            let est = mib(training_bytes(&c, 64));
            assert!((1.0..3.0).contains(&(est / measured)), "estimate {est:.0} MiB against {measured} MiB measured");
        }
    }

    #[test]
    fn absurd_widths_are_refused_with_what_fits() {
        let have = 24u64 << 30;
        let e = check_training(&cfg(&["dcgan.ndf=1000000"]), have).unwrap_err().to_string();
        assert!(e.contains("TiB of memory") && e.contains("do not fit at any batch size: lower dcgan.ngf and dcgan.ndf"), "{e}");
        let e = check_training(&cfg(&["model.channels=3", "train.batch_size=4096", "model.image_size=256"]), have).unwrap_err().to_string();
        assert!(e.contains("At most train.batch_size = "), "{e}");
        check_training(&cfg(&["model.channels=3"]), have).unwrap();
        check_training(&cfg(&["model.arch=\"biggan\"", "model.image_size=32", "model.classes=10"]), have).unwrap();
        let e = check_training(&cfg(&["model.arch=\"fc\"", "fc.hidden=1000000"]), have).unwrap_err().to_string();
        assert!(e.contains("fc.hidden"), "{e}");
    }

    /// Widths near the integer limit: the estimate saturates instead of wrapping to a small
    /// number that the check would let through.
    #[test]
    fn estimates_saturate_instead_of_wrapping() {
        for set in ["dcgan.ngf=4611686018427387904", "dcgan.g_kernel=4294967296", "dcgan.ndf=4611686018427387904"] {
            let c = cfg(&[set]);
            assert_eq!(training_bytes(&c, 64), u64::MAX, "{set}");
            assert!(check_training(&c, 24 << 30).is_err(), "{set}");
        }
        let fc = cfg(&["model.arch=\"fc\"", "fc.hidden=2305843009213693952"]);
        assert_eq!(training_bytes(&fc, 64), u64::MAX);
    }

    #[test]
    fn images_that_do_not_fit_say_how_many_do() {
        let e = check_images("sample", 100_000, 3 * 256 * 256, 4 << 30).unwrap_err().to_string();
        assert!(e.contains("sample: 100000 images (196608 floats each)") && e.contains("at most 5376 fit"), "{e}");
        check_images("sample", 1000, 3 * 256 * 256, 4 << 30).unwrap();
    }
}
