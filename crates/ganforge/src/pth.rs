//! PyTorch's checkpoint files (`torch.save(model.state_dict(), "x.pth")`), both ways.
//!
//! Reading goes through `pytorch-reader` (the burn project's reader, which depends on neither
//! PyTorch nor burn). Writing is done here: the format `torch.save` has used since PyTorch 1.6
//! is a zip holding `data.pkl`, a pickle (protocol 2) of an `OrderedDict` whose values are
//! `torch._utils._rebuild_tensor_v2(storage, offset, shape, stride, requires_grad, hooks)`
//! calls, each storage a persistent id `("storage", torch.FloatStorage, key, "cpu", numel)`
//! whose bytes are the zip entry `data/<key>`. Only the globals that `torch.load(...,
//! weights_only=True)` accepts are written, so the file loads under PyTorch's safe loader.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::tensor::{bf16, f16};
use pytorch_reader::{DType, PytorchReader};

use crate::params::HostTensor;

#[derive(Debug, thiserror::Error)]
pub enum PthError {
    #[error("{path}: not a PyTorch checkpoint that can be read ({reason})")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: tensor '{name}' could not be read: {source}")]
    Tensor { path: PathBuf, name: String, source: std::io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path}: tensor '{name}' holds a NaN or infinity; these weights cannot make images (was the model saved after it diverged?)")]
    NonFinite { path: PathBuf, name: String },
}

/// The tensors of a state dict: floating-point ones as f32 by name, and the names of the
/// integer ones (batch norm's `num_batches_tracked`), which no ganforge model uses.
#[derive(Debug, Default)]
pub struct StateDict {
    pub floats: BTreeMap<String, HostTensor>,
    pub integers: BTreeSet<String>,
}

