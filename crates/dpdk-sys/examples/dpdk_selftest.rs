//! Exercises the dpdk-sys bindings end to end in one EAL process; the
//! integration tests spawn it (EAL initialises only once per process).
//!
//! ```text
//! dpdk_selftest [EAL args] -- pcap --pcap-port P --null-port N --expect COUNT
//!                              --prefix HEX --generate COUNT
//! dpdk_selftest [EAL args] -- probe --port NAME [--port NAME ...]
//! dpdk_selftest [EAL args] -- kernel-loop --a NAME --b NAME --count COUNT [--one-way]
//! dpdk_selftest [EAL args] -- tap-arp --port NAME --iface IFACE
//! ```
//!
//! `pcap`: a worker lcore receives COUNT frames on P, prepends the prefix
//! bytes and hands them over an rte_ring to the main lcore, which transmits
//! them back out of P; then the main lcore builds `--generate` frames from
//! fresh mbufs (append + prepend) plus one that exercises adj/trim, and
//! sends a burst to N. It prints `key=value` lines the test checks.
//!
//! `probe`: configures, starts, stops and closes each named port.
//!
//! `kernel-loop`: for ports A and B attached to the same Linux interface
//! (net_tap creates it, net_af_packet binds to it), sends COUNT marked
//! frames out of A and expects them on B, then (without `--one-way`) the
//! other way round. The frames cross the kernel both times; anything else
//! Linux emits on the interface is ignored.
//!
//! `tap-arp`: gives the net_tap interface IFACE the address 192.0.2.1/24
//! (run it in a private network namespace), makes Linux send UDP to
//! 192.0.2.2 and expects Linux's ARP request for 192.0.2.2 at the port's rx:
//! the Linux-to-DPDK direction of an exception path.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::process::ExitCode;
use std::ptr;

use dpdk_sys as sys;

const BURST: usize = 32;
const RING_SIZE: u32 = 256;
const NB_DESC: u16 = 256;
const NB_MBUFS: u32 = 2047;
const DEADLINE_SECS: u64 = 20;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpdk_selftest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn rte_error(what: &str) -> String {
    // SAFETY: both read only the calling thread's errno and a static table.
    let (errno, msg) = unsafe {
        let e = sys::glb_rte_errno();
        (e, CStr::from_ptr(sys::rte_strerror(e)))
    };
    format!("{what}: {} (rte_errno {errno})", msg.to_string_lossy())
}

fn run() -> Result<(), String> {
    let args: Vec<CString> = std::env::args()
        .map(|a| CString::new(a).map_err(|_| "argument with a NUL byte".to_owned()))
        .collect::<Result<_, _>>()?;
    // EAL may keep pointers into argv (and reorders it), so it stays alive
    // for the whole process.
    let args: &'static [CString] = Vec::leak(args);
    let argv: &'static mut [*mut c_char] = Vec::leak(
        args.iter()
            .map(|a| a.as_ptr().cast_mut())
            .chain(std::iter::once(ptr::null_mut()))
            .collect(),
    );
    let argc = c_int::try_from(args.len()).map_err(|_| "too many arguments")?;
    // SAFETY: argv holds argc valid NUL-terminated strings plus a NULL
    // terminator, all leaked so they outlive EAL.
    let parsed = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if parsed < 0 {
        return Err(rte_error("rte_eal_init"));
    }
    // rte_eal_init consumed `parsed` arguments after argv[0] and left the
    // rest (starting at the "--" it stopped on) in order.
    let rest: Vec<String> = argv[1 + parsed as usize..args.len()]
        .iter()
        .map(|&p| {
            // SAFETY: EAL only permutes argv; each entry is still one of our strings.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        })
        .skip_while(|a| a == "--")
        .collect();

    let result = match rest.first().map(String::as_str) {
        Some("pcap") => pcap_mode(&rest[1..]),
        Some("probe") => probe_mode(&rest[1..]),
        Some("kernel-loop") => kernel_loop_mode(&rest[1..]),
        Some("tap-arp") => tap_arp_mode(&rest[1..]),
        _ => {
            Err("usage: dpdk_selftest [EAL args] -- pcap|probe|kernel-loop|tap-arp ...".to_owned())
        }
    };
    // SAFETY: all lcores are idle (joined in the modes) and no DPDK object is used after this.
    let rc = unsafe { sys::rte_eal_cleanup() };
    println!("eal_cleanup={rc}");
    result
}

fn flag<'a>(args: &'a [String], name: &str) -> Result<&'a str, String> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].as_str())
        .ok_or_else(|| format!("missing {name}"))
}

