//! The loaded director program and its maps: loading the object, writing
//! a forwarding table into the generation not in use and flipping to it,
//! and reading the counters.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuValues};
use aya::programs::{ProgramFd, Xdp};
use aya::{Ebpf, EbpfLoader, Pod};

use crate::classes::Class;
use crate::image::{BindLabel, Image};
use crate::maps::{
    self, Counters, DEFAULT_TABLES_CAP, GENS, INTERVALS_CAP, KEY_PREFIX_BITS, KeyV4, KeyV6,
    Traffic, name,
};

/// Why the program could not be loaded or a table installed.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// aya could not load the object (the verifier's log is in the source).
    #[error("loading {what}")]
    Load {
        /// What was being loaded.
        what: String,
        /// aya's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A map the object should have is missing or of another type.
    #[error("the program has no usable map {0} (is it glb_encap.o?)")]
    MissingMap(&'static str),
    /// The possible CPUs could not be read.
    #[error("reading the number of possible CPUs")]
    Cpus(#[source] std::io::Error),
    /// A map operation failed.
    #[error("writing map {map}")]
    Map {
        /// The map.
        map: &'static str,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
}

fn map_err(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> ProgramError {
    move |source| ProgramError::Map { map, source }
}

/// Per-bind and per-backend traffic since the program was loaded, by
/// what the bind or backend is (so counts carry across reloads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficTotals {
    /// By bind.
    pub binds: HashMap<BindKey, Traffic>,
    /// By backend.
    pub backends: HashMap<BackendKey, Traffic>,
}

/// A bind, as metrics name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindKey {
    /// Table index.
    pub table: usize,
    /// `ADDR/LEN`.
    pub prefix: String,
    /// `tcp` or `udp`.
    pub proto: &'static str,
    /// `PORT` or `START-END`.
    pub ports: String,
}

/// A backend, as metrics name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    /// Table index.
    pub table: usize,
    /// Its address.
    pub addr: IpAddr,
}

impl From<&BindLabel> for BindKey {
    fn from(l: &BindLabel) -> Self {
        BindKey {
            table: l.table,
            prefix: l.prefix.clone(),
            proto: l.proto,
            ports: l.ports.clone(),
        }
    }
}

/// What a generation holds, for metrics and for clearing it.
#[derive(Default)]
struct Generation {
    binds: Vec<BindLabel>,
    backends: Vec<Vec<IpAddr>>,
    trie_v4: Vec<Key<KeyV4>>,
    trie_v6: Vec<Key<KeyV6>>,
}

/// The director program, loaded into the kernel with its maps.
#[derive(Debug)]
pub struct Director {
    ebpf: Ebpf,
    tables_cap: u32,
    /// The generation packets use, once a table is installed.
    active: Option<u32>,
    /// Tables installed so far (`glb_state.seq`).
    seq: u32,
    gens: [Generation; 2],
    /// Traffic of generations since rewritten.
    retired: TrafficTotals,
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("binds", &self.binds.len())
            .finish_non_exhaustive()
    }
}

