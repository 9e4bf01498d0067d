//! The ranks of an MPI job (`mpirun -np N ganforge ...`), through rsmpi, the maintained MPI
//! bindings: Open MPI or MPICH, whichever the build found.

use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use mpi::Count;

use super::Group;

#[derive(Debug, thiserror::Error)]
pub enum MpiError {
    #[error("MPI could not be initialized (was it initialized twice?)")]
    Init,
}

/// `MPI_COMM_WORLD` of this job. Dropping it finalizes MPI.
pub struct MpiGroup {
    world: SimpleCommunicator,
    // Last: finalizes MPI after the communicator is gone.
    _universe: Universe,
}

impl MpiGroup {
    /// Initializes MPI. Only the main thread makes MPI calls (the data loader's threads never
    /// do), which is MPI's "funneled" level. A program started without `mpirun` is a job of one.
    pub fn init() -> Result<Self, MpiError> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled).ok_or(MpiError::Init)?;
        Ok(Self { world: universe.world(), _universe: universe })
    }

    /// Ends every rank of the job with `code` (MPI_Abort): what a rank that failed must do,
    /// since the others would otherwise wait for it in their next collective forever.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Group for MpiGroup {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn sum(&self, values: &mut [f32]) {
        let send = values.to_vec();
        self.world.all_reduce_into(&send[..], values, SystemOperation::sum());
    }
    fn gather(&self, values: &[f32]) -> Vec<f32> {
        let root = self.world.process_at_rank(0);
        let count = values.len() as Count;
        if self.rank() != 0 {
            root.gather_into(&count);
            root.gather_varcount_into(values);
            return Vec::new();
        }
        let mut counts = vec![0 as Count; self.size()];
        root.gather_into_root(&count, &mut counts[..]);
        let displs: Vec<Count> = counts.iter().scan(0, |at, &c| Some(std::mem::replace(at, *at + c))).collect();
        let mut out = vec![0f32; counts.iter().map(|&c| c as usize).sum()];
        root.gather_varcount_into_root(values, &mut PartitionMut::new(&mut out[..], counts, &displs[..]));
        out
    }
    fn broadcast(&self, bytes: &mut Vec<u8>) {
        let root = self.world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        root.broadcast_into(&mut bytes[..]);
    }
    fn barrier(&self) {
        self.world.barrier();
    }
}
