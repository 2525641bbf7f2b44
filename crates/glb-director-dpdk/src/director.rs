//! The production engine: the packet path on DPDK ports, laid out over
//! lcores as `director.conf` says ([`crate::plan`]), with the core loops
//! in [`crate::cores`] and the metrics in [`crate::stats`].
//!
//! [`Director::open`] takes charge of every port, exception interface
//! and the pool; [`Director::launch`] configures and starts them and runs
//! the cores inside an [`Eal::scope`]. The caller's thread (the EAL main
//! lcore) then only does housekeeping: table swaps
//! ([`Director::swap_table`]), metrics ([`Director::sample`]), and at the
//! end [`Director::stop_cores`]; once the scope has waited for the cores,
//! [`Director::close`] closes the ports.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use glb_core::encap::Encapsulator;
use glb_core::route::Forwarder;
use glb_core::wire::ethernet;
use tracing::{debug, info, warn};

use crate::cores::{
    CoreCtx, CoreStats, DistributorJob, KniLink, RtcJob, RtcPath, Shared, WorkerJob, WorkerLink,
};
use crate::plan::{CorePlan, Job, Plan, PlanError, kni_name};
use crate::rte::RteError;
use crate::rte::eal::{Eal, Scope};
use crate::rte::ethdev::{Port, PortSetup, RxQueue, TxQueue};
use crate::rte::mbuf::BURST;
use crate::rte::mempool::Mempool;
use crate::rte::ring;
use crate::stats::{CoreSample, Sample};
use glb_director::DirectorConfig;
use glb_director::idle::IdlePolicy;

/// Slots per ring between a distributor and a worker.
pub const RING_SIZE: u32 = 1024;
/// Per-lcore buffer cache of the pool.
pub const POOL_CACHE: u32 = 256;
/// Descriptors per queue of an exception (tap) device.
pub const TAP_DESC: u16 = 512;

/// Engine settings that are not in `director.conf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// What cores do when idle.
    pub idle: IdlePolicy,
    /// Receive descriptors per queue.
    pub rx_desc: u16,
    /// Transmit descriptors per queue.
    pub tx_desc: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            idle: IdlePolicy::default(),
            rx_desc: 1024,
            tx_desc: 1024,
        }
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration does not fit the EAL's lcores.
    #[error("{file}: {error}")]
    Plan {
        /// The configuration file.
        file: String,
        /// Why (in the message, not a separate cause: printed once).
        error: PlanError,
    },
    /// A DPDK call failed.
    #[error(transparent)]
    Rte(#[from] RteError),
    /// Something else is missing.
    #[error("{0}")]
    Setup(String),
}

/// A director: its ports, exception interfaces and buffer pool, all
/// borrowing the EAL, and the state its cores share. Its cores run inside
/// an [`Eal::scope`] ([`Director::launch`]); closing it
/// ([`Director::close`]) closes the ports.
#[derive(Debug)]
pub struct Director<'eal> {
    eal: &'eal Eal,
    config_file: String,
    cfg: DirectorConfig,
    opts: Options,
    plan: Plan,
    shared: Arc<Shared>,
    ports: Vec<Port<'eal>>,
    taps: BTreeMap<u16, Port<'eal>>,
    pool: Mempool<'eal>,
    retired: RefCell<Vec<Arc<Forwarder>>>,
}

/// What closing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReport {
    /// Ports that did not stop or close cleanly.
    pub port_errors: Vec<String>,
    /// Buffers not back in the pool after everything stopped.
    pub buffers_in_use: u32,
}

/// Work for one lcore.
type CoreJob<'a> = Box<dyn FnOnce() -> i32 + Send + 'a>;

fn mac_string(mac: [u8; 6]) -> String {
    ethernet::Address(mac).to_string()
}

