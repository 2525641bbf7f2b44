//! Running the operator's `reload_command` after the checked file changed.
//!
//! The command runs with `/bin/sh -c` in a process group of its own. Its
//! exit status is what counts: a background job it started (`cmd &`)
//! neither keeps it "running" nor outlives it, because once the shell has
//! exited, or the daemon stops, or the timeout strikes, the whole group is
//! ended. Of its output only the last [`MAX_OUTPUT`] bytes are kept, so a
//! command that prints without end cannot grow the daemon.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::counters::Counters;

/// A command that has not finished in this long is killed and counted as
/// failed, so that one hung `systemctl` cannot stop all later reloads.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Most bytes of the command's output kept (the end of it) and quoted in
/// a log line.
pub const MAX_OUTPUT: usize = 4096;

/// How long output still in the pipes is read after the shell exited.
const DRAIN: Duration = Duration::from_millis(200);

/// The command's process group: ended (`SIGKILL` to every member) when
/// dropped, whichever way the run ends.
struct Group(Option<i32>);

impl Group {
    fn signal(&self, sig: i32) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill only sends a signal; a negative pid names the
            // group this daemon created for the command.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

/// The last [`MAX_OUTPUT`] bytes written to both pipes.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    dropped: u64,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > MAX_OUTPUT {
            let cut = self.bytes.len() - MAX_OUTPUT;
            self.bytes.drain(..cut);
            self.dropped += cut as u64;
        }
    }
}

async fn collect(mut pipe: impl AsyncRead + Unpin, tail: Arc<Mutex<Tail>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        tail.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(&buf[..n]);
    }
}

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
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            Counters::bump(&counters.reload_command_failures);
            tracing::error!(command, error = %e, "reload command could not start; will retry on the next change");
            return false;
        }
    };
    let group = Group(child.id().and_then(|id| i32::try_from(id).ok()));
    let tail = Arc::new(Mutex::new(Tail::default()));
    let mut readers = tokio::task::JoinSet::new();
    if let Some(out) = child.stdout.take() {
        readers.spawn(collect(out, tail.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.spawn(collect(err, tail.clone()));
    }
    let waited = tokio::time::timeout(COMMAND_TIMEOUT, child.wait()).await;
    // What the shell left behind (background jobs) goes with it.
    group.signal(libc::SIGTERM);
    let _ = tokio::time::timeout(DRAIN, async {
        while readers.join_next().await.is_some() {}
    })
    .await;
    readers.abort_all();
    drop(group);
    let status = match waited {
        Ok(Ok(s)) => s,
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
    if status.success() {
        tracing::info!(command, elapsed_ms, "reload command succeeded");
        return true;
    }
    Counters::bump(&counters.reload_command_failures);
    let (shown, dropped) = {
        let t = tail.lock().unwrap_or_else(|p| p.into_inner());
        (
            String::from_utf8_lossy(&t.bytes).trim().to_owned(),
            t.dropped,
        )
    };
    let shown = if dropped > 0 {
        format!("[{dropped} earlier bytes not kept] ...{shown}")
    } else {
        shown
    };
    tracing::error!(
        command,
        %status,
        output = %shown,
        elapsed_ms,
        "reload command failed; will retry on the next change"
    );
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: i32) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }

    fn pid_in(path: &std::path::Path) -> i32 {
        for _ in 0..200 {
            if let Some(p) = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                return p;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} never got a pid", path.display());
    }

    #[tokio::test]
    async fn a_background_job_neither_holds_the_command_nor_outlives_it() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("bg.pid");
        let cmd = format!("sleep 1000 & echo $! > {}; echo started", pidfile.display());
        let ran = tokio::time::timeout(Duration::from_secs(20), run(&cmd, Arc::default())).await;
        assert_eq!(
            ran.ok(),
            Some(true),
            "the command is done when its shell is"
        );
        let bg = pid_in(&pidfile);
        for _ in 0..100 {
            if !alive(bg) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(bg), "the background sleep was ended with the group");
    }

    #[tokio::test]
    async fn a_stopped_run_ends_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let cmd = format!(
            "sh -c 'echo $$ > {}; exec sleep 1000'; true",
            pidfile.display()
        );
        let task = tokio::spawn(async move { run(&cmd, Arc::default()).await });
        let child = tokio::task::spawn_blocking(move || pid_in(&pidfile))
            .await
            .unwrap();
        assert!(alive(child));
        task.abort();
        let _ = task.await;
        for _ in 0..100 {
            if !alive(child) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(child), "the grandchild was not orphaned");
    }

    #[test]
    fn the_tail_keeps_the_last_bytes_only() {
        let mut t = Tail::default();
        for _ in 0..1000 {
            t.push(&[b'y'; 100]);
        }
        t.push(b"end");
        assert_eq!(t.bytes.len(), MAX_OUTPUT);
        assert!(t.bytes.ends_with(b"yend"));
        assert_eq!(t.dropped, 100_003 - MAX_OUTPUT as u64);
    }
}
