//! From `director.conf` to what runs where: which ports to set up with
//! how many queues, which exception (`vglb_kniN`) interfaces to create,
//! and each lcore's job with the queues and rings it owns. Pure logic,
//! checked before any device is touched.

use std::collections::{BTreeMap, BTreeSet};

use glb_director::config::{DirectorConfig, FlowPath, Role};

/// Why the configuration cannot run on the EAL's lcores.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct PlanError {
    /// The configuration key at fault (`lcores."lcore-1"`, ...).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> PlanError {
    PlanError {
        key: key.into(),
        message: message.into(),
    }
}

/// What one lcore does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Receives, processes and transmits its own flow paths.
    RunToCompletion,
    /// Receives its flow paths, hands packets to these worker lcores (in
    /// this order), and transmits what they return.
    Distributor {
        /// Its workers.
        workers: Vec<u32>,
    },
    /// Processes what its distributor hands it.
    Worker {
        /// The distributor lcore.
        source: u32,
    },
}

/// One lcore's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorePlan {
    /// The lcore id.
    pub lcore: u32,
    /// Its job.
    pub job: Job,
    /// The flow paths it receives and transmits on (receiving cores).
    pub flow_paths: Vec<FlowPath>,
    /// Exception path ports it serves: (port, queue on that port's
    /// `vglb_kniN` device). For a worker: whether its distributor has
    /// the exception path is in [`CorePlan::kni`].
    pub kni_ports: Vec<(u16, u16)>,
    /// Whether unmatched packets go to the exception path.
    pub kni: bool,
}

impl CorePlan {
    /// Distinct transmit queues of its flow paths, in first-use order.
    pub fn tx_queues(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for fp in &self.flow_paths {
            if !out.contains(&(fp.tx_port, fp.tx_queue)) {
                out.push((fp.tx_port, fp.tx_queue));
            }
        }
        out
    }

    /// For a packet received on `port`, the index (in
    /// [`CorePlan::tx_queues`]) of the queue it leaves by.
    pub fn tx_for_rx_port(&self, port: u16) -> Option<usize> {
        let fp = self.flow_paths.iter().find(|fp| fp.rx_port == port)?;
        self.tx_queues()
            .iter()
            .position(|&q| q == (fp.tx_port, fp.tx_queue))
    }

    /// For a frame Linux sends on `vglb_kni{port}`, the index (in
    /// [`CorePlan::tx_queues`]) of this core's queue on `port`.
    pub fn tx_on_port(&self, port: u16) -> Option<usize> {
        self.tx_queues().iter().position(|&(p, _)| p == port)
    }
}

/// Everything that runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Ports in the flow paths, with the queues each needs (receive and
    /// transmit alike: `num_worker_queues`).
    pub ports: BTreeSet<u16>,
    /// Queues per port.
    pub queues: u16,
    /// Exception devices: port → number of queues on `vglb_kni{port}`
    /// (one per core serving it).
    pub kni_ports: BTreeMap<u16, u16>,
    /// Cores with a job, by lcore id.
    pub cores: Vec<CorePlan>,
}

/// Name of the exception interface of `port`.
pub fn kni_name(port: u16) -> String {
    format!("vglb_kni{port}")
}

