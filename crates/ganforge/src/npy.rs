//! NumPy `.npy` files: float32, for exchanging latents and raw outputs with other tools;
//! uint8, the format of Quick, Draw!'s bitmaps; float64, for feature statistics. Version 1.0 is
//! written; versions 1.0 to 3.0 are read, C order only. Also `.npz` archives (`np.savez` and
//! `np.savez_compressed`), the container of pytorch-fid's statistics files.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::fsutil::AtomicFile;

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
}

/// A float32 array: shape and values in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyF32 {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// The header of a version 1.0 `.npy` file holding `descr` values (`'<f4'`, `'|u1'`, `'<i8'`) of
/// `shape`, in C order: the data bytes follow it.
pub fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_txt = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

pub fn encode(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let mut out = header("'<f4'", shape);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

pub fn write(path: &Path, shape: &[usize], values: &[f32]) -> Result<(), NpyError> {
    crate::fsutil::write_atomic(path, &encode(shape, values)).map_err(|source| NpyError::Io { path: path.to_path_buf(), source })
}

/// Value of `'key': ...` in the header dict, up to the next top-level comma or brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find([',', '}'])? };
    Some(rest[..end].trim())
}

/// An array of one-byte values (`|u1`, e.g. Quick, Draw!'s bitmaps): shape and values in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyU8 {
    pub shape: Vec<usize>,
    pub values: Vec<u8>,
}

/// Checks the magic, version, dtype (one of `accepted`: descr such as `'<f4'` and item size)
/// and order, and returns the shape, the data bytes (whose length is checked against the
/// shape) and which of `accepted` the dtype is.
fn parse<'a>(path: &Path, bytes: &'a [u8], accepted: &[(&str, usize)], hint: &str) -> Result<(Vec<usize>, &'a [u8], usize), NpyError> {
    let bad = |m: String| NpyError::Format { path: path.to_path_buf(), message: m };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (missing the \\x93NUMPY magic)".into()));
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(hstart..hstart.saturating_add(hlen))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated or non-text .npy header".into()))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad("header has no 'descr'".into()))?;
    let Some(which) = accepted.iter().position(|(d, _)| *d == descr) else {
        let want = accepted.iter().map(|(d, _)| *d).collect::<Vec<_>>().join(" or ");
        return Err(bad(format!("dtype {descr} is not supported here: expected {want} ({hint})")));
    };
    let item_size = accepted[which].1;
    if dict_value(header, "fortran_order") != Some("False") {
        return Err(bad("Fortran-order arrays are not supported: save with np.ascontiguousarray".into()));
    }
    let shape_txt = dict_value(header, "shape").ok_or_else(|| bad("header has no 'shape'".into()))?;
    let shape = shape_txt
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad(format!("bad shape {shape_txt}")))?;
    let data = &bytes[hstart + hlen..];
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad("shape overflows".into()))?;
    if n.checked_mul(item_size) != Some(data.len()) {
        return Err(bad(format!("shape {shape:?} needs {} bytes of data, the file has {}", n.saturating_mul(item_size), data.len())));
    }
    Ok((shape, data, which))
}

pub fn decode(path: &Path, bytes: &[u8]) -> Result<NpyF32, NpyError> {
    let (shape, data, _) = parse(path, bytes, &[("'<f4'", 4)], "float32: arr.astype(np.float32)")?;
    let values = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok(NpyF32 { shape, values })
}

pub fn decode_u8(path: &Path, bytes: &[u8]) -> Result<NpyU8, NpyError> {
    let (shape, data, _) = parse(path, bytes, &[("'|u1'", 1)], "uint8")?;
    Ok(NpyU8 { shape, values: data.to_vec() })
}

/// A float array, float64 or float32, read as float64: shape and values in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyF64 {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

pub fn decode_f64(path: &Path, bytes: &[u8]) -> Result<NpyF64, NpyError> {
    let (shape, data, which) = parse(path, bytes, &[("'<f8'", 8), ("'<f4'", 4)], "float64 or float32")?;
    let values = match which {
        0 => data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
        _ => data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64).collect(),
    };
    Ok(NpyF64 { shape, values })
}

/// The largest array an `.npz` entry may unpack to: a 8,192-d float64 covariance (512 MiB),
/// with room; a bigger claim is a damaged or hostile file, not statistics.
const NPZ_ENTRY_LIMIT: u64 = 1 << 30;

