//! `glb-healthcheck --config /etc/glb/healthcheck.conf`

use std::process::ExitCode;

use clap::Parser;
use glb_healthcheck::cli::Args;
use glb_healthcheck::config::Config;
use glb_healthcheck::daemon::Daemon;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    raise_fd_limit();
    // One thread: the checks wait on sockets and most of their cost is the
    // kernel's; a second worker thread only adds wake-ups and hand-overs
    // between the two (a fifth more CPU at 5,000 targets, measured with
    // script/bench-healthcheck).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&anyhow::Error::from(e).context("cannot start the async runtime")),
    };
    let result = runtime.block_on(async {
        let config = Config::load(&args.config)?;
        Daemon::start(config).await?.run().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("glb-healthcheck: error: {e:#}");
    ExitCode::FAILURE
}

/// `RUST_LOG` wins; otherwise `GLB_HEALTHCHECK_LOG_DEBUG=1` (as with the
/// original) turns on debug lines, including the per-table round summary.
fn init_logging() {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ if std::env::var("GLB_HEALTHCHECK_LOG_DEBUG").as_deref() == Ok("1") => {
            EnvFilter::new("warn,glb_healthcheck=debug")
        }
        _ => EnvFilter::new("warn,glb_healthcheck=info"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// Every check holds a socket, so thousands of targets need more file
/// descriptors than the usual soft limit of 1024: raise it to the hard limit.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            tracing::warn!(soft = lim.rlim_cur, "could not raise the open-file limit");
        }
    }
}