impl Plan {
    /// Lays the configuration onto the EAL's lcores: `main_lcore` does
    /// housekeeping only, and every configured lcore must be enabled.
    pub fn new(
        cfg: &DirectorConfig,
        main_lcore: u32,
        enabled: impl Fn(u32) -> bool,
    ) -> Result<Plan, PlanError> {
        let mut ports = BTreeSet::new();
        for fp in &cfg.flow_paths {
            ports.insert(fp.rx_port);
            ports.insert(fp.tx_port);
        }
        let mut rx_owner: BTreeMap<(u16, u16), u32> = BTreeMap::new();
        let mut tx_owner: BTreeMap<(u16, u16), u32> = BTreeMap::new();
        let mut cores = Vec::new();
        let mut kni_ports: BTreeMap<u16, u16> = BTreeMap::new();

        for (id, c) in &cfg.lcores {
            let key = format!("lcores.\"lcore-{id}\"");
            let job = match c.role() {
                Role::RunToCompletion => Job::RunToCompletion,
                Role::Distributor => {
                    if !(c.rx && c.tx) {
                        return Err(err(
                            key,
                            "a distributor must receive and transmit (rx: true, tx: true): \
                             its workers' packets leave through it",
                        ));
                    }
                    let workers = cfg
                        .lcores
                        .values()
                        .filter(|w| w.role() == Role::Worker && w.work_source == Some(*id))
                        .map(|w| w.id)
                        .collect();
                    Job::Distributor { workers }
                }
                Role::Worker => Job::Worker {
                    source: c.work_source.unwrap_or(u32::MAX),
                },
                // A core with no packet work (e.g. tx only) has nothing to
                // run here.
                Role::Other => continue,
            };
            if *id == main_lcore {
                return Err(err(
                    key,
                    format!(
                        "lcore {id} is the EAL main lcore, which only does housekeeping; \
                         give the EAL a main lcore the configuration does not use \
                         (e.g. --lcores 0@0,{id}@1 or --main-lcore)"
                    ),
                ));
            }
            if !enabled(*id) {
                return Err(err(
                    key,
                    format!(
                        "lcore {id} is not enabled in the EAL: add it to -l/--lcores \
                         (e.g. --lcores {main_lcore}@0,{id}@1)"
                    ),
                ));
            }
            let receives = !matches!(job, Job::Worker { .. });
            let flow_paths: Vec<FlowPath> = if receives {
                c.flow_paths.iter().map(|&i| cfg.flow_paths[i]).collect()
            } else {
                Vec::new()
            };
            for (&i, fp) in c.flow_paths.iter().zip(&flow_paths) {
                for (owners, q, dir) in [
                    (&mut rx_owner, (fp.rx_port, fp.rx_queue), "receive"),
                    (&mut tx_owner, (fp.tx_port, fp.tx_queue), "transmit"),
                ] {
                    if let Some(other) = owners.insert(q, *id) {
                        if other != *id {
                            return Err(err(
                                format!("{key}.flow_paths"),
                                format!(
                                    "flow path {i} uses {dir} queue {} of port {}, which lcore-{other} \
                                     already uses; a queue belongs to one core",
                                    q.1, q.0
                                ),
                            ));
                        }
                    }
                }
            }
            cores.push(CorePlan {
                lcore: *id,
                job,
                flow_paths,
                kni_ports: Vec::new(),
                kni: c.kni,
            });
        }

        // Exception path: a receiving core with kni serves the tap of
        // every port it receives on, and needs a queue on that port for
        // what Linux sends back.
        for core in cores.iter_mut() {
            if !core.kni || matches!(core.job, Job::Worker { .. }) {
                continue;
            }
            let rx_ports: BTreeSet<u16> = core.flow_paths.iter().map(|fp| fp.rx_port).collect();
            for port in rx_ports {
                if core.tx_on_port(port).is_none() {
                    return Err(err(
                        format!("lcores.\"lcore-{}\".kni", core.lcore),
                        format!(
                            "frames Linux sends on {} must leave through port {port}, \
                             but none of this core's flow paths transmits on port {port}",
                            kni_name(port)
                        ),
                    ));
                }
                let n = kni_ports.entry(port).or_insert(0);
                core.kni_ports.push((port, *n));
                *n += 1;
            }
        }
        // Workers follow their distributor.
        let dist_kni: BTreeMap<u32, bool> = cores
            .iter()
            .filter(|c| matches!(c.job, Job::Distributor { .. }))
            .map(|c| (c.lcore, c.kni))
            .collect();
        for core in cores.iter_mut() {
            if let Job::Worker { source } = core.job {
                core.kni = dist_kni.get(&source).copied().unwrap_or(false);
            }
        }
        if cores.is_empty() {
            return Err(err("lcores", "no core has packet work to do"));
        }
        Ok(Plan {
            ports,
            queues: cfg.num_worker_queues,
            kni_ports,
            cores,
        })
    }

