//! Named access to every tensor of a module (parameters and batch-norm running statistics),
//! keyed by its path in the module tree (`blocks.0.bn.gamma`).
//!
//! Checkpoints, weight initialization and the optimizer all address tensors by these names, so
//! that a file written by one process maps onto a model built by another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};

/// A tensor taken off the device: its shape and row-major values.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl HostTensor {
    pub fn from_tensor<const D: usize>(t: &Tensor<D>) -> Self {
        let data = t.to_data().convert::<f32>();
        Self { shape: data.shape().to_vec(), values: data.try_to_vec::<f32>().expect("f32 data after convert") }
    }

    pub fn to_tensor<const D: usize>(&self, like: &Tensor<D>) -> Tensor<D> {
        Tensor::from_data(TensorData::new(self.values.clone(), self.shape.clone()), &like.device())
    }
}

/// Path bookkeeping for visitors: the variant of an enum module (`Generator::Dcgan`,
/// `Up::Transposed`) is not part of a name, so names read like the network they describe
/// (`blocks.0.up.weight`) and a file does not depend on how the code wraps its layers.
fn enter(path: &mut Vec<String>, name: &str, container: &str) {
    if !container.starts_with("Enum:") {
        path.push(name.to_string());
    }
}

fn exit(path: &mut Vec<String>, container: &str) {
    if !container.starts_with("Enum:") {
        path.pop();
    }
}

/// Something that looks at each float tensor of a module with its path.
pub(crate) trait NamedVisit {
    fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>);
}

/// Something that rebuilds each float tensor of a module, knowing its path.
pub(crate) trait NamedMap {
    fn map<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>>;
}

/// Walks a module keeping the path, for a [`NamedVisit`] or a [`NamedMap`].
pub(crate) struct Paths<V> {
    path: Vec<String>,
    pub(crate) inner: V,
}

impl<V> Paths<V> {
    pub(crate) fn new(inner: V) -> Self {
        Self { path: Vec::new(), inner }
    }
}

impl<V: NamedVisit> ModuleVisitor for Paths<V> {
    fn enter_module(&mut self, name: &str, container: &str) {
        enter(&mut self.path, name, container);
    }
    fn exit_module(&mut self, _: &str, container: &str) {
        exit(&mut self.path, container);
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.inner.visit(&self.path.join("."), param);
    }
}

impl<V: NamedMap> ModuleMapper for Paths<V> {
    fn enter_module(&mut self, name: &str, container: &str) {
        enter(&mut self.path, name, container);
    }
    fn exit_module(&mut self, _: &str, container: &str) {
        exit(&mut self.path, container);
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        self.inner.map(&self.path.join("."), param)
    }
}

/// All float tensors of `module`, by path.
pub fn named_tensors<M: Module>(module: &M) -> BTreeMap<String, HostTensor> {
    struct Collect(BTreeMap<String, HostTensor>);
    impl NamedVisit for Collect {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            self.0.insert(path.to_string(), HostTensor::from_tensor(&param.val()));
        }
    }
    let mut c = Paths::new(Collect(BTreeMap::new()));
    // `valid()` folds pending batch-norm statistics updates into their value; visiting the
    // module as it is could read running statistics one update old.
    module.valid().visit(&mut c);
    c.inner.0
}

/// The name of the first tensor of `module` holding a NaN, an infinity or a value larger than
/// `limit` in magnitude, if any.
pub fn first_beyond<M: Module>(module: &M, limit: f32) -> Option<String> {
    first_beyond_in(&named_tensors(module), limit).map(str::to_string)
}

/// The same for named tensors on the host (a file's, an optimizer's).
pub fn first_beyond_in(tensors: &BTreeMap<String, HostTensor>, limit: f32) -> Option<&str> {
    tensors.iter().find(|(_, t)| !within(&t.values, limit)).map(|(k, _)| k.as_str())
}

/// Every value finite and at most `limit` in magnitude.
pub fn within(values: &[f32], limit: f32) -> bool {
    values.iter().all(|v| v.is_finite() && v.abs() <= limit)
}

/// The shapes of the tensors of `module` that training updates, by path, in the module's
/// order: those that require a gradient, as the optimizer picks them (no batch-norm
/// statistics, no spectral norm vectors). `module` lives on an autodiff device; elsewhere
/// nothing requires a gradient.
pub fn trainable_shapes<M: Module>(module: &M) -> Vec<(String, Vec<usize>)> {
    struct Collect(Vec<(String, Vec<usize>)>);
    impl NamedVisit for Collect {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            let t = param.val();
            if t.is_require_grad() {
                self.0.push((path.to_string(), t.dims().to_vec()));
            }
        }
    }
    let mut c = Paths::new(Collect(Vec::new()));
    module.visit(&mut c);
    c.inner.0
}

/// The shapes of all float tensors of `module`, by path.
pub fn named_shapes<M: Module>(module: &M) -> BTreeMap<String, Vec<usize>> {
    named_tensors(module).into_iter().map(|(k, v)| (k, v.shape)).collect()
}

