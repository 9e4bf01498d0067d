//! Data-parallel work over a group of processes (MPI ranks): which share of a global batch
//! or image set each rank takes, and the few collectives that keep ranks in step.
//!
//! The group is a trait so that training, evaluation and sampling are written once:
//! [`Solo`] is the single process every plain run is; [`ThreadGroup`] is N ranks inside one
//! process, for tests that compare N ranks with one without an MPI installation; and
//! `MpiGroup` (cargo feature `mpi`) is the ranks `mpirun -np N ganforge ...` starts.
//!
//! The rule that makes N ranks train like one process (PyTorch's DistributedDataParallel
//! does the same): every rank draws the whole global batch's randomness from the same stream
//! and keeps its own [`share`] of it, computes gradients of the mean loss over its share, and
//! the ranks' gradients are averaged before the one optimizer step every rank applies.

#[cfg(feature = "mpi")]
pub mod mpi;

use std::ops::Range;
use std::sync::{Arc, Barrier, Mutex};

/// A group of ranks that run the same program on different shares of the work.
///
/// Every rank must call the collectives in the same order with the same lengths; a rank
/// that fails must end the whole group (the CLI aborts the MPI job), or the others wait.
pub trait Group {
    /// This process's rank, 0 to size - 1. Rank 0 alone writes files.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn size(&self) -> usize;
    /// Sums `values` element by element over all ranks, in place. Every rank ends with the
    /// same bits here and under Open MPI and MPICH; the MPI standard recommends but does not
    /// require it, so training checks that the ranks' weights agree at every checkpoint.
    fn sum(&self, values: &mut [f32]);
    /// Every rank's `values` (any lengths), concatenated in rank order, on rank 0 alone (the others get an
    /// empty vector): for results only rank 0 uses, which need not fill every rank's memory.
    fn gather(&self, values: &[f32]) -> Vec<f32>;
    /// Rank 0's `bytes` on every rank (the other ranks' own are replaced).
    fn broadcast(&self, bytes: &mut Vec<u8>);
    /// Waits until every rank has come here.
    fn barrier(&self);

    fn is_root(&self) -> bool {
        self.rank() == 0
    }
}

/// The single process: every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Group for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum(&self, _: &mut [f32]) {}
    fn gather(&self, values: &[f32]) -> Vec<f32> {
        values.to_vec()
    }
    fn broadcast(&self, _: &mut Vec<u8>) {}
    fn barrier(&self) {}
}

/// The group of a plain run.
pub fn solo() -> Arc<dyn Group> {
    Arc::new(Solo)
}

/// Rank `rank`'s share of `total` items split over `size` ranks: consecutive blocks in rank
/// order, the first `total % size` ranks taking one more, so that the shares put back in rank
/// order are the items in their single-process order.
pub fn share(total: usize, rank: usize, size: usize) -> Range<usize> {
    let size = size.max(1);
    let (base, extra) = (total / size, total % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// The blocks of `chunk` items a rank takes of `total`: whole chunks, dealt as [`share`] deals
/// items, so that every chunk is the one a single process would make (a batch's composition
/// can change the last bits of a GPU kernel's result, never of a chunk made alike).
pub fn share_chunks(total: usize, chunk: usize, rank: usize, size: usize) -> Range<usize> {
    let chunk = chunk.max(1);
    let chunks = share(total.div_ceil(chunk), rank, size);
    (chunks.start * chunk).min(total)..(chunks.end * chunk).min(total)
}

/// How many ranks hold other `bytes` than rank 0 (0 when all agree); every rank gets the count,
/// so that all can stop together.
pub fn disagreeing(group: &dyn Group, bytes: &[u8]) -> usize {
    if group.size() == 1 {
        return 0;
    }
    let mut root = bytes.to_vec();
    group.broadcast(&mut root);
    let mut differ = [f32::from(root != bytes)];
    group.sum(&mut differ);
    differ[0] as usize
}

/// The mean of `values` over the ranks, in place.
pub fn mean(group: &dyn Group, values: &mut [f32]) {
    if group.size() > 1 {
        group.sum(values);
        let n = group.size() as f32;
        values.iter_mut().for_each(|v| *v /= n);
    }
}

/// N ranks as threads of one process: what a test needs to compare N ranks with one, without
/// MPI. Sums add the ranks' values in rank order, so every rank gets the same bits, and the
/// same bits run after run.
///
/// A rank that panics or returns early leaves the others waiting: for tests only.
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    size: usize,
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f32>>>,
    bytes: Mutex<Vec<u8>>,
}

impl ThreadGroup {
    /// The `size` ranks of a new group, rank 0 first; move each into its own thread.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        let shared = Arc::new(Shared {
            size,
            barrier: Barrier::new(size),
            slots: Mutex::new(vec![Vec::new(); size]),
            bytes: Mutex::new(Vec::new()),
        });
        (0..size).map(|rank| ThreadGroup { rank, shared: shared.clone() }).collect()
    }

    /// Puts `values` in this rank's slot, waits for all, and returns `f` of all slots.
    fn exchange<T>(&self, values: &[f32], f: impl FnOnce(&[Vec<f32>]) -> T) -> T {
        let lock = || self.shared.slots.lock().unwrap_or_else(|p| p.into_inner());
        lock()[self.rank] = values.to_vec();
        self.shared.barrier.wait();
        let out = f(&lock());
        // Nobody may overwrite a slot before every rank has read them all.
        self.shared.barrier.wait();
        out
    }
}

