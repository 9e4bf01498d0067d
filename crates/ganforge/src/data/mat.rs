//! The MATLAB level-5 MAT-file container ("MAT-File Format", The MathWorks, R2024a, ch. 1),
//! as far as numeric arrays go: what SVHN's `train_32x32.mat` and friends, and files written by
//! `scipy.io.savemat`, hold. Elements are read as a stream, so a compressed (miCOMPRESSED)
//! variable is inflated straight from the file without holding its compressed bytes.
//!
//! Arrays keep MATLAB's column-major order: element (i0, i1, ..., ik) of an array with
//! dimensions (d0, d1, ...) is at i0 + d0 * (i1 + d1 * (i2 + ...)).

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::ZlibDecoder;

use super::DataError;

// Data types (table 1-1 of the format description).
const MI_INT8: u32 = 1;
const MI_UINT8: u32 = 2;
const MI_INT16: u32 = 3;
const MI_UINT16: u32 = 4;
const MI_INT32: u32 = 5;
const MI_UINT32: u32 = 6;
const MI_SINGLE: u32 = 7;
const MI_DOUBLE: u32 = 9;
const MI_INT64: u32 = 12;
const MI_UINT64: u32 = 13;
const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

// Array classes (table 1-3); 6..=15 are the numeric ones.
const MX_DOUBLE: u8 = 6;
const MX_UINT64: u8 = 15;
const COMPLEX_FLAG: u32 = 0x0800;

/// Values of a numeric array: bytes as they are when MATLAB stored uint8 (images), otherwise
/// widened to f64 (labels and such, which are small).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    U8(Vec<u8>),
    F64(Vec<f64>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::U8(v) => v.len(),
            Values::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A real numeric array, column-major.
#[derive(Debug, Clone)]
pub struct MatArray {
    pub dims: Vec<usize>,
    pub values: Values,
}

#[derive(Clone, Copy)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }
}

/// Reads the numeric variables named in `wanted` from a MAT v5 file; other variables and
/// non-numeric ones (text, cells, structs, sparse) are skipped. A wanted name that is absent
/// is simply not in the result, so that the caller can say what it needed.
pub fn read_mat(path: &Path, wanted: &[&str]) -> Result<HashMap<String, MatArray>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::Io { path: path.to_path_buf(), source: e })?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let bad = |m: String| DataError::BadFile { path: path.to_path_buf(), message: m };

    let mut header = [0u8; 128];
    read_exact(&mut r, &mut header).map_err(|_| bad("shorter than a MAT-file header (128 bytes)".into()))?;
    let text = String::from_utf8_lossy(&header[..116]);
    if text.starts_with("MATLAB 7.3") || header.starts_with(b"\x89HDF") {
        return Err(bad("a MAT v7.3 file (HDF5), which is not supported; re-save it in MATLAB with save(..., '-v7')".into()));
    }
    let endian = match &header[126..128] {
        b"IM" => Endian::Little,
        b"MI" => Endian::Big,
        _ => return Err(bad("not a MAT v5 file (no MATLAB 5.0 header; level-4 files are not supported)".into())),
    };

    let mut out = HashMap::new();
    loop {
        let Some((ty, n, small)) = read_tag(&mut r, endian).map_err(|e| bad(format!("cannot read the next element: {e}")))? else {
            break; // clean end of file
        };
        match ty {
            MI_COMPRESSED => {
                let mut inflated = ZlibDecoder::new((&mut r).take(n as u64));
                let what = "a compressed element";
                let (ity, in_n, _) = read_tag(&mut inflated, endian)
                    .map_err(|e| bad(format!("{what} is truncated or corrupt: {e}")))?
                    .ok_or_else(|| bad(format!("{what} is empty")))?;
                if ity == MI_MATRIX {
                    let mut body = (&mut inflated).take(in_n as u64);
                    if let Some((name, arr)) = read_matrix(&mut body, endian, in_n, wanted).map_err(|e| bad(describe(what, e)))? {
                        out.insert(name, arr);
                    }
                }
                // Whatever is left (other element kinds, zlib's trailer) is skipped, and so are
                // bytes after the zlib stream that the element's length still covers.
                std::io::copy(&mut inflated, &mut std::io::sink()).map_err(|e| bad(describe(what, e)))?;
                let rest = inflated.into_inner().limit();
                skip(&mut r, rest).map_err(|e| bad(describe(what, e)))?;
            }
            MI_MATRIX => {
                let mut body = (&mut r).take(n as u64);
                let found = read_matrix(&mut body, endian, n, wanted).map_err(|e| bad(describe("a matrix element", e)))?;
                // Skip what read_matrix left (a variable not wanted, an imaginary part).
                let left = body.limit();
                skip(&mut r, left + padding(n)).map_err(|e| bad(format!("truncated after a matrix: {e}")))?;
                if let Some((name, arr)) = found {
                    out.insert(name, arr);
                }
            }
            _ if small.is_some() => {}
            _ => skip(&mut r, n as u64 + padding(n)).map_err(|e| bad(format!("truncated element of type {ty}: {e}")))?,
        }
    }
    Ok(out)
}

