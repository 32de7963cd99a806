//! A small persistent thread pool for splitting one loop nest over cores.
//!
//! Written on `std` alone: the job is always "run this native function over `begin..end` for
//! each of a few chunks", so a mutex, two condition variables and a chunk counter are all it
//! takes; no thread is started per call. Workers and the waiting caller poll an atomic for a
//! few tens of microseconds before they block, so consecutive nests hand over without a
//! sleep and wake-up. One pool per thread count is created on first use and shared by every
//! compiled step of the process.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;

/// Chunks a parallel range of a generated nest is cut into per thread: a thread that is late
/// (descheduled on a busy machine) leaves its share to the others.
pub const CHUNKS_PER_THREAD: i64 = 4;

/// Chunks per thread for a host matmul's units: one contiguous range per thread, so that the
/// units of one thread run as one block and pack the operand they share once (with four
/// chunks per thread each unit packed it again: W4's 128×128×512 weight gradients ran no
/// faster on two threads than on one).
pub const GEMM_CHUNKS_PER_THREAD: i64 = 1;

/// A generated nest function: `fn(ctx, begin, end)`.
pub type NestFn = unsafe extern "C" fn(*const u8, i64, i64);

#[derive(Clone, Copy)]
struct Job {
    f: NestFn,
    ctx: usize,
    n: i64,
    chunks: usize,
}

#[derive(Default)]
struct State {
    job: Option<Job>,
    next_chunk: usize,
    remaining: usize,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
    /// A job has chunks left to claim (a hint read while spinning; `state` decides).
    available: AtomicBool,
    /// Chunks of the current job not finished yet (mirrors `State::remaining`).
    remaining: AtomicUsize,
}

/// Polls of an atomic before blocking on a condition variable (tens of microseconds): the
/// nests of a step follow each other closely, so a worker that has just finished one usually
/// finds the next without sleeping, and the caller sees the last chunk end without a wake-up.
const SPINS: usize = 1 << 14;

/// Spins until `ready()` or [`SPINS`] polls; true if it became ready.
fn spin_until(ready: impl Fn() -> bool) -> bool {
    for _ in 0..SPINS {
        if ready() {
            return true;
        }
        std::hint::spin_loop();
    }
    ready()
}

/// Worker threads that run chunks of a nest together with the calling thread.
pub struct Pool {
    shared: Arc<Shared>,
    /// Serializes jobs from different callers.
    submit: Mutex<()>,
    /// The thread count the pool was made for (its key in the process-wide list).
    requested: usize,
    threads: usize,
    _workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            available: AtomicBool::new(false),
            remaining: AtomicUsize::new(0),
        });
        // A worker the system refuses to start (thread limit, memory) is not an error: the
        // pool runs with the threads it got, and chunks are claimed by whoever is there.
        let mut workers = Vec::with_capacity(threads.saturating_sub(1));
        for i in 1..threads {
            let s = Arc::clone(&shared);
            match std::thread::Builder::new()
                .name(format!("adjoint-worker-{i}"))
                .spawn(move || {
                    pin_worker(i, threads);
                    worker(&s)
                }) {
                Ok(handle) => workers.push(handle),
                Err(_) => break,
            }
        }
        Pool {
            shared,
            submit: Mutex::new(()),
            requested: threads,
            threads: workers.len() + 1,
            _workers: workers,
        }
    }

    /// Threads that run this pool's jobs (the caller included); fewer than asked for when
    /// the system refused to start some.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The process-wide pool with `threads` threads (the caller counts as one).
    pub fn shared(threads: usize) -> Arc<Pool> {
        static POOLS: OnceLock<Mutex<Vec<Arc<Pool>>>> = OnceLock::new();
        let pools = POOLS.get_or_init(|| Mutex::new(Vec::new()));
        let mut pools = pools.lock().unwrap_or_else(|e| e.into_inner());
        let threads = threads.max(1);
        if let Some(p) = pools.iter().find(|p| p.requested == threads) {
            return Arc::clone(p);
        }
        let p = Arc::new(Pool::new(threads));
        pools.push(Arc::clone(&p));
        p
    }

    /// Runs `f(ctx, begin, end)` over `0..n`, split into `per_thread` contiguous chunks per
    /// thread (at least 1), claimed in order.
    ///
    /// # Safety
    /// `f` must be safe to call with `ctx` on disjoint ranges from several threads at once.
    pub unsafe fn run(&self, f: NestFn, ctx: *const u8, n: i64, per_thread: i64) {
        let chunks = (per_thread.max(1) * self.threads as i64).min(n).max(1) as usize;
        if self.threads == 1 {
            // SAFETY: the caller's contract.
            unsafe { f(ctx, 0, n) };
            return;
        }
        if chunks == 1 {
            // SAFETY: the caller's contract.
            unsafe { f(ctx, 0, n) };
            return;
        }
        let _turn = self.submit.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.job = Some(Job {
                f,
                ctx: ctx as usize,
                n,
                chunks,
            });
            st.next_chunk = 0;
            st.remaining = chunks;
            self.shared.remaining.store(chunks, Ordering::Release);
            self.shared.available.store(true, Ordering::Release);
        }
        self.shared.work.notify_all();
        run_chunks(&self.shared);
        spin_until(|| self.shared.remaining.load(Ordering::Acquire) == 0);
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        while st.remaining > 0 {
            st = self.shared.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.job = None;
    }
}

