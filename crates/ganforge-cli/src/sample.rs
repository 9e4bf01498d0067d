//! `ganforge sample`: images, grids, raw arrays and the Kaggle zip from a run or a PyTorch
//! generator.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use image::codecs::gif::{GifEncoder, Repeat};
use indicatif::{ProgressBar, ProgressStyle};

use ganforge::device::parse_device;
use ganforge::dist::Group;
use ganforge::fsutil::AtomicFile;
use ganforge::image_io::ImageBatch;
use ganforge::image_io::{grid_cols, save_png};
use ganforge::interop::dcgan::{self, TorchDcgan};
use ganforge::nets::stylegan2::NoiseMode;
use ganforge::npy::{Dtype, NpzWriter};
use ganforge::sample::{class_labels, ClassLayout, Sampler, SeedList};

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
    /// The architecture of --from-pytorch: dcgan (PyTorch's example) or stylegan2 (the state
    /// dict of a stylegan2-ada-pytorch Generator, `torch.save(G.state_dict(), ...)`; its sizes
    /// are read from the file).
    #[arg(long, default_value = "dcgan", value_parser = ["dcgan", "stylegan2"], requires = "from_pytorch")]
    arch: String,
    /// Latent size of --from-pytorch's G (the example's --nz); checked against the file.
    #[arg(long, requires = "from_pytorch")]
    nz: Option<usize>,
    /// Width of --from-pytorch's G (the example's --ngf); checked against the file.
    #[arg(long, requires = "from_pytorch")]
    ngf: Option<usize>,
    /// Image channels of --from-pytorch's G (the example's --nc); checked against the file.
    #[arg(long, requires = "from_pytorch")]
    nc: Option<usize>,
    /// Image side of --from-pytorch's G (the example's --imageSize); checked against the file.
    #[arg(long, requires = "from_pytorch")]
    size: Option<usize>,
    /// Checkpoint folder or g.safetensors file; default: the run's latest checkpoint.
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Number of images (ignored with --latents).
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Output: a folder for image files, a .png file with --grid, a .npz file with --format
    /// npz, a .gif or .png file with --interpolate.
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
    /// Truncation trick: BigGAN's (redraw latent values beyond this magnitude, e.g. 0.5), or for
    /// a StyleGAN2 G the pull of w toward its training average, w_avg + T (w - w_avg), e.g. 0.7.
    #[arg(long, value_name = "T")]
    truncation: Option<f32>,
    /// StyleGAN2: how the noise inputs are filled: random (drawn from each image's latent, so a
    /// seed's image is fixed), const (the fixed noise stored with G) or none.
    #[arg(long, value_name = "MODE", value_parser = parse_noise_mode)]
    noise_mode: Option<NoiseMode>,
    /// StyleGAN2: the style-mixing grid, one PNG (--out FILE.png): the column seeds' images on
    /// top, the row seeds' on the left, and in each cell the row's image with the --styles
    /// layers taken from the column, e.g. --style-mix 1-4 10-15.
    #[arg(long, num_args = 2, value_names = ["ROWS", "COLS"], conflicts_with_all = SEED_MODE_CONFLICTS, conflicts_with_all = ["seeds", "interpolate"])]
    style_mix: Vec<SeedList>,
    /// With --style-mix: the style layers A-B (inclusive) the columns give; 0 is the 4x4
    /// convolution, coarse (pose, shape) first. Default: the coarse half.
    #[arg(long, value_name = "A-B", value_parser = parse_range, requires = "style_mix")]
    styles: Option<(usize, usize)>,
    /// One image per seed, named seed0007.png as StyleGAN2-ADA's generate.py names them: a list
    /// such as 0-9999 or 0-3,7,10-12. A seed's image depends on the seed alone (not on
    /// --batch-size nor the other seeds) and is the server's /api/generate?seed=S; a conditional
    /// G draws seed S in class S mod classes unless --class is given.
    #[arg(long, value_name = "LIST", conflicts_with_all = SEED_MODE_CONFLICTS, conflicts_with = "interpolate")]
    seeds: Option<SeedList>,
    /// File format with --seeds: png, jpg (quality 95), or npz (one --out FILE.npz holding a
    /// uint8 array `images` [N, H, W, C] and an int64 array `seeds` [N], for numpy.load).
    #[arg(long, value_enum, default_value_t = Format::Png, requires = "seeds")]
    format: Format,
    /// Images per generator call with --seeds and --interpolate: memory holds one batch, never
    /// all the images. 64 amortizes a call's fixed cost on a CPU (as the server's batches)
    /// while a batch of 256x256 RGB images stays near 50 MB.
    #[arg(long, value_name = "N", default_value_t = 64)]
    batch_size: usize,
    /// A walk from seed A's latent to seed B's, the server's /api/interpolate: an animated GIF
    /// with --out FILE.gif, a strip of the frames with --out FILE.png. Repeat for more walks: one
    /// row per walk in the PNG, side by side in the GIF. Classes: --class, else seed A's class.
    #[arg(long, value_name = "A,B", value_parser = parse_pair, conflicts_with_all = SEED_MODE_CONFLICTS)]
    interpolate: Vec<(u64, u64)>,
    /// Frames of each walk with --interpolate, both ends included. Default: 60 for a GIF (3 s at
    /// 20 frames per second), 8 for a PNG strip (as /api/interpolate).
    #[arg(long, value_name = "N", requires = "interpolate")]
    frames: Option<usize>,
    /// Compute device: cpu, cuda[:N], wgpu, vulkan, tch or tch:cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// What --seeds and --interpolate cannot be combined with (each other included): they name
