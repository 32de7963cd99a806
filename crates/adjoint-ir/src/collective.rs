//! Collectives: how the replicas of a data-parallel group combine values.
//!
//! A [`Collective`] is one replica's handle on its group: its rank, the group's size, and the
//! operations every replica calls together, in the same order, with buffers of the same length
//! (`all_reduce`, `broadcast`, `barrier`). Both engines run [`crate::Op::AllReduce`] through it
//! — the interpreter directly, compiled code through a host call from inside the step — so it
//! lives here, in the crate both depend on, as a runtime service next to [`crate::Step`].
//!
//! [`InProcess`] is the backend that needs nothing installed: the replicas are threads of one
//! process that share the reduction. Its sums are deterministic: every replica adds the
//! replicas' values in rank order (`((x0 + x1) + x2) + …`), and a mean divides that sum by the
//! group size, so every replica gets bit-identical results and a run is reproducible. The MPI
//! backend lives in `adjoint-nn` behind its `mpi` feature.

use crate::op::AllReduceKind;
use crate::{HostDataMut, HostTensor};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};

/// Why a collective operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectiveError(pub String);

impl fmt::Display for CollectiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "collective operation failed: {}", self.0)
    }
}

impl std::error::Error for CollectiveError {}

/// One replica's handle on a data-parallel group. Every replica must call the same operations
/// in the same order with buffers of the same length; a replica that stops calling leaves the
/// others waiting (the in-process backend reports a replica that panicked or was dropped as an
/// error instead).
pub trait Collective: Send + Sync {
    /// This replica's number, `0..size`.
    fn rank(&self) -> usize;

    /// How many replicas the group has.
    fn size(&self) -> usize;

    /// Replaces `data` by its sum (or mean) over the replicas.
    fn all_reduce_f32(&self, data: &mut [f32], kind: AllReduceKind) -> Result<(), CollectiveError>;

    /// [`Collective::all_reduce_f32`] for `f64`.
    fn all_reduce_f64(&self, data: &mut [f64], kind: AllReduceKind) -> Result<(), CollectiveError>;

    /// Replaces `data` by replica `root`'s `data`.
    fn broadcast_f32(&self, data: &mut [f32], root: usize) -> Result<(), CollectiveError>;

    /// [`Collective::broadcast_f32`] for `f64`.
    fn broadcast_f64(&self, data: &mut [f64], root: usize) -> Result<(), CollectiveError>;

    /// Returns once every replica has called it.
    fn barrier(&self) -> Result<(), CollectiveError>;
}

/// All-reduces a float tensor in place (`f32` or `f64`).
pub fn all_reduce_tensor(
    c: &dyn Collective,
    t: &mut HostTensor,
    kind: AllReduceKind,
) -> Result<(), CollectiveError> {
    let dtype = t.dtype();
    match t.data_mut() {
        HostDataMut::F32(v) => c.all_reduce_f32(v, kind),
        HostDataMut::F64(v) => c.all_reduce_f64(v, kind),
        _ => Err(CollectiveError(format!(
            "all_reduce is defined on f32 and f64 tensors, not {dtype}"
        ))),
    }
}

/// Broadcasts a float tensor from replica `root` in place (`f32` or `f64`).
pub fn broadcast_tensor(
    c: &dyn Collective,
    t: &mut HostTensor,
    root: usize,
) -> Result<(), CollectiveError> {
    let dtype = t.dtype();
    match t.data_mut() {
        HostDataMut::F32(v) => c.broadcast_f32(v, root),
        HostDataMut::F64(v) => c.broadcast_f64(v, root),
        _ => Err(CollectiveError(format!(
            "broadcast is defined on f32 and f64 tensors, not {dtype}"
        ))),
    }
}

