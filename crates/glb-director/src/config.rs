//! `director.conf` (SPEC §5), with two additions: run-to-completion cores
//! and the `udp_checksum` switch.
//!
//! Loading is strict about the keys the director uses — every error names
//! the file and the key, e.g.
//! `director.conf: lcores."lcore-3".work_source: lcore-2 is not a distributor`
//! — and tolerant of keys it does not know, which are returned as
//! warnings so a typo does not go unnoticed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use glb_core::encap::EncapParams;
use glb_core::flowhash::HashFields;
use glb_core::route::RouteOptions;
use glb_core::wire::ethernet;
use serde_json::{Map, Value};

/// Default UDP port of the statsd listener on 127.0.0.1.
pub const DEFAULT_STATSD_PORT: u16 = 28125;

/// A loaded and validated `director.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorConfig {
    /// Destination MAC of every encapsulated frame (the router).
    pub outbound_gateway_mac: ethernet::Address,
    /// Outer IPv4 source address.
    pub outbound_src_ip: Ipv4Addr,
    /// Fields of the main flow hash.
    pub hash_fields: HashFields,
    /// Fields of the alternate hash (hops 3 and 4), if configured.
    pub alt_hash_fields: Option<HashFields>,
    /// Whether ICMP echo requests to a bind are forwarded.
    pub forward_icmp_ping_responses: bool,
    /// RX/TX queues per port.
    pub num_worker_queues: u16,
    /// Whether the NIC drops packets when no RX descriptors are free.
    pub rx_drop_en: bool,
    /// Port/queue pairs, referenced by index from the cores.
    pub flow_paths: Vec<FlowPath>,
    /// Cores by lcore id.
    pub lcores: BTreeMap<u32, Lcore>,
    /// statsd port on 127.0.0.1.
    pub statsd_port: u16,
    /// Address of the exception interface, if any.
    pub kni_ip: Option<Ipv4Addr>,
    /// Whether outer UDP checksums are computed (otherwise sent as 0).
    pub udp_checksum: bool,
}

/// A receive queue and the transmit queue its packets leave by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowPath {
    /// Receive port.
    pub rx_port: u16,
    /// Receive queue.
    pub rx_queue: u16,
    /// Transmit port.
    pub tx_port: u16,
    /// Transmit queue.
    pub tx_queue: u16,
}

/// One core's workloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lcore {
    /// The lcore id (N in `lcore-N`).
    pub id: u32,
    /// Receives from its flow paths.
    pub rx: bool,
    /// Transmits to its flow paths.
    pub tx: bool,
    /// Hands received packets to workers.
    pub dist: bool,
    /// Classifies, hashes and encapsulates.
    pub work: bool,
    /// Hands unmatched packets to the exception interface.
    pub kni: bool,
    /// Indexes into [`DirectorConfig::flow_paths`].
    pub flow_paths: Vec<usize>,
    /// For distributors: the number of workers fed by this core.
    pub num_dist_workers: Option<u32>,
    /// For workers: the distributor core they take packets from.
    pub work_source: Option<u32>,
}

/// What a core does, derived from its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Receives, processes and transmits on its own (`rx`, `tx` and `work`).
    RunToCompletion,
    /// Distributes packets to workers (`dist`, usually with `rx`/`tx`).
    Distributor,
    /// Processes packets handed over by a distributor.
    Worker,
    /// Receive or transmit only, or nothing at all.
    Other,
}

impl Lcore {
    /// The core's role.
    pub fn role(&self) -> Role {
        if self.rx && self.tx && self.work && !self.dist {
            Role::RunToCompletion
        } else if self.dist {
            Role::Distributor
        } else if self.work {
            Role::Worker
        } else {
            Role::Other
        }
    }
}

pub use glb_io::config::ConfigError;

