//! A small persistent thread pool for splitting one loop nest over cores.
//!
//! Written on `std` alone: the job is always "run this native function over `begin..end` for
//! each of a few chunks". A job is published by storing its fields and then a new *epoch* in
//! the claim word (`epoch << 32 | next chunk`); threads claim chunks by compare-and-swap on
//! that word and count them done on an atomic, so handing a nest to the pool takes no lock.
//! Workers and the waiting caller poll for a few tens of microseconds before they block on a
//! condition variable, so consecutive nests hand over without a sleep and wake-up; the lock
//! and the notification are only taken when a thread is actually asleep. One pool per thread
//! count is created on first use and shared by every compiled step of the process.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
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

/// The epoch of a claim word.
fn epoch(word: u64) -> u64 {
    word >> 32
}

/// The chunk index of a closed epoch (also the mask of a word's chunk index, and of epochs).
const CLOSED: u64 = 0xffff_ffff;

struct Shared {
    /// The current job: its function, context, range and chunk count. Written by the
    /// submitting thread before it publishes the job's epoch in `claim`, and not again until
    /// every chunk of the job is finished; read by a thread that then claims a chunk of that
    /// epoch (a successful claim proves the fields it read were the job's).
    f: AtomicUsize,
    ctx: AtomicUsize,
    n: AtomicI64,
    chunks: AtomicUsize,
    /// `epoch << 32 | next chunk to claim` ([`CLOSED`] while the next job's fields are
    /// written).
    claim: AtomicU64,
    /// Chunks of the current job not finished yet.
    remaining: AtomicUsize,
    /// Workers blocked (or about to block) on `work`.
    sleepers: AtomicUsize,
    /// The submitting thread is blocked (or about to block) on `done`.
    waiting: AtomicBool,
    /// Guards the sleeps on `work` and `done` (no data: the state is in the atomics).
    lock: Mutex<()>,
    work: Condvar,
    done: Condvar,
}

