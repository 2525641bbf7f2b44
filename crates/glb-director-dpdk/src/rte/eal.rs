//! The Environment Abstraction Layer: initialisation (once per process),
//! lcores, launching work on them, virtual device hot-plug and the cycle
//! counter.

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int, c_void};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_sys as sys;

use super::RteError;

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that the EAL is initialised in this process. It stays on the
/// thread that created it (the main lcore), which is where DPDK wants its
/// control-path calls made.
///
/// Every DPDK object of this layer — port, queue, pool, buffer, ring —
/// borrows the `Eal` it was made with, and work runs on other lcores only
/// inside [`Eal::scope`], which waits for it. So when [`Eal::cleanup`]
/// takes the `Eal` by value, the compiler has already proved that no DPDK
/// object is left and no lcore is busy.
#[derive(Debug)]
pub struct Eal {
    _main_thread_only: PhantomData<*const ()>,
}

/// Work for an lcore, boxed for the trip through C; its return value is
/// the lcore's exit code.
type Job<'env> = Box<dyn FnOnce() -> i32 + Send + 'env>;

unsafe extern "C" fn run_job(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> that `Scope::launch` leaked for this
    // one call; nothing else holds it. Its lifetime was erased on the way
    // through C, but the scope that launched it outlives this call: a
    // scope waits for every lcore it launched on before it ends.
    let job = unsafe { Box::from_raw(arg.cast::<Job<'static>>()) };
    // A panic must not unwind into DPDK's C frames.
    std::panic::catch_unwind(AssertUnwindSafe(job)).unwrap_or(-1)
}

/// Launches work on worker lcores; see [`Eal::scope`].
#[derive(Debug)]
pub struct Scope<'env> {
    eal: &'env Eal,
    /// Lcores launched on and not yet waited for.
    busy: RefCell<Vec<u32>>,
    /// Invariant in `'env`, so jobs cannot be given a shorter one.
    _env: PhantomData<&'env mut &'env ()>,
}

impl<'env> Scope<'env> {
    /// Runs `job` on worker lcore `lcore`. The job may borrow anything
    /// that outlives the scope (ports, queues, rings).
    pub fn launch(
        &self,
        lcore: u32,
        job: impl FnOnce() -> i32 + Send + 'env,
    ) -> Result<(), RteError> {
        let eal = self.eal;
        if lcore == eal.main_lcore() || !eal.lcore_enabled(lcore) {
            return Err(RteError {
                what: format!("launch on lcore {lcore} (not an enabled worker lcore)"),
                errno: libc::EINVAL,
            });
        }
        if self.busy.borrow().contains(&lcore) {
            return Err(RteError {
                what: format!("launch on lcore {lcore} (it already runs a job)"),
                errno: libc::EBUSY,
            });
        }
        let job: Job<'env> = Box::new(job);
        let arg = Box::into_raw(Box::new(job));
        // SAFETY: run_job takes ownership of `arg` when the lcore runs it;
        // the job is Send, so it may run on another thread, and what it
        // borrows outlives the scope, which waits for the lcore.
        let rc = unsafe { sys::rte_eal_remote_launch(Some(run_job), arg.cast(), lcore) };
        if rc != 0 {
            // SAFETY: the launch failed, so run_job never saw `arg`.
            drop(unsafe { Box::from_raw(arg) });
            return Err(RteError::from_rc(
                format!("rte_eal_remote_launch(lcore {lcore})"),
                rc,
            ));
        }
        self.busy.borrow_mut().push(lcore);
        Ok(())
    }

    /// Waits for every job launched so far to return; gives each lcore's
    /// exit code, in launch order.
    pub fn join_all(&self) -> Vec<(u32, i32)> {
        let busy = std::mem::take(&mut *self.busy.borrow_mut());
        busy.into_iter().map(|l| (l, wait(l))).collect()
    }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        // Also on the way out of a panic: jobs borrow from the caller's
        // frame, which must not go away under them.
        for l in self.busy.get_mut().drain(..) {
            wait(l);
        }
    }
}

/// Waits for the job on `lcore` to return and gives its exit code.
fn wait(lcore: u32) -> i32 {
    // SAFETY: waiting on an lcore has no precondition; an idle lcore
    // returns at once.
    unsafe { sys::rte_eal_wait_lcore(lcore) }
}

