//! Runs the `dpdk_selftest` example (one EAL per process) against real DPDK
//! software devices and checks what came out of them.
//!
//! `cargo test` builds the examples before it runs integration tests; a
//! lone `cargo test --test eal_vdevs` does not, so build the example first
//! in that case (`cargo build -p dpdk-sys --example dpdk_selftest`).

use std::path::{Path, PathBuf};

use glb_testkit::netns::require_root;
use glb_testkit::pcap::{read_pcap, write_pcap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];
const INPUT_FRAMES: usize = 20;
const GENERATED_FRAMES: usize = 5;

fn selftest_bin() -> PathBuf {
    // target/<profile>/deps/eal_vdevs-HASH -> target/<profile>/examples/
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("examples").join("dpdk_selftest");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p dpdk-sys --example dpdk_selftest` \
         (plain `cargo test` builds it)",
        bin.display()
    );
    bin
}

struct Run {
    stdout: String,
    stderr: String,
}

impl Run {
    /// The value of `key=` in the example's stdout.
    fn value(&self, key: &str) -> &str {
        let needle = format!("{key}=");
        self.stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(needle.as_str()))
            .unwrap_or_else(|| panic!("no {key}= in output:\n{}\n{}", self.stdout, self.stderr))
    }
}

/// Runs the example, optionally under a wrapper (e.g. `unshare -n sh -c`),
/// and requires it to exit 0 within a minute.
fn run_selftest(mut cmd: Command) -> Run {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dpdk_selftest");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("dpdk_selftest did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("collect output");
    let run = Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        status.success(),
        "dpdk_selftest failed ({status}):\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout,
        run.stderr
    );
    run
}

/// Two lcores on two CPUs where the machine has them, else both on CPU 0.
fn two_lcores() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus >= 2 {
        "--lcores=0@0,1@1".into()
    } else {
        "--lcores=0@0,1@0".into()
    }
}

fn input_frames() -> Vec<Vec<u8>> {
    (0..INPUT_FRAMES)
        .map(|k| {
            (0..60 + 5 * k)
                .map(|i| (k * 13 + i) as u8)
                .collect::<Vec<u8>>()
        })
        .collect()
}

/// What the example must have written: every input frame behind the prefix,
/// then the generated frames (60 + k bytes of `k + 7 i`) behind the prefix,
/// then 64 bytes of `0xa0 + 7 i` with 4 bytes cut from each end.
fn expected_output() -> Vec<Vec<u8>> {
    let with_prefix = |body: &[u8]| {
        let mut f = PREFIX.to_vec();
        f.extend_from_slice(body);
        f
    };
    let pattern = |seed: u8, len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| seed.wrapping_add((i as u8).wrapping_mul(7)))
            .collect()
    };
    let mut frames: Vec<Vec<u8>> = input_frames().iter().map(|f| with_prefix(f)).collect();
    for k in 0..GENERATED_FRAMES {
        frames.push(with_prefix(&pattern(k as u8, 60 + k)));
    }
    frames.push(pattern(0xa0, 64)[4..60].to_vec());
    frames
}

fn pcap_roundtrip(memory_args: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = dir.path().join("in.pcap");
    let tx = dir.path().join("out.pcap");
    write_pcap(&rx, &input_frames());

    let mut cmd = Command::new(selftest_bin());
    cmd.arg(two_lcores())
        .args(memory_args)
        .arg("--no-pci")
        .arg(format!(
            "--vdev=net_pcap0,rx_pcap={},tx_pcap={}",
            rx.display(),
            tx.display()
        ))
        .arg("--vdev=net_null0")
        .args([
            "--",
            "pcap",
            "--pcap-port",
            "net_pcap0",
            "--null-port",
            "net_null0",
        ])
        .args(["--expect", &INPUT_FRAMES.to_string()])
        .args(["--generate", &GENERATED_FRAMES.to_string()])
        .args(["--prefix", "deadbeef"]);
    let run = run_selftest(cmd);

    let expected = expected_output();
    let got = read_pcap(&tx);
    assert_eq!(got.len(), expected.len(), "frame count in the tx pcap");
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "frame {i} of the tx pcap");
    }

    // The worker ran on the second lcore and the main lcore drained the ring.
    assert_eq!(run.value("worker_lcore"), "1");
    assert_eq!(run.value("rx"), INPUT_FRAMES.to_string());
    assert_eq!(run.value("ring_left"), "0");
    // Fresh mbufs start with the configured headroom (RTE_PKTMBUF_HEADROOM).
    assert_eq!(run.value("fresh_headroom"), "128");
    assert_eq!(run.value("adj_trim_data_len"), "56");
    assert_eq!(run.value("stats_pcap_ipackets"), INPUT_FRAMES.to_string());
    assert_eq!(
        run.value("stats_pcap_opackets"),
        (INPUT_FRAMES + GENERATED_FRAMES + 1).to_string()
    );
    assert_eq!(run.value("stats_null_opackets"), "8");
    // Every mbuf went back to the pool once the ports were closed.
    assert_eq!(run.value("pool_in_use"), "0");
    assert_eq!(run.value("eal_cleanup"), "0");
}

/// Without hugepages: EAL backs its memory with ordinary pages. `--no-huge`
/// cannot be combined with `--in-memory`, so `--no-shconf` keeps parallel
/// EAL processes from sharing runtime files.
#[test]
fn pcap_rx_prepend_ring_tx_without_hugepages() {
    pcap_roundtrip(&["--no-huge", "--no-shconf", "-m", "128"]);
}

/// With 2 MiB hugepages reserved (this test reserves them when too few are
/// free) and `--in-memory`, which needs no hugetlbfs mount.
#[test]
fn pcap_rx_prepend_ring_tx_on_hugepages_in_memory() {
    ensure_hugepages(128);
    pcap_roundtrip(&["--in-memory", "-m", "128"]);
}

fn ensure_hugepages(free_needed: u64) {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    let free: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if free >= free_needed {
        return;
    }
    let knob = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
    let total: u64 = std::fs::read_to_string(knob)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let want = total + (free_needed - free);
    std::fs::write(knob, want.to_string()).unwrap_or_else(|e| {
        panic!("need {free_needed} free 2 MiB hugepages; raising {knob} to {want} failed: {e}")
    });
}

/// Runs the example inside a fresh network namespace, after `setup` (shell
/// commands) has run there, so no device or frame touches the host's network.
fn in_netns(setup: &str, eal_and_mode: &[String]) -> Run {
    require_root("this test");
    let mut script = String::from("set -e; ip link set lo up; ");
    script.push_str(setup);
    script.push_str("; exec \"$0\" \"$@\"");
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "sh", "-c", &script])
        .arg(selftest_bin())
        .args(eal_and_mode);
    run_selftest(cmd)
}

fn eal_one_lcore(vdevs: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "-l",
        "0",
        "--no-huge",
        "--no-shconf",
        "-m",
        "128",
        "--no-pci",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(vdevs.iter().map(|v| format!("--vdev={v}")));
    args.push("--".into());
    args
}

/// net_af_packet on both ends of a veth pair: frames cross the kernel both ways.
#[test]
fn af_packet_over_veth_both_directions() {
    let mut args = eal_one_lcore(&["net_af_packet0,iface=dsysa", "net_af_packet1,iface=dsysb"]);
    args.extend(
        [
            "kernel-loop",
            "--a",
            "net_af_packet0",
            "--b",
            "net_af_packet1",
            "--count",
            "8",
        ]
        .map(String::from),
    );
    let run = in_netns(
        "ip link add dsysa type veth peer name dsysb; ip link set dsysa up; ip link set dsysb up",
        &args,
    );
    assert_eq!(run.value("a_to_b"), "8");
    assert_eq!(run.value("b_to_a"), "8");
    assert_eq!(run.value("pool_in_use"), "0");
}

/// net_tap creates a Linux interface; frames sent on the tap port are
/// received by Linux on it, where a net_af_packet port bound to the same
/// interface sees them.
#[test]
fn tap_frames_reach_linux() {
    let mut args = eal_one_lcore(&["net_tap0,iface=dsystap0", "net_af_packet0,iface=dsystap0"]);
    args.extend(
        [
            "kernel-loop",
            "--a",
            "net_tap0",
            "--b",
            "net_af_packet0",
            "--count",
            "8",
            "--one-way",
        ]
        .map(String::from),
    );
    let run = in_netns("true", &args);
    assert_eq!(run.value("a_to_b"), "8");
    assert_eq!(run.value("pool_in_use"), "0");
}

/// Linux to DPDK through net_tap: with an address on the tap interface,
/// Linux's ARP request for a neighbour arrives at the tap port's rx.
#[test]
fn linux_frames_reach_tap_port() {
    let mut args = eal_one_lcore(&["net_tap0,iface=dsystap1"]);
    args.extend(["tap-arp", "--port", "net_tap0", "--iface", "dsystap1"].map(String::from));
    let run = in_netns("true", &args);
    assert_eq!(run.value("arp_seen"), "1");
    assert_eq!(run.value("pool_in_use"), "0");
}