/// Reads every tensor of a `.pth`/`.pt` file (any container `torch.save` ever wrote).
pub fn read(path: &Path) -> Result<StateDict, PthError> {
    let reader = PytorchReader::new(path).map_err(|e| PthError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
    let mut out = StateDict::default();
    for (name, t) in reader.tensors() {
        let bytes = || t.read().map_err(|source| PthError::Tensor { path: path.to_path_buf(), name: name.clone(), source });
        let values: Vec<f32> = match t.dtype() {
            DType::F32 => bytes()?.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect(),
            DType::F64 => bytes()?.chunks_exact(8).map(|b| f64::from_ne_bytes(b.try_into().expect("8 bytes")) as f32).collect(),
            DType::F16 => bytes()?.chunks_exact(2).map(|b| f16::from_ne_bytes([b[0], b[1]]).to_f32()).collect(),
            DType::BF16 => bytes()?.chunks_exact(2).map(|b| bf16::from_ne_bytes([b[0], b[1]]).to_f32()).collect(),
            _ => {
                out.integers.insert(name.clone());
                continue;
            }
        };
        if values.iter().any(|v| !v.is_finite()) {
            return Err(PthError::NonFinite { path: path.to_path_buf(), name: name.clone() });
        }
        out.floats.insert(name.clone(), HostTensor { shape: t.shape().to_vec(), values });
    }
    Ok(out)
}

/// A tensor to write: f32 values, or an int64 one (a batch norm's `num_batches_tracked`).
pub enum PthTensor {
    Float(HostTensor),
    Long { shape: Vec<usize>, values: Vec<i64> },
}

/// Writes `tensors` (in this order) as a state dict that `torch.load` reads, atomically.
pub fn write(path: &Path, tensors: &[(String, PthTensor)]) -> Result<(), PthError> {
    // The zip's top folder: torch.save names it after the file; any name loads.
    let root =
        path.file_stem().and_then(|s| s.to_str()).filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).unwrap_or("archive");
    let mut files = vec![(format!("{root}/data.pkl"), pickle_state_dict(tensors)), (format!("{root}/byteorder"), b"little".to_vec())];
    for (key, (_, t)) in tensors.iter().enumerate() {
        let bytes = match t {
            PthTensor::Float(h) => h.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            PthTensor::Long { values, .. } => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        files.push((format!("{root}/data/{key}"), bytes));
    }
    files.push((format!("{root}/version"), b"3\n".to_vec()));
    // torch.save starts every record's data at a multiple of 64 bytes, so that
    // torch.load(mmap=True) can map each storage in place; the same here.
    crate::fsutil::write_zip(path, files.into_iter(), 64).map_err(|source| PthError::Write { path: path.to_path_buf(), source })
}

/// The pickle of an `OrderedDict` of tensors, storage `i` holding tensor `i`.
fn pickle_state_dict(tensors: &[(String, PthTensor)]) -> Vec<u8> {
    let mut p = Pickle(vec![0x80, 2]); // PROTO 2
    p.global("collections", "OrderedDict");
    p.op(b')'); // EMPTY_TUPLE
    p.op(b'R'); // REDUCE: OrderedDict()
    p.op(b'('); // MARK
    for (key, (name, t)) in tensors.iter().enumerate() {
        let (shape, storage, numel) = match t {
            PthTensor::Float(h) => (&h.shape, "FloatStorage", h.values.len()),
            PthTensor::Long { shape, values } => (shape, "LongStorage", values.len()),
        };
        p.unicode(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b'('); // the arguments
        p.op(b'('); // the storage's persistent id
        p.unicode("storage");
        p.global("torch", storage);
        p.unicode(&key.to_string());
        p.unicode("cpu");
        p.int(numel);
        p.op(b't'); // TUPLE
        p.op(b'Q'); // BINPERSID
        p.int(0); // storage offset
        p.tuple(shape.iter().copied());
        // Row-major strides.
        let strides: Vec<usize> = (0..shape.len()).map(|i| shape[i + 1..].iter().product()).collect();
        p.tuple(strides.into_iter());
        p.op(0x89); // NEWFALSE: requires_grad
        p.global("collections", "OrderedDict"); // backward hooks: empty
        p.op(b')');
        p.op(b'R');
        p.op(b't');
        p.op(b'R'); // _rebuild_tensor_v2(*args)
    }
    p.op(b'u'); // SETITEMS
    p.op(b'.'); // STOP
    p.0
}

struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, code: u8) {
        self.0.push(code);
    }
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0.extend(format!("{module}\n{name}\n").bytes());
    }
    fn unicode(&mut self, s: &str) {
        self.0.push(b'X'); // BINUNICODE
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.bytes());
    }
    fn int(&mut self, v: usize) {
        if v <= i32::MAX as usize {
            self.0.push(b'J'); // BININT
            self.0.extend((v as i32).to_le_bytes());
        } else {
            self.0.push(0x8a); // LONG1
            self.0.push(8);
            self.0.extend((v as i64).to_le_bytes());
        }
    }
    fn tuple(&mut self, items: impl Iterator<Item = usize>) {
        self.op(b'(');
        for v in items {
            self.int(v);
        }
        self.op(b't');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What we write, an independent reader (pytorch-reader) reads back exactly; the same
    /// format is loaded by torch itself in tests/fixtures/dcgan_pytorch_check.py.
    #[test]
    fn written_state_dicts_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("net.pth");
        let w = HostTensor { shape: vec![2, 3, 1, 1], values: (0..6).map(|i| i as f32 * 0.5 - 1.0).collect() };
        let b = HostTensor { shape: vec![], values: vec![7.25] };
        let tensors = vec![
            ("main.0.weight".to_string(), PthTensor::Float(w.clone())),
            ("main.1.num_batches_tracked".to_string(), PthTensor::Long { shape: vec![], values: vec![1234] }),
            ("scalar".to_string(), PthTensor::Float(b.clone())),
        ];
        write(&path, &tensors).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.floats["main.0.weight"], w);
        assert_eq!(back.floats["scalar"], b);
        assert!(back.integers.contains("main.1.num_batches_tracked"));
        assert_eq!(back.floats.len(), 2);
        // As torch.save lays them out: stored, each record's data 64-byte aligned (what
        // torch.load(mmap=True) maps in place; checked with PyTorch 2.15, weights_only and mmap).
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        for i in 0..zip.len() {
            let f = zip.by_index(i).unwrap();
            assert_eq!(f.compression(), zip::CompressionMethod::Stored);
            let start = f.data_start().unwrap();
            assert_eq!(start % 64, 0, "{:?} starts at {start}", f.name());
        }
    }

    /// tests/fixtures/half.pth holds float16 and bfloat16 tensors written by torch.save
    /// (tests/fixtures/half_pth_reference.py): normal, negative, inexact and subnormal values.
    #[test]
    fn half_precision_tensors_read_as_their_values() {
        let path = crate::fixture("half.pth");
        let sd = read(&path).unwrap();
        assert_eq!(sd.floats["f16"].values, vec![1.0, -2.0, 0.333_251_95, 2f32.powi(-24), 65504.0]);
        assert_eq!(sd.floats["bf16"].values, vec![1.0, -2.0, 0.333_984_38, 2f32.powi(-126), 3.389_531_4e38]);
        assert_eq!(sd.floats["f16"].shape, vec![5]);
    }

    #[test]
    fn a_file_that_is_not_a_checkpoint_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pth");
        std::fs::write(&path, b"this is not a checkpoint").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("not a PyTorch checkpoint"), "{err}");
    }
}