/// their images themselves.
const SEED_MODE_CONFLICTS: [&str; 7] = ["n", "seed", "latents", "grid", "raw", "per_class", "kaggle"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Png,
    #[value(alias = "jpeg")]
    Jpg,
    Npz,
}

fn parse_noise_mode(s: &str) -> Result<NoiseMode, String> {
    s.parse()
}

/// `A-B` (or one layer `A`): an inclusive range of style layers.
fn parse_range(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("'{s}' is not a range of layers: write A-B, e.g. 0-3");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    Ok((a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?))
}

/// `A,B`: two seeds.
fn parse_pair(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("'{s}' is not two seeds: write A,B, e.g. 3,17");
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    Ok((a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?))
}

pub fn run(a: SampleArgs, ranks: &crate::ranks::Ranks) -> Result<()> {
    let device = parse_device(&a.device)?;
    let mut sampler = match (&a.from_pytorch, &a.run) {
        _ if a.model.is_some() => Sampler::from_model_file(a.model.as_deref().expect("matched"), &device)?,
        (Some(pth), _) if a.arch == "stylegan2" => {
            if a.nz.or(a.ngf).or(a.nc).or(a.size).is_some() {
                bail!("--nz, --ngf, --nc and --size describe PyTorch's DCGAN example; a stylegan2 file's sizes are read from it");
            }
            let (cfg, g) = ganforge::interop::stylegan2::import_generator(pth, &device)?;
            Sampler::from_generator(cfg, g, pth.clone(), &device)
        }
        (Some(pth), _) => {
            let given = TorchDcgan { nz: a.nz, ngf: a.ngf, nc: a.nc, size: a.size, ndf: None };
            let (cfg, g) = dcgan::import_generator(pth, &given, &device)?;
            Sampler::from_generator(cfg, g, pth.clone(), &device)
        }
        (None, Some(run)) => Sampler::load(run, a.checkpoint.as_deref(), &device)?,
        (None, None) => bail!("--run or --from-pytorch is needed"),
    };
    if let Some(mode) = a.noise_mode {
        if !sampler.g.truncates_in_w() {
            bail!("--noise-mode is for a StyleGAN2 generator (model.arch = \"stylegan2\"); this one has no noise inputs");
        }
        sampler.noise = mode;
    }
    let sampler = sampler;
    if let [rows, cols] = a.style_mix.as_slice() {
        return if ranks.is_root() { style_mix(&sampler, &a, rows, cols) } else { Ok(()) };
    }
    if let Some(zip) = &a.kaggle {
        return if ranks.is_root() { kaggle_submission(&sampler, &a, zip) } else { Ok(()) };
    }
    let out = a.out.clone().context("--out is needed")?;
    if let Some(seeds) = &a.seeds {
        return seed_images(&sampler, &a, seeds, &out, &*ranks.group);
    }
    if !ranks.is_root() {
        // Only --seeds splits over MPI ranks; the other forms are made by rank 0 alone.
        return Ok(());
    }
    if !a.interpolate.is_empty() {
        return walks(&sampler, &a, &out);
    }
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
    let images = sampler.generate_styled(&z, labels.as_deref(), &sampler.psi(n, truncation(&a)?));
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

/// --truncation, checked.
fn truncation(a: &SampleArgs) -> Result<Option<f32>> {
    match a.truncation {
        Some(t) if !(t.is_finite() && t >= 0.05) => bail!("--truncation {t} must be a number of at least 0.05 (0.5 is typical)"),
        t => Ok(t),
    }
}

/// `n` latents from --seed (default: the run's), truncated with --truncation.
fn latents(sampler: &Sampler, a: &SampleArgs, n: usize) -> Result<Vec<f32>> {
    let seed = a.seed.unwrap_or(sampler.cfg.seed);
    Ok(match truncation(a)? {
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
    let psi = sampler.psi(chunk, truncation(a)?);
    let files = (0..IMAGES).step_by(chunk).flat_map(|start| {
        let end = (start + chunk).min(IMAGES);
        let psi = &psi[..psi.len().min(end - start)];
        let images = sampler.generate_styled(&z[start * nz..end * nz], labels.as_ref().map(|l| &l[start..end]), psi);
        (0..images.n).map(move |i| (format!("{:05}.png", start + i), submission_png(&images, i))).collect::<Vec<_>>()
    });
    write_submission(zip, files).with_context(|| format!("writing {}", zip.display()))?;
    println!("{}", zip.display());
    eprintln!("{IMAGES} images (64x64 RGB PNG) from {}", sampler.checkpoint.display());
    Ok(())
}

/// A progress bar of `len` images on a terminal (none when output goes to a file or a pipe).
fn progress(len: u64) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        ProgressBar::new(len).with_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} images  [{elapsed_precise} < {eta_precise}]").expect("valid template"),
        )
    })
}

