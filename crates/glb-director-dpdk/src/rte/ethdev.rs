//! Ethernet ports: lookup, configuration with RSS, queue setup, start,
//! stop and close, statistics, and the per-queue receive and transmit
//! handles the lcores poll.

use std::ffi::{CStr, CString, c_char};
use std::marker::PhantomData;

use dpdk_sys as sys;

use super::RteError;
use super::eal::Eal;
use super::mbuf::MbufBatch;
use super::mempool::Mempool;

/// Queue statistics DPDK keeps per port (`RTE_ETHDEV_QUEUE_STAT_CNTRS`).
pub const QUEUE_STAT_COUNTERS: usize = 16;

/// An Ethernet port, owned: dropping it stops and closes the device
/// (which completes a `net_pcap` output file and removes a `net_tap`
/// interface). Its queue handles borrow it, so it cannot be closed while
/// a core may poll one; it borrows the EAL, so it is closed before the
/// EAL is cleaned up.
#[derive(Debug, PartialEq, Eq)]
pub struct Port<'eal> {
    id: u16,
    open: bool,
    _eal: PhantomData<&'eal Eal>,
}

// SAFETY: a port handle is an id; DPDK's control calls on a port may be
// made from any thread of the process, and the data path (queues) is
// reached only through the queue handles, each used by one core.
unsafe impl Send for Port<'_> {}
// SAFETY: as above: shared handles only make control-path calls, which
// DPDK serialises per port.
unsafe impl Sync for Port<'_> {}

/// How to set a port up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSetup {
    /// Receive queues.
    pub rx_queues: u16,
    /// Transmit queues.
    pub tx_queues: u16,
    /// Receive descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Transmit descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Spread received flows over the receive queues with RSS (only
    /// meaningful with more than one receive queue).
    pub rss: bool,
    /// Let the NIC drop packets when a queue has no free descriptors.
    pub rx_drop_en: bool,
}

/// A configured port's queues, each to be polled by one core, and what
/// configuration had to give up.
#[derive(Debug)]
pub struct Configured<'port> {
    /// Receive queue handles, by queue id.
    pub rx: Vec<RxQueue<'port>>,
    /// Transmit queue handles, by queue id.
    pub tx: Vec<TxQueue<'port>>,
    /// The RSS hash functions enabled (0 when RSS is off).
    pub rss_hf: u64,
    /// Things configuration adjusted or could not do.
    pub notes: Vec<String>,
}

/// Static facts about a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Driver name, e.g. `net_pcap`.
    pub driver: String,
    /// Device name, e.g. `net_pcap0`.
    pub name: String,
    /// Most receive queues.
    pub max_rx_queues: u16,
    /// Most transmit queues.
    pub max_tx_queues: u16,
    /// RSS hash functions it supports.
    pub rss_offloads: u64,
}

/// Port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the NIC dropped for lack of descriptors.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Receive buffer allocation failures.
    pub rx_nombuf: u64,
    /// Per queue: packets received.
    pub q_ipackets: [u64; QUEUE_STAT_COUNTERS],
    /// Per queue: packets sent.
    pub q_opackets: [u64; QUEUE_STAT_COUNTERS],
    /// Per queue: bytes received.
    pub q_ibytes: [u64; QUEUE_STAT_COUNTERS],
    /// Per queue: bytes sent.
    pub q_obytes: [u64; QUEUE_STAT_COUNTERS],
    /// Per queue: receive errors.
    pub q_errors: [u64; QUEUE_STAT_COUNTERS],
}

fn check(what: impl FnOnce() -> String, rc: i32) -> Result<(), RteError> {
    if rc < 0 {
        Err(RteError::from_rc(what(), rc))
    } else {
        Ok(())
    }
}

impl<'eal> Port<'eal> {
    /// Ports available to the application.
    pub fn count(_eal: &Eal) -> u16 {
        // SAFETY: a read of ethdev state; the EAL is initialised.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    fn owned(id: u16) -> Self {
        Port {
            id,
            open: true,
            _eal: PhantomData,
        }
    }

    /// Takes charge of the port with this id, if it exists. Open each
    /// port once: the handle closes it when dropped.
    pub fn open(_eal: &'eal Eal, id: u16) -> Option<Self> {
        // SAFETY: validity check of an id; any value is allowed.
        (unsafe { sys::rte_eth_dev_is_valid_port(id) } != 0).then(|| Port::owned(id))
    }