fn number(args: &[String], name: &str) -> Result<usize, String> {
    flag(args, name)?
        .parse()
        .map_err(|_| format!("{name} needs a number"))
}

fn port_by_name(name: &str) -> Result<u16, String> {
    let cname = CString::new(name).map_err(|_| "port name with a NUL byte")?;
    let mut id = 0u16;
    // SAFETY: cname is a valid C string and id a valid out pointer.
    let rc = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
    if rc != 0 {
        return Err(format!(
            "no port named {name} (rc {rc}); was its --vdev given?"
        ));
    }
    Ok(id)
}

fn port_start(port: u16, pool: *mut sys::rte_mempool) -> Result<(), String> {
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: port is a valid id and info a valid out pointer.
    let rc = unsafe { sys::rte_eth_dev_info_get(port, &mut info) };
    if rc != 0 {
        return Err(format!("rte_eth_dev_info_get({port}) = {rc}"));
    }
    let conf = sys::rte_eth_conf::default();
    // SAFETY: conf outlives the call; DPDK copies it.
    let rc = unsafe { sys::rte_eth_dev_configure(port, 1, 1, &conf) };
    if rc != 0 {
        return Err(format!("rte_eth_dev_configure({port}) = {rc}"));
    }
    // SAFETY: plain query of a valid port.
    let socket = unsafe { sys::rte_eth_dev_socket_id(port) };
    let socket = if socket < 0 { 0 } else { socket as u32 };
    // SAFETY: port is configured with one rx queue; null conf means defaults; pool is live.
    let rc = unsafe { sys::rte_eth_rx_queue_setup(port, 0, NB_DESC, socket, ptr::null(), pool) };
    if rc != 0 {
        return Err(format!("rte_eth_rx_queue_setup({port}) = {rc}"));
    }
    // SAFETY: port is configured with one tx queue; null conf means defaults.
    let rc = unsafe { sys::rte_eth_tx_queue_setup(port, 0, NB_DESC, socket, ptr::null()) };
    if rc != 0 {
        return Err(format!("rte_eth_tx_queue_setup({port}) = {rc}"));
    }
    // SAFETY: queues are set up.
    let rc = unsafe { sys::rte_eth_dev_start(port) };
    if rc != 0 {
        return Err(format!("rte_eth_dev_start({port}) = {rc}"));
    }
    let mut mac = sys::rte_ether_addr::default();
    // SAFETY: valid port and out pointer.
    unsafe { sys::rte_eth_macaddr_get(port, &mut mac) };
    let m = mac.addr_bytes;
    let driver = if info.driver_name.is_null() {
        "?".into()
    } else {
        // SAFETY: driver_name is a static string owned by the driver.
        unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy()
    };
    println!(
        "port={port} driver={driver} mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} max_rx_queues={}",
        m[0], m[1], m[2], m[3], m[4], m[5], info.max_rx_queues
    );
    Ok(())
}

fn port_close(port: u16) -> Result<(), String> {
    // SAFETY: port was started by port_start and no lcore uses it any more.
    let rc = unsafe { sys::rte_eth_dev_stop(port) };
    if rc != 0 {
        return Err(format!("rte_eth_dev_stop({port}) = {rc}"));
    }
    // SAFETY: port is stopped; closing flushes a pcap tx file.
    let rc = unsafe { sys::rte_eth_dev_close(port) };
    if rc != 0 {
        return Err(format!("rte_eth_dev_close({port}) = {rc}"));
    }
    Ok(())
}

