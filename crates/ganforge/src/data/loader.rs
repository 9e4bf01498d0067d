//! The prefetching loader: a thread that decodes, resizes and batches images ahead of the
//! training step, through a bounded queue, so that a step never waits on files.
//!
//! The order is a function of (seed, step) alone: epoch `e` visits the images in a
//! permutation drawn from the seed and `e`, and the last partial batch is dropped. A loader
//! started at step N therefore yields exactly the batches an uninterrupted run would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{flip_rows, model_bytes, to_unit_range, DataError, Source};
use crate::rng::GanRng;

/// One batch, ready to become a tensor.
pub struct Batch {
    pub epoch: u64,
    /// Images as floats in [-1, 1], [b, c, s, s] row-major.
    pub images: Vec<f32>,
    /// Class labels, when the dataset has them.
    pub labels: Option<Vec<u32>>,
}

#[derive(Clone, Debug)]
pub struct LoaderOptions {
    pub batch_size: usize,
    pub image_size: usize,
    pub channels: usize,
    pub seed: u64,
    pub prefetch: usize,
    /// Flip each image left-right with probability 1/2.
    pub hflip: bool,
    /// The images of each batch this loader yields: all (None), or a rank's share in a
    /// data-parallel run. Order, flips and failures are those of the whole batch.
    pub part: Option<std::ops::Range<usize>>,
}

pub struct Loader {
    rx: Receiver<Result<Batch, DataError>>,
    _worker: JoinHandle<()>,
    pub batches_per_epoch: u64,
    failures: Arc<Failures>,
}

/// Images that failed to decode, shared by the loader thread and the trainer.
#[derive(Default)]
struct Failures {
    count: AtomicUsize,
    last: Mutex<Option<String>>,
}

impl Failures {
    fn record(&self, e: &DataError) {
        self.count.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }
}

impl Loader {
    /// Starts loading at `start_step` (the number of batches already consumed).
    pub fn spawn(source: Arc<dyn Source>, opts: LoaderOptions, start_step: u64) -> Result<Self, DataError> {
        let n = source.len();
        if n < opts.batch_size {
            return Err(DataError::TooSmall { images: n, batch: opts.batch_size });
        }
        let bpe = (n / opts.batch_size) as u64;
        let (tx, rx) = sync_channel(opts.prefetch);
        let failures = Arc::new(Failures::default());
        let worker_failures = failures.clone();
        let worker = std::thread::Builder::new()
            .name("ganforge-loader".into())
            .spawn(move || {
                let mut step = start_step;
                let mut perm: Option<(u64, Vec<usize>)> = None;
                loop {
                    let epoch = step / bpe;
                    if perm.as_ref().map(|p| p.0) != Some(epoch) {
                        perm = Some((epoch, GanRng::for_epoch(opts.seed, epoch).permutation(n)));
                    }
                    let order = &perm.as_ref().expect("set above").1;
                    let b = (step % bpe) as usize;
                    // Flips are drawn from (seed, step), so a resumed run flips what it would have.
                    let mut flips = GanRng::for_epoch(opts.seed ^ 0x5EED_F11B, step);
                    let batch =
                        make_batch(&*source, &order[b * opts.batch_size..(b + 1) * opts.batch_size], &opts, &worker_failures, &mut flips)
                            .map(|(images, labels)| Batch { epoch, images, labels });
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return; // the trainer hung up, or there is nothing left to load
                    }
                    step += 1;
                }
            })
            .map_err(|e| DataError::Io { path: "<loader thread>".into(), source: e })?;
        Ok(Self { rx, _worker: worker, batches_per_epoch: bpe, failures })
    }

    /// Images that failed to decode so far (each replaced by the next good one, so the run goes
    /// on): counted from the start of this loader, including batches prefetched but not yet
    /// taken. A source that passed its checks at open should keep this at 0; the training loop
    /// should log it when it grows, with `last_decode_error`.
    pub fn decode_failures(&self) -> usize {
        self.failures.count.load(Ordering::Relaxed)
    }

    /// The error of the latest failed decode, naming its file.
    pub fn last_decode_error(&self) -> Option<String> {
        self.failures.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The next batch; blocks only if the loader has fallen behind.
    pub fn next_batch(&self) -> Result<Batch, DataError> {
        self.rx.recv().unwrap_or_else(|_| Err(DataError::Empty("the loader thread stopped".into())))
    }
}

