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
//! What happens to a destination that is not a regular file is decided in
//! one place, [`Destination::of`]: a device or FIFO (`/dev/null`, a pipe
//! to another tool) is written in place, because renaming over it would
//! replace the node with a regular file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Permission bits of a file this module creates.
pub const NEW_FILE_MODE: u32 = 0o644;

/// The directory a path's file lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// Missing, or a regular file (or anything a rename refuses, such as a
    /// directory, which then fails cleanly): replaced through a temporary
    /// file, keeping these permission bits.
    Replace {
        /// Permission bits the new file gets.
        mode: u32,
    },
    /// An existing device, FIFO or socket: written in place.
    InPlace,
}

impl Destination {
    /// Looks at what is at `path` now.
    pub fn of(path: &Path) -> Destination {
        match fs::metadata(path) {
            Ok(m) if m.is_file() => Destination::Replace {
                mode: m.permissions().mode() & 0o7777,
            },
            Ok(m) if !m.is_dir() => Destination::InPlace,
            _ => Destination::Replace {
                mode: NEW_FILE_MODE,
            },
        }
    }
}

#[derive(Debug)]
enum Sink {
    Temp(NamedTempFile),
    InPlace(File),
}

/// A file being written that replaces its destination on
/// [`AtomicFile::commit`]; dropped without a commit, it leaves the
/// destination untouched and removes its temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    sink: Sink,
}

impl AtomicFile {
    /// Starts writing a replacement for `dest`.
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        let sink = match Destination::of(dest) {
            Destination::InPlace => Sink::InPlace(
                OpenOptions::new()
                    .write(true)
                    .open(dest)
                    .map_err(context(|| format!("cannot open {}", dest.display())))?,
            ),
            Destination::Replace { mode } => {
                let dir = parent_dir(dest);
                let tmp = tempfile::Builder::new()
                    .prefix(&format!("{}{}-", temp_prefix(dest)?, std::process::id()))
                    .tempfile_in(dir)
                    .map_err(context(|| {
                        format!("cannot create a temporary file in {}", dir.display())
                    }))?;
                tmp.as_file()
                    .set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(context(|| {
                        format!("cannot set the permissions of {}", tmp.path().display())
                    }))?;
                Sink::Temp(tmp)
            }
        };
        Ok(AtomicFile {
            dest: dest.to_owned(),
            sink,
        })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Makes the new contents durable and puts them in place.
    pub fn commit(self) -> io::Result<()> {
        let dest = &self.dest;
        match self.sink {
            Sink::InPlace(mut f) => f
                .flush()
                .map_err(context(|| format!("cannot write {}", dest.display()))),
            Sink::Temp(mut tmp) => {
                tmp.flush()
                    .and_then(|()| tmp.as_file().sync_all())
                    .map_err(context(|| format!("cannot write {}", tmp.path().display())))?;
                tmp.persist(dest).map_err(|e| {
                    context(|| format!("cannot rename a temporary file to {}", dest.display()))(
                        e.error,
                    )
                })?;
                let dir = parent_dir(dest);
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(context(|| format!("cannot fsync {}", dir.display())))
            }
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::Temp(t) => t.write(buf),
            Sink::InPlace(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Temp(t) => t.flush(),
            Sink::InPlace(f) => f.flush(),
        }
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
/// beside `dest`; returns how many were removed.
pub fn remove_stale_temps(dest: &Path) -> usize {
    let Ok(prefix) = temp_prefix(dest) else {
        return 0;
    };
    let Ok(entries) = fs::read_dir(parent_dir(dest)) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        fs::write(&path, b"old").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["t.bin"]);
    }

    #[test]
    fn a_failed_rename_keeps_the_old_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory in the way makes the rename fail after the
        // temporary file was written.
        let blocked = dir.path().join("sub");
        fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(replace(&blocked, b"new").is_err());
        assert!(blocked.join("x").is_dir());
        assert_eq!(names(dir.path()), ["sub"]);
        let e = replace(&dir.path().join("missing/t.json"), b"x").unwrap_err();
        assert!(e.to_string().contains("temporary file"), "{e}");
    }

    #[test]
    fn a_fifo_is_written_in_place_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "mkfifo (coreutils) is needed to make a FIFO for this test"
        );
        assert_eq!(Destination::of(&fifo), Destination::InPlace);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        fs::write(dir.path().join(".t.json.tmp-123-abcdef"), b"partial").unwrap();
        fs::write(dir.path().join("other"), b"keep").unwrap();
        assert_eq!(remove_stale_temps(&path), 1);
        assert_eq!(names(dir.path()), ["other"]);
    }
}
