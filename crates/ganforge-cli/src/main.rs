//! `ganforge`: the command-line program. Errors are reported in one line with their context
//! and a non-zero exit status; the path of a new run is the last line of standard output.

mod classifier;
mod completions;
mod config;
mod data;
mod doctor;
mod eval;
mod export;
mod fid;
mod presets;
mod ranks;
mod report;
mod sample;
mod serve;
mod train;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
  ganforge sample --run runs/00004-mnist --per-class 8 --out classes.png             # a row per class
  ganforge sample --run runs/00003-mnist --seeds 0-9999 --out samples/   # samples/seed0000.png ...
  ganforge sample --run runs/00003-mnist --seeds 0-999 --format npz --out samples.npz
  ganforge sample --run runs/00003-mnist --interpolate 3,17 --frames 60 --out walk.gif")]
    Sample(sample::SampleArgs),
    /// Score a run's generator: FID, KID, MiFID, precision/recall, Inception Score, class coverage.
    #[command(after_help = "Examples:
  ganforge eval --run runs/00003-mnist --metrics fid,kid,pr,coverage --features lenet
  ganforge eval --run runs/00007-dogs --metrics fid,mifid,is --inception pt_inception-2015-12-05-6726825d.pth --n 10000
  ganforge eval --run runs/00009-stacked-mnist --metrics coverage --n 26000     # modes of 1000

The result is printed and written to RUN_DIR/eval/. Inception weights (pytorch-fid's):
https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth")]
    Eval(eval::EvalArgs),
    /// FID between two image sets, as `python -m pytorch_fid A B`: folders, runs, datasets or
    /// saved statistics; also KID, precision/recall and IS.
    #[command(after_help = "Examples:
  ganforge fid generated/ real/ --inception pt_inception-2015-12-05-6726825d.pth
  ganforge fid runs/00007-dogs cifar10:data/cifar10 --inception pt_inception.pth --n 10000
  ganforge fid --save-stats real/ real_stats.npz --inception pt_inception.pth   # pytorch-fid's .npz
  ganforge fid generated/ real_stats.npz --inception pt_inception.pth
  ganforge fid runs/00003-mnist mnist-test --features lenet --metrics fid,kid,pr --json

Images reach Inception as pytorch-fid brings them: each at its own size, RGB, 8-bit, bilinear to
299x299 (align_corners=False), scaled to [-1, 1]. With the same weight file, the FID of two folders
equals pytorch-fid's (tested to 1e-3, see crates/ganforge/tests/fixtures/fid_reference.py).")]
    Fid(fid::FidArgs),
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

API: GET /api/generate?seed=S&n=N&class=K&truncation=T (PNG: seed S's image, or a grid of seeds S to S+N-1),
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
    #[command(after_help = "Example:
  ganforge presets --json | jq -r '.[].name'")]
    Presets(presets::PresetsArgs),
    /// Show the resolved config with each key's meaning and default, or list every key.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Look at datasets before training on them.
    #[command(subcommand)]
    Data(DataCommand),
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  ganforge completions bash > ~/.local/share/bash-completion/completions/ganforge
  ganforge completions zsh > ~/.zfunc/_ganforge        # with fpath+=~/.zfunc before compinit
  ganforge completions fish > ~/.config/fish/completions/ganforge.fish")]
    Completions(completions::CompletionsArgs),
}

#[derive(Subcommand)]
enum ClassifierCommand {
    /// Train a classifier (LeNet for digits, a small VGG for photos) on a labelled dataset and
    /// report its test accuracy.
    #[command(after_help = "Examples:
  ganforge classifier train --data mnist --out lenet-mnist.safetensors
  ganforge eval --run runs/00003-mnist --metrics coverage --classifier lenet-mnist.safetensors
  ganforge classifier train --arch cifar --data cifar10:DIR --test cifar10:DIR/test \\
      --epochs 10 --decay --augment --batch-size 128 --lr 2e-3 --out cifar10.safetensors

ganforge ships the MNIST classifier the first command makes with its defaults and the CIFAR-10 one the third \
makes (weights/*.json record how); eval uses them (--features lenet / cifar) unless told otherwise.")]
    Train(classifier::ClassifierTrainArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the resolved config as TOML, each key after its doc comment and, where the value
    /// differs from it, its default.
    #[command(after_help = "Examples:
  ganforge config show                                  # the default preset, mnist
  ganforge config show --preset wgan-gp --set train.lr_d=2e-4
  ganforge config show --config my.toml > resolved.toml # a file train --config reads back")]
    Show(config::ShowArgs),
    /// List every key: path, type, default and the first sentence of its doc.
    #[command(after_help = "Examples:
  ganforge config keys
  ganforge config keys --json")]
    Keys(config::KeysArgs),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Count, size, classes, pixel statistics and a preview grid of a dataset spec.
    #[command(after_help = "Examples:
  ganforge data inspect mnist
  ganforge data inspect mnist --json | jq .classes
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
    // Training, sampling and evaluation split their work over `mpirun`'s ranks.
    let ranks = match &cli.command {
        Command::Train(_) | Command::Sample(_) | Command::Eval(_) => ranks::Ranks::start(),
        Command::Completions(_) => Ok(ranks::Ranks::solo()),
        _ => ranks::Ranks::single(std::env::args().nth(1).as_deref().unwrap_or("")),
    };
    let ranks = match ranks {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Train(a) => train::run(a, &ranks),
        Command::Sample(a) => sample::run(a, &ranks),
        Command::Export(a) => export::run(a),
        Command::Eval(a) => eval::run(a, &ranks),
        Command::Fid(a) => fid::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Report(a) => report::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Classifier(ClassifierCommand::Train(a)) => classifier::run(a),
        Command::Data(DataCommand::Inspect(a)) => data::inspect(a),
        Command::Data(DataCommand::Fetch(a)) => data::fetch(a),
        Command::Config(ConfigCommand::Show(a)) => config::show(a),
        Command::Config(ConfigCommand::Keys(a)) => config::keys(a),
        Command::Presets(a) => presets::run(a),
        Command::Completions(a) => {
            completions::run(a, &mut Cli::command());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let rank = if ranks.group.size() > 1 { format!(" on rank {}", ranks.group.rank()) } else { String::new() };
            eprintln!("error{rank}: {}", one_line(&e));
            ranks.fail();
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand and every argument of every subcommand says what it is for: a flag
    /// added without a doc comment fails here, by name.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if !matches!(id, "help" | "version") && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    let name = arg.get_long().map(|l| format!("--{l}")).unwrap_or_else(|| format!("<{id}>"));
                    missing.push(format!("{path} {name}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(format!("{sub_path} (the command itself)"));
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "ganforge", &mut missing);
        assert!(missing.is_empty(), "arguments without help text:\n{}", missing.join("\n"));
    }

    #[test]
    fn the_parser_is_consistent() {
        Cli::command().debug_assert();
    }
}