/// The `.npy` bytes of the arrays `names` (without `.npy`) in the `.npz` archive at `path`,
/// stored or deflated as `np.savez` and `np.savez_compressed` write them.
pub fn read_npz(path: &Path, names: &[&str]) -> Result<BTreeMap<String, Vec<u8>>, NpyError> {
    let bad = |m: String| NpyError::Format { path: path.to_path_buf(), message: m };
    let file = std::fs::File::open(path).map_err(|source| NpyError::Io { path: path.to_path_buf(), source })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| bad(format!("not an .npz (zip) archive: {e}")))?;
    let have: Vec<String> = zip.file_names().filter_map(Result::ok).map(|n| n.trim_end_matches(".npy").to_string()).collect();
    let mut out = BTreeMap::new();
    for &name in names {
        let mut entry = match zip.by_name(&format!("{name}.npy")) {
            Ok(e) => e,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(bad(format!("no array '{name}' in the archive (it holds: {})", have.join(", "))));
            }
            Err(e) => return Err(bad(format!("array '{name}': {e}"))),
        };
        if entry.size() > NPZ_ENTRY_LIMIT {
            return Err(bad(format!("array '{name}' claims {} bytes, more than the {NPZ_ENTRY_LIMIT} allowed", entry.size())));
        }
        let mut bytes = Vec::with_capacity(entry.size().min(1 << 20) as usize);
        (&mut entry).take(NPZ_ENTRY_LIMIT + 1).read_to_end(&mut bytes).map_err(|e| bad(format!("array '{name}': {e}")))?;
        out.insert(name.to_string(), bytes);
    }
    Ok(out)
}

/// An array of int64 values (`<i8`, e.g. the seeds of a `sample --format npz` file).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyI64 {
    pub shape: Vec<usize>,
    pub values: Vec<i64>,
}

pub fn decode_i64(path: &Path, bytes: &[u8]) -> Result<NpyI64, NpyError> {
    let (shape, data, _) = parse(path, bytes, &[("'<i8'", 8)], "int64")?;
    let values = data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    Ok(NpyI64 { shape, values })
}

pub fn read(path: &Path) -> Result<NpyF32, NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io { path: path.to_path_buf(), source })?;
    decode(path, &bytes)
}

/// The data type of an array in an `.npz` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    U8,
    I64,
    F64,
}

impl Dtype {
    fn descr(self) -> &'static str {
        match self {
            Dtype::U8 => "'|u1'",
            Dtype::I64 => "'<i8'",
            Dtype::F64 => "'<f8'",
        }
    }

    fn size(self) -> u64 {
        match self {
            Dtype::U8 => 1,
            Dtype::I64 | Dtype::F64 => 8,
        }
    }
}

/// An `.npz` file (NumPy's zip of `.npy` arrays, stored uncompressed as `np.savez` writes it)
/// written one array after another, each array in pieces: no array is ever held whole, so
/// its size is bounded by the disk alone (ZIP64 past 4 GiB, which `numpy.load` reads). It
/// appears at its path, complete, on `finish`; dropped unfinished, nothing is left behind.
pub struct NpzWriter {
    zip: zip::ZipWriter<AtomicFile>,
    path: PathBuf,
    /// The array being written: its name and the data bytes it still expects.
    open: Option<(String, u64)>,
}

impl NpzWriter {
    pub fn create(path: &Path) -> Result<Self, NpyError> {
        let file = AtomicFile::create(path).map_err(|source| NpyError::Io { path: path.to_path_buf(), source })?;
        Ok(Self { zip: zip::ZipWriter::new(file), path: path.to_path_buf(), open: None })
    }

    fn io(&self, source: impl Into<std::io::Error>) -> NpyError {
        NpyError::Io { path: self.path.clone(), source: source.into() }
    }

    fn check_complete(&self) -> Result<(), NpyError> {
        match &self.open {
            Some((name, left)) if *left > 0 => {
                Err(NpyError::Format { path: self.path.clone(), message: format!("array {name} is {left} bytes short of its shape") })
            }
            _ => Ok(()),
        }
    }

    /// Starts array `name` (saved as `name.npy`, read back as `npz[name]`); its data, C order,
    /// follows by `write`, exactly as many bytes as the shape says.
    pub fn start_array(&mut self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<(), NpyError> {
        self.check_complete()?;
        let bytes = shape.iter().try_fold(dtype.size(), |a, &d| a.checked_mul(d as u64));
        let bytes = bytes.ok_or_else(|| NpyError::Format { path: self.path.clone(), message: format!("shape {shape:?} overflows") })?;
        let head = header(dtype.descr(), shape);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(bytes + head.len() as u64 >= u32::MAX as u64);
        self.zip.start_file(format!("{name}.npy"), options).map_err(|e| self.io(e))?;
        self.zip.write_all(&head).map_err(|e| self.io(e))?;
        self.open = Some((name.to_string(), bytes));
        Ok(())
    }

    /// The next `bytes` of the open array's data (little-endian values).
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), NpyError> {
        match &mut self.open {
            Some((_, left)) if bytes.len() as u64 <= *left => *left -= bytes.len() as u64,
            _ => {
                let message = format!("{} bytes more than the open array's shape holds", bytes.len());
                return Err(NpyError::Format { path: self.path.clone(), message });
            }
        }
        self.zip.write_all(bytes).map_err(|e| self.io(e))
    }