    /// Takes charge of the port created by `--vdev=NAME...` or found on
    /// the bus as NAME.
    pub fn open_by_name(_eal: &'eal Eal, name: &str) -> Result<Self, RteError> {
        let what = || format!("rte_eth_dev_get_port_by_name({name})");
        let cname = CString::new(name).map_err(|_| RteError {
            what: what(),
            errno: libc::EINVAL,
        })?;
        let mut id = 0u16;
        // SAFETY: cname is a valid C string and id a valid out pointer.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        check(what, rc)?;
        Ok(Port::owned(id))
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Driver, name and limits.
    pub fn info(&self) -> Result<PortInfo, RteError> {
        let raw = self.raw_info()?;
        let driver = if raw.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a static string owned by the driver.
            unsafe { CStr::from_ptr(raw.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        let mut name = [0 as c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: the buffer has RTE_ETH_NAME_MAX_LEN bytes, the most DPDK
        // writes.
        let rc = unsafe { sys::rte_eth_dev_get_name_by_port(self.id, name.as_mut_ptr()) };
        let name = if rc == 0 {
            // SAFETY: on success DPDK wrote a NUL-terminated name.
            unsafe { CStr::from_ptr(name.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        } else {
            format!("port{}", self.id)
        };
        Ok(PortInfo {
            driver,
            name,
            max_rx_queues: raw.max_rx_queues,
            max_tx_queues: raw.max_tx_queues,
            rss_offloads: raw.flow_type_rss_offloads,
        })
    }

    fn raw_info(&self) -> Result<sys::rte_eth_dev_info, RteError> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: a valid out pointer for a port id DPDK validates.
        let rc = unsafe { sys::rte_eth_dev_info_get(self.id, &mut info) };
        check(|| format!("rte_eth_dev_info_get(port {})", self.id), rc)?;
        Ok(info)
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], RteError> {
        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: a valid out pointer for a port id DPDK validates.
        let rc = unsafe { sys::rte_eth_macaddr_get(self.id, &mut mac) };
        check(|| format!("rte_eth_macaddr_get(port {})", self.id), rc)?;
        Ok(mac.addr_bytes)
    }

    /// Configures the port and sets up its queues, receiving into `pool`.
    /// The port must be stopped (a new port is).
    pub fn configure(
        &self,
        setup: &PortSetup,
        pool: &Mempool<'eal>,
    ) -> Result<Configured<'_>, RteError> {
        let id = self.id;
        let raw = self.raw_info()?;
        let mut notes = Vec::new();
        let mut conf = sys::rte_eth_conf::default();
        let mut rss_hf = 0;
        if setup.rss && setup.rx_queues > 1 {
            let want = sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_TCP | sys::RTE_ETH_RSS_UDP;
            rss_hf = want & raw.flow_type_rss_offloads;
            if rss_hf == 0 {
                notes.push(format!(
                    "port {id} ({}) cannot hash flows over its {} receive queues (no RSS support); \
                     only queue 0 is likely to receive",
                    driver_name(&raw),
                    setup.rx_queues
                ));
            } else {
                conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
                if rss_hf != want {
                    notes.push(format!(
                        "port {id}: RSS over a subset of IP/TCP/UDP fields (hash functions {rss_hf:#x})"
                    ));
                }
            }
        }
        // SAFETY: conf outlives the call and DPDK copies it.
        let rc = unsafe { sys::rte_eth_dev_configure(id, setup.rx_queues, setup.tx_queues, &conf) };
        check(
            || {
                format!(
                    "rte_eth_dev_configure(port {id}, {} rx / {} tx queues)",
                    setup.rx_queues, setup.tx_queues
                )
            },
            rc,
        )?;
        let (mut nb_rx, mut nb_tx) = (setup.rx_desc, setup.tx_desc);
        // SAFETY: valid out pointers; the port is configured.
        let rc = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rx, &mut nb_tx) };
        check(
            || format!("rte_eth_dev_adjust_nb_rx_tx_desc(port {id})"),
            rc,
        )?;

        // SAFETY: a read of the port's NUMA socket.
        let socket = unsafe { sys::rte_eth_dev_socket_id(id) };
        let socket = u32::try_from(socket).unwrap_or_else(|_| {
            // SAFETY: the calling lcore's socket.
            unsafe { sys::rte_socket_id() }
        });
        let mut rxconf = raw.default_rxconf;
        rxconf.rx_drop_en = u8::from(setup.rx_drop_en);
        let mut rx = Vec::with_capacity(usize::from(setup.rx_queues));
        for q in 0..setup.rx_queues {
            // SAFETY: the port is configured with rx_queues queues, rxconf
            // is copied, and the pool stays alive for the process.
            let rc = unsafe {
                sys::rte_eth_rx_queue_setup(id, q, nb_rx, socket, &rxconf, pool.as_ptr())
            };
            check(
                || format!("rte_eth_rx_queue_setup(port {id}, queue {q})"),
                rc,
            )?;
            rx.push(RxQueue {
                port: id,
                queue: q,
                _port: PhantomData,
            });
        }
        let mut tx = Vec::with_capacity(usize::from(setup.tx_queues));
        for q in 0..setup.tx_queues {
            // SAFETY: the port is configured with tx_queues queues; a null
            // txconf means the driver's defaults.
            let rc = unsafe { sys::rte_eth_tx_queue_setup(id, q, nb_tx, socket, std::ptr::null()) };
            check(
                || format!("rte_eth_tx_queue_setup(port {id}, queue {q})"),
                rc,
            )?;
            tx.push(TxQueue {
                port: id,
                queue: q,
                _port: PhantomData,
            });
        }
        Ok(Configured {
            rx,
            tx,
            rss_hf,
            notes,
        })
    }

    /// Starts the port.
    pub fn start(&self) -> Result<(), RteError> {
        // SAFETY: starting a configured port; DPDK checks the state.
        let rc = unsafe { sys::rte_eth_dev_start(self.id) };
        check(|| format!("rte_eth_dev_start(port {})", self.id), rc)
    }

    /// Accepts frames to any MAC address.
    pub fn promiscuous(&self) -> Result<(), RteError> {
        // SAFETY: a control call on a port id DPDK validates.
        let rc = unsafe { sys::rte_eth_promiscuous_enable(self.id) };
        check(
            || format!("rte_eth_promiscuous_enable(port {})", self.id),
            rc,
        )
    }

    /// Whether the link is up (without waiting for negotiation).
    pub fn link_up(&self) -> bool {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: a valid out pointer for a port id DPDK validates.
        let rc = unsafe { sys::rte_eth_link_get_nowait(self.id, &mut link) };
        rc == 0 && link.link_status() != 0
    }

    /// The port's counters. Safe to call while lcores poll the port.
    pub fn stats(&self) -> Result<PortStats, RteError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: a valid out pointer for a port id DPDK validates.
        let rc = unsafe { sys::rte_eth_stats_get(self.id, &mut s) };
        check(|| format!("rte_eth_stats_get(port {})", self.id), rc)?;
        let q = |a: &[u64]| {
            let mut out = [0u64; QUEUE_STAT_COUNTERS];
            for (o, v) in out.iter_mut().zip(a) {
                *o = *v;
            }
            out
        };
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
            q_ipackets: q(&s.q_ipackets),
            q_opackets: q(&s.q_opackets),
            q_ibytes: q(&s.q_ibytes),
            q_obytes: q(&s.q_obytes),
            q_errors: q(&s.q_errors),
        })
    }

    /// Stops the port, then closes it (which flushes a `net_pcap` output
    /// file and removes a `net_tap` interface), reporting what failed;
    /// dropping the handle does the same silently.
    pub fn close(mut self) -> Result<(), RteError> {
        self.shut()
    }

    fn shut(&mut self) -> Result<(), RteError> {
        if !std::mem::replace(&mut self.open, false) {
            return Ok(());
        }
        // SAFETY: no queue handle exists any more (they borrow the port,
        // which is being closed through `&mut`), so no core polls it.
        let rc = unsafe { sys::rte_eth_dev_stop(self.id) };
        check(|| format!("rte_eth_dev_stop(port {})", self.id), rc)?;
        // SAFETY: the port is stopped and unused.
        let rc = unsafe { sys::rte_eth_dev_close(self.id) };
        check(|| format!("rte_eth_dev_close(port {})", self.id), rc)
    }
}

