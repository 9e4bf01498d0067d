//! The fuzz targets: one per parser of outside bytes, each calling the real entry point (a
//! file written to a scratch folder where the parser takes a path) and checking what comes
//! back: an error with a message, or a value that is consistent with itself.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::path::{Path, PathBuf};

use ganforge::burn::nn::{Linear, LinearConfig};
use ganforge::burn::tensor::Device;
use ganforge::config::GanConfig;
use ganforge::data::{self, Source};

/// What a parser made of an input that broke no invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Parsed, and the value passed the target's checks.
    Value,
    /// Refused with an error that says something.
    Refused,
}

/// One fuzz target.
pub struct Target {
    pub name: &'static str,
    /// What it runs, for reports.
    pub about: &'static str,
    pub run: fn(&mut Ctx, &[u8]) -> Result<Verdict, String>,
    /// Largest single allocation allowed for one input, with its reason at the constant.
    pub max_alloc: usize,
    /// Text formats also get number and line mutations.
    pub text: bool,
    /// Tokens of the format, inserted by the mutator.
    pub dict: fn() -> Vec<Vec<u8>>,
}

/// The bound on one allocation for the byte-format targets. Inputs are at most
/// `mutate::MAX_INPUT` (64 KiB); the formats that inflate (gzip IDX, MAT's miCOMPRESSED,
/// zipped .pth) reach at most deflate's 1032:1, 66 MiB, and a buffer grown by doubling asks
/// for up to twice what it holds. A parser that believes a size field before the bytes arrive
/// asks for what the field says, gigabytes, and fails this bound.
pub const BYTES_BOUND: usize = 256 << 20;

/// The bound for image decoding: the image crate's default decode limit (512 MiB), which
/// `check_header` states as ganforge's, plus the resize to the model's size (16 x 16 here).
pub const IMAGE_BOUND: usize = 512 << 20;

/// Images taken out of a parsed dataset per input: enough to exercise indexing and resizing,
/// few enough to keep an input in milliseconds.
const IMAGES_PER_INPUT: usize = 3;

/// The model size images are resized to: small, so the resize costs little; the arithmetic
/// (scale, crop offsets) is the same at every size.
const MODEL_SIZE: usize = 16;

/// Scratch files for the parsers that take a path, one folder per run.
pub struct Ctx {
    dir: tempfile::TempDir,
    /// A Stanford Dogs layout with one real photo, whose annotation each input replaces.
    dogs_root: PathBuf,
}

/// The photo of the dogs layout: a 40x30 JPEG, so boxes can reach outside it either way.
const DOG_PHOTO: (u32, u32) = (40, 30);

impl Ctx {
    pub fn new() -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let dogs_root = dir.path().join("dogs");
        let images = dogs_root.join("Images/n02085620-Chihuahua");
        std::fs::create_dir_all(&images)?;
        std::fs::create_dir_all(dogs_root.join("Annotation/n02085620-Chihuahua"))?;
        let photo = image::RgbImage::from_fn(DOG_PHOTO.0, DOG_PHOTO.1, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 128]));
        photo.save(images.join("a.jpg")).map_err(std::io::Error::other)?;
        Ok(Self { dir, dogs_root })
    }

    /// Writes `bytes` to the scratch file `name` and returns its path.
    fn file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).map_err(|e| format!("scratch file {}: {e}", p.display()))?;
        Ok(p)
    }
}

/// A refusal, which must say something.
fn refused(e: impl Display) -> Result<Verdict, String> {
    if e.to_string().trim().is_empty() {
        return Err("an error with an empty message".into());
    }
    Ok(Verdict::Refused)
}

/// Checks a value; `Err` names what is wrong with it.
fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// The first images of a source, decoded and brought to the model size in grey and colour.
fn take_images(source: &dyn Source, max_side: Option<(u32, u32)>) -> Result<(), String> {
    for i in 0..source.len().min(IMAGES_PER_INPUT) {
        let img = match source.image(i) {
            Ok(img) => img,
            Err(e) => return refused(e).map(|_| ()),
        };
        check(img.width() > 0 && img.height() > 0, || format!("image {i} is {}x{}", img.width(), img.height()))?;
        if let Some((w, h)) = max_side {
            check(img.width() <= w && img.height() <= h, || {
                format!("image {i} is {}x{}, larger than the photo", img.width(), img.height())
            })?;
        }
        for channels in [1, 3] {
            let b = data::to_model_bytes(&img, MODEL_SIZE, channels);
            check(b.len() == MODEL_SIZE * MODEL_SIZE * channels, || format!("image {i}: {} model bytes for {channels} channels", b.len()))?;
        }
    }
    Ok(())
}