/// The value one replica deposits for an operation.
#[derive(Clone, Debug, Default)]
enum Slot {
    #[default]
    Empty,
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// A reusable barrier that breaks (every waiter gets an error) when a member leaves.
struct Gate {
    state: Mutex<GateState>,
    turned: Condvar,
}

struct GateState {
    arrived: usize,
    generation: u64,
    broken: bool,
}

/// What the replicas of one [`InProcess`] group share.
struct Shared {
    size: usize,
    gate: Gate,
    /// One per replica: written by its owner, then read by every replica at once.
    slots: Vec<RwLock<Slot>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_lock<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Waits until all `size` replicas have arrived.
    fn wait(&self) -> Result<(), CollectiveError> {
        let mut st = lock(&self.gate.state);
        if st.broken {
            return Err(left());
        }
        st.arrived += 1;
        if st.arrived == self.size {
            st.arrived = 0;
            st.generation += 1;
            self.gate.turned.notify_all();
            return Ok(());
        }
        let generation = st.generation;
        while st.generation == generation && !st.broken {
            st = self.gate.turned.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.generation == generation {
            return Err(left());
        }
        Ok(())
    }

    fn break_gate(&self) {
        lock(&self.gate.state).broken = true;
        self.gate.turned.notify_all();
    }
}

fn left() -> CollectiveError {
    CollectiveError("another replica of the in-process group panicked or was dropped".into())
}

/// The in-process backend: one handle per replica, each used by its own thread
/// ([`InProcess::group`]). Operations wait for every replica (a barrier), each replica
/// deposits its buffer in a shared slot, and every replica reads all slots in rank order, so
/// results are deterministic and identical on every replica.
///
/// ```
/// use adjoint_ir::collective::{Collective, InProcess};
/// use adjoint_ir::AllReduceKind;
///
/// let handles = InProcess::group(2);
/// let sums: Vec<Vec<f32>> = std::thread::scope(|s| {
///     let jobs: Vec<_> = handles
///         .iter()
///         .map(|c| {
///             s.spawn(move || {
///                 let mut v = vec![c.rank() as f32 + 1.0; 3];
///                 c.all_reduce_f32(&mut v, AllReduceKind::Sum).unwrap();
///                 v
///             })
///         })
///         .collect();
///     jobs.into_iter().map(|j| j.join().unwrap()).collect()
/// });
/// assert_eq!(sums, vec![vec![3.0; 3], vec![3.0; 3]]);
/// ```
pub struct InProcess {
    rank: usize,
    shared: Arc<Shared>,
}

impl fmt::Debug for InProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcess")
            .field("rank", &self.rank)
            .field("size", &self.shared.size)
            .finish()
    }
}

impl InProcess {
    /// The `size` handles of a new group, in rank order (`size` at least 1).
    pub fn group(size: usize) -> Vec<InProcess> {
        let size = size.max(1);
        let shared = Arc::new(Shared {
            size,
            gate: Gate {
                state: Mutex::new(GateState {
                    arrived: 0,
                    generation: 0,
                    broken: false,
                }),
                turned: Condvar::new(),
            },
            slots: (0..size).map(|_| RwLock::new(Slot::Empty)).collect(),
        });
        (0..size)
            .map(|rank| InProcess {
                rank,
                shared: Arc::clone(&shared),
            })
            .collect()
    }

    /// Deposits `mine`, waits for every replica, lets `read` see every slot in rank order,
    /// and waits again so that no slot is overwritten before everyone has read it. Both waits
    /// happen whatever `read` returns, so a mismatch is reported by every replica alike.
    fn exchange<R>(
        &self,
        mine: Slot,
        read: impl FnOnce(&[RwLock<Slot>]) -> Result<R, CollectiveError>,
    ) -> Result<R, CollectiveError> {
        *self.shared.slots[self.rank]
            .write()
            .unwrap_or_else(|e| e.into_inner()) = mine;
        self.shared.wait()?;
        let result = read(&self.shared.slots);
        self.shared.wait()?;
        result
    }

    fn check_root(&self, root: usize) -> Result<(), CollectiveError> {
        if root >= self.shared.size {
            return Err(CollectiveError(format!(
                "broadcast root {root} is not a rank of a group of {}",
                self.shared.size
            )));
        }
        Ok(())
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        // A replica that goes away while the others may still wait for it (a panic, an early
        // return on error) breaks the group, so they get an error instead of waiting forever.
        if std::thread::panicking() || Arc::strong_count(&self.shared) > 1 {
            self.shared.break_gate();
        }
    }
}

/// Sums the `slots` in rank order into `data` (whose length every slot must have), as `T`.
macro_rules! reduce_slots {
    ($slots:expr, $data:expr, $kind:expr, $size:expr, $variant:ident, $t:ty) => {{
        let data: &mut [$t] = $data;
        for (r, slot) in $slots.iter().enumerate() {
            let slot = read_lock(slot);
            let Slot::$variant(v) = &*slot else {
                return Err(CollectiveError(format!(
                    "replica {r} reduced a different element type"
                )));
            };
            if v.len() != data.len() {
                return Err(CollectiveError(format!(
                    "replica {r} reduced {} elements, this one {}",
                    v.len(),
                    data.len()
                )));
            }
            if r == 0 {
                data.copy_from_slice(v);
            } else {
                for (d, x) in data.iter_mut().zip(v) {
                    *d += *x;
                }
            }
        }
        if $kind == AllReduceKind::Mean {
            let n = $size as $t;
            for d in data.iter_mut() {
                *d /= n;
            }
        }
        Ok(())
    }};
}

/// Copies slot `root` into `data` (of the same element type and length).
macro_rules! copy_slot {
    ($slots:expr, $data:expr, $root:expr, $variant:ident) => {{
        let slot = read_lock(&$slots[$root]);
        match &*slot {
            Slot::$variant(v) if v.len() == $data.len() => {
                $data.copy_from_slice(v);
                Ok(())
            }
            _ => Err(CollectiveError(format!(
                "replica {} broadcast a buffer of another type or length",
                $root
            ))),
        }
    }};
}