fn make_batch(
    source: &dyn Source,
    indices: &[usize],
    opts: &LoaderOptions,
    failures: &Failures,
    flips: &mut GanRng,
) -> Result<(Vec<f32>, Option<Vec<u32>>), DataError> {
    let n = source.len();
    let mut images = Vec::with_capacity(indices.len() * opts.channels * opts.image_size * opts.image_size);
    let mut labels = Vec::with_capacity(indices.len());
    for (k, &first) in indices.iter().enumerate() {
        // Drawn for every image of the batch, so that a rank's share flips as the whole would.
        let flip = opts.hflip && flips.bernoulli(0.5);
        if opts.part.as_ref().is_some_and(|p| !p.contains(&k)) {
            continue;
        }
        // A file that decoded at open time but fails now is replaced by the next good one,
        // deterministically, so the run goes on and stays repeatable.
        // The give-up rule counts tries for this image only, so it does not depend on how
        // long the run has been going (or whether it was resumed).
        let mut i = first;
        let mut tries = 0;
        let (size, channels) = (opts.image_size, opts.channels);
        let mut bytes = loop {
            match model_bytes(source, i, size, channels) {
                Ok(bytes) => break bytes,
                Err(e) => {
                    failures.record(&e);
                    tries += 1;
                    if tries >= n {
                        return Err(DataError::Empty(format!("no image could be decoded (last error: {e})")));
                    }
                    i = (i + 1) % n;
                }
            }
        };
        // Flipped after resizing, so that cached and decoded images flip alike.
        if flip {
            flip_rows(&mut bytes, size);
        }
        to_unit_range(&bytes, &mut images);
        labels.push(source.label(i));
    }
    let labels = labels.into_iter().collect::<Option<Vec<u32>>>();
    Ok((images, labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, GrayImage};

    /// Image i is a flat grey of value i.
    struct Flat(usize);
    impl Source for Flat {
        fn len(&self) -> usize {
            self.0
        }
        fn image(&self, i: usize) -> Result<DynamicImage, DataError> {
            if i == 3 {
                return Err(DataError::BadFile { path: "3.png".into(), message: "broken".into() });
            }
            Ok(DynamicImage::ImageLuma8(GrayImage::from_pixel(4, 4, image::Luma([i as u8]))))
        }
        fn label(&self, i: usize) -> Option<u32> {
            Some(i as u32)
        }
        fn describe(&self) -> String {
            "flat".into()
        }
    }

    fn opts() -> LoaderOptions {
        LoaderOptions { batch_size: 4, image_size: 16, channels: 1, seed: 5, prefetch: 2, hflip: false, part: None }
    }

    /// Image i has a bright left column only; flipped, the bright column is on the right.
    struct LeftEdge(usize);
    impl Source for LeftEdge {
        fn len(&self) -> usize {
            self.0
        }
        fn image(&self, _: usize) -> Result<DynamicImage, DataError> {
            Ok(DynamicImage::ImageLuma8(GrayImage::from_fn(16, 16, |x, _| image::Luma([if x == 0 { 255 } else { 0 }]))))
        }
        fn describe(&self) -> String {
            "edge".into()
        }
    }

    #[test]
    fn flips_are_random_half_the_time_and_repeat_on_resume() {
        let o = LoaderOptions { hflip: true, ..opts() };
        let src: Arc<dyn Source> = Arc::new(LeftEdge(400));
        let l = Loader::spawn(src.clone(), LoaderOptions { batch_size: 100, ..o.clone() }, 0).unwrap();
        let batches: Vec<Batch> = (0..4).map(|_| l.next_batch().unwrap()).collect();
        let flipped = |b: &Batch| (0..100).filter(|i| b.images[i * 256 + 15] > 0.0).count();
        let total: usize = batches.iter().map(flipped).sum();
        assert!((150..=250).contains(&total), "{total} of 400 flipped");
        let resumed = Loader::spawn(src, LoaderOptions { batch_size: 100, ..o }, 2).unwrap().next_batch().unwrap();
        assert_eq!(resumed.images, batches[2].images);
        // Without the option nothing is flipped.
        let plain = Loader::spawn(Arc::new(LeftEdge(8)), opts(), 0).unwrap().next_batch().unwrap();
        assert!(plain.images.chunks(256).all(|im| im[0] > 0.0 && im[15] < 0.0));
    }

    /// A data-parallel run's ranks load shares that, put together in rank order, are the whole
    /// batches, flips included, across an epoch boundary and with a broken image.
    #[test]
    fn shares_put_together_are_the_whole_batches() {
        let o = LoaderOptions { batch_size: 6, hflip: true, ..opts() };
        // Flat has labels and a broken image; LeftEdge shows the flips.
        let sources: [Arc<dyn Source>; 2] = [Arc::new(Flat(13)), Arc::new(LeftEdge(13))];
        for src in sources {
            let whole = Loader::spawn(src.clone(), o.clone(), 1).unwrap();
            let parts: Vec<Loader> = [0..2, 2..6]
                .into_iter()
                .map(|p| Loader::spawn(src.clone(), LoaderOptions { part: Some(p), ..o.clone() }, 1).unwrap())
                .collect();
            for _ in 0..3 {
                let w = whole.next_batch().unwrap();
                let (a, b) = (parts[0].next_batch().unwrap(), parts[1].next_batch().unwrap());
                assert_eq!([a.images.len(), b.images.len()], [2 * 256, 4 * 256]);
                assert_eq!([a.images, b.images].concat(), w.images);
                assert_eq!(a.labels.zip(b.labels).map(|(a, b)| [a, b].concat()), w.labels);
            }
        }
    }

    #[test]
    fn epochs_are_permutations_and_resume_matches() {
        let src: Arc<dyn Source> = Arc::new(Flat(10));
        let l = Loader::spawn(src.clone(), opts(), 0).unwrap();
        assert_eq!(l.batches_per_epoch, 2);
        let batches: Vec<Batch> = (0..6).map(|_| l.next_batch().unwrap()).collect();
        assert_eq!(batches.iter().map(|b| b.epoch).collect::<Vec<_>>(), vec![0, 0, 1, 1, 2, 2]);
        // Epoch 0 is the first 8 of the seed's permutation; broken image 3 becomes image 4.
        let expect: Vec<u32> = GanRng::for_epoch(5, 0).permutation(10)[..8].iter().map(|&i| if i == 3 { 4 } else { i as u32 }).collect();
        let got: Vec<u32> = batches[0].labels.clone().unwrap().into_iter().chain(batches[1].labels.clone().unwrap()).collect();
        assert_eq!(got, expect);
        assert_eq!(batches[0].images[0], expect[0] as f32 / 127.5 - 1.0);
        assert!(batches[0].images.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(batches[0].images.len(), 4 * 16 * 16);
        // Starting at step 3 gives what the uninterrupted loader gave at step 3.
        let resumed = Loader::spawn(src, opts(), 3).unwrap().next_batch().unwrap();
        assert_eq!(resumed.images, batches[3].images);
        assert_eq!(resumed.labels, batches[3].labels);
    }

    /// A failed decode is no longer silent: the trainer can read how many and the last error.
    #[test]
    fn decode_failures_are_counted_for_the_trainer() {
        // Batches of 5 from 10 images: every epoch visits broken image 3 exactly once.
        let l = Loader::spawn(Arc::new(Flat(10)), LoaderOptions { batch_size: 5, prefetch: 1, ..opts() }, 0).unwrap();
        assert_eq!(l.last_decode_error(), None::<String>);
        for _ in 0..4 {
            l.next_batch().unwrap();
        }
        // Two epochs taken; the loader may have started a third ahead of the trainer.
        assert!((2..=3).contains(&l.decode_failures()), "{}", l.decode_failures());
        assert_eq!(l.last_decode_error().as_deref(), Some("3.png: broken"));
    }

    #[test]
    fn too_small_for_a_batch() {
        let e = Loader::spawn(Arc::new(Flat(3)), opts(), 0).err().unwrap().to_string();
        assert!(e.contains("fewer than one batch of 4"), "{e}");
    }
}
