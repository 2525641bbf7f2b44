//! The target functions (see the crate documentation).

use std::path::Path;
use std::sync::OnceLock;

use glb_core::ForwardingTables;
use glb_core::encap::{EncapParams, Encapsulator};
use glb_core::flowhash::HashFields;
use glb_core::path::{HEADROOM, OwnedFrame, process_one};
use glb_core::route::{Forwarder, RouteOptions};
use glb_core::table::{self, TableFile};
use glb_core::wire::ethernet::Address;

/// A table whose binds catch nearly everything, with alternate hash
/// fields, so mutated frames get deep into the path.
fn forwarder() -> &'static Forwarder {
    static F: OnceLock<Forwarder> = OnceLock::new();
    F.get_or_init(|| {
        let bin = glb_testkit::table::catch_all();
        Forwarder::new(
            &TableFile::parse(&bin).expect("the fixture table loads"),
            options(),
        )
    })
}

fn options() -> RouteOptions {
    RouteOptions {
        alt_hash_fields: Some(HashFields::parse_list("src_addr,src_port").expect("fields")),
        ..RouteOptions::default()
    }
}

fn encapsulator() -> Encapsulator {
    Encapsulator::new(EncapParams {
        dst_mac: Address(glb_testkit::frames::GW_MAC),
        src_mac: Address::ZERO,
        src_ip: "203.0.113.254".parse().expect("address"),
        udp_checksum: true,
    })
}

/// A frame into the director's packet path.
pub fn frame(data: &[u8]) {
    let mut f = OwnedFrame::new(data, HEADROOM);
    let _ = process_one(forwarder(), &encapsulator(), &mut f);
}

/// A GUE payload into glb-redirect's decision.
pub fn gue(data: &[u8]) {
    use glb_redirect::decide;
    if let Ok(p) = decide::classify(data) {
        let _ = p.inner(data);
        let _ = decide::second_chance(data, &p, |h| h.octets()[3] == 1);
    }
}

/// A binary table into the loader, then one route through it.
pub fn table_bin(data: &[u8]) {
    if let Ok(file) = TableFile::parse(data) {
        let fwd = Forwarder::new(&file, options());
        let mut f = OwnedFrame::new(&probe_frame(), HEADROOM);
        let _ = process_one(&fwd, &encapsulator(), &mut f);
    }
}

/// A TCP packet to 10.1.1.1:80 from 198.51.100.7:40000.
fn probe_frame() -> Vec<u8> {
    glb_testkit::frames::tcp4("198.51.100.7", 40000, "10.1.1.1", 80)
}

/// Forwarding-table JSON into the compiler's and the checker's parsers.
/// What the compiler accepts must compile into a table the director loads.
pub fn table_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = glb_healthcheck::source::SourceTable::parse("t.json", text);
    let Ok(tables) = ForwardingTables::from_json("t.json", text) else {
        return;
    };
    let _ = tables.warnings();
    // Compiling is 65,536 rows a table: check one valid input in 16 (by
    // content, so a replay checks the same ones) to keep the rate up.
    if data.iter().fold(0u8, |a, b| a.wrapping_add(*b)) % 16 != 0 || tables.tables.len() > 4 {
        return;
    }
    let bin = table::compile(&tables);
    assert!(
        TableFile::parse(&bin).is_ok(),
        "a table the compiler wrote does not load"
    );
}

/// `director.conf`, with and without the DPDK engine's keys.
pub fn director_conf(data: &[u8]) {
    use glb_director::config::{DirectorConfig, DpdkKeys};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for keys in [DpdkKeys::Required, DpdkKeys::Optional] {
        if let Ok(l) = DirectorConfig::from_json_with("director.conf", text, keys) {
            let _ = l.config.route_options();
            let _ = l.config.encap_params(Address::ZERO);
        }
    }
}

/// `healthcheck.conf`.
pub fn healthcheck_conf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = glb_healthcheck::config::Config::parse("healthcheck.conf", text);
}

/// An answer to the health checker's `http` check: the head parser, the
/// body framing, and a redirect's `Location` resolved against a request.
pub fn http_response(data: &[u8]) {
    use glb_healthcheck::http;
    let Ok(Some(head)) = http::parse_head(data) else {
        return;
    };
    assert!(head.len <= data.len(), "a head longer than the input");
    let body = &data[head.len..];
    if let http::BodyEnd::Complete(n) = http::body_end(head.framing, body) {
        assert!(n <= body.len(), "a body end past the input");
    }
    if let Some(location) = &head.location {
        if let Ok(next) = http::resolve_location("127.0.0.1:8080", "/a/b?q", location) {
            assert!(next.path.starts_with('/'), "a redirect to {:?}", next.path);
            assert!(http::request_target(&next.path).is_some());
        }
    }
}

/// A capture into glb-director-pcap's replay, through real files: an
/// error must leave no output and no temporary file, a success a capture
/// the reader reads back.
pub fn pcap(data: &[u8]) {
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::Builder::new()
            .prefix("glb-fuzz-pcap")
            .tempdir_in(scratch())
            .expect("a scratch folder");
    }
    DIR.with(|dir| {
        let input = dir.path().join("in.pcap");
        let output = dir.path().join("out.pcap");
        let verdicts = dir.path().join("v.txt");
        std::fs::write(&input, data).expect("writing the input");
        let job = glb_director_pcap::Job {
            input: &input,
            output: &output,
            verdicts: Some(&verdicts),
            reads: &[],
        };
        let ran = glb_director_pcap::run(forwarder(), &encapsulator(), &job);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("listing the scratch folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        match ran {
            Err(_) => assert_eq!(names, ["in.pcap"], "a failed replay left files behind"),
            Ok(summary) => {
                assert_eq!(names, ["in.pcap", "out.pcap", "v.txt"]);
                let out = std::fs::File::open(&output).expect("the output");
                let mut r = glb_director_pcap::Reader::new(std::io::BufReader::new(out))
                    .expect("the output is a capture");
                let mut rec = glb_director_pcap::Record::default();
                let mut n = 0;
                while r.next_into(&mut rec).expect("the output reads back") {
                    n += 1;
                }
                assert_eq!(n, summary.written);
                let _ = std::fs::remove_file(&output);
                let _ = std::fs::remove_file(&verdicts);
            }
        }
    });
}

/// A memory-backed folder when there is one (faster), the system's
/// temporary folder otherwise.
fn scratch() -> &'static Path {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { shm } else { Path::new("/tmp") }
}