impl Director {
    /// Loads `glb_encap.o` (its bytes) into the kernel, with maps for up
    /// to `tables_cap` tables (at least [`DEFAULT_TABLES_CAP`]). Nothing
    /// is attached.
    pub fn load(object: &[u8], tables_cap: u32) -> Result<Director, ProgramError> {
        let tables_cap = tables_cap.max(DEFAULT_TABLES_CAP);
        let binds_cap = tables_cap * 256;
        let sized = [
            (name::TABLES, GENS * tables_cap),
            (name::ROWS, GENS * tables_cap),
            (name::BIND_TRAFFIC, GENS * binds_cap),
            (name::BACKEND_TRAFFIC, GENS * tables_cap * 256),
            (name::BINDS_V4, GENS * 2 * binds_cap),
            (name::BINDS_V6, GENS * 2 * binds_cap),
            (name::INTERVALS, GENS * INTERVALS_CAP),
        ];
        let mut loader = EbpfLoader::new();
        for (map, n) in sized {
            loader.set_max_entries(map, n);
        }
        let load_err = |what: &str| {
            let what = what.to_owned();
            move |e: Box<dyn std::error::Error + Send + Sync>| ProgramError::Load {
                what,
                source: e,
            }
        };
        let mut ebpf = loader
            .load(object)
            .map_err(|e| load_err("the object")(Box::new(e)))?;
        let prog: &mut Xdp = ebpf
            .program_mut(maps::program::DIRECTOR)
            .ok_or_else(|| ProgramError::Load {
                what: "the object".into(),
                source: format!("no program {}", maps::program::DIRECTOR).into(),
            })?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| load_err("glb_encap")(Box::new(e)))?;
        prog.load()
            .map_err(|e| load_err("glb_encap into the kernel")(Box::new(e)))?;
        Ok(Director {
            ebpf,
            tables_cap,
            active: None,
            seq: 0,
            gens: Default::default(),
            retired: TrafficTotals::default(),
        })
    }

    /// Loads the object at `path` (see [`Director::load`]).
    pub fn load_file(path: &Path, tables_cap: u32) -> Result<Director, ProgramError> {
        let bytes = std::fs::read(path).map_err(|e| ProgramError::Load {
            what: path.display().to_string(),
            source: Box::new(e),
        })?;
        Director::load(&bytes, tables_cap)
    }

    /// Tables the maps hold per generation.
    pub fn tables_cap(&self) -> u32 {
        self.tables_cap
    }

    /// The generation packets use (`None` before the first install).
    pub fn active_generation(&self) -> Option<u32> {
        self.active
    }

    /// The XDP program.
    pub fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(maps::program::DIRECTOR)
            .and_then(|p| p.try_into().ok())
            .expect("checked when loaded")
    }

    /// The program's file descriptor (for a root array slot or a test run).
    pub fn program_fd(&self) -> &ProgramFd {
        let p: &Xdp = self
            .ebpf
            .program(maps::program::DIRECTOR)
            .and_then(|p| p.try_into().ok())
            .expect("checked when loaded");
        p.fd().expect("loaded")
    }

    /// A map of the program, by name.
    pub fn map_mut(&mut self, map: &'static str) -> Result<&mut aya::maps::Map, ProgramError> {
        self.ebpf.map_mut(map).ok_or(ProgramError::MissingMap(map))
    }

    fn array<V: Pod>(&mut self, map: &'static str) -> Result<Array<&mut MapData, V>, ProgramError> {
        Array::try_from(self.map_mut(map)?).map_err(map_err(map))
    }

    /// Sets the source MAC of frames sent back out of interface `ifindex`.
    pub fn set_port_mac(&mut self, ifindex: u32, mac: [u8; 6]) -> Result<(), ProgramError> {
        let mut m: BpfHashMap<_, u32, maps::Mac> =
            BpfHashMap::try_from(self.map_mut(name::PORT_MACS)?)
                .map_err(map_err(name::PORT_MACS))?;
        m.insert(ifindex, maps::Mac { addr: mac }, 0)
            .map_err(map_err(name::PORT_MACS))
    }

    /// Writes `image` into the generation packets are not using, then
    /// makes packets use it, with one 4-byte write. On error the running
    /// generation is untouched. Returns once no packet can still be using
    /// the old generation, so the next install may overwrite it.
    pub fn install(&mut self, image: &Image) -> Result<u32, ProgramError> {
        let seq = self.seq.wrapping_add(1);
        let generation = seq & 1;
        self.retire(generation)?;
        let g = generation as usize;

        {
            let mut tables = self.array::<maps::Table>(name::TABLES)?;
            for (t, ti) in image.tables.iter().enumerate() {
                tables
                    .set(t as u32 * GENS + generation, ti.table, 0)
                    .map_err(map_err(name::TABLES))?;
            }
        }
        {
            let mut rows = self.array::<maps::Rows>(name::ROWS)?;
            for (t, ti) in image.tables.iter().enumerate() {
                // By reference: a copy of the rows would be 128 KiB on the stack.
                #[allow(clippy::needless_borrows_for_generic_args)]
                rows.set(t as u32 * GENS + generation, &*ti.rows, 0)
                    .map_err(map_err(name::ROWS))?;
            }
        }
        {
            let mut iv = self.array::<maps::Interval>(name::INTERVALS)?;
            for (i, v) in image.intervals.iter().enumerate() {
                iv.set(i as u32 * GENS + generation, v, 0)
                    .map_err(map_err(name::INTERVALS))?;
            }
        }
        let (mut keys_v4, mut keys_v6) = (Vec::new(), Vec::new());
        for (c, &first) in image.classes.iter().zip(&image.class_first) {
            let value = maps::Class {
                first,
                count: c.intervals.len() as u16,
                any_port_bind: c.any_port_bind,
                any_port_table: crate::image::table_of(&image.bind_tables, c.any_port_bind),
                pad: 0,
            };
            if c.v6 {
                let key = trie_key::<20>(generation, c);
                self.trie_v6()?
                    .insert(&key, value, 0)
                    .map_err(map_err(name::BINDS_V6))?;
                keys_v6.push(key);
            } else {
                let key = trie_key::<8>(generation, c);
                self.trie_v4()?
                    .insert(&key, value, 0)
                    .map_err(map_err(name::BINDS_V4))?;
                keys_v4.push(key);
            }
        }
        self.gens[g] = Generation {
            binds: image.bind_labels.clone(),
            backends: image.tables.iter().map(|t| t.backends.clone()).collect(),
            trie_v4: keys_v4,
            trie_v6: keys_v6,
        };
        self.array::<maps::Settings>(name::SETTINGS)?
            .set(generation, image.settings, 0)
            .map_err(map_err(name::SETTINGS))?;

        // The cut-over.
        self.array::<maps::State>(name::STATE)?
            .set(0, maps::State { seq }, 0)
            .map_err(map_err(name::STATE))?;
        self.seq = seq;
        self.active = Some(generation);
        wait_for_readers();
        Ok(generation)
    }

    fn trie_v4(&mut self) -> Result<LpmTrie<&mut MapData, KeyV4, maps::Class>, ProgramError> {
        LpmTrie::try_from(self.map_mut(name::BINDS_V4)?).map_err(map_err(name::BINDS_V4))
    }

    fn trie_v6(&mut self) -> Result<LpmTrie<&mut MapData, KeyV6, maps::Class>, ProgramError> {
        LpmTrie::try_from(self.map_mut(name::BINDS_V6)?).map_err(map_err(name::BINDS_V6))
    }

    /// Empties generation `generation` before it is rewritten: its bind entries
    /// go, and its traffic counts are kept in the retired totals.
    fn retire(&mut self, generation: u32) -> Result<(), ProgramError> {
        let g = generation as usize;
        if self.gens[g].binds.is_empty() && self.gens[g].backends.is_empty() {
            let old = std::mem::take(&mut self.gens[g]);
            self.clear_trie(&old)?;
            return Ok(());
        }
        let mut totals = std::mem::take(&mut self.retired);
        self.add_generation(generation, &mut totals)?;
        self.retired = totals;
        let old = std::mem::take(&mut self.gens[g]);
        self.clear_trie(&old)?;
        let ncpu = aya::util::nr_cpus().map_err(|(_, e)| ProgramError::Cpus(e))?;
        let zeros = || PerCpuValues::try_from(vec![Traffic::default(); ncpu]).expect("cpus > 0");
        {
            let map = name::BIND_TRAFFIC;
            let mut a: PerCpuArray<_, Traffic> =
                PerCpuArray::try_from(self.map_mut(map)?).map_err(map_err(map))?;
            for b in 0..old.binds.len() as u32 {
                a.set(b * GENS + generation, zeros(), 0)
                    .map_err(map_err(map))?;
            }
        }
        {
            let map = name::BACKEND_TRAFFIC;
            let mut a: PerCpuArray<_, Traffic> =
                PerCpuArray::try_from(self.map_mut(map)?).map_err(map_err(map))?;
            for (t, backends) in old.backends.iter().enumerate() {
                for b in 0..backends.len() as u32 {
                    a.set((t as u32 * 256 + b) * GENS + generation, zeros(), 0)
                        .map_err(map_err(map))?;
                }
            }
        }
        Ok(())
    }

    fn clear_trie(&mut self, old: &Generation) -> Result<(), ProgramError> {
        for k in &old.trie_v4 {
            match self.trie_v4()?.remove(k) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err(name::BINDS_V4)(e)),
            }
        }
        for k in &old.trie_v6 {
            match self.trie_v6()?.remove(k) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err(name::BINDS_V6)(e)),
            }
        }
        Ok(())
    }

    /// The outcome counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, ProgramError> {
        let map = self
            .ebpf
            .map(name::COUNTERS)
            .ok_or(ProgramError::MissingMap(name::COUNTERS))?;
        let a: PerCpuArray<_, Counters> =
            PerCpuArray::try_from(map).map_err(map_err(name::COUNTERS))?;
        let per_cpu = a.get(&0, 0).map_err(map_err(name::COUNTERS))?;
        let mut sum = Counters::default();
        for c in per_cpu.iter() {
            sum.add(c);
        }
        Ok(sum)
    }

    /// Per-bind and per-backend traffic since the program was loaded.
    pub fn traffic(&self) -> Result<TrafficTotals, ProgramError> {
        let mut totals = self.retired.clone();
        for generation in 0..GENS {
            self.add_generation(generation, &mut totals)?;
        }
        Ok(totals)
    }

    fn add_generation(
        &self,
        generation: u32,
        totals: &mut TrafficTotals,
    ) -> Result<(), ProgramError> {
        let g = &self.gens[generation as usize];
        let read = |map: &'static str| -> Result<PerCpuArray<&MapData, Traffic>, ProgramError> {
            let m = self.ebpf.map(map).ok_or(ProgramError::MissingMap(map))?;
            PerCpuArray::try_from(m).map_err(map_err(map))
        };
        let sum = |v: PerCpuValues<Traffic>| {
            v.iter().fold(Traffic::default(), |a, t| Traffic {
                packets: a.packets.wrapping_add(t.packets),
                bytes: a.bytes.wrapping_add(t.bytes),
            })
        };
        let binds = read(name::BIND_TRAFFIC)?;
        for (b, label) in g.binds.iter().enumerate() {
            let v = binds
                .get(&(b as u32 * GENS + generation), 0)
                .map_err(map_err(name::BIND_TRAFFIC))?;
            add(totals.binds.entry(label.into()).or_default(), sum(v));
        }
        let backends = read(name::BACKEND_TRAFFIC)?;
        for (t, addrs) in g.backends.iter().enumerate() {
            for (b, &addr) in addrs.iter().enumerate() {
                let v = backends
                    .get(&((t as u32 * 256 + b as u32) * GENS + generation), 0)
                    .map_err(map_err(name::BACKEND_TRAFFIC))?;
                add(
                    totals
                        .backends
                        .entry(BackendKey { table: t, addr })
                        .or_default(),
                    sum(v),
                );
            }
        }
        Ok(())
    }
}

fn add(a: &mut Traffic, b: Traffic) {
    a.packets = a.packets.wrapping_add(b.packets);
    a.bytes = a.bytes.wrapping_add(b.bytes);
}

fn trie_key<const N: usize>(generation: u32, c: &Class) -> Key<[u8; N]> {
    let mut data = [0u8; N];
    data[0] = generation as u8;
    data[1] = c.proto;
    let alen = if c.v6 { 16 } else { 4 };
    data[2..2 + alen].copy_from_slice(&c.addr[..alen]);
    Key::new(KEY_PREFIX_BITS + u32::from(c.len), data)
}

/// Waits until every packet that might have read the old generation has
/// finished. XDP programs run inside an RCU read-side section, and the
/// non-expedited global membarrier waits for an RCU grace period.
fn wait_for_readers() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier(2) takes no pointers; it only blocks.
    let rc = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if rc != 0 {
        // Not available (nohz_full CPUs): a frame takes microseconds; a
        // generous pause covers every one still in flight.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