/// Claims and runs chunks of the current job until none is left.
fn run_chunks(s: &Shared) {
    loop {
        let (job, c) = {
            let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
            match st.job {
                Some(job) if st.next_chunk < job.chunks => {
                    st.next_chunk += 1;
                    if st.next_chunk == job.chunks {
                        s.available.store(false, Ordering::Release);
                    }
                    (job, st.next_chunk - 1)
                }
                _ => return,
            }
        };
        let begin = job.n * c as i64 / job.chunks as i64;
        let end = job.n * (c as i64 + 1) / job.chunks as i64;
        // SAFETY: `Pool::run`'s caller guaranteed that `f` may run on disjoint ranges at once;
        // the submitting thread waits for every chunk before `ctx` can go away.
        unsafe { (job.f)(job.ctx as *const u8, begin, end) };
        let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
        st.remaining -= 1;
        s.remaining.store(st.remaining, Ordering::Release);
        if st.remaining == 0 {
            s.done.notify_all();
        }
    }
}

/// The environment variable that, set to `0`, leaves the pool's workers unpinned.
pub const PIN_ENV: &str = "ADJOINT_PIN";

/// Pins worker `i` (of a pool of `threads`, the caller being thread 0) to the `i`-th CPU the
/// process may run on, when it may run on at least `threads` CPUs and [`PIN_ENV`] is not `0`:
/// a worker then stays on one core with the caches holding its share of the data, and the
/// first allowed CPU is left to the calling thread, which is not pinned (it is the user's).
/// Pinning that fails leaves the worker where the system puts it.
fn pin_worker(i: usize, threads: usize) {
    if std::env::var(PIN_ENV).is_ok_and(|v| v.trim() == "0") {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: `cpu_set_t` is plain data for which all-zero bytes are the empty set; the
        // affinity calls act on the calling thread (pid 0) and read or write exactly `size`
        // bytes of the sets passed; `CPU_ISSET`/`CPU_SET` index below `CPU_SETSIZE`.
        unsafe {
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size, &mut allowed) != 0 {
                return;
            }
            let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &allowed))
                .collect();
            if cpus.len() < threads || i >= cpus.len() {
                return;
            }
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpus[i], &mut one);
            libc::sched_setaffinity(0, size, &one);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (i, threads);
}

fn worker(s: &Shared) {
    loop {
        spin_until(|| s.available.load(Ordering::Acquire));
        {
            let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
            while !matches!(st.job, Some(j) if st.next_chunk < j.chunks) {
                st = s.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        run_chunks(s);
    }
}

/// The function generated code calls to run a nest in parallel (slot 0 of the pointer table),
/// `per_thread` chunks per thread ([`CHUNKS_PER_THREAD`], [`GEMM_CHUNKS_PER_THREAD`]).
///
/// # Safety
/// `pool` must point to a live [`Pool`], `f` to a nest function of a live module, and `ctx` to
/// that step's pointer table.
pub unsafe extern "C" fn parallel_for(
    pool: *const Pool,
    f: *const u8,
    ctx: *const u8,
    n: i64,
    per_thread: i64,
) {
    // SAFETY: the runtime stores a pointer to a pool it keeps alive (an `Arc`) for as long as
    // the code can run, and `f` is the address of a function with the `NestFn` signature.
    unsafe {
        let f: NestFn = std::mem::transmute::<*const u8, NestFn>(f);
        (*pool).run(f, ctx, n, per_thread);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The CPUs the calling thread may run on.
    fn allowed_cpus() -> Vec<usize> {
        // SAFETY: as in `pin_worker`: a zeroed set, filled by the call for this thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            assert_eq!(libc::sched_getaffinity(0, size, &mut set), 0);
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect()
        }
    }

    #[test]
    fn a_worker_is_pinned_to_its_own_cpu_when_there_are_enough() {
        let cpus = allowed_cpus();
        let pinned = std::thread::spawn(|| {
            pin_worker(1, 2);
            allowed_cpus()
        })
        .join()
        .unwrap();
        if std::env::var(PIN_ENV).is_ok_and(|v| v.trim() == "0") {
            assert_eq!(pinned, cpus);
        } else if cpus.len() >= 2 {
            assert_eq!(pinned, [cpus[1]]);
        } else {
            assert_eq!(pinned, cpus, "one CPU: nothing to pin to");
        }
        // More threads than CPUs: no worker is pinned.
        let many = cpus.len() + 1;
        let unpinned = std::thread::spawn(move || {
            pin_worker(1, many);
            allowed_cpus()
        })
        .join()
        .unwrap();
        assert_eq!(unpinned, cpus);
        // The caller's own thread was never touched.
        assert_eq!(allowed_cpus(), cpus);
    }
}
