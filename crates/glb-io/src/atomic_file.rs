//! Replacing a file so that a reader, a crash or a power cut sees either
//! the old contents or the new ones, never a partial file.
//!
//! The new contents go to a temporary file in the destination's directory
//! (`.NAME.tmp-PID-XXXXXX`), which is fsync'd, renamed over the
//! destination, and then the directory is fsync'd so the rename itself is
//! on disk. On any error the destination is left as it was and the
//! temporary file is removed. The destination keeps its permission bits
//! (a new one gets 0644: these files are meant to be read by other tools).
//!
//! Only a regular file is ever replaced, and what happens to anything
//! else is decided in one place, [`Destination::of`]:
//!
//! * missing: created;
//! * a regular file: replaced;
//! * a symbolic link: the file it points to is replaced, the link stays;
//! * a character device or FIFO (`/dev/null`, a pipe to another tool):
//!   written in place, never renamed over, so the node survives;
//! * anything else (a directory, a socket, a block device): refused
//!   with a message naming it, before anything is written.
//!
//! A temporary file is named `.NAME.tmp-PID-XXXXXX`. A program that may
//! be killed while writing one (the table compiler) calls
//! [`remove_temps_on_signals`] so `SIGTERM`, `SIGINT` and `SIGHUP`
//! remove it before the process ends; [`remove_stale_temps`] sweeps the
//! ones a `SIGKILL`ed earlier run left, leaving those of live processes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::NamedTempFile;

/// Permission bits of a file this module creates.
pub const NEW_FILE_MODE: u32 = 0o644;

/// The directory a path's file lives in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The prefix of every temporary file this module makes for `path`.
fn temp_prefix(path: &Path) -> io::Result<String> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file name", path.display()),
        )
    })?;
    Ok(format!(".{}.tmp-", name.to_string_lossy()))
}

/// Adds what was being done to an I/O error, keeping its kind.
fn context(what: impl FnOnce() -> String) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", what()))
}

/// How a destination is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Missing or a regular file (`target`, which is the destination or
    /// the file its symbolic link points to): replaced through a
    /// temporary file, keeping these permission bits.
    Replace {
        /// The file that is replaced.
        target: PathBuf,
        /// Permission bits the new file gets.
        mode: u32,
    },
    /// An existing character device or FIFO: written in place.
    InPlace,
    /// Anything else: not written at all.
    Refused {
        /// What it is ("a directory", "a socket", ...).
        what: &'static str,
    },
}

impl Destination {
    /// Looks at what is at `path` now.
    pub fn of(path: &Path) -> Destination {
        let replace = |target: &Path, mode| Destination::Replace {
            target: target.to_owned(),
            mode,
        };
        let link = fs::symlink_metadata(path);
        // Follow a link to what it names; a dangling link names the file
        // that will be created, beside the link's target path.
        let target = match &link {
            Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(path) {
                Ok(t) => t,
                Err(_) => match fs::read_link(path) {
                    Ok(t) if t.is_absolute() => t,
                    Ok(t) => parent_dir(path).join(t),
                    Err(_) => path.to_owned(),
                },
            },
            _ => path.to_owned(),
        };
        let m = match fs::metadata(&target) {
            Ok(m) => m,
            Err(_) => return replace(&target, NEW_FILE_MODE),
        };
        let t = m.file_type();
        if t.is_file() {
            replace(&target, m.permissions().mode() & 0o7777)
        } else if t.is_char_device() || t.is_fifo() {
            Destination::InPlace
        } else if t.is_dir() {
            Destination::Refused {
                what: "a directory",
            }
        } else if t.is_socket() {
            Destination::Refused { what: "a socket" }
        } else if t.is_block_device() {
            Destination::Refused {
                what: "a block device",
            }
        } else {
            Destination::Refused {
                what: "not a regular file",
            }
        }
    }
}

/// Temporary files being written now, removed by the signal handler of
/// [`remove_temps_on_signals`].
static LIVE_TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live_temps() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE_TEMPS.lock().unwrap_or_else(|p| p.into_inner())
}