    /// Closes the zip and puts the file in place, synced.
    pub fn finish(self) -> Result<(), NpyError> {
        self.check_complete()?;
        let path = self.path;
        let io = |e: std::io::Error| NpyError::Io { path: path.clone(), source: e };
        let file = self.zip.finish().map_err(|e| io(e.into()))?;
        file.commit().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_alignment() {
        let bytes = encode(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let a = decode(Path::new("a.npy"), &bytes).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.values[5], 6.5);
        assert_eq!(decode(Path::new("b"), &encode(&[4], &[0.0; 4])).unwrap().shape, vec![4]);
    }

    #[test]
    fn npz_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.npz");
        let f64_bytes = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut w = NpzWriter::create(&path).unwrap();
        w.start_array("mu", Dtype::F64, &[2]).unwrap();
        w.write(&f64_bytes(&[1.5, -2.0])).unwrap();
        w.start_array("x", Dtype::I64, &[1]).unwrap();
        w.write(&7i64.to_le_bytes()).unwrap();
        w.finish().unwrap();
        let got = read_npz(&path, &["x", "mu"]).unwrap();
        assert_eq!(decode_f64(&path, &got["mu"]).unwrap(), NpyF64 { shape: vec![2], values: vec![1.5, -2.0] });
        assert_eq!(decode_i64(&path, &got["x"]).unwrap().values, vec![7]);
        let e = read_npz(&path, &["sigma"]).unwrap_err().to_string();
        assert!(e.contains("no array 'sigma'") && e.contains("mu, x"), "{e}");
        std::fs::write(&path, b"not a zip").unwrap();
        assert!(read_npz(&path, &["mu"]).unwrap_err().to_string().contains("not an .npz"));
    }

    /// A file written by NumPy (`np.save`), from tests/fixtures/make_fixtures.py.
    #[test]
    fn reads_numpy_output() {
        let path = crate::fixture("latents_3x4.npy");
        let a = read(&path).unwrap();
        assert_eq!(a.shape, vec![3, 4]);
        let expect: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
        assert_eq!(a.values, expect);
    }

    #[test]
    fn refuses_other_dtypes_and_bad_sizes() {
        let mut f8 = encode(&[1], &[0.0]);
        let at = f8.windows(3).position(|w| w == b"<f4").unwrap();
        f8[at + 2] = b'8';
        let e = decode(Path::new("x"), &f8).unwrap_err().to_string();
        assert!(e.contains("'<f8' is not supported"), "{e}");
        let f8 = [header("'<f8'", &[1]), 0.5f64.to_le_bytes().to_vec()].concat();
        assert_eq!(decode_f64(Path::new("x"), &f8).unwrap().values, vec![0.5]);
        assert!(decode_u8(Path::new("x"), &encode(&[1], &[0.0])).unwrap_err().to_string().contains("expected '|u1'"));
        let mut short = encode(&[3], &[0.0, 1.0, 2.0]);
        short.pop();
        assert!(decode(Path::new("x"), &short).unwrap_err().to_string().contains("needs 12 bytes"));
        assert!(decode(Path::new("x"), b"hello world").unwrap_err().to_string().contains("not a .npy"));
    }

    #[test]
    fn npz_arrays_are_written_in_pieces_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npz");
        let mut w = NpzWriter::create(&path).unwrap();
        w.start_array("images", Dtype::U8, &[2, 1, 2, 1]).unwrap();
        w.write(&[1, 2]).unwrap();
        w.write(&[3, 4]).unwrap();
        assert!(w.write(&[5]).unwrap_err().to_string().contains("1 bytes more than"));
        w.start_array("seeds", Dtype::I64, &[2]).unwrap();
        w.write(&7i64.to_le_bytes()).unwrap();
        assert!(!path.exists(), "only the temporary exists before finish");
        assert!(w.start_array("x", Dtype::U8, &[1]).unwrap_err().to_string().contains("array seeds is 8 bytes short"));
        w.write(&9i64.to_le_bytes()).unwrap();
        w.finish().unwrap();

        let mut zip = zip::ZipArchive::new(std::fs::File::open(&path).unwrap()).unwrap();
        let mut entry = |name: &str| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut zip.by_name(name).unwrap(), &mut bytes).unwrap();
            bytes
        };
        let images = decode_u8(&path, &entry("images.npy")).unwrap();
        assert_eq!((images.shape, images.values), (vec![2, 1, 2, 1], vec![1, 2, 3, 4]));
        let seeds = decode_i64(&path, &entry("seeds.npy")).unwrap();
        assert_eq!((seeds.shape, seeds.values), (vec![2], vec![7, 9]));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary left");

        // Given up half way: nothing left behind.
        let mut w = NpzWriter::create(&dir.path().join("b.npz")).unwrap();
        w.start_array("images", Dtype::U8, &[4]).unwrap();
        w.write(&[1]).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