fn create_pool() -> Result<*mut sys::rte_mempool, String> {
    // SAFETY: the name is a valid C string; the sizes are within limits.
    let pool = unsafe {
        sys::rte_pktmbuf_pool_create(
            c"selftest_pool".as_ptr(),
            NB_MBUFS,
            64,
            0,
            sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            sys::rte_socket_id() as c_int,
        )
    };
    if pool.is_null() {
        return Err(rte_error("rte_pktmbuf_pool_create"));
    }
    Ok(pool)
}

fn in_use(pool: *mut sys::rte_mempool) -> u32 {
    // SAFETY: pool is live.
    unsafe { sys::rte_mempool_in_use_count(pool) }
}

fn deadline() -> u64 {
    // SAFETY: timer reads have no preconditions after EAL init.
    unsafe { sys::glb_rte_get_timer_cycles() + DEADLINE_SECS * sys::glb_rte_get_timer_hz() }
}

fn now() -> u64 {
    // SAFETY: as in deadline().
    unsafe { sys::glb_rte_get_timer_cycles() }
}

/// Shared between the main lcore and the worker it launches.
struct Worker {
    port: u16,
    ring: *mut sys::rte_ring,
    expect: usize,
    prefix: Vec<u8>,
    deadline: u64,
    received: usize,
    lcore: u32,
}

/// Receives `expect` frames, prepends the prefix and hands them to the ring.
unsafe extern "C" fn worker_main(arg: *mut c_void) -> c_int {
    // SAFETY: the main lcore passes a live &mut Worker and does not touch it
    // until rte_eal_wait_lcore returns.
    let w = unsafe { &mut *arg.cast::<Worker>() };
    // SAFETY: we are on an EAL lcore.
    w.lcore = unsafe { sys::glb_rte_lcore_id() };
    let mut pkts = [ptr::null_mut::<sys::rte_mbuf>(); BURST];
    while w.received < w.expect && now() < w.deadline {
        // SAFETY: queue 0 of a started port is polled by this lcore only; pkts has BURST slots.
        let n = unsafe { sys::glb_rte_eth_rx_burst(w.port, 0, pkts.as_mut_ptr(), BURST as u16) }
            as usize;
        if n == 0 {
            // SAFETY: a CPU pause hint.
            unsafe { sys::glb_rte_pause() };
            continue;
        }
        for &m in &pkts[..n] {
            // SAFETY: m is an mbuf we own; prepend returns null or prefix.len() writable bytes.
            unsafe {
                let head = sys::glb_rte_pktmbuf_prepend(m, w.prefix.len() as u16);
                if head.is_null() {
                    return -1;
                }
                ptr::copy_nonoverlapping(w.prefix.as_ptr(), head.cast(), w.prefix.len());
            }
        }
        let mut sent = 0;
        while sent < n {
            // SAFETY: the ring is single-producer and this lcore is its only producer.
            sent += unsafe {
                sys::glb_rte_ring_enqueue_burst(
                    w.ring,
                    pkts[sent..n].as_ptr().cast(),
                    (n - sent) as u32,
                    ptr::null_mut(),
                )
            } as usize;
        }
        w.received += n;
    }
    0
}

/// Transmits all of `pkts` on queue 0 of `port`, freeing what the port refuses
/// after the deadline.
fn tx_all(port: u16, pkts: &mut [*mut sys::rte_mbuf]) -> usize {
    let mut sent = 0;
    let end = deadline();
    while sent < pkts.len() && now() < end {
        // SAFETY: queue 0 is used by this lcore only; the mbufs are ours until sent.
        sent += unsafe {
            sys::glb_rte_eth_tx_burst(
                port,
                0,
                pkts[sent..].as_mut_ptr(),
                (pkts.len() - sent) as u16,
            )
        } as usize;
    }
    if sent < pkts.len() {
        // SAFETY: the unsent mbufs are still ours.
        unsafe {
            sys::rte_pktmbuf_free_bulk(pkts[sent..].as_mut_ptr(), (pkts.len() - sent) as u32)
        };
    }
    sent
}

