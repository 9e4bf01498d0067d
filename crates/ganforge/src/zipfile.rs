//! A minimal zip writer: stored (uncompressed) entries with CRC-32, written to a temporary file
//! renamed into place when complete. Enough for Kaggle's submission zip (PNG is already
//! compressed) and for PyTorch's checkpoint container, which `torch.save` also writes stored.

use std::io::Write;
use std::path::Path;

/// Writes a zip of `files` (name, bytes) to `path`, stored, atomically.
pub fn write_zip(path: &Path, files: impl Iterator<Item = (String, Vec<u8>)>) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("zip"), std::process::id()));
    let result = (|| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let mut central = Vec::new();
        let (mut offset, mut count) = (0u64, 0u64);
        // 1980-01-01 00:00, the zip epoch: entries carry no meaningful time.
        let (time, date) = (0u16, (1 << 5) | 1u16);
        for (name, data) in files {
            let mut crc = flate2::Crc::new();
            crc.update(&data);
            let (crc, size, n) = (crc.sum(), data.len() as u32, name.len() as u16);
            if offset > u32::MAX as u64 || data.len() > u32::MAX as usize || count >= u16::MAX as u64 {
                return Err(std::io::Error::other("too large for a zip without ZIP64"));
            }
            let mut local = Vec::with_capacity(30 + name.len());
            local.extend(0x0403_4b50u32.to_le_bytes());
            local.extend(20u16.to_le_bytes()); // version needed: 2.0
            local.extend(0u16.to_le_bytes()); // flags
            local.extend(0u16.to_le_bytes()); // method: stored
            local.extend(time.to_le_bytes());
            local.extend(date.to_le_bytes());
            local.extend(crc.to_le_bytes());
            local.extend(size.to_le_bytes());
            local.extend(size.to_le_bytes());
            local.extend(n.to_le_bytes());
            local.extend(0u16.to_le_bytes()); // extra field length
            local.extend(name.as_bytes());
            out.write_all(&local)?;
            out.write_all(&data)?;

            central.extend(0x0201_4b50u32.to_le_bytes());
            central.extend(20u16.to_le_bytes()); // made by
            central.extend(20u16.to_le_bytes()); // needed
            central.extend(0u16.to_le_bytes());
            central.extend(0u16.to_le_bytes());
            central.extend(time.to_le_bytes());
            central.extend(date.to_le_bytes());
            central.extend(crc.to_le_bytes());
            central.extend(size.to_le_bytes());
            central.extend(size.to_le_bytes());
            central.extend(n.to_le_bytes());
            central.extend([0u8; 8]); // extra, comment, disk number, internal attributes
            central.extend(0u32.to_le_bytes()); // external attributes
            central.extend((offset as u32).to_le_bytes());
            central.extend(name.as_bytes());
            offset += local.len() as u64 + data.len() as u64;
            count += 1;
        }
        out.write_all(&central)?;
        let mut end = Vec::with_capacity(22);
        end.extend(0x0605_4b50u32.to_le_bytes());
        end.extend([0u8; 4]); // disk numbers
        end.extend((count as u16).to_le_bytes());
        end.extend((count as u16).to_le_bytes());
        end.extend((central.len() as u32).to_le_bytes());
        end.extend((offset as u32).to_le_bytes());
        end.extend(0u16.to_le_bytes()); // comment length
        out.write_all(&end)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    match result {
        Ok(()) => std::fs::rename(&tmp, path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}
