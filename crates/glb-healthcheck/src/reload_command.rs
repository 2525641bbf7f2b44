//! Running the operator's `reload_command` after the checked file changed.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::counters::Counters;

/// A command that has not finished in this long is killed and counted as
/// failed, so that one hung `systemctl` cannot stop all later reloads.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Most bytes of the command's output quoted in a log line.
const MAX_OUTPUT: usize = 4096;

/// Runs `command` with `/bin/sh -c` and logs how it went. Returns whether
/// it exited with status 0.
pub async fn run(command: &str, counters: Arc<Counters>) -> bool {
    Counters::bump(&counters.reload_commands);
    tracing::info!(command, "running reload command");
    let start = Instant::now();
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            Counters::bump(&counters.reload_command_failures);
            tracing::error!(command, error = %e, "reload command could not start; will retry on the next change");
            return false;
        }
    };
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            Counters::bump(&counters.reload_command_failures);
            tracing::error!(command, error = %e, "waiting for the reload command failed");
            return false;
        }
        Err(_) => {
            Counters::bump(&counters.reload_command_failures);
            tracing::error!(
                command,
                timeout_s = COMMAND_TIMEOUT.as_secs(),
                "reload command did not finish in time and was killed; will retry on the next change"
            );
            return false;
        }
    };
    let elapsed_ms = start.elapsed().as_millis() as u64;
    if output.status.success() {
        tracing::info!(command, elapsed_ms, "reload command succeeded");
        return true;
    }
    Counters::bump(&counters.reload_command_failures);
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let text = text.trim();
    let shown = match text.char_indices().nth(MAX_OUTPUT) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    };
    tracing::error!(
        command,
        status = %output.status,
        output = %shown,
        elapsed_ms,
        "reload command failed; will retry on the next change"
    );
    false
}
