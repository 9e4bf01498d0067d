//! NumPy `.npy` files: float32, for exchanging latents and raw outputs with other tools;
//! uint8, the format of Quick, Draw!'s bitmaps; float64, for feature statistics. Version 1.0 is
//! written; versions 1.0 to 3.0 are read, C order only. Also `.npz` archives (`np.savez` and
//! `np.savez_compressed`), the container of pytorch-fid's statistics files.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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

/// The bytes of a version-1.0 header for an array of dtype `descr` (e.g. `<f4`, `|u1`) and
/// `shape` in C order; the data follows it.
pub fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_txt = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
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
    let mut out = header("<f4", shape);
    values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

/// A float64 array, as NumPy keeps statistics.
pub fn encode_f64(shape: &[usize], values: &[f64]) -> Vec<u8> {
    let mut out = header("<f8", shape);
    values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
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

/// Writes named `.npy` arrays as an `.npz` archive (stored, as `np.savez`; NumPy and
/// pytorch-fid read it like a compressed one), atomically.
pub fn write_npz(path: &Path, arrays: &[(&str, Vec<u8>)]) -> Result<(), NpyError> {
    let io = |source: std::io::Error| NpyError::Io { path: path.to_path_buf(), source };
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(true);
    for (name, bytes) in arrays {
        zip.start_file(format!("{name}.npy"), stored).map_err(|e| io(e.into()))?;
        zip.write_all(bytes).map_err(io)?;
    }
    let bytes = zip.finish().map_err(|e| io(e.into()))?.into_inner();
    crate::fsutil::write_atomic(path, &bytes).map_err(io)
}

pub fn read(path: &Path) -> Result<NpyF32, NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io { path: path.to_path_buf(), source })?;
    decode(path, &bytes)
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
        write_npz(&path, &[("mu", encode_f64(&[2], &[1.5, -2.0])), ("x", encode(&[1], &[3.0]))]).unwrap();
        let got = read_npz(&path, &["x", "mu"]).unwrap();
        assert_eq!(decode_f64(&path, &got["mu"]).unwrap(), NpyF64 { shape: vec![2], values: vec![1.5, -2.0] });
        assert_eq!(decode_f64(&path, &got["x"]).unwrap().values, vec![3.0]);
        let e = read_npz(&path, &["sigma"]).unwrap_err().to_string();
        assert!(e.contains("no array 'sigma'") && e.contains("mu, x"), "{e}");
        std::fs::write(&path, b"not a zip").unwrap();
        assert!(read_npz(&path, &["mu"]).unwrap_err().to_string().contains("not an .npz"));
    }

    /// A file written by NumPy (`np.save`), from tests/fixtures/make_fixtures.py.
    #[test]
    fn reads_numpy_output() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/latents_3x4.npy"));
        let a = read(path).unwrap();
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
        assert_eq!(decode_f64(Path::new("x"), &f8).unwrap().values, vec![0.0]);
        assert!(decode_u8(Path::new("x"), &encode(&[1], &[0.0])).unwrap_err().to_string().contains("expected '|u1'"));
        let mut short = encode(&[3], &[0.0, 1.0, 2.0]);
        short.pop();
        assert!(decode(Path::new("x"), &short).unwrap_err().to_string().contains("needs 12 bytes"));
        assert!(decode(Path::new("x"), b"hello world").unwrap_err().to_string().contains("not a .npy"));
    }
}