impl Collective for InProcess {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_reduce_f32(&self, data: &mut [f32], kind: AllReduceKind) -> Result<(), CollectiveError> {
        if self.shared.size == 1 {
            return Ok(());
        }
        let size = self.shared.size;
        self.exchange(Slot::F32(data.to_vec()), |slots| {
            reduce_slots!(slots, data, kind, size, F32, f32)
        })
    }

    fn all_reduce_f64(&self, data: &mut [f64], kind: AllReduceKind) -> Result<(), CollectiveError> {
        if self.shared.size == 1 {
            return Ok(());
        }
        let size = self.shared.size;
        self.exchange(Slot::F64(data.to_vec()), |slots| {
            reduce_slots!(slots, data, kind, size, F64, f64)
        })
    }

    fn broadcast_f32(&self, data: &mut [f32], root: usize) -> Result<(), CollectiveError> {
        self.check_root(root)?;
        if self.shared.size == 1 {
            return Ok(());
        }
        let mine = if self.rank == root {
            Slot::F32(data.to_vec())
        } else {
            Slot::Empty
        };
        self.exchange(mine, |slots| copy_slot!(slots, data, root, F32))
    }

    fn broadcast_f64(&self, data: &mut [f64], root: usize) -> Result<(), CollectiveError> {
        self.check_root(root)?;
        if self.shared.size == 1 {
            return Ok(());
        }
        let mine = if self.rank == root {
            Slot::F64(data.to_vec())
        } else {
            Slot::Empty
        };
        self.exchange(mine, |slots| copy_slot!(slots, data, root, F64))
    }

    fn barrier(&self) -> Result<(), CollectiveError> {
        self.shared.wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on every handle of a new group of `n`, each on its own thread.
    fn on_group<R: Send>(n: usize, f: impl Fn(&InProcess) -> R + Sync) -> Vec<R> {
        let handles = InProcess::group(n);
        std::thread::scope(|s| {
            let jobs: Vec<_> = handles.iter().map(|c| s.spawn(|| f(c))).collect();
            jobs.into_iter().map(|j| j.join().unwrap()).collect()
        })
    }

    #[test]
    fn sums_and_means_are_identical_on_every_replica_and_in_rank_order() {
        // 1e8 + 1 - 1e8 depends on the order: rank order gives ((1e8 + 1) + -1e8) = 0 in f32.
        let values = [1e8f32, 1.0, -1e8];
        let out = on_group(3, |c| {
            let mut v = vec![values[c.rank()]; 4];
            c.all_reduce_f32(&mut v, AllReduceKind::Sum).unwrap();
            let mut m = vec![c.rank() as f64; 2];
            c.all_reduce_f64(&mut m, AllReduceKind::Mean).unwrap();
            (v, m)
        });
        let expected_sum = (values[0] + values[1]) + values[2];
        for (v, m) in &out {
            assert_eq!(v, &vec![expected_sum; 4]);
            assert_eq!(m, &vec![1.0; 2]);
        }
    }

    #[test]
    fn broadcast_copies_the_root_and_repeated_calls_reuse_the_group() {
        let out = on_group(2, |c| {
            let mut last = Vec::new();
            for round in 0..50 {
                let mut v = vec![(c.rank() * 100 + round) as f32; 5];
                c.broadcast_f32(&mut v, 1).unwrap();
                c.barrier().unwrap();
                last = v;
            }
            last
        });
        assert_eq!(out, vec![vec![149.0; 5], vec![149.0; 5]]);
    }

    #[test]
    fn mismatched_lengths_are_an_error_on_every_replica() {
        let out = on_group(2, |c| {
            let mut v = vec![1.0f32; 2 + c.rank()];
            c.all_reduce_f32(&mut v, AllReduceKind::Sum)
        });
        assert!(out.iter().all(|r| r.is_err()), "{out:?}");
    }

    #[test]
    fn a_replica_that_leaves_breaks_the_group() {
        let mut handles = InProcess::group(2);
        let gone = handles.pop().unwrap();
        drop(gone);
        let mut v = [1.0f32];
        let err = handles[0]
            .all_reduce_f32(&mut v, AllReduceKind::Sum)
            .unwrap_err();
        assert!(err.to_string().contains("dropped"), "{err}");
    }

    #[test]
    fn one_replica_is_the_identity() {
        let c = &InProcess::group(1)[0];
        let mut v = [0.1f32, 3.0];
        c.all_reduce_f32(&mut v, AllReduceKind::Mean).unwrap();
        assert_eq!(v, [0.1, 3.0]);
        assert!(c.broadcast_f32(&mut v, 1).is_err());
    }
}