fn idx(ctx: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    let arr = match data::idx::read_idx_bytes(Path::new("fuzz.idx"), bytes) {
        Ok(a) => a,
        Err(e) => return refused(e),
    };
    check(product(&arr.dims) == Some(arr.data.len()), || format!("dims {:?} with {} bytes", arr.dims, arr.data.len()))?;
    // The entry point `idx:PATH` takes: a file (named as MNIST's are), checked as an image set.
    let p = ctx.file("fuzz-images-idx3-ubyte", bytes)?;
    let set = match data::GreySet::open_idx(&p) {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    check(set.len() == arr.dims[0], || format!("{} images from dims {:?}", set.len(), arr.dims))?;
    take_images(&set, None)?;
    Ok(Verdict::Value)
}

fn npy(_: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    let f = ganforge::npy::decode(Path::new("fuzz.npy"), bytes);
    if let Ok(a) = &f {
        check(product(&a.shape) == Some(a.values.len()), || format!("shape {:?} with {} values", a.shape, a.values.len()))?;
        // What is read is written back the same (bit for bit: NaN payloads included).
        let back = ganforge::npy::decode(Path::new("back.npy"), &ganforge::npy::encode(&a.shape, &a.values)).map_err(|e| e.to_string())?;
        let same = back.shape == a.shape && back.values.iter().zip(&a.values).all(|(x, y)| x.to_bits() == y.to_bits());
        check(same, || format!("shape {:?} does not survive a write and a read", a.shape))?;
    }
    let u = ganforge::npy::decode_u8(Path::new("fuzz.npy"), bytes);
    if let Ok(a) = &u {
        check(product(&a.shape) == Some(a.values.len()), || format!("shape {:?} with {} values", a.shape, a.values.len()))?;
    }
    match (f, u) {
        (Err(e), Err(_)) => refused(e),
        _ => Ok(Verdict::Value),
    }
}

fn quickdraw(ctx: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    let p = ctx.file("drawings.ndjson", bytes)?;
    let raster = data::quickdraw::RasterOptions { stroke: 0.03, padding: 0.05 };
    match data::quickdraw::QuickDrawSet::open(&p, raster) {
        Ok(set) => {
            take_images(&set, None)?;
            Ok(Verdict::Value)
        }
        Err(e) => refused(e),
    }
}

fn svhn_mat(ctx: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    let p = ctx.file("svhn.mat", bytes)?;
    match data::mat::read_mat(&p, &["X", "y"]) {
        Ok(vars) => {
            for (name, a) in &vars {
                check(product(&a.dims) == Some(a.values.len()), || format!("{name}: dims {:?} with {} values", a.dims, a.values.len()))?;
            }
        }
        Err(e) => return refused(e),
    }
    match data::svhn::SvhnSet::open(&p) {
        Ok(set) => {
            for i in 0..set.len().min(IMAGES_PER_INPUT) {
                let l = set.label(i);
                check(matches!(l, Some(0..=9)), || format!("label {l:?} of image {i} is not a digit"))?;
            }
            take_images(&set, None)?;
            Ok(Verdict::Value)
        }
        Err(e) => refused(e),
    }
}

fn cifar(ctx: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    let p = ctx.file("data_batch_1.bin", bytes)?;
    match data::cifar::CifarSet::open(&p) {
        Ok(set) => {
            check(set.len() * 3073 == bytes.len(), || format!("{} records from {} bytes", set.len(), bytes.len()))?;
            for i in 0..set.len().min(IMAGES_PER_INPUT) {
                check(set.label(i).is_some_and(|l| l <= 9), || format!("label {:?} of record {i}", set.label(i)))?;
            }
            take_images(&set, Some((32, 32)))?;
            Ok(Verdict::Value)
        }
        Err(e) => refused(e),
    }
}

fn dogs_voc(ctx: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    std::fs::write(ctx.dogs_root.join("Annotation/n02085620-Chihuahua/a"), bytes).map_err(|e| e.to_string())?;
    let mut verdict = Verdict::Refused;
    for square in [false, true] {
        let opt = data::dogs::DogsOptions { crop: true, square, max_aspect: 2.5 };
        match data::dogs::DogsSet::open(&ctx.dogs_root, opt) {
            Ok(set) => {
                check(set.class_names() == ["Chihuahua"], || format!("breeds {:?}", set.class_names()))?;
                take_images(&set, Some(DOG_PHOTO))?;
                verdict = Verdict::Value;
            }
            Err(e) => {
                refused(e)?;
            }
        }
    }
    Ok(verdict)
}

fn image(ctx: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    let p = ctx.file("photo", bytes)?;
    let header = data::check_header(&p);
    let img = match data::decode_file(&p) {
        Ok(img) => img,
        Err(e) => return refused(e),
    };
    if let Ok((w, h)) = header {
        check((img.width(), img.height()) == (w, h), || format!("header says {w}x{h}, decoded {}x{}", img.width(), img.height()))?;
    }
    for channels in [1, 3] {
        let b = data::to_model_bytes(&img, MODEL_SIZE, channels);
        check(b.len() == MODEL_SIZE * MODEL_SIZE * channels, || format!("{} model bytes for {channels} channels", b.len()))?;
    }
    Ok(Verdict::Value)
}

/// Every float of a config is finite: TOML allows nan and inf, and a NaN learning rate or
/// stroke width is no setting.
fn non_finite_key(t: &toml::Table, prefix: &str) -> Option<String> {
    t.iter().find_map(|(k, v)| {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Float(f) if !f.is_finite() => Some(key),
            toml::Value::Table(sub) => non_finite_key(sub, &key),
            _ => None,
        }
    })
}

