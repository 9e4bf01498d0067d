//! `ganforge sample`: images, grids, raw arrays and the Kaggle zip from a run or a PyTorch
//! generator.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use ganforge::device::parse_device;
use ganforge::image_io::{grid_cols, save_png};
use ganforge::interop::dcgan::{self, TorchDcgan};
use ganforge::sample::{class_labels, ClassLayout, Sampler};

#[derive(Args)]
pub struct SampleArgs {
    /// Run folder to sample from.
    #[arg(long, value_name = "RUN_DIR", required_unless_present_any = ["from_pytorch", "model"])]
    run: Option<PathBuf>,
    /// Sample a generator file alone, no run folder needed: a checkpoint's g.safetensors (or
    /// g_ema.safetensors) or an exported model.safetensors, whose metadata rebuilds G.
    #[arg(long, value_name = "FILE.safetensors", conflicts_with_all = ["run", "checkpoint", "from_pytorch"])]
    model: Option<PathBuf>,
    /// Sample a generator saved by PyTorch's DCGAN example (`torch.save(netG.state_dict(), ...)`)
    /// instead of a run; its sizes are read from the file (--nz, --ngf, --nc, --size check them).
    #[arg(long, value_name = "netG.pth", conflicts_with_all = ["run", "checkpoint"])]
    from_pytorch: Option<PathBuf>,
    /// The architecture of --from-pytorch: dcgan (PyTorch's example).
    #[arg(long, default_value = "dcgan", value_parser = ["dcgan"], requires = "from_pytorch")]
    arch: String,
    #[arg(long, requires = "from_pytorch")]
    nz: Option<usize>,
    #[arg(long, requires = "from_pytorch")]
    ngf: Option<usize>,
    #[arg(long, requires = "from_pytorch")]
    nc: Option<usize>,
    #[arg(long, requires = "from_pytorch")]
    size: Option<usize>,
    /// Checkpoint folder or g.safetensors file; default: the run's latest checkpoint.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Number of images (ignored with --latents).
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Output: a folder for PNG files, or a .png file with --grid.
    #[arg(long, value_name = "PATH", required_unless_present = "kaggle")]
    out: Option<PathBuf>,
    /// Write a Kaggle "Generative Dog Images" submission instead: 10,000 PNGs of 64x64 RGB in
    /// one zip (other sizes and grey images are converted).
    #[arg(long, value_name = "FILE.zip", conflicts_with_all = ["out", "grid", "raw", "latents", "per_class"])]
    kaggle: Option<PathBuf>,
    /// Seed of the latent vectors; default: the run's seed (the latents of its sample grids).
    #[arg(long)]
    seed: Option<u64>,
    /// Write one grid PNG instead of one file per image.
    #[arg(long)]
    grid: bool,
    /// Sample exactly these latents: a float32 .npy of shape [N, nz].
    #[arg(long, value_name = "FILE.npy")]
    latents: Option<PathBuf>,
    /// Also write G's raw float32 output [N, C, H, W] to this .npy file.
    #[arg(long, value_name = "FILE.npy")]
    raw: Option<PathBuf>,
    /// Conditional runs: make every image of this class (its index; see data.classes in the
    /// run's config.toml for the names).
    #[arg(long, value_name = "K", conflicts_with = "per_class")]
    class: Option<u32>,
    /// Conditional runs: N images of each class, one row per class (sets --n, implies --grid).
    #[arg(long, value_name = "N")]
    per_class: Option<usize>,
    /// Truncation trick (BigGAN): redraw latent values beyond this magnitude, e.g. 0.5.
    #[arg(long, value_name = "T")]
    truncation: Option<f32>,
    /// Compute device: cpu, cuda[:N], wgpu, vulkan, tch or tch:cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: SampleArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let sampler = match (&a.from_pytorch, &a.run) {
        _ if a.model.is_some() => Sampler::from_model_file(a.model.as_deref().expect("matched"), &device)?,
        (Some(pth), _) => {
            let given = TorchDcgan { nz: a.nz, ngf: a.ngf, nc: a.nc, size: a.size, ndf: None };
            let (cfg, g) = dcgan::import_generator(pth, &given, &device)?;
            Sampler::from_generator(cfg, g, pth.clone(), &device)
        }
        (None, Some(run)) => Sampler::load(run, a.checkpoint.as_deref(), &device)?,
        (None, None) => bail!("--run or --from-pytorch is needed"),
    };
    if let Some(zip) = &a.kaggle {
        return kaggle_submission(&sampler, &a, zip);
    }
    let out = a.out.clone().context("--out is needed")?;
    let z = match &a.latents {
        Some(p) => {
            let arr = ganforge::npy::read(p)?;
            sampler.check_latents(&arr.shape, &arr.values).with_context(|| format!("reading {}", p.display()))?;
            arr.values
        }
        None => {
            let n = match a.per_class {
                Some(k) => k.saturating_mul(sampler.cfg.model.classes),
                None => a.n,
            };
            if n == 0 || n > 100_000 {
                match a.per_class {
                    Some(k) => bail!("--per-class {k} makes {n} images: ask for 1 to 100000 (and a conditional run)"),
                    None => bail!("--n {n} is out of range: ask for 1 to 100000 images"),
                }
            }
            latents(&sampler, &a, n)?
        }
    };
    let n = z.len() / sampler.cfg.model.nz;
    if let Some(have) = ganforge::memory::available() {
        // All n images are held until written.
        let (c, s) = (sampler.cfg.model.channels, sampler.cfg.model.image_size);
        ganforge::memory::check_images("sample", n, c * s * s, have)?;
    }
    let labels: Option<Vec<u32>> = match (a.class, a.per_class) {
        (Some(k), _) => Some(vec![k; n]),
        // One row of `per` images per class.
        (None, Some(per)) => Some(class_labels(n, sampler.cfg.model.classes.max(1), ClassLayout::Rows { cols: per })),
        (None, None) => None,
    };
    if let Some(l) = &labels {
        sampler.check_labels(l)?;
    }
    let images = sampler.generate(&z, labels.as_deref());
    let cols = match a.per_class {
        Some(per) => per.max(1),
        None => grid_cols(images.n),
    };
    let grid = a.grid || a.per_class.is_some();
    if let Some(raw) = &a.raw {
        ganforge::npy::write(raw, &[images.n, images.channels, images.height, images.width], &images.values)?;
    }
    if grid {
        save_png(&out, &images.grid(cols)).with_context(|| format!("writing {}", out.display()))?;
        println!("{}", out.display());
    } else {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let width = images.n.to_string().len().max(5);
        for i in 0..images.n {
            let p = out.join(format!("{i:0width$}.png"));
            ganforge::fsutil::write_atomic(&p, &images.png(i)).with_context(|| format!("writing {}", p.display()))?;
        }
        println!("{}", out.display());
    }
    eprintln!("{} images from {}", images.n, sampler.checkpoint.display());
    Ok(())
}