fn forget_temp(path: &Path) {
    live_temps().retain(|p| p != path);
}

/// Makes `SIGTERM`, `SIGINT` and `SIGHUP` remove every temporary file
/// this process is writing, then end the process as the signal would
/// have. For tools that run long enough to be killed mid-write; daemons
/// that stop cleanly on these signals do not need it.
pub fn remove_temps_on_signals() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("temp-cleanup".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                for p in live_temps().drain(..) {
                    let _ = fs::remove_file(p);
                }
                let _ = signal_hook::low_level::emulate_default_handler(sig);
                std::process::exit(128 + sig);
            }
        })?;
    Ok(())
}

#[derive(Debug)]
enum Sink {
    Temp { tmp: NamedTempFile, target: PathBuf },
    InPlace(File),
}

/// A file being written that replaces its destination on
/// [`AtomicFile::commit`]; dropped without a commit, it leaves the
/// destination untouched and removes its temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    /// `None` only once committed.
    sink: Option<Sink>,
}

impl AtomicFile {
    /// Starts writing a replacement for `dest`.
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        let sink = match Destination::of(dest) {
            Destination::Refused { what } => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{} is {what}; only a regular file (or a missing one) is replaced",
                        dest.display()
                    ),
                ));
            }
            Destination::InPlace => Sink::InPlace(
                OpenOptions::new()
                    .write(true)
                    .open(dest)
                    .map_err(context(|| format!("cannot open {}", dest.display())))?,
            ),
            Destination::Replace { target, mode } => {
                let dir = parent_dir(&target);
                let tmp = {
                    // Registered before the file exists, so a signal
                    // arriving in between still finds it.
                    let mut live = live_temps();
                    let tmp = tempfile::Builder::new()
                        .prefix(&format!("{}{}-", temp_prefix(&target)?, std::process::id()))
                        .tempfile_in(dir)
                        .map_err(context(|| {
                            format!("cannot create a temporary file in {}", dir.display())
                        }))?;
                    live.push(tmp.path().to_owned());
                    tmp
                };
                if let Err(e) = tmp
                    .as_file()
                    .set_permissions(fs::Permissions::from_mode(mode))
                {
                    forget_temp(tmp.path());
                    return Err(context(|| {
                        format!("cannot set the permissions of {}", tmp.path().display())
                    })(e));
                }
                Sink::Temp { tmp, target }
            }
        };
        Ok(AtomicFile {
            dest: dest.to_owned(),
            sink: Some(sink),
        })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Makes the new contents durable and puts them in place.
    pub fn commit(mut self) -> io::Result<()> {
        let dest = self.dest.clone();
        match self.sink.take() {
            None => Ok(()),
            Some(Sink::InPlace(mut f)) => f
                .flush()
                .map_err(context(|| format!("cannot write {}", dest.display()))),
            Some(Sink::Temp { mut tmp, target }) => {
                let path = tmp.path().to_owned();
                let done = tmp
                    .flush()
                    .and_then(|()| tmp.as_file().sync_all())
                    .map_err(context(|| format!("cannot write {}", path.display())));
                let done = done.and_then(|()| {
                    tmp.persist(&target).map(drop).map_err(|e| {
                        context(|| {
                            format!("cannot rename a temporary file to {}", target.display())
                        })(e.error)
                    })
                });
                forget_temp(&path);
                done?;
                let dir = parent_dir(&target);
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(context(|| format!("cannot fsync {}", dir.display())))
            }
        }
    }

    fn sink(&mut self) -> &mut dyn Write {
        match self.sink.as_mut() {
            Some(Sink::Temp { tmp, .. }) => tmp,
            Some(Sink::InPlace(f)) => f,
            None => unreachable!("an AtomicFile is only written before its commit"),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(Sink::Temp { tmp, .. }) = &self.sink {
            forget_temp(tmp.path());
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sink().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink().flush()
    }
}

/// Replaces `dest` with `bytes` (see the module documentation).
pub fn replace(dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes).map_err(context(|| {
        format!("cannot write a replacement for {}", dest.display())
    }))?;
    f.commit()
}