/// "truncated or corrupt" for I/O and zlib failures; the reader's own findings as they are.
fn describe(what: &str, e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::InvalidData {
        format!("{what}: {e}")
    } else {
        format!("{what} is truncated or corrupt: {e}")
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<()> {
    r.read_exact(buf)
}

/// Bytes of padding after `n` data bytes, to the next multiple of 8.
fn padding(n: u32) -> u64 {
    (8 - (n as u64 % 8)) % 8
}

fn skip(r: &mut impl Read, n: u64) -> std::io::Result<()> {
    let copied = std::io::copy(&mut r.take(n), &mut std::io::sink())?;
    if copied < n {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{} bytes missing", n - copied)));
    }
    Ok(())
}

/// A tag: (type, byte count, the 4 data bytes of a small element). None at a clean end of input.
fn read_tag(r: &mut impl Read, e: Endian) -> std::io::Result<Option<(u32, u32, Option<[u8; 4]>)>> {
    let mut t = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match r.read(&mut t[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "cut inside an element tag")),
            k => got += k,
        }
    }
    let first = e.u32([t[0], t[1], t[2], t[3]]);
    // The small data element format packs the byte count into the upper half of the first word.
    if first >> 16 != 0 {
        return Ok(Some((first & 0xffff, first >> 16, Some([t[4], t[5], t[6], t[7]]))));
    }
    Ok(Some((first, e.u32([t[4], t[5], t[6], t[7]]), None)))
}

/// One sub-element of a matrix: its type and bytes (padding consumed).
fn read_sub(r: &mut impl Read, e: Endian) -> std::io::Result<(u32, Vec<u8>)> {
    let (ty, n, small) = read_tag(r, e)?.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "matrix ends early"))?;
    Ok((ty, read_data(r, n, small, 1 << 24)?))
}

/// The `n` data bytes of an element whose tag was just read (padding consumed). At most 1 MiB
/// is allocated before bytes arrive, and at most `reserve` in all up front; beyond that the
/// buffer grows as bytes arrive, so a lying count cannot allocate more than the file holds.
fn read_data(r: &mut impl Read, n: u32, small: Option<[u8; 4]>, reserve: usize) -> std::io::Result<Vec<u8>> {
    if let Some(d) = small {
        return Ok(d[..n.min(4) as usize].to_vec());
    }
    // Room for the whole element only once its first bytes have arrived: a length field alone
    // (a 300-byte file can claim a gigabyte) must not reserve memory. Then all of it at once,
    // not by doubling, which would need twice the memory of SVHN's 225 MB array.
    const PROBE: usize = 1 << 20;
    let n_bytes = n as usize;
    let mut data = Vec::with_capacity(n_bytes.min(reserve).min(PROBE));
    let mut rest = r.take(n as u64);
    (&mut rest).take(PROBE as u64).read_to_end(&mut data)?;
    if data.len() == PROBE && n_bytes > PROBE {
        data.reserve_exact(n_bytes.min(reserve).saturating_sub(data.len()));
        rest.read_to_end(&mut data)?;
    }
    if data.len() != n as usize {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{} of {n} bytes present", data.len())));
    }
    skip(r, padding(n))?;
    Ok(data)
}

/// The body of an miMATRIX element: flags, dimensions, name, real part. Returns the array when
/// its name is wanted and it is a real numeric array; the rest of the body is left to the caller.
fn read_matrix(r: &mut impl Read, e: Endian, n: u32, wanted: &[&str]) -> std::io::Result<Option<(String, MatArray)>> {
    if n == 0 {
        return Ok(None); // an empty placeholder element
    }
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let (_, flags) = read_sub(r, e)?;
    if flags.len() < 4 {
        return Err(invalid("array flags too short".into()));
    }
    let flags = e.u32([flags[0], flags[1], flags[2], flags[3]]);
    let class = (flags & 0xff) as u8;
    let (dty, dims) = read_sub(r, e)?;
    if dty != MI_INT32 || dims.len() % 4 != 0 {
        return Err(invalid("dimensions are not int32".into()));
    }
    let dims: Vec<usize> = dims.chunks(4).map(|c| e.u32([c[0], c[1], c[2], c[3]]) as i32).map(|d| d.max(0) as usize).collect();
    let (_, name) = read_sub(r, e)?;
    let name = String::from_utf8_lossy(&name).into_owned();
    if !wanted.contains(&name.as_str()) || !(MX_DOUBLE..=MX_UINT64).contains(&class) {
        return Ok(None);
    }
    if flags & COMPLEX_FLAG != 0 {
        return Err(invalid(format!("variable '{name}' is complex")));
    }
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| invalid(format!("variable '{name}' is too large")))?;
    // The data's byte count must match the dimensions before anything is allocated for it.
    let (ty, n, small) = read_tag(r, e)?.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "matrix ends early"))?;
    let width = type_width(ty).ok_or_else(|| invalid(format!("variable '{name}' has unknown data type {ty}")))?;
    if count.checked_mul(width) != Some(n as usize) {
        return Err(invalid(format!("variable '{name}' holds {n} bytes of type {ty}, but its dimensions {dims:?} need {count} values")));
    }
    // Checked against the dimensions above, so the whole array (up to 1 GiB) is reserved at once.
    let bytes = read_data(r, n, small, 1 << 30)?;
    let values = decode_values(ty, bytes, e).ok_or_else(|| invalid(format!("variable '{name}' has unknown data type {ty}")))?;
    if values.len() != count {
        return Err(invalid(format!("variable '{name}' holds {} values, but its dimensions {dims:?} need {count}", values.len())));
    }
    Ok(Some((name, MatArray { dims, values })))
}

