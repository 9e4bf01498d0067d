//! `ganforge`: the command-line program. Errors are reported in one line with their context
//! and a non-zero exit status; the path of a new run is the last line of standard output.

mod classifier;
mod data;
mod doctor;
mod eval;
mod export;
mod report;
mod sample;
mod serve;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ganforge::config::PRESETS;

#[global_allocator]
static GLOBAL: ganforge::alloc::MiMalloc = ganforge::alloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ganforge", version, about = "Train, sample and inspect GANs on image data")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a GAN; prints the new run folder as the last line of output.
    #[command(after_help = "Examples:
  ganforge train                                   # DCGAN on the bundled MNIST (preset mnist)
  ganforge train --preset mnist64 --steps 20000    # the classic DCGAN setup, 64x64
  ganforge train --data folder:~/pictures --set model.channels=3 --set model.image_size=64
  ganforge train --set train.lr_d=1e-4 --set tricks.soft_labels=true
  ganforge train --resume runs/00003-mnist --steps 4000   # continue a run in place
  ganforge train --init-from runs/00003-mnist --data folder:~/digits --steps 500   # fine-tune into a new run")]
    Train(train::TrainArgs),
    /// Generate images from a trained run.
    #[command(after_help = "Examples:
  ganforge sample --run runs/00003-mnist --n 64 --grid --out grid.png
  ganforge sample --run runs/00003-mnist --n 1000 --out samples/ --seed 7
  ganforge sample --run runs/00003-mnist --latents z.npy --raw out.npy --out imgs/
  ganforge sample --run runs/00004-mnist --class 7 --n 16 --grid --out sevens.png    # conditional runs
  ganforge sample --run runs/00004-mnist --per-class 8 --out classes.png             # a row per class")]
    Sample(sample::SampleArgs),
    /// Score a run's generator: FID, KID, MiFID, precision/recall, Inception Score, class coverage.
    #[command(after_help = "Examples:
  ganforge eval --run runs/00003-mnist --metrics fid,kid,pr,coverage --features lenet
  ganforge eval --run runs/00007-dogs --metrics fid,mifid,is --inception pt_inception-2015-12-05-6726825d.pth --n 10000
  ganforge eval --run runs/00009-stacked-mnist --metrics coverage --n 26000     # modes of 1000

The result is printed and written to RUN_DIR/eval/. Inception weights (pytorch-fid's):
https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth")]
    Eval(eval::EvalArgs),
    /// Diagnose a run: mode collapse, checkerboard artifacts, unbalanced learning rates,
    /// divergence, memorization; each with its evidence and remedy.
    #[command(after_help = "Example:
  ganforge doctor runs/00003-mnist")]
    Doctor(doctor::DoctorArgs),
    /// Serve a run: a page that makes a new image on every click, its HTTP API, and the live
    /// training dashboard (/dashboard).
    #[command(after_help = "Examples:
  ganforge serve --run runs/00003-mnist                    # then open http://127.0.0.1:8080/
  ganforge serve --run runs/00003-mnist --addr 0.0.0.0:8080   # reachable from other machines

API: GET /api/generate?seed=S&n=N&class=K&truncation=T (PNG: one image, or a grid for n > 1),
GET /api/interpolate?from=A&to=B&steps=8 (PNG strip), GET /api/model, GET /api/metrics (JSON).")]
    Serve(serve::ServeArgs),
    /// Write one self-contained HTML report of a run: config, curves, samples, metrics, doctor.
    #[command(after_help = "Example:
  ganforge report runs/00003-mnist            # writes runs/00003-mnist/report.html")]
    Report(report::ReportArgs),
    /// Write a run's DCGAN generator (or discriminator) as a state dict of PyTorch's DCGAN example.
    #[command(after_help = "Examples:
  ganforge export --run runs/00003-mnist64 --out netG.pth
  ganforge export --run runs/00003-mnist64 --net d --out netD.pth

In PyTorch (github.com/pytorch/examples, dcgan/main.py): netG.load_state_dict(torch.load(\"netG.pth\")).
Only a plain 64x64-style DCGAN has the example's layout: no classes, no spectral norm, transposed 4x4 up-sampling.")]
    Export(export::ExportArgs),
    /// Train the small classifier that class coverage and domain features use.
    #[command(subcommand)]
    Classifier(ClassifierCommand),
    /// List the presets and what each is for.
    Presets,
    /// Look at datasets before training on them.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Subcommand)]
enum ClassifierCommand {
    /// Train a LeNet-style classifier on a labelled dataset and report its test accuracy.
    #[command(after_help = "Examples:
  ganforge classifier train --data mnist --out lenet-mnist.safetensors
  ganforge eval --run runs/00003-mnist --metrics coverage --classifier lenet-mnist.safetensors

ganforge ships the MNIST classifier this command makes with its defaults; eval uses it unless told otherwise.")]
    Train(classifier::ClassifierTrainArgs),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Count, size, classes, pixel statistics and a preview grid of a dataset spec.
    #[command(after_help = "Examples:
  ganforge data inspect mnist
  ganforge data inspect folder:~/photos/dogs --size 64 --channels 3 --preview dogs.png")]
    Inspect(data::InspectArgs),
    /// Download a dataset from its publisher (checked against its published SHA-256) into the
    /// cache folder, where a bare `--data NAME` finds it.
    #[command(after_help = "Examples:
  ganforge data fetch svhn                 # then: ganforge train --preset svhn
  ganforge data fetch quickdraw/sheep      # any of the 345 Quick, Draw! categories
  ganforge data fetch stanford-dogs --dir /data/ganforge
  ganforge data fetch --list

The cache folder is $GANFORGE_DATA, else $XDG_CACHE_HOME/ganforge/data, else ~/.cache/ganforge/data.
An interrupted download resumes where it stopped when the command is run again.")]
    Fetch(data::FetchArgs),
}

/// The error and its causes on one line, each cause once: library errors already quote the
/// I/O error they wrap, which `{:#}` would print a second time.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg = format!("{msg}: {c}");
        }
    }
    msg
}

fn main() -> ExitCode {
    ganforge::alloc::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => train::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Export(a) => export::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Report(a) => report::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Classifier(ClassifierCommand::Train(a)) => classifier::run(a),
        Command::Data(DataCommand::Inspect(a)) => data::inspect(a),
        Command::Data(DataCommand::Fetch(a)) => data::fetch(a),
        Command::Presets => {
            for p in PRESETS {
                println!("{:10} {}", p.name, p.about);
            }
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