/// Removes the temporary files that a killed earlier run may have left
/// beside `dest`; returns how many were removed. A temporary file whose
/// writer (the PID in its name) is still running is left alone.
pub fn remove_stale_temps(dest: &Path) -> usize {
    let Ok(prefix) = temp_prefix(dest) else {
        return 0;
    };
    let Ok(entries) = fs::read_dir(parent_dir(dest)) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&prefix) else {
                return false;
            };
            let writer = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            match writer {
                Some(pid) if pid == std::process::id() => false,
                Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
                None => true,
            }
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use glb_testkit::files::{fifo_reader, names};

    use super::*;

    /// A fresh folder and the path of `name` in it, where nothing is yet.
    fn fresh(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        (dir, path)
    }

    #[test]
    fn replaces_and_leaves_no_temporary_file() {
        let (dir, path) = fresh("t.bin");
        replace(&path, b"one").unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600,
            "permissions are kept"
        );
        assert_eq!(names(dir.path()), ["t.bin"]);
    }

    #[test]
    fn an_uncommitted_file_changes_nothing() {
        let (dir, path) = fresh("t.bin");
        fs::write(&path, b"old").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["t.bin"]);
    }

    #[test]
    fn a_failed_rename_keeps_the_old_file_and_removes_the_temporary() {
        // A directory that appears after the check makes the rename fail
        // after the temporary file was written.
        let (dir, blocked) = fresh("sub");
        let mut f = AtomicFile::create(&blocked).unwrap();
        f.write_all(b"new").unwrap();
        fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(f.commit().is_err());
        assert!(blocked.join("x").is_dir());
        assert_eq!(names(dir.path()), ["sub"]);
        let e = replace(&dir.path().join("missing/t.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("temporary file"), "{e}");
    }

    #[test]
    fn a_fifo_is_written_in_place_not_replaced() {
        let (dir, fifo) = fresh("pipe");
        let reader = fifo_reader(&fifo);
        assert_eq!(Destination::of(&fifo), Destination::InPlace);
        let mut f = AtomicFile::create(&fifo).unwrap();
        f.write_all(b"through the pipe").unwrap();
        f.commit().unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(names(dir.path()), ["pipe"]);
    }

    #[test]
    fn stale_temporaries_are_removed() {
        let (dir, path) = fresh("t.json");
        // 4194305 is above the largest PID Linux hands out: nobody writes it.
        fs::write(dir.path().join(".t.json.tmp-4194305-abcdef"), b"partial").unwrap();
        let live = format!(".t.json.tmp-{}-ghijkl", std::process::id());
        fs::write(dir.path().join(&live), b"being written").unwrap();
        fs::write(dir.path().join("other"), b"keep").unwrap();
        assert_eq!(remove_stale_temps(&path), 1);
        assert_eq!(names(dir.path()), [live.as_str(), "other"]);
    }

    #[test]
    fn only_regular_files_are_replaced_others_are_refused_untouched() {
        let (dir, sub) = fresh("sub");
        fs::create_dir(&sub).unwrap();
        let e = replace(&sub, b"new").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("is a directory"), "{e}");
        assert!(sub.is_dir());
        let sock_path = dir.path().join("sock");
        let _sock = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
        let e = replace(&sock_path, b"new").unwrap_err();
        assert!(e.to_string().contains("is a socket"), "{e}");
        use std::os::unix::fs::FileTypeExt;
        assert!(
            fs::symlink_metadata(&sock_path)
                .unwrap()
                .file_type()
                .is_socket()
        );
        // Refused before anything was written: no temporary file.
        assert_eq!(names(dir.path()), ["sock", "sub"]);
    }

    #[test]
    fn a_symlink_keeps_pointing_at_the_replaced_file() {
        let (dir, real) = fresh("real.bin");
        fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink("real.bin", &link).unwrap();
        replace(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["link.bin", "real.bin"]);
    }
}