/// Rebuilds each float tensor of `module` from `f(path, current)`; `None` keeps it.
/// Gradient tracking and the device are kept as they were.
pub fn map_named<M: Module>(module: M, mut f: impl FnMut(&str, &HostTensor) -> Option<HostTensor>) -> M {
    struct Mapper<'a>(&'a mut dyn FnMut(&str, &HostTensor) -> Option<HostTensor>);
    impl NamedMap for Mapper<'_> {
        fn map<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, mapper) = param.consume();
            let current = HostTensor::from_tensor(&tensor);
            let tensor = match (self.0)(path, &current) {
                Some(new) => {
                    let require_grad = tensor.is_require_grad();
                    let t = new.to_tensor(&tensor);
                    if require_grad {
                        t.require_grad()
                    } else {
                        t
                    }
                }
                None => tensor,
            };
            Param::from_mapped_value(id, tensor, mapper)
        }
    }
    module.map(&mut Paths::new(Mapper(&mut f)))
}

/// `ema` moved toward `source`, on the device: every float tensor (weights and batch-norm
/// statistics alike, as BigGAN's reference code averages its whole state) becomes
/// `decay * ema + (1 - decay) * source`. With `decay = 0` it is a copy of `source`.
/// Both must be the same architecture. The result tracks no gradients.
pub fn ema_update<M: Module>(ema: M, source: &M, decay: f64) -> M {
    struct Collect(BTreeMap<String, Tensor<1>>);
    impl NamedVisit for Collect {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            let t = param.val().inner();
            let n: usize = t.dims().iter().product();
            self.0.insert(path.to_string(), t.reshape([n]));
        }
    }
    struct Lerp {
        source: BTreeMap<String, Tensor<1>>,
        decay: f64,
    }
    impl NamedMap for Lerp {
        fn map<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, mapper) = param.consume();
            let src = self.source.remove(path).unwrap_or_else(|| panic!("EMA of another architecture: no '{path}' in the source"));
            let dims = tensor.dims();
            let n: usize = dims.iter().product();
            let t = tensor.inner().reshape([n]);
            let mixed = if self.decay == 0.0 { src } else { t.mul_scalar(self.decay) + src.mul_scalar(1.0 - self.decay) };
            Param::from_mapped_value(id, mixed.reshape(dims).autodiff(), mapper)
        }
    }
    let mut c = Paths::new(Collect(BTreeMap::new()));
    source.valid().visit(&mut c);
    ema.map(&mut Paths::new(Lerp { source: c.inner.0, decay }))
}

/// The gradient of every parameter of `module` in `grads`, by path (for tests and checks).
pub fn named_grads<M: Module>(module: &M, grads: &burn::optim::GradientsParams) -> BTreeMap<String, Vec<f32>> {
    struct Collect<'a> {
        grads: &'a burn::optim::GradientsParams,
        out: BTreeMap<String, Vec<f32>>,
    }
    impl NamedVisit for Collect<'_> {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.out.insert(path.to_string(), HostTensor::from_tensor(&g).values);
            }
        }
    }
    let mut c = Paths::new(Collect { grads, out: BTreeMap::new() });
    module.visit(&mut c);
    c.inner.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    fn set(l: Linear, v: f32) -> Linear {
        map_named(l, |_, h| Some(HostTensor { shape: h.shape.clone(), values: vec![v; h.values.len()] }))
    }

    /// EMA arithmetic: from e = 1 toward s = 3 with decay 0.9: 1.2, then 1.38; decay 0 copies.
    #[test]
    fn ema_moves_toward_the_source() {
        let device = Device::flex().autodiff();
        let l = || -> Linear { LinearConfig::new(2, 3).init(&device) };
        let (ema, source) = (set(l(), 1.0), set(l(), 3.0));
        let ema = ema_update(ema, &source, 0.9);
        assert!(named_tensors(&ema)["weight"].values.iter().all(|&v| (v - 1.2).abs() < 1e-6));
        let ema = ema_update(ema, &source, 0.9);
        assert!(named_tensors(&ema)["bias"].values.iter().all(|&v| (v - 1.38).abs() < 1e-6));
        let copy = ema_update(ema, &source, 0.0);
        assert_eq!(named_tensors(&copy), named_tensors(&source));
    }
}

/// Clamps every trainable weight of `module` to [-c, c] (WGAN's weight clipping). Buffers such
/// as batch-norm running statistics are not weights and are left alone.
pub fn clip_weights<M: Module>(module: M, c: f64) -> M {
    struct Clip(f64);
    impl ModuleMapper for Clip {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, mapper) = param.consume();
            if !tensor.is_require_grad() {
                return Param::from_mapped_value(id, tensor, mapper);
            }
            let clipped = tensor.inner().clamp(-self.0, self.0).autodiff().require_grad();
            Param::from_mapped_value(id, clipped, mapper)
        }
    }
    module.map(&mut Clip(c))
}

