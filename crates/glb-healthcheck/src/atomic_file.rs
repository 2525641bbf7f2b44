//! Replacing the checked table so that a reader (or a crash) never sees a
//! partial file: write a temporary file beside it, fsync, rename over the
//! old one, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

fn temp_prefix(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    Some(format!(".{name}.tmp-"))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes` atomically. On error the old file is left
/// as it was and no temporary file remains.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let prefix = temp_prefix(path).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name")
    })?;
    let dir = parent_dir(path);
    let temp: PathBuf = dir.join(format!("{prefix}{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&temp, path)?;
        // The rename is durable only once the directory entry is on disk.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Removes temporary files that a killed earlier run may have left beside
/// `path`. Returns how many were removed.
pub fn remove_stale_temps(path: &Path) -> usize {
    let Some(prefix) = temp_prefix(path) else {
        return 0;
    };
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
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

    #[test]
    fn replaces_the_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.checked.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["t.checked.json"]);
    }

    #[test]
    fn failure_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        fs::write(&path, b"old").unwrap();
        // A directory in the way of the rename makes it fail after the
        // temporary file was written.
        let blocked = dir.path().join("sub");
        fs::create_dir_all(blocked.join("x")).unwrap();
        assert!(write_atomically(&blocked, b"new").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(remove_stale_temps(&blocked), 0);
        assert!(write_atomically(&dir.path().join("missing/t.json"), b"x").is_err());
    }

    #[test]
    fn stale_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        fs::write(dir.path().join(".t.json.tmp-123"), b"partial").unwrap();
        fs::write(dir.path().join("other"), b"keep").unwrap();
        assert_eq!(remove_stale_temps(&path), 1);
        assert!(dir.path().join("other").exists());
    }
}
