//! IDX files, the format of MNIST and its look-alikes (Fashion-MNIST, KMNIST, EMNIST):
//! a big-endian header `0 0 type ndims`, `ndims` u32 sizes, then the values row-major.
//! Plain or gzip-compressed; only unsigned bytes (type 0x08), the type every image set uses.
//!
//! The header is checked against the bytes that actually follow before anything is allocated
//! from it, so a corrupt header that claims 2^31 images costs nothing.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::DataError;

/// Largest payload accepted (4 GiB): far above any IDX set, far below a runaway header.
const MAX_PAYLOAD: u64 = 1 << 32;

/// A decoded IDX array of bytes.
#[derive(Debug)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

fn bad(path: &Path, msg: impl Into<String>) -> DataError {
    DataError::BadFile { path: path.to_path_buf(), message: msg.into() }
}

/// Parses IDX bytes (already decompressed) or a reader over them.
pub fn read_idx(path: &Path, mut reader: impl Read) -> Result<IdxArray, DataError> {
    let mut magic = [0u8; 4];
    reader.read_exact(&mut magic).map_err(|_| bad(path, "file is shorter than an IDX header (4 bytes)"))?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(bad(
            path,
            format!(
                "wrong magic number {:02x}{:02x}{:02x}{:02x}: not an IDX file (expected 0000 08 0N)",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    if magic[2] != 0x08 {
        return Err(bad(path, format!("IDX value type 0x{:02x} is not supported: only unsigned bytes (0x08) are", magic[2])));
    }
    let ndims = magic[3] as usize;
    if ndims == 0 || ndims > 4 {
        return Err(bad(path, format!("IDX header declares {ndims} dimensions; expected 1 to 4")));
    }
    let mut dims = Vec::with_capacity(ndims);
    for _ in 0..ndims {
        let mut d = [0u8; 4];
        reader.read_exact(&mut d).map_err(|_| bad(path, "truncated IDX header"))?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&n| n <= MAX_PAYLOAD)
        .ok_or_else(|| bad(path, format!("IDX dimensions {dims:?} describe an impossibly large array")))?;
    // Read at most one byte more than the header promises; the buffer grows with the bytes
    // that really arrive, never with what the header claims.
    let mut data = Vec::new();
    reader.take(expected + 1).read_to_end(&mut data).map_err(|e| bad(path, format!("read failed: {e}")))?;
    if (data.len() as u64) < expected {
        return Err(bad(path, format!("truncated: header {dims:?} needs {expected} bytes of data, the file has {}", data.len())));
    }
    if data.len() as u64 > expected {
        return Err(bad(
            path,
            format!("header {dims:?} accounts for {expected} bytes of data, but the file has more: dimensions disagree with the file size"),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Reads an IDX file from disk, gunzipping it if it starts with the gzip magic.
pub fn read_idx_file(path: &Path) -> Result<IdxArray, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::Io { path: path.to_path_buf(), source: e })?;
    read_idx_bytes(path, &bytes)
}

/// As [`read_idx_file`], from bytes in memory (`path` names them in errors).
pub fn read_idx_bytes(path: &Path, bytes: &[u8]) -> Result<IdxArray, DataError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        read_idx(path, flate2::read::GzDecoder::new(bytes))
    } else {
        read_idx(path, bytes)
    }
}

/// Grey images [n, h, w] and optional labels [n] from IDX arrays.
pub struct IdxImages {
    pub n: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
    pub labels: Option<Vec<u8>>,
}

impl IdxImages {
    pub fn from_arrays(path: &Path, images: IdxArray, labels: Option<(PathBuf, IdxArray)>) -> Result<Self, DataError> {
        let [n, height, width] = images.dims[..] else {
            return Err(bad(path, format!("an IDX image file has 3 dimensions [n, h, w]; this one has {:?}", images.dims)));
        };
        if n == 0 || height == 0 || width == 0 {
            return Err(DataError::Empty(format!("{} holds no images ({:?})", path.display(), images.dims)));
        }
        let labels = match labels {
            None => None,
            Some((lpath, l)) => {
                if l.dims != [n] {
                    return Err(bad(&lpath, format!("label file has dimensions {:?}, but the image file has {n} images", l.dims)));
                }
                Some(l.data)
            }
        };
        Ok(Self { n, height, width, pixels: images.data, labels })
    }
}

/// Finds the image file (and its label file, if any) for `idx:PATH`.
pub fn locate(path: &Path) -> Result<(PathBuf, Option<PathBuf>), DataError> {
    let meta = std::fs::metadata(path).map_err(|e| DataError::Io { path: path.to_path_buf(), source: e })?;
    let image = if meta.is_dir() {
        let mut candidates: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| DataError::Io { path: path.to_path_buf(), source: e })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("idx3")))
            .collect();
        candidates.sort();
        // The training split is the one to learn from when a folder holds both.
        let pick = candidates.iter().find(|p| p.to_string_lossy().contains("train")).or(candidates.first()).cloned();
        pick.ok_or_else(|| DataError::Empty(format!("no IDX image file (name containing 'idx3') in {}", path.display())))?
    } else {
        path.to_path_buf()
    };
    let name = image.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let labels = [("images-idx3", "labels-idx1"), ("idx3", "idx1")]
        .iter()
        .filter(|(from, _)| name.contains(from))
        .map(|(from, to)| image.with_file_name(name.replacen(from, to, 1)))
        .find(|p| p.is_file());
    Ok((image, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dims: &[u32]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn parses_a_small_file() {
        let mut bytes = header(&[2, 2, 3]);
        bytes.extend(0..12u8);
        let a = read_idx_bytes(Path::new("x"), &bytes).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data, (0..12).collect::<Vec<u8>>());
    }

    #[test]
    fn gzip_is_transparent() {
        use std::io::Write;
        let mut bytes = header(&[3]);
        bytes.extend([7, 8, 9]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&bytes).unwrap();
        let a = read_idx_bytes(Path::new("x.gz"), &enc.finish().unwrap()).unwrap();
        assert_eq!(a.data, vec![7, 8, 9]);
    }

    #[test]
    fn wrong_magic_truncation_and_size_mismatch_are_errors() {
        let e = read_idx_bytes(Path::new("f"), b"\x89PNG\r\n\x1a\n").unwrap_err().to_string();
        assert!(e.contains("wrong magic number"), "{e}");
        let mut t = header(&[2, 2, 2]);
        t.extend([1, 2, 3]);
        let e = read_idx_bytes(Path::new("f"), &t).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("needs 8 bytes"), "{e}");
        let mut long = header(&[2]);
        long.extend([1, 2, 3]);
        let e = read_idx_bytes(Path::new("f"), &long).unwrap_err().to_string();
        assert!(e.contains("disagree"), "{e}");
        let e = read_idx_bytes(Path::new("f"), &[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap_err().to_string();
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn huge_header_does_not_allocate() {
        // 2^31 images of 28x28: 1.7 TB if believed. Must fail fast on the missing bytes.
        let mut bytes = header(&[1 << 31, 28, 28]);
        bytes.extend([0u8; 100]);
        let e = read_idx_bytes(Path::new("f"), &bytes).unwrap_err().to_string();
        assert!(e.contains("impossibly large"), "{e}");
        let mut bytes = header(&[1 << 24, 28, 28]); // 13 GB: under the u64 limit check? no, over 4 GiB
        bytes.extend([0u8; 100]);
        assert!(read_idx_bytes(Path::new("f"), &bytes).is_err());
        let mut bytes = header(&[1 << 20, 28, 28]); // 822 MB claimed, 100 bytes present
        bytes.extend([0u8; 100]);
        let e = read_idx_bytes(Path::new("f"), &bytes).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