impl Drop for Port<'_> {
    fn drop(&mut self) {
        let _ = self.shut();
    }
}

fn driver_name(info: &sys::rte_eth_dev_info) -> String {
    if info.driver_name.is_null() {
        return "?".into();
    }
    // SAFETY: driver_name is a static string owned by the driver.
    unsafe { CStr::from_ptr(info.driver_name) }
        .to_string_lossy()
        .into_owned()
}

/// A receive queue, polled by exactly one core; it borrows its port.
#[derive(Debug)]
pub struct RxQueue<'port> {
    port: u16,
    queue: u16,
    _port: PhantomData<&'port ()>,
}

/// A transmit queue, used by exactly one core; it borrows its port.
#[derive(Debug)]
pub struct TxQueue<'port> {
    port: u16,
    queue: u16,
    _port: PhantomData<&'port ()>,
}

impl<'port> RxQueue<'port> {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The queue id.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives into the batch's free space; returns how many arrived.
    #[inline]
    pub fn rx(&mut self, batch: &mut MbufBatch<'port>) -> usize {
        let (slots, room) = batch.spare();
        if room == 0 {
            return 0;
        }
        // SAFETY: this handle is the queue's only poller; `slots` has room
        // for `room` pointers.
        let n = unsafe { sys::glb_rte_eth_rx_burst(self.port, self.queue, slots, room as u16) };
        // SAFETY: the driver filled `n` slots with mbufs now owned by us.
        unsafe { batch.filled(usize::from(n)) };
        usize::from(n)
    }
}

impl<'port> TxQueue<'port> {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The queue id.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Transmits from the front of the batch; returns how many the port
    /// took. The rest stay in the batch.
    #[inline]
    pub fn tx(&mut self, batch: &mut MbufBatch<'port>) -> usize {
        if batch.is_empty() {
            return 0;
        }
        let len = batch.len() as u16;
        // SAFETY: this handle is the queue's only user; the batch holds
        // `len` owned mbufs.
        let n = unsafe { sys::glb_rte_eth_tx_burst(self.port, self.queue, batch.raw_ptrs(), len) };
        // SAFETY: the driver took the first `n` mbufs.
        unsafe { batch.taken(usize::from(n)) };
        usize::from(n)
    }
}