impl Eal {
    /// Initialises the EAL with `args` (the first is the program name, the
    /// rest are EAL arguments only). Fails if the EAL was initialised
    /// before in this process, if it rejects an argument, or if it leaves
    /// arguments unparsed.
    pub fn init(args: &[String]) -> Result<Eal, RteError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(RteError {
                what: "rte_eal_init (already initialised in this process)".into(),
                errno: libc::EALREADY,
            });
        }
        let owned: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<_, _>>()
            .map_err(|_| RteError {
                what: "rte_eal_init (an argument contains a NUL byte)".into(),
                errno: libc::EINVAL,
            })?;
        // EAL keeps pointers into argv for the life of the process.
        let owned: &'static [CString] = Vec::leak(owned);
        let argv: &'static mut [*mut c_char] = Vec::leak(
            owned
                .iter()
                .map(|a| a.as_ptr().cast_mut())
                .chain(std::iter::once(ptr::null_mut()))
                .collect(),
        );
        let argc = c_int::try_from(owned.len()).map_err(|_| RteError {
            what: "rte_eal_init (too many arguments)".into(),
            errno: libc::E2BIG,
        })?;
        // SAFETY: argv holds argc NUL-terminated strings and a NULL
        // terminator, all leaked so they outlive the EAL.
        let parsed = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if parsed < 0 {
            return Err(RteError::from_errno("rte_eal_init"));
        }
        if parsed + 1 < argc {
            return Err(RteError {
                what: format!(
                    "rte_eal_init (left {} argument(s) unparsed)",
                    argc - parsed - 1
                ),
                errno: libc::EINVAL,
            });
        }
        Ok(Eal {
            _main_thread_only: PhantomData,
        })
    }

    /// The main lcore (the one running this thread).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: a read of EAL configuration after init.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// Whether `lcore` was enabled by the EAL arguments.
    pub fn lcore_enabled(&self, lcore: u32) -> bool {
        // SAFETY: a read of EAL configuration; out-of-range ids return 0.
        lcore < sys::RTE_MAX_LCORE && unsafe { sys::rte_lcore_is_enabled(lcore) } != 0
    }

    /// Every enabled lcore, main included.
    pub fn lcores(&self) -> Vec<u32> {
        (0..sys::RTE_MAX_LCORE)
            .filter(|&l| self.lcore_enabled(l))
            .collect()
    }

    /// The CPU an lcore runs on (its first CPU if it has several).
    pub fn lcore_cpu(&self, lcore: u32) -> Option<u32> {
        if !self.lcore_enabled(lcore) {
            return None;
        }
        // SAFETY: a read of EAL configuration for an enabled lcore.
        let cpu = unsafe { sys::rte_lcore_to_cpu_id(lcore as c_int) };
        u32::try_from(cpu).ok()
    }

    /// Whether the EAL runs on hugepages.
    pub fn has_hugepages(&self) -> bool {
        // SAFETY: a read of EAL configuration after init.
        unsafe { sys::rte_eal_has_hugepages() != 0 }
    }

    /// Runs `f` with a [`Scope`] for launching jobs on worker lcores;
    /// every job launched in it has returned by the time `scope` returns
    /// (also when `f` panics), so jobs may borrow what outlives the call.
    pub fn scope<'env, R>(&'env self, f: impl FnOnce(&Scope<'env>) -> R) -> R {
        let scope = Scope {
            eal: self,
            busy: RefCell::new(Vec::new()),
            _env: PhantomData,
        };
        f(&scope)
    }

    /// Creates a virtual device after start-up, e.g.
    /// `("net_tap_vglb_kni0", "iface=vglb_kni0")`.
    pub fn add_vdev(&self, name: &str, args: &str) -> Result<(), RteError> {
        let what = || format!("rte_eal_hotplug_add(vdev {name},{args})");
        let (cname, cargs) = match (CString::new(name), CString::new(args)) {
            (Ok(n), Ok(a)) => (n, a),
            _ => {
                return Err(RteError {
                    what: what(),
                    errno: libc::EINVAL,
                });
            }
        };
        // SAFETY: three valid NUL-terminated strings, copied by the EAL.
        let rc =
            unsafe { sys::rte_eal_hotplug_add(c"vdev".as_ptr(), cname.as_ptr(), cargs.as_ptr()) };
        if rc != 0 {
            return Err(RteError::from_rc(what(), rc));
        }
        Ok(())
    }

    /// Releases the EAL's resources, including all DPDK memory. Taking
    /// the `Eal` by value is what makes this safe: every DPDK object
    /// borrows it, so none is left, and lcores only ever run jobs inside
    /// [`Eal::scope`], which has returned.
    pub fn cleanup(self) -> Result<(), RteError> {
        // SAFETY: nothing can use DPDK any more (see above).
        let rc = unsafe { sys::rte_eal_cleanup() };
        if rc != 0 {
            return Err(RteError::from_rc("rte_eal_cleanup", rc));
        }
        Ok(())
    }
}

/// The lcore the calling thread runs as (`u32::MAX` for non-EAL threads).
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local.
    unsafe { sys::glb_rte_lcore_id() }
}

/// A CPU pause hint for spin loops.
#[inline]
pub fn pause() {
    // SAFETY: a single pause instruction.
    unsafe { sys::glb_rte_pause() }
}

/// The timestamp counter.
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: reads the CPU's timestamp counter.
    unsafe { sys::glb_rte_get_tsc_cycles() }
}

/// Timestamp counter ticks per second (valid after EAL init).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value the EAL calibrated at init.
    unsafe { sys::rte_get_tsc_hz() }
}