/// Fills a fresh mbuf's data with `len` pattern bytes (`seed + i * 7`).
fn append_pattern(m: *mut sys::rte_mbuf, len: u16, seed: u8) -> Result<(), String> {
    // SAFETY: m is ours; append returns null or `len` writable bytes.
    let data = unsafe { sys::glb_rte_pktmbuf_append(m, len) };
    if data.is_null() {
        return Err("rte_pktmbuf_append: no tailroom".into());
    }
    // SAFETY: data points at `len` bytes inside the mbuf.
    let buf = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len.into()) };
    for (i, b) in buf.iter_mut().enumerate() {
        *b = seed.wrapping_add((i as u8).wrapping_mul(7));
    }
    Ok(())
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err("--prefix needs an even number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| "--prefix is not hex".into()))
        .collect()
}

fn pcap_mode(args: &[String]) -> Result<(), String> {
    let pcap_port = port_by_name(flag(args, "--pcap-port")?)?;
    let null_port = port_by_name(flag(args, "--null-port")?)?;
    let expect = number(args, "--expect")?;
    let generate = number(args, "--generate")?;
    let prefix = parse_hex(flag(args, "--prefix")?)?;

    // SAFETY: plain queries after EAL init.
    let (lcores, avail, main_lcore) = unsafe {
        (
            sys::rte_lcore_count(),
            sys::rte_eth_dev_count_avail(),
            sys::rte_get_main_lcore(),
        )
    };
    println!("lcores={lcores} ports={avail} main_lcore={main_lcore}");
    // SAFETY: iterating enabled worker lcores.
    let worker_lcore = unsafe { sys::rte_get_next_lcore(u32::MAX, 1, 0) };
    if worker_lcore >= sys::RTE_MAX_LCORE {
        return Err("pcap mode needs two lcores (e.g. -l 0-1)".into());
    }

    let pool = create_pool()?;
    port_start(pcap_port, pool)?;
    port_start(null_port, pool)?;
    // SAFETY: valid name; a single-producer/single-consumer ring of RING_SIZE slots.
    let ring = unsafe {
        sys::rte_ring_create(
            c"selftest_ring".as_ptr(),
            RING_SIZE,
            sys::rte_socket_id() as c_int,
            sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ,
        )
    };
    if ring.is_null() {
        return Err(rte_error("rte_ring_create"));
    }

    let mut worker = Worker {
        port: pcap_port,
        ring,
        expect,
        prefix: prefix.clone(),
        deadline: deadline(),
        received: 0,
        lcore: u32::MAX,
    };
    // SAFETY: worker outlives the launch: we wait for the lcore below before
    // reading or dropping it.
    let rc = unsafe {
        sys::rte_eal_remote_launch(Some(worker_main), (&raw mut worker).cast(), worker_lcore)
    };
    if rc != 0 {
        return Err(format!("rte_eal_remote_launch = {rc}"));
    }

    // Main lcore: drain the ring to the pcap port until the worker is done
    // and the ring is empty.
    let mut forwarded = 0usize;
    let mut pkts = [ptr::null_mut::<sys::rte_mbuf>(); BURST];
    let end = deadline();
    while forwarded < expect && now() < end {
        // SAFETY: single consumer (this lcore); pkts has BURST slots.
        let n = unsafe {
            sys::glb_rte_ring_dequeue_burst(
                ring,
                pkts.as_mut_ptr().cast(),
                BURST as u32,
                ptr::null_mut(),
            )
        } as usize;
        forwarded += tx_all(pcap_port, &mut pkts[..n]);
    }
    // SAFETY: worker_lcore was launched above.
    let worker_rc = unsafe { sys::rte_eal_wait_lcore(worker_lcore) };
    // SAFETY: the worker has finished; no producer is left.
    let left = unsafe { sys::glb_rte_ring_count(ring) };
    println!(
        "worker_rc={worker_rc} worker_lcore={} rx={} forwarded={forwarded} ring_left={left}",
        worker.lcore, worker.received
    );

    // Frames built from scratch: alloc_bulk, append a pattern, prepend the prefix.
    let mut fresh = vec![ptr::null_mut::<sys::rte_mbuf>(); generate];
    if generate > 0 {
        // SAFETY: fresh has `generate` slots; on failure nothing is allocated.
        let rc =
            unsafe { sys::glb_rte_pktmbuf_alloc_bulk(pool, fresh.as_mut_ptr(), generate as u32) };
        if rc != 0 {
            return Err(format!("rte_pktmbuf_alloc_bulk({generate}) = {rc}"));
        }
    }
    for (k, &m) in fresh.iter().enumerate() {
        // SAFETY: m is a fresh mbuf.
        let headroom = unsafe { sys::glb_rte_pktmbuf_headroom(m) };
        if k == 0 {
            println!("fresh_headroom={headroom}");
        }
        append_pattern(m, 60 + k as u16, k as u8)?;
        // SAFETY: m is ours; prepend returns null or prefix.len() writable bytes.
        unsafe {
            let head = sys::glb_rte_pktmbuf_prepend(m, prefix.len() as u16);
            if head.is_null() {
                return Err("rte_pktmbuf_prepend: no headroom".into());
            }
            ptr::copy_nonoverlapping(prefix.as_ptr(), head.cast(), prefix.len());
        }
    }
    // One more frame through alloc + append + adj + trim: 64 pattern bytes
    // with seed 0xa0, minus 4 at the front and 4 at the back.
    // SAFETY: pool is live.
    let m = unsafe { sys::glb_rte_pktmbuf_alloc(pool) };
    if m.is_null() {
        return Err(rte_error("rte_pktmbuf_alloc"));
    }
    append_pattern(m, 64, 0xa0)?;
    // SAFETY: m holds 64 data bytes, so removing 4 at either end is in range.
    let (adj, trim) = unsafe {
        (
            sys::glb_rte_pktmbuf_adj(m, 4),
            sys::glb_rte_pktmbuf_trim(m, 4),
        )
    };
    // SAFETY: m is ours.
    let (data_len, pkt_len, mtod, contiguous) = unsafe {
        (
            sys::glb_rte_pktmbuf_data_len(m),
            sys::glb_rte_pktmbuf_pkt_len(m),
            sys::glb_rte_pktmbuf_mtod(m),
            sys::glb_rte_pktmbuf_is_contiguous(m),
        )
    };
    if adj.is_null() || trim != 0 || adj.cast::<c_void>() != mtod {
        return Err("rte_pktmbuf_adj/trim failed".into());
    }
    println!("adj_trim_data_len={data_len} pkt_len={pkt_len} contiguous={contiguous}");
    fresh.push(m);
    let fresh_sent = tx_all(pcap_port, &mut fresh);
    println!("fresh_sent={fresh_sent}");

    // A burst to net_null, which drops what it transmits but counts it.
    let mut null_pkts = [ptr::null_mut::<sys::rte_mbuf>(); 8];
    // SAFETY: 8 slots.
    let rc = unsafe { sys::glb_rte_pktmbuf_alloc_bulk(pool, null_pkts.as_mut_ptr(), 8) };
    if rc != 0 {
        return Err(format!("rte_pktmbuf_alloc_bulk(8) = {rc}"));
    }
    for &m in &null_pkts {
        append_pattern(m, 64, 1)?;
    }
    let null_sent = tx_all(null_port, &mut null_pkts);

    let mut stats = sys::rte_eth_stats::default();
    for (name, port) in [("pcap", pcap_port), ("null", null_port)] {
        // SAFETY: valid port and out pointer.
        let rc = unsafe { sys::rte_eth_stats_get(port, &mut stats) };
        if rc != 0 {
            return Err(format!("rte_eth_stats_get({port}) = {rc}"));
        }
        println!(
            "stats_{name}_ipackets={} stats_{name}_opackets={} stats_{name}_obytes={}",
            stats.ipackets, stats.opackets, stats.obytes
        );
    }
    println!("null_sent={null_sent}");

    port_close(pcap_port)?;
    port_close(null_port)?;
    println!("pool_in_use={}", in_use(pool));
    // SAFETY: nothing references the ring or the pool any more.
    unsafe {
        sys::rte_ring_free(ring);
        sys::rte_mempool_free(pool);
    }
    if worker_rc != 0 || worker.received != expect || forwarded != expect {
        return Err(format!(
            "forwarded {forwarded} of {expect} frames (worker received {}, rc {worker_rc})",
            worker.received
        ));
    }
    Ok(())
}

