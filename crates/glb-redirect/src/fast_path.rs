//! The second-chance fast path (`--fast-path IFACE`): bpf/second_chance.c
//! on the TC ingress hook of the interfaces GUE arrives on, sending the
//! packets it is sure of on to the next hop inside the kernel. What it
//! leaves alone reaches the daemon's socket as before.
//!
//! The program is embedded in the binary. The daemon sets its read-only
//! configuration (the GUE port and address) when loading it, fills its
//! maps (both allowlists; this host's addresses, kept current), attaches
//! it, and adds its per-CPU counters to the stats. On
//! kernels from 6.6 the attachment is a TCX link that ends with the
//! process; on older ones it is a netlink filter, so one a killed daemon
//! left behind is removed before attaching.

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{HashMap, MapData, PerCpuArray};
use aya::programs::tc::{self, SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader, Pod};

use crate::allow::{Allow, List};

/// The object bpf/second_chance.c compiles to (build.rs).
static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("GLB_REDIRECT_BPF_DIR"), "/second_chance.o"));

/// The program's name, which is also the name of its netlink filter.
const PROGRAM: &str = "glb_second_chance";

/// `gfp_config.flags` (bpf/fast_path.h).
const ALLOW_SOURCES: u32 = 1;
const ALLOW_HOPS: u32 = 2;

/// `struct gfp_config` (the program's read-only `gfp_config`), network
/// byte order as on the wire.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Config {
    flags: u32,
    listen_addr: u32,
    listen_port: u16,
    pad: u16,
}

// SAFETY: integers only, laid out as `struct gfp_config` with no implicit
// padding, so every byte pattern is a valid value.
unsafe impl Pod for Config {}

/// `struct gfp_counters`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    forwarded: u64,
}

// SAFETY: one u64, as `struct gfp_counters`.
unsafe impl Pod for Counters {}

/// Why the fast path could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    /// The kernel refused the object (the verifier's log is in the source).
    #[error("cannot load the fast path's BPF program (needs CAP_BPF and CAP_NET_ADMIN)")]
    Load(#[source] aya::EbpfError),
    /// The kernel refused the program.
    #[error("the kernel refused the fast path's BPF program")]
    Program(#[source] aya::programs::ProgramError),
    /// The object has no program of the expected name and kind.
    #[error("the fast path's object has no classifier {PROGRAM}")]
    MissingProgram,
    /// A map is missing from the object or could not be written.
    #[error("fast path map {map}")]
    Map {
        /// The map.
        map: &'static str,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
    /// Attaching to an interface failed.
    #[error("cannot attach the fast path to {iface}'s ingress")]
    Attach {
        /// The interface.
        iface: String,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> FastPathError {
    move |source| FastPathError::Map { map, source }
}

/// The loaded program; dropping it detaches it everywhere.
pub struct FastPath {
    ebpf: Ebpf,
    local: BTreeSet<Ipv4Addr>,
}

impl std::fmt::Debug for FastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastPath")
            .field("local", &self.local)
            .finish()
    }
}

impl FastPath {
    /// Loads the program for GUE to `listen` under `allow`; nothing is
    /// attached yet.
    pub fn load(listen: SocketAddrV4, allow: &Allow) -> Result<FastPath, FastPathError> {
        let restricts = |list: &List, flag| if list.is_open() { 0 } else { flag };
        let config = Config {
            flags: restricts(&allow.sources, ALLOW_SOURCES) | restricts(&allow.hops, ALLOW_HOPS),
            listen_addr: wire(*listen.ip()),
            listen_port: listen.port().to_be(),
            pad: 0,
        };
        let mut ebpf = EbpfLoader::new()
            .set_global("gfp_config", &config, true)
            .load(OBJECT)
            .map_err(FastPathError::Load)?;
        fill_trie(&mut ebpf, "gfp_allow_sources", &allow.sources)?;
        fill_trie(&mut ebpf, "gfp_allow_hops", &allow.hops)?;
        let prog = program(&mut ebpf)?;
        prog.load().map_err(FastPathError::Program)?;
        Ok(FastPath {
            ebpf,
            local: BTreeSet::new(),
        })
    }

    /// Attaches the program to `iface`'s ingress.
    pub fn attach(&mut self, iface: &str) -> Result<(), FastPathError> {
        // A netlink filter of a killed earlier run would take the packets
        // first, counting them where nobody reads. (An error here means
        // there is none, or no clsact qdisc yet.)
        if tc::qdisc_detach_program(iface, TcAttachType::Ingress, PROGRAM).is_ok() {
            tracing::info!("removed a fast path an earlier run left on {iface}");
        }
        let prog = program(&mut self.ebpf)?;
        if prog.attach(iface, TcAttachType::Ingress).is_err() {
            // Before TCX (kernel 6.6) the hook is the clsact qdisc's,
            // which may not be there yet.
            let _ = tc::qdisc_add_clsact(iface);
            prog.attach(iface, TcAttachType::Ingress)
                .map_err(|source| FastPathError::Attach {
                    iface: iface.to_owned(),
                    source,
                })?;
        }
        tracing::info!("fast path attached to {iface}'s ingress");
        Ok(())
    }

    /// Makes `addrs` the set of this host's addresses: GUE to them is
    /// ours, and a hop among them is handled here.
    pub fn set_local(&mut self, addrs: impl IntoIterator<Item = Ipv4Addr>) -> io::Result<()> {
        let want: BTreeSet<Ipv4Addr> = addrs.into_iter().collect();
        if want == self.local {
            return Ok(());
        }
        let mut map: HashMap<&mut MapData, u32, u8> =
            typed(&mut self.ebpf, "gfp_local").map_err(io::Error::other)?;
        // Added before the old ones go, so no address is ever missing.
        for a in want.difference(&self.local) {
            map.insert(wire(*a), 1, 0).map_err(io::Error::other)?;
        }
        for a in self.local.difference(&want) {
            let _ = map.remove(&wire(*a));
        }
        self.local = want;
        Ok(())
    }

    /// Packets the program has sent on to their next hop, over all CPUs.
    pub fn forwarded(&self) -> u64 {
        let Some(map) = self.ebpf.map("gfp_counters") else {
            return 0;
        };
        let Ok(counters) = PerCpuArray::<&MapData, Counters>::try_from(map) else {
            return 0;
        };
        counters
            .get(&0, 0)
            .map(|per_cpu| per_cpu.iter().map(|c| c.forwarded).sum())
            .unwrap_or(0)
    }
}

/// An address as the program compares it: its bytes in network order.
fn wire(a: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(a.octets())
}

fn program(ebpf: &mut Ebpf) -> Result<&mut SchedClassifier, FastPathError> {
    ebpf.program_mut(PROGRAM)
        .ok_or(FastPathError::MissingProgram)?
        .try_into()
        .map_err(FastPathError::Program)
}

fn typed<'a, M>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<M, FastPathError>
where
    M: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map_mut(name).ok_or(FastPathError::Map {
        map: name,
        source: aya::maps::MapError::InvalidName { name: name.into() },
    })?;
    M::try_from(map).map_err(map_err(name))
}

fn fill_trie(ebpf: &mut Ebpf, name: &'static str, list: &List) -> Result<(), FastPathError> {
    let mut trie: LpmTrie<&mut MapData, u32, u8> = typed(ebpf, name)?;
    for p in list.prefixes() {
        let key = Key::new(u32::from(p.prefix_len()), wire(p.addr()));
        trie.insert(&key, 1, 0).map_err(map_err(name))?;
    }
    Ok(())
}