/// A resolved config must be valid, finite, and read back as itself from its own TOML.
fn check_config(ctx: &Ctx, cfg: &GanConfig) -> Result<(), String> {
    cfg.validate().map_err(|e| format!("a resolved config does not validate: {e}"))?;
    let text = cfg.to_toml();
    let tree: toml::Table = toml::from_str(&text).map_err(|e| format!("to_toml is not TOML: {e}"))?;
    if let Some(k) = non_finite_key(&tree, "") {
        return Err(format!("the resolved config has a non-finite {k}"));
    }
    let p = ctx.file("roundtrip.toml", text.as_bytes())?;
    let back = GanConfig::load(&p).map_err(|e| format!("a resolved config does not load back: {e}"))?;
    check(back.to_toml() == text, || "a resolved config loads back as another".into())
}

fn config_toml(ctx: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    let p = ctx.file("config.toml", bytes)?;
    let mut verdict = Verdict::Refused;
    for cfg in [GanConfig::resolve(None, Some(&p), &[]), GanConfig::load(&p)] {
        match cfg {
            Ok(cfg) => {
                check_config(ctx, &cfg)?;
                verdict = Verdict::Value;
            }
            Err(e) => {
                refused(e)?;
            }
        }
    }
    Ok(verdict)
}

/// `--set` arguments at most per input: the CLI takes any number; eight exercise ordering.
const MAX_SETS: usize = 8;

fn config_set(ctx: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    let text = String::from_utf8_lossy(bytes);
    let sets: Vec<String> = text.lines().take(MAX_SETS).map(str::to_string).collect();
    match GanConfig::resolve(None, None, &sets) {
        Ok(cfg) => {
            check_config(ctx, &cfg)?;
            // A resumed run applies the same strings to its saved config.
            match cfg.with_overrides(&sets) {
                Ok(again) => check(again.to_toml() == cfg.to_toml(), || "the same --set twice gives another config".into())?,
                Err(e) => return Err(format!("--set that resolved is refused on the resolved config: {e}")),
            }
            Ok(Verdict::Value)
        }
        Err(e) => refused(e),
    }
}

/// The model the safetensors target loads into: Linear(2, 3), names `weight` [2, 3] and `bias` [3].
fn linear() -> Linear {
    LinearConfig::new(2, 3).init(&Device::flex())
}

fn safetensors(_: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    let tensors = match ganforge::params::parse_safetensors(bytes, Path::new("fuzz.safetensors")) {
        Ok(t) => t,
        Err(e) => return refused(e),
    };
    for (name, t) in &tensors {
        check(product(&t.shape) == Some(t.values.len()), || format!("'{name}': shape {:?} with {} values", t.shape, t.values.len()))?;
    }
    match ganforge::params::load_tensors(linear(), tensors.clone(), Path::new("fuzz.safetensors")) {
        Ok(model) => {
            let loaded: BTreeMap<_, _> = ganforge::params::named_tensors(&model);
            check(loaded == tensors, || "the loaded model holds other values than the file".into())?;
            Ok(Verdict::Value)
        }
        Err(e) => refused(e),
    }
}

fn state_json(ctx: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    let dir = ctx.dir.path().join("checkpoint");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("state.json"), bytes).map_err(|e| e.to_string())?;
    match ganforge::run::checkpoint::read_state(&dir) {
        Ok(mut state) => {
            let json = serde_json::to_vec(&state).map_err(|e| format!("a read state does not serialize: {e}"))?;
            let back: ganforge::run::checkpoint::TrainState = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
            check(back == state, || "state.json does not survive a write and a read".into())?;
            // The restored stream must draw: a resumed run's first latents come from it.
            let z = state.rng.normal_vec(4, 0.0, 1.0);
            check(z.iter().all(|v| v.is_finite()), || format!("latents {z:?} from the restored stream"))?;
            Ok(Verdict::Value)
        }
        Err(e) => refused(e),
    }
}