fn probe_mode(args: &[String]) -> Result<(), String> {
    let names: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--port")
        .map(|w| w[1].as_str())
        .collect();
    // SAFETY: plain query.
    println!("ports={}", unsafe { sys::rte_eth_dev_count_avail() });
    let pool = create_pool()?;
    for name in names {
        let port = port_by_name(name)?;
        port_start(port, pool)?;
        let mut link = sys::rte_eth_link::default();
        // SAFETY: valid port and out pointer.
        unsafe { sys::rte_eth_link_get_nowait(port, &mut link) };
        port_close(port)?;
        println!("probed={name} link_up={}", link.link_status());
    }
    println!("pool_in_use={}", in_use(pool));
    // SAFETY: every port using the pool is closed.
    unsafe { sys::rte_mempool_free(pool) };
    Ok(())
}

/// Ethertype reserved for local experiments (IEEE 802 "local experimental 1").
const LOOP_ETHERTYPE: [u8; 2] = [0x88, 0xb5];
const LOOP_MAGIC: &[u8] = b"dpdk-sys kernel loop";

fn loop_frame(seq: u8) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(&LOOP_ETHERTYPE);
    f.extend_from_slice(LOOP_MAGIC);
    f.push(seq);
    f.resize(60, 0);
    f
}

fn mbuf_bytes(m: *mut sys::rte_mbuf) -> Vec<u8> {
    // SAFETY: m is ours; mtod points at data_len readable bytes of the first segment.
    unsafe {
        let len = sys::glb_rte_pktmbuf_data_len(m).into();
        std::slice::from_raw_parts(sys::glb_rte_pktmbuf_mtod(m).cast::<u8>(), len).to_vec()
    }
}