impl Group for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn sum(&self, values: &mut [f32]) {
        let summed = self.exchange(values, |slots| {
            let mut acc = slots[0].clone();
            for s in &slots[1..] {
                acc.iter_mut().zip(s).for_each(|(a, b)| *a += b);
            }
            acc
        });
        values.copy_from_slice(&summed);
    }
    fn gather(&self, values: &[f32]) -> Vec<f32> {
        let root = self.rank == 0;
        self.exchange(values, |slots| if root { slots.concat() } else { Vec::new() })
    }
    fn broadcast(&self, bytes: &mut Vec<u8>) {
        let lock = || self.shared.bytes.lock().unwrap_or_else(|p| p.into_inner());
        if self.rank == 0 {
            *lock() = bytes.clone();
        }
        self.shared.barrier.wait();
        if self.rank != 0 {
            *bytes = lock().clone();
        }
        self.shared.barrier.wait();
    }
    fn barrier(&self) {
        self.shared.barrier.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_everything_once_in_order() {
        for (total, size) in [(10, 3), (64, 2), (3, 4), (0, 2), (7, 1)] {
            let parts: Vec<Range<usize>> = (0..size).map(|r| share(total, r, size)).collect();
            let flat: Vec<usize> = parts.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(flat, (0..total).collect::<Vec<_>>(), "{total} over {size}: {parts:?}");
            let lens: Vec<usize> = parts.iter().map(|r| r.len()).collect();
            assert!(lens.iter().max().unwrap() - lens.iter().min().unwrap() <= 1, "{lens:?}");
        }
        assert_eq!(share(10, 0, 3), 0..4);
        assert_eq!(share(10, 2, 3), 7..10);
        // 7 chunks of 250 (the last short) over 3 ranks: 3, 2 and 2 chunks.
        let parts: Vec<Range<usize>> = (0..3).map(|r| share_chunks(1700, 250, r, 3)).collect();
        assert_eq!(parts, vec![0..750, 750..1250, 1250..1700]);
        assert_eq!(share_chunks(100, 250, 1, 2), 100..100);
    }

    /// Three thread ranks: sums, means, gathers and a broadcast give every rank the expected
    /// values, in rank order.
    #[test]
    fn thread_group_collectives() {
        let handles: Vec<_> = ThreadGroup::new(3)
            .into_iter()
            .map(|g| {
                std::thread::spawn(move || {
                    let r = g.rank() as f32;
                    let mut v = vec![r, 10.0 * r];
                    g.sum(&mut v);
                    let mut m = vec![r];
                    mean(&g, &mut m);
                    let gathered = g.gather(&vec![r; g.rank() + 1]);
                    assert_eq!(disagreeing(&g, if g.rank() == 2 { b"other" } else { b"same" }), 1);
                    let mut bytes = if g.is_root() { b"from root".to_vec() } else { Vec::new() };
                    g.broadcast(&mut bytes);
                    (g.rank(), v, m, gathered, bytes)
                })
            })
            .collect();
        for h in handles {
            let (rank, v, m, gathered, bytes) = h.join().unwrap();
            assert_eq!(v, vec![3.0, 30.0]);
            assert_eq!(m, vec![1.0]);
            // Rank 0 alone gets every rank's values.
            assert_eq!(gathered, if rank == 0 { vec![0.0, 1.0, 1.0, 2.0, 2.0, 2.0] } else { Vec::new() });
            assert_eq!(bytes, b"from root");
        }
    }
}
