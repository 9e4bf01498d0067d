//! `data fetch` against a local HTTP server: verified downloads, unpacking, resuming after a
//! cut connection, and refusing bytes that are not the published ones.

mod common;

use std::path::Path;

use common::http_server::Server;
use ganforge::data::fetch::{fetch, locate, sha256_file, Dataset, FetchError, FetchEvent, FetchOptions, RemoteFile};

/// A CIFAR-10 binary archive as the publisher lays it out, with `n` records (record k has
/// label k % 10 and every pixel k).
fn cifar_tgz(n: usize) -> Vec<u8> {
    let records: Vec<u8> = (0..n).flat_map(|k| std::iter::once((k % 10) as u8).chain(std::iter::repeat_n(k as u8, 3072))).collect();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    let mut h = tar::Header::new_gnu();
    h.set_size(records.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "cifar-10-batches-bin/data_batch_1.bin", &records[..]).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

fn sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn dataset(server: &Server, name: &str, file: &str, bytes: &[u8], kind: &'static str, entry: &str) -> Dataset {
    let f = RemoteFile { name: file.into(), url: format!("{}/files/{file}", server.url), size: bytes.len() as u64, sha256: sha(bytes) };
    Dataset { name: name.into(), files: vec![f], kind, entry: entry.into() }
}

fn quiet() -> impl FnMut(FetchEvent) {
    |_| {}
}

#[test]
fn downloads_verifies_unpacks_and_the_bare_name_finds_it() {
    let server = Server::start();
    let tgz = cifar_tgz(12);
    server.serve("/files/cifar-10-binary.tar.gz", tgz.clone());
    let ds = dataset(&server, "cifar10", "cifar-10-binary.tar.gz", &tgz, "cifar10", "cifar-10-batches-bin");
    let root = tempfile::tempdir().unwrap();

    assert!(locate(&ds, root.path()).is_err(), "nothing is there before the fetch");
    let mut events = Vec::new();
    let dir = fetch(&ds, root.path(), &FetchOptions::default(), &mut |e| events.push(e)).unwrap();
    assert_eq!(dir, root.path().join("cifar10"));
    assert!(dir.join("cifar-10-batches-bin/data_batch_1.bin").is_file());
    assert!(!dir.join("cifar-10-binary.tar.gz").exists(), "the archive is removed once unpacked");
    assert!(events.iter().any(|e| matches!(e, FetchEvent::Verified { .. })));
    assert!(events.iter().any(|e| matches!(e, FetchEvent::Unpacking { .. })));

    let spec = locate(&ds, root.path()).unwrap();
    assert_eq!(spec, format!("cifar10:{}", dir.join("cifar-10-batches-bin").display()));
    let set = ganforge::data::open(&ganforge::config::DataConfig::new().with_spec(spec)).unwrap();
    assert_eq!(set.len(), 12);
    assert_eq!(set.label(11), Some(1));

    // A second fetch finds it complete and downloads nothing.
    let requests = server.log.lock().unwrap().len();
    let mut again = Vec::new();
    fetch(&ds, root.path(), &FetchOptions::default(), &mut |e| again.push(e)).unwrap();
    assert!(matches!(again[..], [FetchEvent::AlreadyThere { .. }]));
    assert_eq!(server.log.lock().unwrap().len(), requests);
}

#[test]
fn a_cut_connection_resumes_from_where_it_stopped() {
    let server = Server::start();
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    server.serve("/files/sheep.npy", bytes.clone());
    let ds = dataset(&server, "quickdraw/sheep", "sheep.npy", &bytes, "quickdraw", "sheep.npy");
    let root = tempfile::tempdir().unwrap();

    // Within one command: the first response stops halfway, the automatic retry resumes.
    server.behaviour.lock().unwrap().cut_next = 1;
    let mut retries = 0;
    let dir =
        fetch(&ds, root.path(), &FetchOptions::default(), &mut |e| retries += matches!(e, FetchEvent::Retry { .. }) as usize).unwrap();
    assert_eq!(retries, 1);
    assert_eq!(std::fs::read(dir.join("sheep.npy")).unwrap(), bytes);
    let log = server.log.lock().unwrap().clone();
    assert_eq!(log, vec![("/files/sheep.npy".to_string(), 0), ("/files/sheep.npy".to_string(), 50_000)]);
}

#[test]
fn without_retries_the_next_command_resumes() {
    let server = Server::start();
    let bytes: Vec<u8> = (0..80_000u32).map(|i| (i % 253) as u8).collect();
    server.serve("/files/test_32x32.mat", bytes.clone());
    let ds = dataset(&server, "svhn", "test_32x32.mat", &bytes, "svhn", "test_32x32.mat");
    let root = tempfile::tempdir().unwrap();
    let no_retry = FetchOptions { retries: 0, ..Default::default() };

    server.behaviour.lock().unwrap().cut_next = 1;
    let e = fetch(&ds, root.path(), &no_retry, &mut quiet()).unwrap_err();
    assert!(matches!(e, FetchError::Cut { got: 40_000, size: 80_000, .. }), "{e}");
    assert!(e.to_string().contains("run the same command again to resume"), "{e}");
    let part = root.path().join("svhn/test_32x32.mat.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 40_000);
    assert!(locate(&ds, root.path()).is_err());

    fetch(&ds, root.path(), &no_retry, &mut quiet()).unwrap();
    assert_eq!(server.log.lock().unwrap().last().unwrap().1, 40_000, "the second command asked for the rest only");
    assert_eq!(sha256_file(&root.path().join("svhn/test_32x32.mat")).unwrap(), ds.files[0].sha256);
    assert!(!part.exists());

    // A server that ignores the range still works: the file is fetched again from the start.
    let root2 = tempfile::tempdir().unwrap();
    server.behaviour.lock().unwrap().cut_next = 1;
    fetch(&ds, root2.path(), &no_retry, &mut quiet()).unwrap_err();
    server.behaviour.lock().unwrap().ignore_range = true;
    fetch(&ds, root2.path(), &no_retry, &mut quiet()).unwrap();
    assert_eq!(std::fs::read(root2.path().join("svhn/test_32x32.mat")).unwrap(), bytes);
}

#[test]
fn bytes_that_are_not_the_published_ones_are_refused() {
    let server = Server::start();
    let published: Vec<u8> = vec![1; 5000];
    let ds = dataset(&server, "mnist", "train-images-idx3-ubyte.gz", &published, "idx", "train-images-idx3-ubyte.gz");
    let root = tempfile::tempdir().unwrap();

    // Same size, other content: the checksum catches it and the download is deleted.
    let mut tampered = published.clone();
    tampered[2500] = 2;
    server.serve("/files/train-images-idx3-ubyte.gz", tampered);
    let e = fetch(&ds, root.path(), &FetchOptions::default(), &mut quiet()).unwrap_err();
    assert!(matches!(e, FetchError::Checksum { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("train-images-idx3-ubyte.gz") && msg.contains(&ds.files[0].sha256), "{msg}");
    let dir = root.path().join("mnist");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n != ".lock").collect();
    assert!(left.is_empty(), "nothing is left behind: {left:?}");

    // Another size: refused before reading the body.
    server.serve("/files/train-images-idx3-ubyte.gz", vec![1; 4000]);
    let e = fetch(&ds, root.path(), &FetchOptions::default(), &mut quiet()).unwrap_err().to_string();
    assert!(e.contains("sends 4000 bytes") && e.contains("has 5000"), "{e}");

    // A missing file is an HTTP error naming the address.
    let gone = Dataset { files: vec![RemoteFile { url: format!("{}/nope", server.url), ..ds.files[0].clone() }], ..ds.clone() };
    let e = fetch(&gone, root.path(), &FetchOptions::default(), &mut quiet()).unwrap_err().to_string();
    assert!(e.contains("/nope") && e.contains("404"), "{e}");

    // A second fetch into the same folder at the same time is refused, not interleaved.
    let held = std::fs::File::create(dir.join(".lock")).unwrap();
    held.lock().unwrap();
    let e = fetch(&ds, root.path(), &FetchOptions::default(), &mut quiet()).unwrap_err().to_string();
    assert!(e.contains("another `ganforge data fetch` is downloading"), "{e}");
    drop(held);

    // --mirror serves the same file name from elsewhere.
    server.serve("/mirror/train-images-idx3-ubyte.gz", published.clone());
    let mirror = FetchOptions { mirror: Some(format!("{}/mirror/", server.url)), ..Default::default() };
    let dir = fetch(&ds, root.path(), &mirror, &mut quiet()).unwrap();
    assert_eq!(std::fs::read(dir.join("train-images-idx3-ubyte.gz")).unwrap(), published);
    assert!(Path::new(&locate(&ds, root.path()).unwrap()["idx:".len()..]).is_file());
}