/// Sends `count` loop frames out of `from` and returns how many distinct
/// ones arrived on `to` before the deadline.
fn kernel_hop(
    pool: *mut sys::rte_mempool,
    from: u16,
    to: u16,
    count: usize,
    tag: u8,
) -> Result<usize, String> {
    let mut out = vec![ptr::null_mut::<sys::rte_mbuf>(); count];
    for (i, slot) in out.iter_mut().enumerate() {
        // SAFETY: pool is live.
        let m = unsafe { sys::glb_rte_pktmbuf_alloc(pool) };
        if m.is_null() {
            return Err(rte_error("rte_pktmbuf_alloc"));
        }
        let frame = loop_frame(tag + i as u8);
        // SAFETY: m is ours; append returns null or frame.len() writable bytes.
        unsafe {
            let d = sys::glb_rte_pktmbuf_append(m, frame.len() as u16);
            if d.is_null() {
                return Err("rte_pktmbuf_append: no tailroom".into());
            }
            ptr::copy_nonoverlapping(frame.as_ptr(), d.cast(), frame.len());
        }
        *slot = m;
    }
    let sent = tx_all(from, &mut out);
    if sent != count {
        return Err(format!("port {from} took {sent} of {count} frames"));
    }
    let mut seen = vec![false; count];
    let mut pkts = [ptr::null_mut::<sys::rte_mbuf>(); BURST];
    let end = deadline();
    while seen.iter().any(|s| !s) && now() < end {
        // SAFETY: queue 0 of a started port, polled by this lcore only.
        let n =
            unsafe { sys::glb_rte_eth_rx_burst(to, 0, pkts.as_mut_ptr(), BURST as u16) } as usize;
        if n == 0 {
            // SAFETY: sleeping 1 ms has no preconditions.
            unsafe { sys::glb_rte_delay_ms(1) };
        }
        for &m in &pkts[..n] {
            let bytes = mbuf_bytes(m);
            // SAFETY: m is ours and no longer used.
            unsafe { sys::glb_rte_pktmbuf_free(m) };
            if let Some(i) = (0..count).find(|&i| bytes == loop_frame(tag + i as u8)) {
                seen[i] = true;
            }
        }
    }
    Ok(seen.iter().filter(|s| **s).count())
}