fn type_width(ty: u32) -> Option<usize> {
    Some(match ty {
        MI_INT8 | MI_UINT8 => 1,
        MI_INT16 | MI_UINT16 => 2,
        MI_INT32 | MI_UINT32 | MI_SINGLE => 4,
        MI_DOUBLE | MI_INT64 | MI_UINT64 => 8,
        _ => return None,
    })
}

fn decode_values(ty: u32, b: Vec<u8>, e: Endian) -> Option<Values> {
    macro_rules! widen {
        ($t:ty, $w:expr) => {{
            let f = |c: &[u8]| {
                let a: [u8; $w] = c.try_into().expect("chunk of the type's width");
                match e {
                    Endian::Little => <$t>::from_le_bytes(a) as f64,
                    Endian::Big => <$t>::from_be_bytes(a) as f64,
                }
            };
            if b.len() % $w != 0 {
                return None;
            }
            Values::F64(b.chunks_exact($w).map(f).collect())
        }};
    }
    Some(match ty {
        MI_UINT8 => Values::U8(b), // moved, not copied: SVHN's extra X is 1.6 GB
        MI_INT8 => Values::F64(b.iter().map(|&v| v as i8 as f64).collect()),
        MI_INT16 => widen!(i16, 2),
        MI_UINT16 => widen!(u16, 2),
        MI_INT32 => widen!(i32, 4),
        MI_UINT32 => widen!(u32, 4),
        MI_SINGLE => widen!(f32, 4),
        MI_DOUBLE => widen!(f64, 8),
        MI_INT64 => widen!(i64, 8),
        MI_UINT64 => widen!(u64, 8),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixture;

    #[test]
    fn reads_scipy_files_compressed_or_not() {
        for f in ["svhn_5.mat", "svhn_5_plain.mat"] {
            let m = read_mat(&fixture(f), &["X", "y", "note"]).unwrap();
            let x = &m["X"];
            assert_eq!(x.dims, vec![32, 32, 3, 5], "{f}");
            let Values::U8(px) = &x.values else { panic!("X is uint8") };
            // make_fixtures.py: image 0, channel 0 has row r at 8r; column-major, so
            // (r, c=5, ch=0, n=0) sits at r + 32 * 5.
            assert!((0..32).all(|r| px[r + 32 * 5] == 8 * r as u8), "{f}");
            let y: Vec<f64> = match &m["y"].values {
                Values::U8(v) => v.iter().map(|&b| b as f64).collect(),
                Values::F64(v) => v.clone(),
            };
            assert_eq!(y, vec![10.0, 1.0, 2.0, 10.0, 9.0], "{f}");
            assert!(!m.contains_key("note"), "text variables are skipped");
        }
    }

    #[test]
    fn bad_files() {
        let e = read_mat(&fixture("svhn_truncated.mat"), &["X"]).unwrap_err().to_string();
        assert!(e.contains("svhn_truncated.mat") && e.contains("truncated or corrupt"), "{e}");
        let e = read_mat(&fixture("latents_3x4.npy"), &["X"]).unwrap_err().to_string();
        assert!(e.contains("not a MAT v5 file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.mat");
        std::fs::write(&short, b"MATLAB 5.0").unwrap();
        assert!(read_mat(&short, &["X"]).unwrap_err().to_string().contains("shorter than a MAT-file header"));
        let mut v73 = vec![b' '; 128];
        v73[..19].copy_from_slice(b"MATLAB 7.3 MAT-file");
        let p = dir.path().join("v73.mat");
        std::fs::write(&p, &v73).unwrap();
        assert!(read_mat(&p, &["X"]).unwrap_err().to_string().contains("'-v7'"));
    }
}
