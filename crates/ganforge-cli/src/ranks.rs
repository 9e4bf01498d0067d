//! The processes a command runs as: one, or the ranks `mpirun -np N` starts (cargo feature
//! `mpi`). Rank 0 prints and writes; a rank that fails ends the whole job.

use std::sync::Arc;

use anyhow::{bail, Result};
use ganforge::dist::{self, Group};

/// This process's place in the job.
pub struct Ranks {
    pub group: Arc<dyn Group>,
    #[cfg(feature = "mpi")]
    mpi: Option<Arc<ganforge::dist::mpi::MpiGroup>>,
}

/// The number of processes the launcher says the job has (Open MPI's and MPICH's
/// variables), when started by one.
fn launched_size() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"].iter().find_map(|v| std::env::var(v).ok()?.parse().ok())
}

impl Ranks {
    /// The single process, or, under `mpirun`, this rank of the MPI job.
    pub fn start() -> Result<Self> {
        let launched = launched_size().filter(|&n| n > 1);
        #[cfg(feature = "mpi")]
        if launched.is_some() {
            let mpi = Arc::new(ganforge::dist::mpi::MpiGroup::init()?);
            share_cores(mpi.size());
            exit_on_panic(mpi.rank());
            return Ok(Self { group: mpi.clone(), mpi: Some(mpi) });
        }
        if let Some(n) = launched {
            // N copies of a plain build would each train (and write) a run of their own.
            bail!("started as one of {n} MPI processes, but this ganforge was built without the `mpi` feature: rebuild with `cargo build --release --features mpi`, or run it without mpirun");
        }
        Ok(Self::solo())
    }

    /// A command that does not split its work: one process, also under `mpirun` (where N copies
    /// would each write the same files), which it refuses.
    pub fn single(command: &str) -> Result<Self> {
        if let Some(n) = launched_size().filter(|&n| n > 1) {
            bail!("started as one of {n} MPI processes: only train, sample and eval split their work over ranks; run `ganforge {command}` without mpirun");
        }
        Ok(Self::solo())
    }

    pub fn solo() -> Self {
        Self {
            group: dist::solo(),
            #[cfg(feature = "mpi")]
            mpi: None,
        }
    }

    pub fn is_root(&self) -> bool {
        self.group.is_root()
    }

    /// After this rank printed its error: ends every rank of the job (the others would wait
    /// for this one forever), or returns in a single process.
    pub fn fail(&self) {
        #[cfg(feature = "mpi")]
        if let Some(mpi) = self.mpi.as_ref().filter(|m| m.size() > 1) {
            mpi.abort(1);
        }
    }
}

/// A panic on one rank (out of memory inside burn, say) must end the job: unwinding would
/// finalize MPI, which waits for the other ranks, which wait in their next collective for this
/// one. The hook prints the panic and exits at once without finalizing, so mpirun ends the job.
/// (Not MPI_Abort: a panic can happen on the data loader's thread, and only the main thread
/// calls MPI.)
#[cfg(feature = "mpi")]
fn exit_on_panic(rank: usize) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("error on rank {rank}: a panic ends the whole MPI job");
        default(info);
        std::process::exit(101);
    }));
}

/// Each rank's compute threads: its share of the machine's cores, when several ranks run on
/// one machine and the user set no RAYON_NUM_THREADS (N ranks with a thread per core each
/// would fight over the cores).
#[cfg(feature = "mpi")]
fn share_cores(_ranks: usize) {
    let local = std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE")
        .or_else(|_| std::env::var("MPI_LOCALNRANKS"))
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    if let (Some(local), None) = (local.filter(|&l| l > 1), std::env::var_os("RAYON_NUM_THREADS")) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Only fails when a pool exists already, which then stays as it is.
        let _ = rayon::ThreadPoolBuilder::new().num_threads((cores / local).max(1)).build_global();
    }
}
