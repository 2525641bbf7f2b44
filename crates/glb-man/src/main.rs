//! `glb-man OUTDIR`: writes the manual page of every GLB binary (and of each
//! `glb-director-cli` subcommand) into OUTDIR, as `NAME.SECTION`.
//!
//! The options come from each binary's own clap definition (the `cli`
//! module of its crate), so a page cannot drift from what the binary
//! parses. What clap does not know — files, signals, related pages — is
//! added here per binary. debian/rules runs this after the release build;
//! dh_installman installs the pages.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

/// One manual page: the command, its section, and the sections clap cannot
/// produce (title, then paragraphs; a paragraph starting with `=> ` is a
/// tagged item whose tag is the text before ` | `).
struct Page {
    cmd: clap::Command,
    section: &'static str,
    extra: &'static [(&'static str, &'static [&'static str])],
}

const SEE_ALSO_ALL: &str = "glb-director(8), glb-director-xdp(8), xdp-root-shim(8), glb-director-cli(1), glb-director-pcap(1), glb-healthcheck(8), glb-redirect(8); /usr/share/doc/glb-*/ for the operator's guides.";

fn pages() -> Vec<Page> {
    vec![
        Page {
            cmd: glb_director::cli::DirectorArgs::command(),
            section: "8",
            extra: &[
                (
                    "SIGNALS",
                    &[
                        "=> SIGUSR1 | Re-read the forwarding table. A table that does not load is logged and the current one keeps serving (systemctl reload glb-director).",
                        "=> SIGTERM, SIGINT | Stop the ports and exit cleanly.",
                    ],
                ),
                (
                    "FILES",
                    &[
                        "=> /etc/default/glb-director | GLB_DIRECTOR_EAL_ARGS (DPDK cores, memory and devices; the service is skipped while it is empty), GLB_DIRECTOR_CONFIG_FILE, GLB_DIRECTOR_FORWARDING_TABLE.",
                        "=> /etc/glb/director.conf | The director's configuration (JSON).",
                        "=> /etc/glb/forwarding_table.bin | The binary forwarding table, compiled by glb-director-cli build-config (with glb-healthcheck: /etc/glb/forwarding_table.checked.bin).",
                    ],
                ),
                (
                    "ENVIRONMENT",
                    &[
                        "=> RUST_LOG | Log filter (e.g. glb_director=debug); overrides --debug.",
                        "=> NOTIFY_SOCKET, WATCHDOG_USEC | Set by systemd: readiness is reported with READY=1, and while every datapath core makes progress WATCHDOG=1 is sent at half the watchdog interval.",
                    ],
                ),
                (
                    "SEE ALSO",
                    &[
                        SEE_ALSO_ALL,
                        "dpdk-devbind(8) for binding NICs to vfio-pci.",
                    ],
                ),
            ],
        },
        Page {
            cmd: glb_director_xdp::cli::DirectorArgs::command(),
            section: "8",
            extra: &[
                (
                    "SIGNALS",
                    &[
                        "=> SIGUSR1 | Re-read the forwarding table into the maps' unused generation and switch every frame to it at once. A table that does not load is logged and the current one keeps serving (systemctl reload glb-director-xdp).",
                        "=> SIGTERM, SIGINT | Leave the root array slots (or detach from the interfaces), remove the pid file and the xdpcap pin, and exit cleanly.",
                    ],
                ),
                (
                    "FILES",
                    &[
                        "=> /etc/default/glb-director-xdp | GLB_DIRECTOR_XDP_ROOT_PATHS, GLB_DIRECTOR_XDP_CONFIG_FILE, GLB_DIRECTOR_XDP_FORWARDING_TABLE, GLB_DIRECTOR_XDP_BPF_PROGRAM, GLB_DIRECTOR_XDP_EXTRA_ARGS.",
                        "=> /etc/glb/director.conf | The director's configuration (JSON), shared with glb-director; lcores and flow_paths may be absent.",
                        "=> /etc/glb/forwarding_table.bin | The binary forwarding table, compiled by glb-director-cli build-config (with glb-healthcheck: /etc/glb/forwarding_table.checked.bin).",
                        "=> /usr/share/glb-director-xdp/glb_encap.o | The XDP program.",
                        "=> /sys/fs/bpf/xdp_root_array@IFACE | A root array pinned by xdp-root-shim.",
                    ],
                ),
                (
                    "ENVIRONMENT",
                    &[
                        "=> RUST_LOG | Log filter (e.g. glb_director_xdp=debug); overrides --debug.",
                        "=> NOTIFY_SOCKET | Set by systemd: READY=1 is sent once the program is in service.",
                    ],
                ),
                (
                    "SEE ALSO",
                    &[
                        SEE_ALSO_ALL,
                        "xdpcap(1) for capturing frames with their verdicts.",
                    ],
                ),
            ],
        },
        Page {
            cmd: glb_director_xdp::cli::ShimArgs::command(),
            section: "8",
            extra: &[
                (
                    "SIGNALS",
                    &[
                        "=> SIGTERM, SIGINT | Detach from the interface, remove the pin and exit cleanly.",
                    ],
                ),
                (
                    "FILES",
                    &[
                        "=> /etc/default/xdp-root-shim | BPFFS_INTERFACE_PREFIX, the pin path without the interface name (xdp-root-shim@IFACE.service pins at ${BPFFS_INTERFACE_PREFIX}IFACE).",
                        "=> /usr/share/xdp-root-shim/tailcall.o | The root program.",
                        "=> /usr/share/xdp-root-shim/passer.o | An XDP program that passes every frame, for the peers of veth interfaces (XDP_TX on a veth is dropped unless its peer has an XDP program).",
                    ],
                ),
                ("SEE ALSO", &[SEE_ALSO_ALL]),
            ],
        },
        Page {
            cmd: glb_director::cli::PcapArgs::command(),
            section: "1",
            extra: &[("SEE ALSO", &[SEE_ALSO_ALL])],
        },
        Page {
            cmd: glb_director_cli::cli::Cli::command(),
            section: "1",
            extra: &[
                (
                    "FILES",
                    &[
                        "=> /etc/glb/forwarding_table.json | The forwarding table operators edit (glb-director package); compiled to /etc/glb/forwarding_table.bin.",
                        "=> /etc/glb/forwarding_table.checked.json | The table glb-healthcheck writes; its reload command compiles it to /etc/glb/forwarding_table.checked.bin.",
                    ],
                ),
                (
                    "EXIT STATUS",
                    &[
                        "0 on success; 1 on any error, with a message naming the file, table, entry and field. build-config never leaves a partial destination file.",
                    ],
                ),
                ("SEE ALSO", &[SEE_ALSO_ALL]),
            ],
        },
        Page {
            cmd: glb_healthcheck::cli::Args::command(),
            section: "8",
            extra: &[
                (
                    "SIGNALS",
                    &[
                        "=> SIGHUP | Re-read the source forwarding table (systemctl reload glb-healthcheck); a file that does not parse keeps the previous one.",
                        "=> SIGTERM, SIGINT | Stop, waiting briefly for a running reload command.",
                    ],
                ),
                (
                    "FILES",
                    &[
                        "=> /etc/glb/healthcheck.conf | forwarding_table.src, forwarding_table.dst and reload_command.",
                        "=> /etc/glb/forwarding_table.src.json | The table to check (what operators edit).",
                        "=> /etc/glb/forwarding_table.checked.json | Written (atomically) with each backend's health.",
                        "=> /etc/default/glb-healthcheck | Environment of the service (GLB_HEALTHCHECK_LOG_DEBUG, RUST_LOG).",
                    ],
                ),
                (
                    "HTTP",
                    &[
                        "On 127.0.0.1:19520: GET /health returns the latest result of every check as JSON; GET /debug/vars returns the internal counters.",
                    ],
                ),
                ("SEE ALSO", &[SEE_ALSO_ALL]),
            ],
        },
        Page {
            cmd: glb_redirect::cli::Args::command(),
            section: "8",
            extra: &[
                (
                    "SIGNALS",
                    &[
                        "=> SIGTERM, SIGINT | Stop: the workers finish, the TUN device is removed and STOPPING=1 goes to systemd.",
                    ],
                ),
                (
                    "FILES",
                    &[
                        "=> /etc/default/glb-redirect | GLB_REDIRECT_ARGS (this command's options), GLB_REDIRECT_MODE, GLB_REDIRECT_PORT and GLB_REDIRECT_QUEUES for the host settings made by /usr/lib/glb-redirect/glb-redirect-setup.",
                        "=> /run/glb-redirect/stats | The counters, rewritten every --stats-interval-ms.",
                    ],
                ),
                (
                    "ENVIRONMENT",
                    &[
                        "=> RUST_LOG | Log filter (e.g. glb_redirect=debug).",
                        "=> NOTIFY_SOCKET, WATCHDOG_USEC | Set by systemd: READY=1 once the workers run, and WATCHDOG=1 while every packet worker keeps coming back to its loop.",
                    ],
                ),
                ("SEE ALSO", &[SEE_ALSO_ALL]),
            ],
        },
    ]
}

