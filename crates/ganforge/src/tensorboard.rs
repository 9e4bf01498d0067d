//! TensorBoard event files (`RUN/tb/events.out.tfevents.*`), readable by `tensorboard --logdir
//! runs` and `wandb sync --sync-tensorboard`: scalars, PNG images and text.
//!
//! The format is TFRecord framing around `tensorflow.Event` protocol buffers:
//! ```text
//! u64 length (little-endian) | u32 masked CRC-32C of the length | data | u32 masked CRC-32C of data
//! ```
//! with CRC-32C masked as `((crc >> 15) | (crc << 17)) + 0xa282ead8`. The few messages needed
//! (Event, Summary, Summary.Value, Summary.Image, TensorProto, SummaryMetadata, SessionLog) are
//! encoded here by hand: field numbers from tensorflow/core/util/event.proto and
//! tensorflow/core/framework/summary.proto. tests/fixtures/tensorboard_read.py reads a file
//! back with TensorBoard's own EventAccumulator.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Appends events to one event file.
pub struct EventWriter {
    path: PathBuf,
    file: File,
}

/// Protocol-buffer encoding of the few field kinds the messages use.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
        varint(out, ((field as u64) << 3) | wire as u64);
    }
    pub fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
        key(out, field, 0);
        varint(out, v);
    }
    pub fn double(out: &mut Vec<u8>, field: u32, v: f64) {
        key(out, field, 1);
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn float(out: &mut Vec<u8>, field: u32, v: f32) {
        key(out, field, 5);
        out.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(out: &mut Vec<u8>, field: u32, v: &[u8]) {
        key(out, field, 2);
        varint(out, v.len() as u64);
        out.extend_from_slice(v);
    }
}

fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

fn wall_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// A Summary.Value: its tag and the rest of its fields, already encoded.
fn value(tag: &str, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    pb::bytes(&mut v, 1, tag.as_bytes());
    v.extend_from_slice(body);
    v
}

impl EventWriter {
    /// A new event file in `dir` (created if needed), opened by the file-version event.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let now = wall_time();
        // TensorBoard reads a folder's files in the order of their names: the time, to the
        // microsecond, comes first, so a resumed session's file follows the one it continues.
        let (secs, micros) = (now as u64, ((now.fract() * 1e6) as u64).min(999_999));
        let path = dir.join(format!("events.out.tfevents.{secs}.{micros:06}.ganforge.{}", std::process::id()));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let mut w = Self { path, file };
        let mut event = Vec::new();
        pb::double(&mut event, 1, wall_time());
        pb::bytes(&mut event, 3, b"brain.Event:2");
        w.record(&event)?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let mut rec = Vec::with_capacity(data.len() + 16);
        rec.extend_from_slice(&len);
        rec.extend_from_slice(&masked_crc(&len).to_le_bytes());
        rec.extend_from_slice(data);
        rec.extend_from_slice(&masked_crc(data).to_le_bytes());
        self.file.write_all(&rec)?;
        self.file.flush()
    }

    /// An Event at `step` holding a Summary of `values`.
    fn summary(&mut self, step: u64, values: &[Vec<u8>]) -> std::io::Result<()> {
        let mut summary = Vec::new();
        for v in values {
            pb::bytes(&mut summary, 1, v);
        }
        let mut event = Vec::new();
        pb::double(&mut event, 1, wall_time());
        pb::uint(&mut event, 2, step);
        pb::bytes(&mut event, 5, &summary);
        self.record(&event)
    }

    /// Scalars at one step, as (tag, value).
    pub fn scalars(&mut self, step: u64, scalars: &[(&str, f64)]) -> std::io::Result<()> {
        let values: Vec<Vec<u8>> = scalars
            .iter()
            .map(|(tag, v)| {
                let mut body = Vec::new();
                pb::float(&mut body, 2, *v as f32); // simple_value
                value(tag, &body)
            })
            .collect();
        self.summary(step, &values)
    }

    /// A PNG image of `width` x `height` with `channels` (1 grey, 3 RGB).
    pub fn image(&mut self, tag: &str, step: u64, png: &[u8], width: u32, height: u32, channels: u32) -> std::io::Result<()> {
        let mut image = Vec::new();
        pb::uint(&mut image, 1, height as u64);
        pb::uint(&mut image, 2, width as u64);
        pb::uint(&mut image, 3, channels as u64); // colorspace: 1 grey, 3 RGB
        pb::bytes(&mut image, 4, png);
        let mut body = Vec::new();
        pb::bytes(&mut body, 4, &image);
        self.summary(step, &[value(tag, &body)])
    }

    /// Text, shown by TensorBoard's text plugin (a string tensor tagged with its plugin name).
    pub fn text(&mut self, tag: &str, step: u64, text: &str) -> std::io::Result<()> {
        let mut tensor = Vec::new();
        pb::uint(&mut tensor, 1, 7); // dtype DT_STRING
        pb::bytes(&mut tensor, 2, &[]); // tensor_shape: a scalar
        pb::bytes(&mut tensor, 8, text.as_bytes()); // string_val
        let mut plugin = Vec::new();
        pb::bytes(&mut plugin, 1, b"text"); // PluginData.plugin_name
        let mut metadata = Vec::new();
        pb::bytes(&mut metadata, 1, &plugin); // SummaryMetadata.plugin_data
        let mut body = Vec::new();
        pb::bytes(&mut body, 8, &tensor);
        pb::bytes(&mut body, 9, &metadata);
        self.summary(step, &[value(tag, &body)])
    }

    /// Marks a restart at `step`: TensorBoard drops what earlier files logged from this step on
    /// (a session killed after its last checkpoint had logged steps that the resumed one logs
    /// again).
    pub fn restart(&mut self, step: u64) -> std::io::Result<()> {
        let mut session_log = Vec::new();
        pb::uint(&mut session_log, 1, 1); // status START
        let mut event = Vec::new();
        pb::double(&mut event, 1, wall_time());
        pb::uint(&mut event, 2, step);
        pb::bytes(&mut event, 7, &session_log); // Event.session_log
        self.record(&event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masked CRC-32C of TFRecord, against values computed with TensorFlow's
    /// `tensorflow.python.lib.io.tf_record` framing (crc32c of b"" is 0, of b"123456789" is
    /// 0xe3069283, the standard check value).
    #[test]
    fn crc_and_framing() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b""), 0xa282_ead8);
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path()).unwrap();
        w.scalars(3, &[("loss/d", 0.5)]).unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        // Two records, each framed: length, its CRC, the data, the data's CRC.
        let mut at = 0;
        let mut records = 0;
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            assert_eq!(u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()), masked_crc(&bytes[at..at + 8]));
            let data = &bytes[at + 12..at + 12 + len];
            assert_eq!(u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap()), masked_crc(data));
            at += 16 + len;
            records += 1;
        }
        assert_eq!(records, 2);
        assert!(w.path().file_name().unwrap().to_str().unwrap().starts_with("events.out.tfevents."));
    }

    #[test]
    fn varints() {
        let mut v = Vec::new();
        pb::varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
    }
}