/// Buffers the pool needs: every descriptor of every queue, every ring
/// slot, and each lcore's cache and in-flight bursts, rounded up to one
/// less than a power of two (DPDK's most efficient size), and at least
/// 16,383 (about 36 MiB) so that a looping `net_pcap` test device can
/// preload a capture of 10,000 frames.
pub fn pool_size(plan: &Plan, opts: &Options) -> u32 {
    let q = u64::from(plan.queues);
    let mut n = plan.ports.len() as u64 * q * u64::from(opts.rx_desc + opts.tx_desc);
    let taps: u64 = plan.kni_ports.values().map(|&k| u64::from(k)).sum();
    n += taps * 2 * u64::from(TAP_DESC);
    let rings: u64 = plan
        .cores
        .iter()
        .filter(|c| matches!(c.job, Job::Worker { .. }))
        .count() as u64
        * 3;
    n += rings * u64::from(RING_SIZE);
    n += (plan.cores.len() as u64 + 1) * (u64::from(POOL_CACHE) + 8 * BURST as u64);
    let n = n.max(16_384).next_power_of_two() - 1;
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl<'eal> Director<'eal> {
    /// Lays the configuration onto the EAL's lcores and takes charge of
    /// its ports, exception interfaces and the buffer pool, with `fwd` as
    /// the forwarding table. Nothing runs yet: see [`Director::launch`].
    pub fn open(
        eal: &'eal Eal,
        config_file: &str,
        cfg: &DirectorConfig,
        fwd: Forwarder,
        opts: &Options,
    ) -> Result<Self, StartError> {
        let plan =
            Plan::new(cfg, eal.main_lcore(), |l| eal.lcore_enabled(l)).map_err(|source| {
                StartError::Plan {
                    file: config_file.to_owned(),
                    error: source,
                }
            })?;

        let found = Port::count(eal);
        let mut ports = Vec::new();
        for &id in &plan.ports {
            let port = Port::open(eal, id).ok_or_else(|| {
                StartError::Setup(format!(
                    "{config_file}: flow_paths use port {id}, but the EAL found {found} port(s); \
                     give it the device (e.g. --vdev=net_pcap0,... or a NIC bound to a DPDK driver)"
                ))
            })?;
            let info = port.info()?;
            if info.max_rx_queues < plan.queues || info.max_tx_queues < plan.queues {
                return Err(StartError::Setup(format!(
                    "{config_file}: num_worker_queues is {}, but port {id} ({} {}) supports {} receive \
                     and {} transmit queue(s)",
                    plan.queues, info.driver, info.name, info.max_rx_queues, info.max_tx_queues
                )));
            }
            info!(
                port = id,
                driver = %info.driver,
                name = %info.name,
                mac = %mac_string(port.mac()?),
                queues = plan.queues,
                "port"
            );
            ports.push(port);
        }

        // One tap per port with the exception path, with the port's MAC so
        // that what Linux answers is addressed as if from the port.
        let mut taps: BTreeMap<u16, Port<'eal>> = BTreeMap::new();
        for &id in plan.kni_ports.keys() {
            let mac = ports
                .iter()
                .find(|p| p.id() == id)
                .ok_or_else(|| StartError::Setup(format!("port {id} vanished")))?
                .mac()?;
            let dev = format!("net_tap_{}", kni_name(id));
            eal.add_vdev(
                &dev,
                &format!("iface={},mac={}", kni_name(id), mac_string(mac)),
            )?;
            taps.insert(id, Port::open_by_name(eal, &dev)?);
        }

        let pool = Mempool::new(eal, "glb_director", pool_size(&plan, opts), POOL_CACHE)?;
        debug!(buffers = pool.available(), "packet buffer pool");

        let shared = Arc::new(Shared {
            forwarder: ArcSwap::from_pointee(fwd),
            generation: AtomicU64::new(0),
            running: AtomicBool::new(true),
            cores: plan
                .cores
                .iter()
                .map(|c| CoreStats {
                    lcore: c.lcore,
                    ..CoreStats::default()
                })
                .collect(),
        });
        Ok(Director {
            eal,
            config_file: config_file.to_owned(),
            cfg: cfg.clone(),
            opts: *opts,
            plan,
            shared,
            ports,
            taps,
            pool,
            retired: RefCell::new(Vec::new()),
        })
    }

    /// Configures and starts the ports and exception interfaces, and
    /// launches every core in `scope`. On error, the cores launched so far
    /// are told to stop (the scope waits for them).
    pub fn launch<'env>(&'env self, scope: &Scope<'env>) -> Result<(), StartError> {
        let result = self.launch_all(scope);
        if result.is_err() {
            self.stop_cores();
        }
        result
    }

    fn launch_all<'env>(&'env self, scope: &Scope<'env>) -> Result<(), StartError> {
        let (plan, cfg, opts) = (&self.plan, &self.cfg, &self.opts);
        let mut rxq: BTreeMap<(u16, u16), RxQueue<'env>> = BTreeMap::new();
        let mut txq: BTreeMap<(u16, u16), TxQueue<'env>> = BTreeMap::new();
        let setup = PortSetup {
            rx_queues: plan.queues,
            tx_queues: plan.queues,
            rx_desc: opts.rx_desc,
            tx_desc: opts.tx_desc,
            rss: plan.queues > 1,
            rx_drop_en: cfg.rx_drop_en,
        };
        for port in &self.ports {
            let c = port.configure(&setup, &self.pool)?;
            for n in &c.notes {
                warn!("{n}");
            }
            for q in c.rx {
                rxq.insert((port.id(), q.queue()), q);
            }
            for q in c.tx {
                txq.insert((port.id(), q.queue()), q);
            }
        }
        let mut tap_rx: BTreeMap<(u16, u16), RxQueue<'env>> = BTreeMap::new();
        let mut tap_tx: BTreeMap<(u16, u16), TxQueue<'env>> = BTreeMap::new();
        for (&id, tap) in &self.taps {
            let n = plan.kni_ports[&id];
            let c = tap.configure(
                &PortSetup {
                    rx_queues: n,
                    tx_queues: n,
                    rx_desc: TAP_DESC,
                    tx_desc: TAP_DESC,
                    rss: false,
                    rx_drop_en: false,
                },
                &self.pool,
            )?;
            for q in c.rx {
                tap_rx.insert((id, q.queue()), q);
            }
            for q in c.tx {
                tap_tx.insert((id, q.queue()), q);
            }
        }

        let mut macs: BTreeMap<u16, ethernet::Address> = BTreeMap::new();
        for port in &self.ports {
            port.start()?;
            if let Err(e) = port.promiscuous() {
                debug!("{e} (frames to other MACs will not be received)");
            }
            macs.insert(port.id(), ethernet::Address(port.mac()?));
        }
        for (&id, tap) in &self.taps {
            tap.start()?;
            info!(port = id, interface = %kni_name(id), "exception path");
            if let Some(ip) = cfg.kni_ip {
                assign_kni_ip(&kni_name(id), ip);
            }
        }

        let jobs = build_jobs(
            self.eal,
            plan,
            cfg,
            opts,
            &self.shared,
            &macs,
            &mut rxq,
            &mut txq,
            &mut tap_rx,
            &mut tap_tx,
        )?;
        for (slot, (lcore, job)) in jobs.into_iter().enumerate() {
            let shared = Arc::clone(&self.shared);
            scope.launch(lcore, move || {
                let rc = job();
                shared.cores[slot].exited.store(true, Ordering::SeqCst);
                rc
            })?;
        }
        for c in &plan.cores {
            let what = match &c.job {
                Job::RunToCompletion => "run-to-completion".to_owned(),
                Job::Distributor { workers } => format!("distributor for lcores {workers:?}"),
                Job::Worker { source } => format!("worker of lcore {source}"),
            };
            info!(
                lcore = c.lcore,
                flow_paths = c.flow_paths.len(),
                exception_path = c.kni,
                "{what}"
            );
        }
        Ok(())
    }

    /// The configuration file the director was opened with.
    pub fn config_file(&self) -> &str {
        &self.config_file
    }

    /// Puts `fwd` in service: each core switches at its next batch. The
    /// previous table is freed by [`Director::reap`] once no core holds it.
    pub fn swap_table(&self, fwd: Forwarder) {
        let old = self.shared.forwarder.swap(Arc::new(fwd));
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        self.retired.borrow_mut().push(old);
    }

    /// Frees retired tables no core uses any more; returns how many are
    /// still held by some core.
    pub fn reap(&self) -> usize {
        let mut retired = self.retired.borrow_mut();
        retired.retain(|t| Arc::strong_count(t) > 1);
        retired.len()
    }

    /// Current counters of every port and core.
    pub fn sample(&self) -> Sample {
        let mut s = Sample::default();
        for p in &self.ports {
            match p.stats() {
                Ok(st) => {
                    s.ports.insert(p.id(), st);
                }
                Err(e) => debug!("{e}"),
            }
        }
        for c in &self.shared.cores {
            s.cores.insert(
                c.lcore,
                CoreSample {
                    counters: c.counters.snapshot(),
                    reloads: c.reloads.load(Ordering::Relaxed),
                    dropped: c.dropped.load(Ordering::Relaxed),
                },
            );
        }
        s
    }

    /// Lcores whose loop has returned although the director was not
    /// told to stop (it is then short of a core and should stop).
    pub fn exited_cores(&self) -> Vec<u32> {
        if !self.shared.running.load(Ordering::SeqCst) {
            return Vec::new();
        }
        self.shared
            .cores
            .iter()
            .filter(|c| c.exited.load(Ordering::SeqCst))
            .map(|c| c.lcore)
            .collect()
    }

    /// Each core's lcore id and loop passes so far.
    pub fn progress(&self) -> Vec<(u32, u64)> {
        self.shared
            .cores
            .iter()
            .map(|c| (c.lcore, c.passes.load(Ordering::Relaxed)))
            .collect()
    }

    /// Queues per port.
    pub fn queues(&self) -> u16 {
        self.plan.queues
    }

    /// Tells every core to return from its loop at its next batch.
    pub fn stop_cores(&self) {
        self.shared.running.store(false, Ordering::SeqCst);
    }

    /// Stops and closes every port (which completes a `net_pcap` output
    /// file and removes the taps). Call it once the scope its cores ran
    /// in has returned — the borrow checker insists.
    pub fn close(self) -> CloseReport {
        let mut port_errors = Vec::new();
        for p in self.ports.into_iter().chain(self.taps.into_values()) {
            if let Err(e) = p.close() {
                port_errors.push(e.to_string());
            }
        }
        CloseReport {
            port_errors,
            buffers_in_use: self.pool.in_use(),
        }
    }
}

