//! Logging for the director binaries: `tracing` to standard error (where
//! journald picks it up), at info level or debug with `--debug`;
//! `RUST_LOG` overrides both. Colours only on a terminal, so journald and
//! log files get plain text.

/// Installs the subscriber; call once, first thing in `main`.
pub fn init(debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