/// --batch-size, checked against the range and the memory one batch of images takes.
fn batch_size(sampler: &Sampler, a: &SampleArgs) -> Result<usize> {
    if !(1..=4096).contains(&a.batch_size) {
        bail!("--batch-size {} is out of range: ask for 1 to 4096 images per generator call", a.batch_size);
    }
    if let Some(have) = ganforge::memory::available() {
        let (c, s) = (sampler.cfg.model.channels, sampler.cfg.model.image_size);
        ganforge::memory::check_images("sample", a.batch_size, c * s * s, have)?;
    }
    Ok(a.batch_size)
}

/// Where the images of --seeds go: a file per image, or one .npz.
enum SeedSink {
    Files { dir: PathBuf, format: Format },
    Npz(NpzWriter),
}

impl SeedSink {
    fn write(&mut self, seeds: &[u64], images: &ImageBatch) -> Result<()> {
        match self {
            SeedSink::Files { dir, format } => {
                for (i, seed) in seeds.iter().enumerate() {
                    // generate.py's names: at least 4 digits.
                    let (bytes, ext) = match format {
                        Format::Jpg => (images.jpeg(i, JPEG_QUALITY), "jpg"),
                        _ => (images.png(i), "png"),
                    };
                    let p = dir.join(format!("seed{seed:04}.{ext}"));
                    // No fsync per file: the folder is synced once at the end.
                    std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
                }
            }
            SeedSink::Npz(w) => {
                for i in 0..images.n {
                    w.write(&images.hwc_bytes(i))?;
                }
            }
        }
        Ok(())
    }
}

/// JPEG quality of --format jpg: high enough that compression artifacts do not mask G's own.
const JPEG_QUALITY: u8 = 95;

