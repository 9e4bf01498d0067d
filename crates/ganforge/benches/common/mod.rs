//! What the DCGAN benches (train_step, conv_ops) share: their command line and their models.

/// The value after `--name`, parsed, or `default`.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The bench config named on the command line (the first argument that is neither a flag nor a
/// flag's number), or `default`.
pub fn config_name(args: &[String], default: &str) -> String {
    args.iter().skip(1).find(|a| !a.starts_with("--") && a.parse::<f64>().is_err()).cloned().unwrap_or_else(|| default.into())
}

/// (image size, channels, width) of a bench config, as bench/pytorch_dcgan_step.py's CONFIGS.
pub fn dcgan_shape(config: &str) -> (usize, usize, usize) {
    match config {
        "dcgan64" => (64, 3, 64),
        "small32" => (32, 1, 32),
        // The same DCGAN at other image sizes (BENCHMARKS.md's size/batch table).
        "dcgan32" => (32, 3, 64),
        "dcgan128" => (128, 3, 64),
        other => panic!("unknown bench config {other}: use dcgan64, small32, dcgan32 or dcgan128"),
    }
}
