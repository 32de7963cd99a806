//! The MPI backend of [`Collective`] (feature `mpi`): data-parallel training across processes
//! and machines, launched with `mpirun`, through rsmpi on the system's MPI (Open MPI, MPICH).
//!
//! ```sh
//! cargo build --release --features mpi --example train_digits
//! mpirun -np 2 target/release/examples/train_digits --mpi
//! ```
//!
//! Every rank of `MPI_COMM_WORLD` is one replica. `all_reduce` is `MPI_Allreduce` with
//! `MPI_SUM` (a mean divides the sum by the number of ranks afterwards); its summation order is
//! the MPI library's, the same on every rank for a given library and process layout.
//! `broadcast` is `MPI_Bcast` and `barrier` is `MPI_Barrier`. MPI reports errors by aborting
//! the job (its default error handler), so these calls return an error only for what is
//! checked here (a broadcast root out of range); every rank must call with buffers of the same
//! length, which the replicas of one step graph always do.

use adjoint_ir::{AllReduceKind, Collective, CollectiveError};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use mpi::Threading;
use std::sync::{Mutex, MutexGuard};

/// This process's rank of `MPI_COMM_WORLD` as a [`Collective`]. MPI is initialized by
/// [`MpiCollective::init`] and finalized when the value is dropped (once per process).
pub struct MpiCollective {
    _universe: Universe,
    rank: usize,
    size: usize,
    /// MPI runs with `MPI_THREAD_SERIALIZED`: calls from several threads take turns here.
    turn: Mutex<()>,
}

impl std::fmt::Debug for MpiCollective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiCollective")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish()
    }
}

impl MpiCollective {
    /// Initializes MPI (`MPI_Init_thread`, serialized calls) and joins `MPI_COMM_WORLD`.
    /// Errors when MPI was initialized before in this process or does not offer serialized
    /// calls from several threads.
    pub fn init() -> Result<MpiCollective, CollectiveError> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| CollectiveError("MPI is already initialized in this process".into()))?;
        if threading < Threading::Serialized {
            return Err(CollectiveError(format!(
                "the MPI library offers threading level {threading:?}, below Serialized"
            )));
        }
        let world = universe.world();
        Ok(MpiCollective {
            rank: world.rank() as usize,
            size: world.size() as usize,
            _universe: universe,
            turn: Mutex::new(()),
        })
    }

    /// `MPI_COMM_WORLD` while holding the turn.
    fn world(&self) -> (MutexGuard<'_, ()>, SimpleCommunicator) {
        let turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        (turn, SimpleCommunicator::world())
    }

    fn check_root(&self, root: usize) -> Result<i32, CollectiveError> {
        if root >= self.size {
            return Err(CollectiveError(format!(
                "broadcast root {root} is not a rank of a world of {}",
                self.size
            )));
        }
        Ok(root as i32)
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_f32(&self, data: &mut [f32], kind: AllReduceKind) -> Result<(), CollectiveError> {
        if self.size > 1 {
            let send = data.to_vec();
            let (_turn, world) = self.world();
            world.all_reduce_into(&send[..], data, SystemOperation::sum());
        }
        if kind == AllReduceKind::Mean {
            let n = self.size as f32;
            data.iter_mut().for_each(|x| *x /= n);
        }
        Ok(())
    }

    fn all_reduce_f64(&self, data: &mut [f64], kind: AllReduceKind) -> Result<(), CollectiveError> {
        if self.size > 1 {
            let send = data.to_vec();
            let (_turn, world) = self.world();
            world.all_reduce_into(&send[..], data, SystemOperation::sum());
        }
        if kind == AllReduceKind::Mean {
            let n = self.size as f64;
            data.iter_mut().for_each(|x| *x /= n);
        }
        Ok(())
    }

    fn broadcast_f32(&self, data: &mut [f32], root: usize) -> Result<(), CollectiveError> {
        let root = self.check_root(root)?;
        let (_turn, world) = self.world();
        world.process_at_rank(root).broadcast_into(data);
        Ok(())
    }

    fn broadcast_f64(&self, data: &mut [f64], root: usize) -> Result<(), CollectiveError> {
        let root = self.check_root(root)?;
        let (_turn, world) = self.world();
        world.process_at_rank(root).broadcast_into(data);
        Ok(())
    }

    fn barrier(&self) -> Result<(), CollectiveError> {
        let (_turn, world) = self.world();
        world.barrier();
        Ok(())
    }
}