/// Gives the exception interface its address (best effort: the
/// interface works without it, so a failure is only logged).
fn assign_kni_ip(iface: &str, ip: std::net::Ipv4Addr) {
    let out = std::process::Command::new("ip")
        .args(["addr", "replace", &format!("{ip}/32"), "dev", iface])
        .output();
    match out {
        Ok(o) if o.status.success() => info!(interface = iface, %ip, "kni_ip assigned"),
        Ok(o) => warn!(
            interface = iface,
            %ip,
            "cannot assign kni_ip: ip addr replace failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => warn!(interface = iface, %ip, "cannot assign kni_ip: cannot run ip: {e}"),
    }
}

fn take<K: Ord + Copy + std::fmt::Debug, V>(
    map: &mut BTreeMap<K, V>,
    key: K,
    what: &str,
) -> Result<V, StartError> {
    map.remove(&key)
        .ok_or_else(|| StartError::Setup(format!("{what} {key:?} is not available")))
}

fn by_port<T: Clone>(pairs: impl IntoIterator<Item = (u16, T)>) -> Vec<Option<T>> {
    let mut v = Vec::new();
    for (p, t) in pairs {
        let i = usize::from(p);
        if v.len() <= i {
            v.resize(i + 1, None);
        }
        if v[i].is_none() {
            v[i] = Some(t);
        }
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn build_jobs<'a>(
    eal: &'a Eal,
    plan: &Plan,
    cfg: &DirectorConfig,
    opts: &Options,
    shared: &Arc<Shared>,
    macs: &BTreeMap<u16, ethernet::Address>,
    rxq: &mut BTreeMap<(u16, u16), RxQueue<'a>>,
    txq: &mut BTreeMap<(u16, u16), TxQueue<'a>>,
    tap_rx: &mut BTreeMap<(u16, u16), RxQueue<'a>>,
    tap_tx: &mut BTreeMap<(u16, u16), TxQueue<'a>>,
) -> Result<Vec<(u32, CoreJob<'a>)>, StartError> {
    let enc_for = |tx_port: u16| -> Encapsulator {
        Encapsulator::new(cfg.encap_params(macs.get(&tx_port).copied().unwrap_or_default()))
    };
    let ctx = |c: &CorePlan| CoreCtx {
        shared: Arc::clone(shared),
        slot: plan
            .cores
            .iter()
            .position(|x| x.lcore == c.lcore)
            .unwrap_or(0),
        idle: opts.idle,
    };
    let kni_links = |c: &CorePlan,
                     tap_rx: &mut BTreeMap<(u16, u16), RxQueue<'a>>,
                     tap_tx: &mut BTreeMap<(u16, u16), TxQueue<'a>>|
     -> Result<(Vec<KniLink<'a>>, Vec<TxQueue<'a>>), StartError> {
        let mut links = Vec::new();
        let mut txs = Vec::new();
        for &(port, q) in &c.kni_ports {
            links.push(KniLink {
                port,
                tap_rx: take(tap_rx, (port, q), "exception receive queue")?,
                port_tx: c.tx_on_port(port).unwrap_or(0),
            });
            txs.push(take(tap_tx, (port, q), "exception transmit queue")?);
        }
        Ok((links, txs))
    };
    // In the order of `CorePlan::tx_queues`, which a core's paths index.
    let tx_queues = |c: &CorePlan,
                     txq: &mut BTreeMap<(u16, u16), TxQueue<'a>>|
     -> Result<Vec<TxQueue<'a>>, StartError> {
        c.tx_queues()
            .iter()
            .map(|&q| take(txq, q, "transmit queue"))
            .collect()
    };

    // Rings first: each worker's ends are made with its distributor's.
    let mut worker_ends: BTreeMap<
        u32,
        (ring::Consumer<'a>, ring::Producer<'a>, ring::Producer<'a>),
    > = BTreeMap::new();
    let mut dist_links: BTreeMap<u32, Vec<WorkerLink<'a>>> = BTreeMap::new();
    for c in &plan.cores {
        if let Job::Distributor { workers } = &c.job {
            let mut links = Vec::new();
            for &w in workers {
                let (to_p, to_c) = ring::spsc(eal, &format!("glb_{}_{w}_in", c.lcore), RING_SIZE)?;
                let (done_p, done_c) =
                    ring::spsc(eal, &format!("glb_{}_{w}_out", c.lcore), RING_SIZE)?;
                let (unm_p, unm_c) =
                    ring::spsc(eal, &format!("glb_{}_{w}_kni", c.lcore), RING_SIZE)?;
                links.push(WorkerLink {
                    to: to_p,
                    done: done_c,
                    unmatched: unm_c,
                });
                worker_ends.insert(w, (to_c, done_p, unm_p));
            }
            dist_links.insert(c.lcore, links);
        }
    }

    let mut jobs: Vec<(u32, CoreJob<'a>)> = Vec::new();
    for c in &plan.cores {
        let job: CoreJob<'a> = match &c.job {
            Job::RunToCompletion => {
                let txs = c.tx_queues();
                let (kni, kni_tx) = kni_links(c, tap_rx, tap_tx)?;
                let mut paths = Vec::new();
                for fp in &c.flow_paths {
                    paths.push(RtcPath {
                        rx: take(rxq, (fp.rx_port, fp.rx_queue), "receive queue")?,
                        tx: txs
                            .iter()
                            .position(|&q| q == (fp.tx_port, fp.tx_queue))
                            .unwrap_or(0),
                        enc: enc_for(fp.tx_port),
                        kni: kni.iter().position(|k| k.port == fp.rx_port),
                    });
                }
                let tx = tx_queues(c, txq)?;
                let job = RtcJob {
                    ctx: ctx(c),
                    paths,
                    tx,
                    kni,
                    kni_tx,
                };
                Box::new(move || job.run())
            }
            Job::Distributor { .. } => {
                let (kni, kni_tx) = kni_links(c, tap_rx, tap_tx)?;
                let rx = c
                    .flow_paths
                    .iter()
                    .map(|fp| take(rxq, (fp.rx_port, fp.rx_queue), "receive queue"))
                    .collect::<Result<_, _>>()?;
                let tx = tx_queues(c, txq)?;
                let job = DistributorJob {
                    ctx: ctx(c),
                    rx,
                    tx,
                    tx_for_port: by_port(
                        c.flow_paths
                            .iter()
                            .filter_map(|fp| Some((fp.rx_port, c.tx_for_rx_port(fp.rx_port)?))),
                    ),
                    kni_for_port: by_port(kni.iter().enumerate().map(|(i, k)| (k.port, i))),
                    kni,
                    kni_tx,
                    workers: dist_links.remove(&c.lcore).unwrap_or_default(),
                };
                Box::new(move || job.run())
            }
            Job::Worker { source } => {
                let (from, done, unmatched) = worker_ends.remove(&c.lcore).ok_or_else(|| {
                    StartError::Setup(format!("lcore {} has no distributor rings", c.lcore))
                })?;
                let dist = plan.core(*source).ok_or_else(|| {
                    StartError::Setup(format!("lcore {source} (a distributor) is not planned"))
                })?;
                let job = WorkerJob {
                    ctx: ctx(c),
                    from,
                    done,
                    unmatched: c.kni.then_some(unmatched),
                    enc_for_port: by_port(
                        dist.flow_paths
                            .iter()
                            .map(|fp| (fp.rx_port, enc_for(fp.tx_port))),
                    ),
                };
                Box::new(move || job.run())
            }
        };
        jobs.push((c.lcore, job));
    }
    Ok(jobs)
}

/// One line of cumulative counters for `--stats-interval`:
/// `stats t=SECS portP.rx=N ... coreC.total=N ...`.
pub fn stats_line(elapsed_secs: f64, s: &Sample) -> String {
    let mut line = format!("stats t={elapsed_secs:.3}");
    for (p, st) in &s.ports {
        let _ = write!(
            line,
            " port{p}.rx={} port{p}.tx={} port{p}.rx_missed={} port{p}.rx_errors={} \
             port{p}.tx_errors={} port{p}.rx_nombuf={}",
            st.ipackets, st.opackets, st.imissed, st.ierrors, st.oerrors, st.rx_nombuf
        );
    }
    for (l, c) in &s.cores {
        let k = &c.counters;
        let _ = write!(
            line,
            " core{l}.total={} core{l}.matched={} core{l}.unmatched={} core{l}.route_failed={} \
             core{l}.encap_success={} core{l}.encap_failure={} core{l}.eth_tx_sent={} \
             core{l}.kni={} core{l}.kni_tx_sent={} core{l}.rx_errors={} core{l}.dropped={} \
             core{l}.reloads={}",
            k.total,
            k.matched,
            k.unmatched,
            k.route_failed,
            k.encap_success,
            k.encap_failure,
            k.eth_tx_sent,
            k.kni,
            k.kni_tx_sent,
            k.rx_errors,
            c.dropped,
            c.reloads
        );
    }
    line
}