const TOP_KEYS: &[&str] = &[
    "outbound_gateway_mac",
    "outbound_src_ip",
    "hash_fields",
    "alt_hash_fields",
    "forward_icmp_ping_responses",
    "num_worker_queues",
    "rx_drop_en",
    "flow_paths",
    "lcores",
    "statsd_port",
    "kni_ip",
    "udp_checksum",
];
const HASH_KEYS: &[&str] = &["src_addr", "dst_addr", "src_port", "dst_port"];
const LCORE_KEYS: &[&str] = &[
    "rx",
    "tx",
    "dist",
    "work",
    "kni",
    "flow_paths",
    "num_dist_workers",
    "work_source",
];
const FLOW_PATH_KEYS: &[&str] = &["rx_port", "rx_queue", "tx_port", "tx_queue"];

struct Ctx<'a> {
    file: &'a str,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn unknown_keys(&mut self, path: &str, obj: &Map<String, Value>, known: &[&str]) {
        for k in obj.keys() {
            if !known.contains(&k.as_str()) {
                let at = if path.is_empty() {
                    format!("{k:?}")
                } else {
                    format!("{path}.{k:?}")
                };
                self.warnings
                    .push(format!("{}: {at}: unknown key, ignored", self.file));
            }
        }
    }

    fn bool_or(
        &self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        default: bool,
    ) -> Result<bool, ConfigError> {
        match obj.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.err(join(path, key), format!("expected true or false, got {v}"))),
        }
    }

    fn uint(&self, v: &Value, key: &str, max: u64) -> Result<u64, ConfigError> {
        match v.as_u64() {
            Some(n) if n <= max => Ok(n),
            _ => Err(self.err(key, format!("expected an integer from 0 to {max}, got {v}"))),
        }
    }

    /// A number from 1 to 65535; `zero` says why 0 is refused.
    fn nonzero_u16(&self, v: &Value, key: &str, zero: &str) -> Result<u16, ConfigError> {
        match self.uint(v, key, u64::from(u16::MAX))? {
            0 => Err(self.err(key, zero)),
            n => Ok(n as u16),
        }
    }

    fn ipv4(&self, v: &Value, key: &str) -> Result<Ipv4Addr, ConfigError> {
        let s = v
            .as_str()
            .ok_or_else(|| self.err(key, format!("expected an IPv4 address string, got {v}")))?;
        s.parse()
            .map_err(|_| self.err(key, format!("{s:?} is not an IPv4 address")))
    }

    fn hash_fields(&mut self, v: &Value, key: &str) -> Result<HashFields, ConfigError> {
        let obj = v.as_object().ok_or_else(|| {
            self.err(
                key,
                format!("expected an object like {{\"src_addr\": true}}, got {v}"),
            )
        })?;
        self.unknown_keys(key, obj, HASH_KEYS);
        let f = HashFields {
            src_addr: self.bool_or(obj, key, "src_addr", false)?,
            dst_addr: self.bool_or(obj, key, "dst_addr", false)?,
            src_port: self.bool_or(obj, key, "src_port", false)?,
            dst_port: self.bool_or(obj, key, "dst_port", false)?,
        };
        if !f.any() {
            return Err(self.err(
                key,
                "no hash field set: at least one of src_addr, dst_addr, src_port, dst_port must be true",
            ));
        }
        Ok(f)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A configuration together with the warnings met while loading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The configuration.
    pub config: DirectorConfig,
    /// One line per ignored key.
    pub warnings: Vec<String>,
}

impl Loaded {
    /// The configuration, once each warning has been handed to `warn`
    /// (each binary reports them its own way).
    pub fn report_warnings(self, warn: impl FnMut(&str)) -> DirectorConfig {
        self.warnings.iter().map(String::as_str).for_each(warn);
        self.config
    }
}

/// Whether a configuration must have the DPDK engine's keys
/// (`flow_paths`, `lcores`). The XDP director uses the same file and has
/// no cores or ports to configure: for it they are optional, and checked
/// only when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpdkKeys {
    /// Missing ones are an error.
    Required,
    /// Missing ones are empty.
    Optional,
}