fn pth(ctx: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    let p = ctx.file("fuzz.pth", bytes)?;
    match ganforge::pth::read(&p) {
        Ok(sd) => {
            for (name, t) in &sd.floats {
                check(product(&t.shape) == Some(t.values.len()), || {
                    format!("'{name}': shape {:?} with {} values", t.shape, t.values.len())
                })?;
                check(t.values.iter().all(|v| v.is_finite()), || format!("'{name}' holds a non-finite value"))?;
            }
            Ok(Verdict::Value)
        }
        Err(e) => refused(e),
    }
}

/// A query string as the server decodes it: the URI (hyper refuses one that does not parse),
/// then axum's `Query<HashMap<String, String>>` (a 400 when it does not decode), then the API's
/// own parsing, for both endpoints that take parameters.
fn query(_: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
    use axum::extract::Query;
    use ganforge_serve::server::{GenerateQuery, InterpolateQuery, MAX_N, MAX_STEPS};
    let mut uri = b"/api/generate?".to_vec();
    uri.extend_from_slice(bytes);
    let Ok(uri) = axum::http::Uri::try_from(uri) else {
        return Ok(Verdict::Refused);
    };
    let q: HashMap<String, String> = match Query::try_from_uri(&uri) {
        Ok(Query(q)) => q,
        Err(e) => return refused(e),
    };
    let truncation_ok = |t: Option<f32>| t.is_none_or(|t| t.is_finite() && (0.05..=4.0).contains(&t));
    let mut verdict = Verdict::Refused;
    match GenerateQuery::parse(&q) {
        Ok(g) => {
            check((1..=MAX_N).contains(&g.n) && truncation_ok(g.truncation), || format!("accepted {g:?}"))?;
            verdict = Verdict::Value;
        }
        Err(e) => {
            refused(e)?;
        }
    }
    match InterpolateQuery::parse(&q) {
        Ok(i) => {
            check((2..=MAX_STEPS).contains(&i.steps) && truncation_ok(i.truncation), || format!("accepted {i:?}"))?;
            verdict = Verdict::Value;
        }
        Err(e) => {
            refused(e)?;
        }
    }
    Ok(verdict)
}

fn tokens(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|t| t.as_bytes().to_vec()).collect()
}

fn no_tokens() -> Vec<Vec<u8>> {
    Vec::new()
}

fn npy_tokens() -> Vec<Vec<u8>> {
    let mut out = vec![b"\x93NUMPY\x01\x00".to_vec()];
    out.extend(tokens(&[
        "'descr'",
        "'<f4'",
        "'|u1'",
        "'<f8'",
        "'fortran_order'",
        "True",
        "False",
        "'shape'",
        "(",
        ")",
        ",",
        "{",
        "}",
        ":",
    ]));
    out
}

fn json_tokens() -> Vec<Vec<u8>> {
    tokens(&["{", "}", "[", "]", ",", ":", "\"", "null", "true", "false", "\"drawing\"", "\"recognized\"", "\\u0000", "1e400", "-"])
}

fn voc_tokens() -> Vec<Vec<u8>> {
    tokens(&[
        "<object>",
        "</object>",
        "<bndbox>",
        "</bndbox>",
        "<xmin>",
        "</xmin>",
        "<ymin>",
        "</ymin>",
        "<xmax>",
        "</xmax>",
        "<ymax>",
        "</ymax>",
        "<width>",
        "</width>",
        "<height>",
        "</height>",
        "NaN",
        "inf",
        "-inf",
    ])
}

fn image_tokens() -> Vec<Vec<u8>> {
    let markers: [&[u8]; 10] =
        [b"\x89PNG\r\n\x1a\n", b"IHDR", b"IDAT", b"IEND", b"PLTE", b"tRNS", b"\xff\xd8\xff", b"\xff\xc0", b"\xff\xda", b"\xff\xd9"];
    markers.iter().map(|m| m.to_vec()).collect()
}