    /// The plan of lcore `id`.
    pub fn core(&self, id: u32) -> Option<&CorePlan> {
        self.cores.iter().find(|c| c.lcore == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(lcores: &str, extra: &str) -> DirectorConfig {
        let text = format!(
            r#"{{"outbound_gateway_mac": "02:00:00:00:00:01", "outbound_src_ip": "10.0.0.1",
                "num_worker_queues": 2,
                "flow_paths": [
                    {{"rx_port": 0, "rx_queue": 0, "tx_port": 0, "tx_queue": 0}},
                    {{"rx_port": 0, "rx_queue": 1, "tx_port": 0, "tx_queue": 1}},
                    {{"rx_port": 1, "rx_queue": 0, "tx_port": 2, "tx_queue": 0}}
                ],
                "lcores": {lcores} {extra}}}"#
        );
        DirectorConfig::from_json("director.conf", &text)
            .expect("test config is valid")
            .config
    }

    #[test]
    fn distributor_with_workers_and_exception_path() {
        let c = cfg(
            r#"{"lcore-1": {"rx": true, "tx": true, "dist": true, "kni": true,
                            "flow_paths": [0, 1], "num_dist_workers": 2},
                "lcore-2": {"work": true, "work_source": 1},
                "lcore-3": {"work": true, "work_source": 1}}"#,
            "",
        );
        let p = Plan::new(&c, 0, |_| true).unwrap();
        assert_eq!(p.ports, BTreeSet::from([0, 1, 2]));
        assert_eq!(p.queues, 2);
        assert_eq!(p.kni_ports, BTreeMap::from([(0, 1)]));
        let d = p.core(1).unwrap();
        assert_eq!(
            d.job,
            Job::Distributor {
                workers: vec![2, 3]
            }
        );
        assert_eq!(d.kni_ports, vec![(0, 0)]);
        assert_eq!(d.tx_queues(), vec![(0, 0), (0, 1)]);
        assert_eq!(d.tx_for_rx_port(0), Some(0));
        assert_eq!(d.tx_on_port(0), Some(0));
        let w = p.core(3).unwrap();
        assert_eq!(w.job, Job::Worker { source: 1 });
        assert!(w.kni);
        assert!(w.flow_paths.is_empty());
    }

    #[test]
    fn run_to_completion_cores_share_a_port_by_queue() {
        let c = cfg(
            r#"{"lcore-1": {"rx": true, "tx": true, "work": true, "kni": true, "flow_paths": [0]},
                "lcore-2": {"rx": true, "tx": true, "work": true, "kni": true, "flow_paths": [1]}}"#,
            "",
        );
        let p = Plan::new(&c, 0, |_| true).unwrap();
        assert_eq!(p.kni_ports, BTreeMap::from([(0, 2)]));
        assert_eq!(p.core(1).unwrap().kni_ports, vec![(0, 0)]);
        assert_eq!(p.core(2).unwrap().kni_ports, vec![(0, 1)]);
        assert_eq!(p.core(2).unwrap().job, Job::RunToCompletion);
    }

    #[test]
    fn main_lcore_and_disabled_lcores_are_refused() {
        let c = cfg(
            r#"{"lcore-1": {"rx": true, "tx": true, "work": true, "flow_paths": [0]}}"#,
            "",
        );
        let e = Plan::new(&c, 1, |_| true).unwrap_err();
        assert_eq!(e.key, "lcores.\"lcore-1\"");
        assert!(e.message.contains("main lcore"), "{e}");
        let e = Plan::new(&c, 0, |l| l != 1).unwrap_err();
        assert!(e.message.contains("not enabled"), "{e}");
    }

    #[test]
    fn a_queue_belongs_to_one_core() {
        let c = cfg(
            r#"{"lcore-1": {"rx": true, "tx": true, "work": true, "flow_paths": [0]},
                "lcore-2": {"rx": true, "tx": true, "work": true, "flow_paths": [0]}}"#,
            "",
        );
        let e = Plan::new(&c, 0, |_| true).unwrap_err();
        assert_eq!(e.key, "lcores.\"lcore-2\".flow_paths");
        assert!(e.message.contains("lcore-1 already uses"), "{e}");
    }

    #[test]
    fn exception_path_needs_a_way_back_out() {
        // Flow path 2 receives on port 1 but transmits on port 2.
        let c = cfg(
            r#"{"lcore-1": {"rx": true, "tx": true, "work": true, "kni": true, "flow_paths": [2]}}"#,
            "",
        );
        let e = Plan::new(&c, 0, |_| true).unwrap_err();
        assert_eq!(e.key, "lcores.\"lcore-1\".kni");
        assert!(e.message.contains("vglb_kni1"), "{e}");
    }
}