impl DirectorConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        Self::load_with(path, DpdkKeys::Required)
    }

    /// [`DirectorConfig::load`], with the DPDK keys as `dpdk` says.
    pub fn load_with(path: &Path, dpdk: DpdkKeys) -> Result<Loaded, ConfigError> {
        let name = path.display().to_string();
        let text = glb_io::config::read(path)?;
        Self::from_json_with(&name, &text, dpdk)
    }

    /// Validates configuration text; `file` names it in errors.
    pub fn from_json(file: &str, text: &str) -> Result<Loaded, ConfigError> {
        Self::from_json_with(file, text, DpdkKeys::Required)
    }

    /// [`DirectorConfig::from_json`], with the DPDK keys as `dpdk` says.
    pub fn from_json_with(file: &str, text: &str, dpdk: DpdkKeys) -> Result<Loaded, ConfigError> {
        let mut cx = Ctx {
            file,
            warnings: Vec::new(),
        };
        let root: Value = glb_core::json::document(text).map_err(|m| cx.err("", m))?;
        let obj =
            glb_core::json::top_object(&root, "of director settings").map_err(|m| cx.err("", m))?;
        cx.unknown_keys("", obj, TOP_KEYS);

        let mac = obj
            .get("outbound_gateway_mac")
            .ok_or_else(|| cx.err("outbound_gateway_mac", "required key is missing"))?;
        let outbound_gateway_mac = mac
            .as_str()
            .ok_or_else(|| {
                cx.err(
                    "outbound_gateway_mac",
                    format!("expected a MAC address string, got {mac}"),
                )
            })?
            .parse::<ethernet::Address>()
            .map_err(|e| cx.err("outbound_gateway_mac", e.to_string()))?;

        let outbound_src_ip = cx.ipv4(
            obj.get("outbound_src_ip")
                .ok_or_else(|| cx.err("outbound_src_ip", "required key is missing"))?,
            "outbound_src_ip",
        )?;

        let hash_fields = match obj.get("hash_fields") {
            None => HashFields::SRC_ADDR,
            Some(v) => cx.hash_fields(v, "hash_fields")?,
        };
        let alt_hash_fields = match obj.get("alt_hash_fields") {
            None => None,
            Some(v) => Some(cx.hash_fields(v, "alt_hash_fields")?),
        };
        let forward_icmp_ping_responses =
            cx.bool_or(obj, "", "forward_icmp_ping_responses", true)?;
        let rx_drop_en = cx.bool_or(obj, "", "rx_drop_en", true)?;
        let udp_checksum = cx.bool_or(obj, "", "udp_checksum", true)?;

        let num_worker_queues = match obj.get("num_worker_queues") {
            None => 1,
            Some(v) => cx.nonzero_u16(v, "num_worker_queues", "must be at least 1")?,
        };

        // The original reads statsd_port as a string; accept that and a number.
        let statsd_port = match obj.get("statsd_port") {
            None => DEFAULT_STATSD_PORT,
            Some(Value::String(s)) => s
                .trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    cx.err(
                        "statsd_port",
                        format!("{s:?} is not a port number (1-65535)"),
                    )
                })?,
            Some(v) => cx.nonzero_u16(v, "statsd_port", "must be a port from 1 to 65535")?,
        };

        let kni_ip = match obj.get("kni_ip") {
            None | Some(Value::Null) => None,
            Some(v) => Some(cx.ipv4(v, "kni_ip")?),
        };

        let optional = |key: &str| dpdk == DpdkKeys::Optional && !obj.contains_key(key);
        let flow_paths = if optional("flow_paths") {
            Vec::new()
        } else {
            parse_flow_paths(&mut cx, obj, num_worker_queues)?
        };
        let lcores = if optional("lcores") {
            BTreeMap::new()
        } else {
            parse_lcores(&mut cx, obj, flow_paths.len())?
        };

        Ok(Loaded {
            config: DirectorConfig {
                outbound_gateway_mac,
                outbound_src_ip,
                hash_fields,
                alt_hash_fields,
                forward_icmp_ping_responses,
                num_worker_queues,
                rx_drop_en,
                flow_paths,
                lcores,
                statsd_port,
                kni_ip,
                udp_checksum,
            },
            warnings: cx.warnings,
        })
    }

    /// The routing options this configuration asks for.
    pub fn route_options(&self) -> RouteOptions {
        RouteOptions {
            hash_fields: self.hash_fields,
            alt_hash_fields: self.alt_hash_fields,
            forward_icmp_echo: self.forward_icmp_ping_responses,
        }
    }

    /// The outer-header settings for a port with MAC `port_mac`.
    pub fn encap_params(&self, port_mac: ethernet::Address) -> EncapParams {
        EncapParams {
            dst_mac: self.outbound_gateway_mac,
            src_mac: port_mac,
            src_ip: self.outbound_src_ip,
            udp_checksum: self.udp_checksum,
        }
    }
}