// ---- Named tensors on disk (safetensors, float32): checkpoints, classifiers, feature caches.

#[derive(Debug, thiserror::Error)]
pub enum TensorFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid checkpoint file: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("checkpoint {path} does not match the model built from the config: {detail}")]
    Mismatch { path: PathBuf, detail: String },
    #[error("{path}: tensor '{name}' holds a NaN or infinity; these weights are not usable (the run diverged before they were saved)")]
    NonFinite { path: PathBuf, name: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TensorFileError + '_ {
    move |source| TensorFileError::Io { path: path.to_path_buf(), source }
}

/// Serializes named tensors as safetensors (float32, little-endian).
pub fn safetensors_bytes(tensors: &BTreeMap<String, HostTensor>) -> Vec<u8> {
    safetensors_bytes_with(tensors, &BTreeMap::new())
}

/// Safetensors bytes whose header metadata also holds `meta` (string keys and values, as the
/// format allows), beside the producer.
pub fn safetensors_bytes_with(tensors: &BTreeMap<String, HostTensor>, meta: &BTreeMap<String, String>) -> Vec<u8> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(k, t)| (k.clone(), t.shape.clone(), t.values.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    let views: Vec<(String, TensorView)> = raw
        .iter()
        .map(|(k, shape, bytes)| (k.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes).expect("shape matches bytes")))
        .collect();
    let mut all: std::collections::HashMap<String, String> = meta.clone().into_iter().collect();
    all.insert("producer".to_string(), format!("ganforge {}", env!("CARGO_PKG_VERSION")));
    safetensors::serialize(views, Some(all)).expect("in-memory serialization")
}

/// The header metadata of a safetensors file (empty when it has none).
pub fn safetensors_metadata(path: &Path) -> Result<BTreeMap<String, String>, TensorFileError> {
    parse_safetensors_metadata(&std::fs::read(path).map_err(io(path))?, path)
}

/// The header metadata of safetensors bytes; `origin` names them in errors.
pub fn parse_safetensors_metadata(bytes: &[u8], origin: &Path) -> Result<BTreeMap<String, String>, TensorFileError> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| TensorFileError::Corrupt { path: origin.to_path_buf(), message: e.to_string() })?;
    Ok(meta.metadata().clone().map(|m| m.into_iter().collect()).unwrap_or_default())
}

/// Refuses tensors (read from `path`) that hold a NaN or an infinity, naming the first.
pub fn check_finite(tensors: &BTreeMap<String, HostTensor>, path: &Path) -> Result<(), TensorFileError> {
    match first_beyond_in(tensors, f32::INFINITY) {
        Some(name) => Err(TensorFileError::NonFinite { path: path.to_path_buf(), name: name.to_string() }),
        None => Ok(()),
    }
}

/// Reads a safetensors file of float32 tensors.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>, TensorFileError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    parse_safetensors(&bytes, path)
}

/// Parses safetensors bytes of float32 tensors; `origin` names them in errors.
pub fn parse_safetensors(bytes: &[u8], origin: &Path) -> Result<BTreeMap<String, HostTensor>, TensorFileError> {
    let corrupt = |m: String| TensorFileError::Corrupt { path: origin.to_path_buf(), message: m };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(format!("tensor '{name}' is {:?}, expected F32", view.dtype())));
        }
        let values = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.insert(name, HostTensor { shape: view.shape().to_vec(), values });
    }
    Ok(out)
}

/// Loads named tensors into `module`, refusing any difference in names or shapes.
pub fn load_module<M: Module>(module: M, path: &Path) -> Result<M, TensorFileError> {
    load_tensors(module, read_safetensors(path)?, path)
}

/// Loads named tensors (read from `path`) into `module`, refusing any difference in names or shapes.
pub fn load_tensors<M: Module>(module: M, file: BTreeMap<String, HostTensor>, path: &Path) -> Result<M, TensorFileError> {
    let want = named_shapes(&module);
    let mut problems = Vec::new();
    for (name, shape) in &want {
        match file.get(name) {
            None => problems.push(format!("'{name}' is missing from the file")),
            Some(t) if &t.shape != shape => problems.push(format!("'{name}' has shape {:?} in the file, {shape:?} in the model", t.shape)),
            _ => {}
        }
    }
    problems.extend(file.keys().filter(|k| !want.contains_key(*k)).map(|k| format!("the file has '{k}', which the model does not")));
    if !problems.is_empty() {
        let more = if problems.len() > 3 { format!(" (and {} more)", problems.len() - 3) } else { String::new() };
        problems.truncate(3);
        return Err(TensorFileError::Mismatch { path: path.to_path_buf(), detail: problems.join("; ") + &more });
    }
    check_finite(&file, path)?;
    Ok(map_named(module, |name, _| file.get(name).cloned()))
}