/// `--seeds`: one image per seed, made --batch-size at a time and written as it comes, so
/// memory holds one batch whatever the count.
///
/// Under `mpirun` the seed list is cut into --batch-size chunks dealt out in turn: in each round
/// rank k makes the round's chunk k. Image files are written by the rank that made them; an
/// `.npz` by rank 0, which gathers each round in rank order, that is in seed order. An image
/// depends on its seed alone, so the files are those of a single process.
fn seed_images(sampler: &Sampler, a: &SampleArgs, seeds: &SeedList, out: &std::path::Path, group: &dyn Group) -> Result<()> {
    let truncation = truncation(a)?;
    let batch = batch_size(sampler, a)?;
    if let Some(k) = a.class {
        sampler.check_labels(&[k])?;
    }
    let (m, n) = (&sampler.cfg.model, seeds.len());
    let mut sink = match a.format {
        Format::Npz if !group.is_root() => None,
        Format::Npz => {
            if out.extension().and_then(|e| e.to_str()) != Some("npz") {
                bail!("--format npz writes one file: name it with --out FILE.npz, not {}", out.display());
            }
            let count = usize::try_from(n).context("too many seeds for one array")?;
            let mut w = NpzWriter::create(out)?;
            w.start_array("images", Dtype::U8, &[count, m.image_size, m.image_size, m.channels])?;
            Some(SeedSink::Npz(w))
        }
        format => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            Some(SeedSink::Files { dir: out.to_path_buf(), format })
        }
    };
    let bar = progress(n).filter(|_| group.is_root());
    let mut all = seeds.iter();
    loop {
        let round: Vec<Vec<u64>> = (0..group.size()).map(|_| all.by_ref().take(batch).collect()).collect();
        if round[0].is_empty() {
            break;
        }
        let mine = &round[group.rank()];
        let images = (!mine.is_empty()).then(|| {
            let labels = match a.class {
                Some(k) => Some(vec![k; mine.len()]),
                None => sampler.seed_classes(mine),
            };
            sampler.generate_styled(&sampler.seed_latents(mine, truncation), labels.as_deref(), &sampler.psi(mine.len(), truncation))
        });
        if a.format == Format::Npz {
            // The round's images of every rank, in rank order, for rank 0 to write.
            let values = group.gather(&images.map(|i| i.values).unwrap_or_default());
            if let Some(sink) = &mut sink {
                let all_seeds = round.concat();
                let (c, s) = (m.channels, m.image_size);
                sink.write(&all_seeds, &ImageBatch { values, n: all_seeds.len(), channels: c, height: s, width: s })?;
            }
        } else if let (Some(sink), Some(images)) = (&mut sink, images) {
            sink.write(mine, &images)?;
        }
        if let Some(b) = &bar {
            b.inc(round.iter().map(|c| c.len() as u64).sum());
        }
    }
    // Every rank's files are written before rank 0 syncs the folder and reports.
    group.barrier();
    match sink {
        None => return Ok(()),
        Some(_) if !group.is_root() => return Ok(()),
        Some(SeedSink::Npz(mut w)) => {
            w.start_array("seeds", Dtype::I64, &[n as usize])?;
            for s in seeds.iter() {
                w.write(&(s as i64).to_le_bytes())?;
            }
            w.finish()?;
        }
        Some(SeedSink::Files { .. }) => ganforge::fsutil::sync_dir(out).with_context(|| format!("syncing {}", out.display()))?,
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    println!("{}", out.display());
    eprintln!("{n} images from {}", sampler.checkpoint.display());
    Ok(())
}