/// `n` latents from --seed (default: the run's), truncated with --truncation.
fn latents(sampler: &Sampler, a: &SampleArgs, n: usize) -> Result<Vec<f32>> {
    let seed = a.seed.unwrap_or(sampler.cfg.seed);
    Ok(match a.truncation {
        Some(t) if !(t.is_finite() && t >= 0.05) => bail!("--truncation {t} must be a number of at least 0.05 (0.5 is typical)"),
        Some(t) => sampler.latents_truncated(n, seed, t),
        None => sampler.latents(n, seed),
    })
}

/// 10,000 images as Kaggle's dog competition took them, generated 500 at a time; a
/// conditional G is asked for each class in turn.
fn kaggle_submission(sampler: &Sampler, a: &SampleArgs, zip: &std::path::Path) -> Result<()> {
    use ganforge::kaggle::{submission_png, write_submission, IMAGES};
    let z = latents(sampler, a, IMAGES)?;
    let (nz, classes) = (sampler.cfg.model.nz, sampler.cfg.model.classes);
    let labels: Option<Vec<u32>> = match (a.class, classes) {
        (Some(k), _) => Some(vec![k; IMAGES]),
        (None, 0) => None,
        (None, c) => Some(class_labels(IMAGES, c, ClassLayout::Cycle { start: 0 })),
    };
    if let Some(l) = &labels {
        sampler.check_labels(l)?;
    }
    let chunk = 500;
    let files = (0..IMAGES).step_by(chunk).flat_map(|start| {
        let end = (start + chunk).min(IMAGES);
        let images = sampler.generate(&z[start * nz..end * nz], labels.as_ref().map(|l| &l[start..end]));
        (0..images.n).map(move |i| (format!("{:05}.png", start + i), submission_png(&images, i))).collect::<Vec<_>>()
    });
    write_submission(zip, files).with_context(|| format!("writing {}", zip.display()))?;
    println!("{}", zip.display());
    eprintln!("{IMAGES} images (64x64 RGB PNG) from {}", sampler.checkpoint.display());
    Ok(())
}