fn parse_flow_paths(
    cx: &mut Ctx<'_>,
    obj: &Map<String, Value>,
    queues: u16,
) -> Result<Vec<FlowPath>, ConfigError> {
    let v = obj
        .get("flow_paths")
        .ok_or_else(|| cx.err("flow_paths", "required key is missing"))?;
    let arr = v
        .as_array()
        .ok_or_else(|| cx.err("flow_paths", format!("expected an array, got {v}")))?;
    if arr.is_empty() {
        return Err(cx.err("flow_paths", "at least one flow path is required"));
    }
    let mut out = Vec::with_capacity(arr.len());
    for (i, fp) in arr.iter().enumerate() {
        let path = format!("flow_paths[{i}]");
        let o = fp.as_object().ok_or_else(|| {
            cx.err(
                &path,
                format!(
                    "expected {{\"rx_port\", \"rx_queue\", \"tx_port\", \"tx_queue\"}}, got {fp}"
                ),
            )
        })?;
        cx.unknown_keys(&path, o, FLOW_PATH_KEYS);
        let mut vals = [0u16; 4];
        for (slot, key) in vals.iter_mut().zip(FLOW_PATH_KEYS) {
            let k = join(&path, key);
            let v = o
                .get(*key)
                .ok_or_else(|| cx.err(&k, "required key is missing"))?;
            *slot = cx.uint(v, &k, u64::from(u16::MAX))? as u16;
        }
        let [rx_port, rx_queue, tx_port, tx_queue] = vals;
        for (key, q) in [("rx_queue", rx_queue), ("tx_queue", tx_queue)] {
            if q >= queues {
                return Err(cx.err(
                    join(&path, key),
                    format!("queue {q} does not exist: num_worker_queues is {queues}"),
                ));
            }
        }
        out.push(FlowPath {
            rx_port,
            rx_queue,
            tx_port,
            tx_queue,
        });
    }
    Ok(out)
}