fn kernel_loop_mode(args: &[String]) -> Result<(), String> {
    let a = port_by_name(flag(args, "--a")?)?;
    let b = port_by_name(flag(args, "--b")?)?;
    let count = number(args, "--count")?;
    let pool = create_pool()?;
    port_start(a, pool)?;
    port_start(b, pool)?;
    let a_to_b = kernel_hop(pool, a, b, count, 0)?;
    let b_to_a = if args.iter().any(|a| a == "--one-way") {
        0
    } else {
        kernel_hop(pool, b, a, count, 100)?
    };
    println!("a_to_b={a_to_b} b_to_a={b_to_a}");
    for port in [a, b] {
        let mut st = sys::rte_eth_stats::default();
        // SAFETY: valid port and out pointer.
        unsafe { sys::rte_eth_stats_get(port, &mut st) };
        println!(
            "port={port} ipackets={} opackets={} oerrors={} imissed={}",
            st.ipackets, st.opackets, st.oerrors, st.imissed
        );
    }
    port_close(a)?;
    port_close(b)?;
    println!("pool_in_use={}", in_use(pool));
    // SAFETY: every port using the pool is closed.
    unsafe { sys::rte_mempool_free(pool) };
    Ok(())
}

/// True for an Ethernet ARP request from 192.0.2.1 asking for 192.0.2.2.
fn is_arp_request_for_test_peer(f: &[u8]) -> bool {
    f.len() >= 42
        && f[12..14] == [0x08, 0x06]
        && f[20..22] == [0, 1]
        && f[28..32] == [192, 0, 2, 1]
        && f[38..42] == [192, 0, 2, 2]
}

fn tap_arp_mode(args: &[String]) -> Result<(), String> {
    let port = port_by_name(flag(args, "--port")?)?;
    let iface = flag(args, "--iface")?;
    let pool = create_pool()?;
    port_start(port, pool)?;
    let status = std::process::Command::new("ip")
        .args(["addr", "add", "192.0.2.1/24", "dev", iface])
        .status()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if !status.success() {
        return Err(format!("ip addr add on {iface} failed: {status}"));
    }
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
    let mut seen = false;
    let mut pkts = [ptr::null_mut::<sys::rte_mbuf>(); BURST];
    let end = deadline();
    let mut next_send = 0;
    while !seen && now() < end {
        if now() >= next_send {
            // Unanswered, so Linux keeps asking who has 192.0.2.2.
            let _ = sock.send_to(b"dpdk-sys", "192.0.2.2:9");
            // SAFETY: timer read after EAL init.
            next_send = now() + unsafe { sys::glb_rte_get_timer_hz() } / 5;
        }
        // SAFETY: queue 0 of a started port, polled by this lcore only.
        let n =
            unsafe { sys::glb_rte_eth_rx_burst(port, 0, pkts.as_mut_ptr(), BURST as u16) } as usize;
        if n == 0 {
            // SAFETY: sleeping 1 ms has no preconditions.
            unsafe { sys::glb_rte_delay_ms(1) };
        }
        for &m in &pkts[..n] {
            seen |= is_arp_request_for_test_peer(&mbuf_bytes(m));
            // SAFETY: m is ours and no longer used.
            unsafe { sys::glb_rte_pktmbuf_free(m) };
        }
    }
    println!("arp_seen={}", u8::from(seen));
    port_close(port)?;
    println!("pool_in_use={}", in_use(pool));
    // SAFETY: the only port using the pool is closed.
    unsafe { sys::rte_mempool_free(pool) };
    Ok(())
}