/// `--style-mix ROWS COLS`: the style-mixing grid as one PNG.
fn style_mix(sampler: &Sampler, a: &SampleArgs, rows: &SeedList, cols: &SeedList) -> Result<()> {
    let out = a.out.as_deref().context("--out FILE.png is needed")?;
    if out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() != Some("png") {
        bail!("--style-mix writes one grid: name it with --out FILE.png, not {}", out.display());
    }
    let (rows, cols): (Vec<u64>, Vec<u64>) = (rows.iter().collect(), cols.iter().collect());
    if rows.len().max(cols.len()) > 64 {
        bail!("--style-mix makes a grid of {} x {} images: name at most 64 seeds on each side", rows.len() + 1, cols.len() + 1);
    }
    let images = sampler.style_mix(&rows, &cols, a.styles, truncation(a)?)?;
    save_png(out, &images.grid(cols.len() + 1)).with_context(|| format!("writing {}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}

/// Milliseconds per GIF frame: 20 frames per second, smooth enough for a latent walk.
const GIF_FRAME_MS: u32 = 50;

/// `--interpolate A,B ...`: walks between seeds, as an animated GIF (streamed a batch of
/// frames at a time) or a PNG with one row per walk.
fn walks(sampler: &Sampler, a: &SampleArgs, out: &std::path::Path) -> Result<()> {
    let gif = match out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("gif") => true,
        Some("png") => false,
        _ => bail!("--interpolate writes an animated GIF or a PNG strip: name --out walk.gif or walk.png, not {}", out.display()),
    };
    let frames = a.frames.unwrap_or(if gif { 60 } else { 8 });
    let pairs = &a.interpolate;
    if frames < 2 || frames.saturating_mul(pairs.len()) > 100_000 {
        bail!("--frames {frames} is out of range: a walk has 2 frames (its two ends) or more, up to 100000 images in all");
    }
    let truncation = truncation(a)?;
    let batch = batch_size(sampler, a)?.div_ceil(pairs.len()).max(1);
    let classes: Vec<Option<u32>> = match a.class {
        Some(k) => {
            sampler.check_labels(&[k])?;
            vec![Some(k); pairs.len()]
        }
        None => pairs.iter().map(|&(from, _)| ganforge::sample::seed_class(from, sampler.cfg.model.classes)).collect(),
    };
    let nz = sampler.cfg.model.nz;
    let paths: Vec<Vec<f32>> = pairs.iter().map(|&(from, to)| sampler.interpolation(from, to, frames, truncation)).collect();
    // Frames k0..k1 of every walk, walk by walk.
    let make = |k0: usize, k1: usize| -> ImageBatch {
        let z: Vec<f32> = paths.iter().flat_map(|p| p[k0 * nz..k1 * nz].iter().copied()).collect();
        let labels: Option<Vec<u32>> = classes.iter().map(|c| c.map(|k| vec![k; k1 - k0])).collect::<Option<Vec<_>>>().map(|v| v.concat());
        sampler.generate_styled(&z, labels.as_deref(), &sampler.psi(z.len() / nz, truncation))
    };
    if gif {
        let context = || format!("writing {}", out.display());
        let mut file = AtomicFile::create(out).with_context(context)?;
        {
            // Speed 10 of 1 to 30: NeuQuant builds each frame's palette from every 10th pixel,
            // far faster than from all of them, and small GAN images have few colours to lose.
            let mut enc = GifEncoder::new_with_speed(&mut file, 10);
            enc.set_repeat(Repeat::Infinite).with_context(context)?;
            for k0 in (0..frames).step_by(batch) {
                let k1 = (k0 + batch).min(frames);
                gif_frames(&mut enc, &make(k0, k1), pairs.len(), k1 - k0).with_context(context)?;
            }
            // Dropping the encoder writes the GIF's trailer.
        }
        file.commit().with_context(context)?;
    } else {
        // The strip holds every frame of every walk.
        if let Some(have) = ganforge::memory::available() {
            let (c, s) = (sampler.cfg.model.channels, sampler.cfg.model.image_size);
            ganforge::memory::check_images("sample", frames * pairs.len(), c * s * s, have)?;
        }
        let images = make(0, frames);
        save_png(out, &images.grid(frames)).with_context(|| format!("writing {}", out.display()))?;
    }
    println!("{}", out.display());
    eprintln!("{} walk(s) of {frames} frames from {}", pairs.len(), sampler.checkpoint.display());
    Ok(())
}

/// Appends `per` frames to a GIF from `images`: walk by walk, `per` images each. With several
/// walks each frame is a grid of their images at that step.
fn gif_frames(enc: &mut GifEncoder<&mut AtomicFile>, images: &ImageBatch, walks: usize, per: usize) -> image::ImageResult<()> {
    let size = images.channels * images.height * images.width;
    for k in 0..per {
        let frame = if walks == 1 {
            images.image(k).to_rgba8()
        } else {
            let values = (0..walks).flat_map(|w| images.values[(w * per + k) * size..][..size].iter().copied()).collect();
            let step = ImageBatch { values, n: walks, channels: images.channels, height: images.height, width: images.width };
            image::DynamicImage::ImageRgb8(step.grid(grid_cols(walks))).to_rgba8()
        };
        enc.encode_frame(image::Frame::from_parts(frame, 0, 0, image::Delay::from_numer_denom_ms(GIF_FRAME_MS, 1)))?;
    }
    Ok(())
}