/// Every key of the default config, dotted: the vocabulary of `--set` and of config files.
fn config_tokens() -> Vec<Vec<u8>> {
    fn walk(t: &toml::Table, prefix: &str, out: &mut Vec<Vec<u8>>) {
        for (k, v) in t {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            out.push(key.clone().into_bytes());
            if let toml::Value::Table(sub) = v {
                out.push(format!("[{key}]").into_bytes());
                walk(sub, &key, out);
            }
        }
    }
    let mut out = tokens(&["=", "\"", "'", "[", "]", "{", "}", ",", "nan", "inf", "-inf", "true", "false", "\n", "."]);
    if let Ok(tree) = toml::Table::try_from(GanConfig::new()) {
        walk(&tree, "", &mut out);
    }
    out
}

fn state_tokens() -> Vec<Vec<u8>> {
    tokens(&[
        "\"step\"",
        "\"epoch\"",
        "\"elapsed_s\"",
        "\"adam_g_steps\"",
        "\"adam_d_steps\"",
        "\"rng\"",
        "\"seed\"",
        "\"stream\"",
        "\"word_pos\"",
    ])
    .into_iter()
    .chain(json_tokens())
    .collect()
}

fn query_tokens() -> Vec<Vec<u8>> {
    tokens(&["seed=", "n=", "class=", "truncation=", "from=", "to=", "steps=", "&", "=", "%", "%00", "%ff", "+", "#", "NaN", "inf", "-"])
}

fn safetensors_tokens() -> Vec<Vec<u8>> {
    tokens(&[
        "\"dtype\"",
        "\"F32\"",
        "\"F64\"",
        "\"shape\"",
        "\"data_offsets\"",
        "\"__metadata__\"",
        "\"weight\"",
        "\"bias\"",
        "{",
        "}",
        "[",
        "]",
    ])
}

fn pth_tokens() -> Vec<Vec<u8>> {
    let tokens: [&[u8]; 8] = [
        b"PK\x03\x04",
        b"PK\x01\x02",
        b"PK\x05\x06",
        b"data.pkl",
        b"torch",
        b"FloatStorage",
        b"_rebuild_tensor_v2",
        b"collections\nOrderedDict\n",
    ];
    tokens.iter().map(|t| t.to_vec()).collect()
}

/// Every target, in the order the fuzzer runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "idx",
        about: "data::idx::read_idx_bytes, GreySet::open_idx",
        run: idx,
        max_alloc: BYTES_BOUND,
        text: false,
        dict: no_tokens,
    },
    Target { name: "npy", about: "npy::decode, npy::decode_u8", run: npy, max_alloc: BYTES_BOUND, text: false, dict: npy_tokens },
    Target {
        name: "quickdraw",
        about: "QuickDrawSet::open (ndjson, numpy_bitmap)",
        run: quickdraw,
        max_alloc: BYTES_BOUND,
        text: true,
        dict: json_tokens,
    },
    Target {
        name: "svhn_mat",
        about: "data::mat::read_mat, SvhnSet::open",
        run: svhn_mat,
        max_alloc: BYTES_BOUND,
        text: false,
        dict: no_tokens,
    },
    Target { name: "cifar", about: "CifarSet::open", run: cifar, max_alloc: BYTES_BOUND, text: false, dict: no_tokens },
    Target {
        name: "dogs_voc",
        about: "DogsSet::open (VOC XML annotation)",
        run: dogs_voc,
        max_alloc: BYTES_BOUND,
        text: true,
        dict: voc_tokens,
    },
    Target {
        name: "image",
        about: "check_header, decode_file, to_model_bytes",
        run: image,
        max_alloc: IMAGE_BOUND,
        text: false,
        dict: image_tokens,
    },
    Target {
        name: "config_toml",
        about: "GanConfig::resolve (file), GanConfig::load",
        run: config_toml,
        max_alloc: BYTES_BOUND,
        text: true,
        dict: config_tokens,
    },
    Target {
        name: "config_set",
        about: "GanConfig::resolve (--set), with_overrides",
        run: config_set,
        max_alloc: BYTES_BOUND,
        text: true,
        dict: config_tokens,
    },
    Target {
        name: "safetensors",
        about: "params::parse_safetensors, load_tensors",
        run: safetensors,
        max_alloc: BYTES_BOUND,
        text: false,
        dict: safetensors_tokens,
    },
    Target {
        name: "state_json",
        about: "run::checkpoint::read_state",
        run: state_json,
        max_alloc: BYTES_BOUND,
        text: true,
        dict: state_tokens,
    },
    Target { name: "pth", about: "pth::read", run: pth, max_alloc: BYTES_BOUND, text: false, dict: pth_tokens },
    Target {
        name: "query",
        about: "Uri, Query<HashMap>, GenerateQuery/InterpolateQuery::parse",
        run: query,
        max_alloc: BYTES_BOUND,
        text: true,
        dict: query_tokens,
    },
];