impl Shared {
    /// Claims and runs chunks of the job of epoch `e` until none is left to claim (or a later
    /// job replaced it).
    fn run_chunks(&self, e: u64) {
        loop {
            let word = self.claim.load(Ordering::Acquire);
            if epoch(word) != e {
                return;
            }
            let c = (word & CLOSED) as usize;
            let chunks = self.chunks.load(Ordering::Acquire);
            if c >= chunks {
                return;
            }
            let (f, ctx, n) = (
                self.f.load(Ordering::Acquire),
                self.ctx.load(Ordering::Acquire),
                self.n.load(Ordering::Acquire),
            );
            if self
                .claim
                .compare_exchange_weak(word, word + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let begin = n * c as i64 / chunks as i64;
            let end = n * (c as i64 + 1) / chunks as i64;
            // SAFETY: the claim succeeded on epoch `e`, so chunk `c` of that job was unclaimed
            // and the job unfinished: its fields, read above, are the job's (the next job's
            // are written after the epoch is closed, and reading any of them would have made
            // the close visible to the claim). `f` is the `NestFn` the submitter stored, which
            // `Pool::run`'s caller guaranteed may run on disjoint ranges at once; the
            // submitter waits for every chunk before `ctx` can go away.
            unsafe {
                let f = std::mem::transmute::<usize, NestFn>(f);
                f(ctx as *const u8, begin, end);
            }
            // Sequentially consistent with the submitter's store of `waiting` and load of
            // `remaining` before it sleeps: either it sees this chunk finished or this thread
            // sees it waiting and wakes it.
            if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1
                && self.waiting.load(Ordering::SeqCst)
            {
                let _g = self.lock.lock().unwrap_or_else(|e| e.into_inner());
                self.done.notify_all();
            }
        }
    }
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
            f: AtomicUsize::new(0),
            ctx: AtomicUsize::new(0),
            n: AtomicI64::new(0),
            chunks: AtomicUsize::new(0),
            claim: AtomicU64::new(0),
            remaining: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            waiting: AtomicBool::new(false),
            lock: Mutex::new(()),
            work: Condvar::new(),
            done: Condvar::new(),
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
        if self.threads == 1 || chunks == 1 {
            // SAFETY: the caller's contract.
            unsafe { f(ctx, 0, n) };
            return;
        }
        let _turn = self.submit.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // The previous job is finished (its submitter waited for it under `submit`), but a
        // thread may still hold its last claim word (every chunk claimed) and be about to read
        // the fields. Closing that epoch first (no chunk index is below `CLOSED`) makes its
        // claim fail once it has read any field written below: the fields are released after
        // the close and acquired before the claim.
        let previous = epoch(s.claim.load(Ordering::Relaxed));
        s.claim.store(previous << 32 | CLOSED, Ordering::SeqCst);
        s.f.store(f as usize, Ordering::Release);
        s.ctx.store(ctx as usize, Ordering::Release);
        s.n.store(n, Ordering::Release);
        s.chunks.store(chunks, Ordering::Release);
        s.remaining.store(chunks, Ordering::Relaxed);
        let e = (previous + 1) & CLOSED;
        // Publishes the fields above with the new epoch (and chunk 0 next). Sequentially
        // consistent with the load of `sleepers` below and the worker's store of it and load
        // of `claim` before it sleeps: either the worker sees this epoch or this thread sees
        // the worker asleep and wakes it.
        s.claim.store(e << 32, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.work.notify_all();
        }
        s.run_chunks(e);
        let finished = || s.remaining.load(Ordering::SeqCst) == 0;
        if !spin_until(finished) {
            s.waiting.store(true, Ordering::SeqCst);
            let mut g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            while !finished() {
                g = s.done.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            drop(g);
            s.waiting.store(false, Ordering::SeqCst);
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
    let mut seen = 0;
    loop {
        let fresh = || epoch(s.claim.load(Ordering::SeqCst)) != seen;
        if !spin_until(fresh) {
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            let mut g = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            while !fresh() {
                g = s.work.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            drop(g);
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        seen = epoch(s.claim.load(Ordering::Acquire));
        s.run_chunks(seen);
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

#[cfg(test)]
mod job_tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// `ctx` points to a slice of counters; the chunk adds 1 to each of its indices.
    unsafe extern "C" fn count(ctx: *const u8, begin: i64, end: i64) {
        // SAFETY: the test passes a live `[AtomicU32]` of at least `end` elements.
        let counters = unsafe { &*(ctx as *const Vec<AtomicU32>) };
        for i in begin..end {
            counters[i as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn every_index_runs_exactly_once_in_every_job() {
        for threads in [2, 3] {
            let pool = Pool::shared(threads);
            for job in 0..3000usize {
                let n = (job * 7919 % 300) as i64 + 1;
                let counters: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                let per_thread = [1, 4][job % 2];
                // Now and then a pause longer than the spinning, so that the workers block
                // and are woken by the next job.
                if job % 500 == 499 {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                // SAFETY: `count` only touches its own indices of the live `counters`.
                unsafe { pool.run(count, &counters as *const _ as *const u8, n, per_thread) };
                assert!(
                    counters.iter().all(|c| c.load(Ordering::Relaxed) == 1),
                    "{threads} threads, job {job} over {n}"
                );
            }
        }
    }

    #[test]
    fn pools_shared_by_several_submitting_threads() {
        let pool = Pool::shared(2);
        std::thread::scope(|scope| {
            for t in 0..3 {
                let pool = Arc::clone(&pool);
                scope.spawn(move || {
                    for job in 0..500i64 {
                        let n = 1 + (job + t) % 97;
                        let counters: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                        // SAFETY: as above.
                        unsafe {
                            pool.run(
                                count,
                                &counters as *const _ as *const u8,
                                n,
                                CHUNKS_PER_THREAD,
                            )
                        };
                        assert!(counters.iter().all(|c| c.load(Ordering::Relaxed) == 1));
                    }
                });
            }
        });
    }
}