fn render(cmd: &clap::Command, section: &str, extra: &[(&str, &[&str])]) -> Result<Vec<u8>> {
    let man = Man::new(cmd.clone())
        .section(section)
        .manual("GLB in Rust")
        .source(format!("glb {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    let mut roff = Roff::default();
    for (title, paragraphs) in extra {
        roff.control("SH", [*title]);
        for p in *paragraphs {
            match p.strip_prefix("=> ").and_then(|p| p.split_once(" | ")) {
                Some((tag, text)) => {
                    roff.control("TP", []);
                    roff.text([bold(tag)]);
                    roff.text([roman(text)]);
                }
                None => {
                    roff.control("PP", []);
                    roff.text([roman(*p)]);
                }
            }
        }
    }
    roff.to_writer(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

fn write(dir: &Path, name: &str, section: &str, page: &[u8]) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.{section}"));
    fs::File::create(&path)
        .and_then(|mut f| f.write_all(page))
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(path)
}

/// Writes every page into `dir`; returns the files written.
fn generate(dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mut written = Vec::new();
    for page in pages() {
        let mut cmd = page.cmd.disable_help_subcommand(true);
        cmd.build();
        let name = cmd.get_name().to_owned();
        written.push(write(
            dir,
            &name,
            page.section,
            &render(&cmd, page.section, page.extra)?,
        )?);
        // One page per subcommand too (man glb-director-cli-route), as git
        // does: the parent page only lists them.
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let full = format!("{name}-{}", sub.get_name());
            let sub = sub.clone().display_name(full.clone());
            let see_also: &[(&str, &[&str])] = &[("SEE ALSO", &[SEE_ALSO_ALL])];
            written.push(write(
                dir,
                &full,
                page.section,
                &render(&sub, page.section, see_also)?,
            )?);
        }
    }
    Ok(written)
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: glb-man OUTDIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(&dir)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("glb-man: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binary_and_subcommand_gets_a_page_naming_its_options() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "glb-director.8",
            "glb-director-pcap.1",
            "glb-director-cli.1",
            "glb-director-cli-build-config.1",
            "glb-director-cli-route.1",
            "glb-healthcheck.8",
            "glb-redirect.8",
            "glb-director-xdp.8",
            "xdp-root-shim.8",
        ] {
            assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
        }
        let read = |n: &str| fs::read_to_string(dir.path().join(n)).unwrap();
        // Options as the binaries define them (roff escapes '-' as '\-').
        assert!(read("glb-director.8").contains(r"\-\-forwarding\-table"));
        assert!(read("glb-director.8").contains("SIGUSR1"));
        assert!(read("glb-healthcheck.8").contains(r"\-\-config"));
        assert!(read("glb-redirect.8").contains(r"\-\-stats\-file"));
        assert!(read("glb-director-cli-route.1").contains(r"\-\-src\-ip"));
        assert!(read("glb-director-cli.1").contains("build\\-config"));
        assert!(read("glb-director-xdp.8").contains(r"\-\-xdp\-root\-path"));
        assert!(read("xdp-root-shim.8").contains("BPFFS_PIN_PATH"));
    }
}