fn parse_lcores(
    cx: &mut Ctx<'_>,
    obj: &Map<String, Value>,
    num_flow_paths: usize,
) -> Result<BTreeMap<u32, Lcore>, ConfigError> {
    let v = obj
        .get("lcores")
        .ok_or_else(|| cx.err("lcores", "required key is missing"))?;
    let map = v.as_object().ok_or_else(|| {
        cx.err(
            "lcores",
            format!("expected an object of \"lcore-N\" entries, got {v}"),
        )
    })?;
    let mut cores = BTreeMap::new();
    for (name, core) in map {
        let path = format!("lcores.{name:?}");
        let id = name
            .strip_prefix("lcore-")
            .filter(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| {
                cx.err(
                    &path,
                    "core names must look like \"lcore-N\" with N a core number",
                )
            })?;
        let o = core
            .as_object()
            .ok_or_else(|| cx.err(&path, format!("expected an object, got {core}")))?;
        cx.unknown_keys(&path, o, LCORE_KEYS);
        let mut c = Lcore {
            id,
            rx: cx.bool_or(o, &path, "rx", false)?,
            tx: cx.bool_or(o, &path, "tx", false)?,
            dist: cx.bool_or(o, &path, "dist", false)?,
            work: cx.bool_or(o, &path, "work", false)?,
            kni: cx.bool_or(o, &path, "kni", false)?,
            flow_paths: Vec::new(),
            num_dist_workers: None,
            work_source: None,
        };
        let fp_key = join(&path, "flow_paths");
        match o.get("flow_paths") {
            Some(Value::Array(ids)) => {
                for (j, idv) in ids.iter().enumerate() {
                    let k = format!("{fp_key}[{j}]");
                    let id = cx.uint(idv, &k, u64::from(u32::MAX))? as usize;
                    if id >= num_flow_paths {
                        return Err(cx.err(
                            k,
                            format!(
                                "flow path {id} does not exist: {num_flow_paths} are configured"
                            ),
                        ));
                    }
                    c.flow_paths.push(id);
                }
            }
            Some(other) => {
                return Err(cx.err(
                    fp_key,
                    format!("expected an array of flow path indexes, got {other}"),
                ));
            }
            None => {}
        }
        if (c.rx || c.tx) && c.flow_paths.is_empty() {
            return Err(cx.err(fp_key, "a core with rx or tx needs at least one flow path"));
        }
        if let Some(v) = o.get("num_dist_workers") {
            c.num_dist_workers =
                Some(cx.uint(v, &join(&path, "num_dist_workers"), u64::from(u32::MAX))? as u32);
        }
        if let Some(v) = o.get("work_source") {
            let k = join(&path, "work_source");
            // Accept both a core number and a "lcore-N" name.
            let src = match v {
                Value::String(s) => s
                    .strip_prefix("lcore-")
                    .unwrap_or(s)
                    .parse::<u32>()
                    .map_err(|_| cx.err(&k, format!("{s:?} is not a core number")))?,
                _ => cx.uint(v, &k, u64::from(u32::MAX))? as u32,
            };
            c.work_source = Some(src);
        }
        match c.role() {
            Role::Distributor => match c.num_dist_workers {
                None => {
                    return Err(cx.err(
                        join(&path, "num_dist_workers"),
                        "required for a distributor (dist: true)",
                    ));
                }
                Some(0) => {
                    return Err(cx.err(
                        join(&path, "num_dist_workers"),
                        "a distributor needs at least 1 worker",
                    ));
                }
                Some(_) => {}
            },
            Role::Worker => {
                if c.work_source.is_none() {
                    return Err(cx.err(
                        join(&path, "work_source"),
                        "required for a worker (work: true without rx and tx): the distributor core it takes packets from",
                    ));
                }
            }
            Role::RunToCompletion => {
                if c.work_source.is_some() {
                    return Err(cx.err(
                        join(&path, "work_source"),
                        "a run-to-completion core (rx, tx and work) receives its own packets and takes no work_source",
                    ));
                }
            }
            Role::Other => {
                if c.rx {
                    return Err(cx.err(
                        &path,
                        "a receiving core must also process (work: true) or distribute (dist: true) its packets",
                    ));
                }
            }
        }
        cores.insert(id, c);
    }

    // Cross-core checks: workers point at distributors, and every
    // distributor's worker count is what the workers say.
    for c in cores.values() {
        if c.role() != Role::Worker {
            continue;
        }
        let Some(src) = c.work_source else { continue };
        let key = format!("lcores.\"lcore-{}\".work_source", c.id);
        match cores.get(&src) {
            None => return Err(cx.err(key, format!("lcore-{src} is not configured"))),
            Some(d) if d.role() != Role::Distributor => {
                return Err(cx.err(
                    key,
                    format!("lcore-{src} is not a distributor (dist: true)"),
                ));
            }
            Some(_) => {}
        }
    }
    for d in cores.values().filter(|c| c.role() == Role::Distributor) {
        let workers = cores
            .values()
            .filter(|w| w.role() == Role::Worker && w.work_source == Some(d.id))
            .count();
        let want = d.num_dist_workers.unwrap_or(0) as usize;
        if workers != want {
            return Err(cx.err(
                format!("lcores.\"lcore-{}\".num_dist_workers", d.id),
                format!(
                    "says {want} but {workers} worker core(s) name lcore-{} as work_source",
                    d.id
                ),
            ));
        }
    }
    if !cores.values().any(|c| c.rx) {
        return Err(cx.err("lcores", "no core receives packets (rx: true)"));
    }
    Ok(cores)
}
