//! Whether two paths name the same file: by device and inode, so `./x`,
//! `x`, `../dir/x`, a hard link and a symbolic link to it all count as
//! the one file they are. Tools that read some files and write others
//! use it to refuse writing over one of their inputs.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::atomic_file::parent_dir;

/// A file's identity: the device it lives on and its inode there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileId {
    /// The identity of the file `path` names (following symbolic links).
    pub fn of(path: &Path) -> io::Result<FileId> {
        let m = fs::metadata(path)?;
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// Where a path that does not exist yet would be: its directory,
/// canonicalized, and its name.
fn would_be(path: &Path) -> Option<PathBuf> {
    Some(
        fs::canonicalize(parent_dir(path))
            .ok()?
            .join(path.file_name()?),
    )
}

/// Whether `a` and `b` are the same file. Two existing paths are
/// compared by [`FileId`]; when one does not exist, by where it would
/// be created.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (FileId::of(a), FileId::of(b)) {
        (Ok(x), Ok(y)) => x == y,
        (Err(_), Err(_)) => match (would_be(a), would_be(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        // One exists and the other does not: not the same file (unless a
        // dangling symlink points at the existing one's path, which
        // cannot be, since it exists).
        _ => false,
    }
}

/// The first of `inputs` that is the same file as `output`, if any;
/// `inputs` are `(what, path)` pairs such as `("input capture", p)`.
pub fn clashes<'s, 'p>(
    output: &Path,
    inputs: &[(&'s str, &'p Path)],
) -> Option<(&'s str, &'p Path)> {
    inputs.iter().copied().find(|(_, p)| same_file(output, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder holding `x.json`, `y.json` and a subfolder `sub`, so that
    /// paths can name `x.json` in several ways.
    fn folder() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        for name in ["x.json", "y.json"] {
            fs::write(dir.path().join(name), b"{}").unwrap();
        }
        let x = dir.path().join("x.json");
        (dir, x)
    }

    #[test]
    fn spellings_and_links_of_a_file_are_that_file() {
        let (dir, x) = folder();
        assert!(same_file(&x, &dir.path().join("sub/../x.json")));
        let hard = dir.path().join("hard.json");
        fs::hard_link(&x, &hard).unwrap();
        assert!(same_file(&x, &hard));
        let soft = dir.path().join("soft.json");
        std::os::unix::fs::symlink(&x, &soft).unwrap();
        assert!(same_file(&soft, &x));
    }

    #[test]
    fn other_files_differ_and_missing_ones_compare_by_where_they_would_be() {
        let (dir, x) = folder();
        assert!(!same_file(&x, &dir.path().join("y.json")));
        let missing = dir.path().join("new.bin");
        assert!(!same_file(&x, &missing));
        assert!(same_file(&missing, &dir.path().join("sub/../new.bin")));
    }

    #[test]
    fn clashes_names_the_input_an_output_would_overwrite() {
        let (dir, x) = folder();
        let other = dir.path().join("y.json");
        assert_eq!(
            clashes(
                &dir.path().join("sub/../x.json"),
                &[("config", &other), ("input", &x)]
            ),
            Some(("input", x.as_path()))
        );
    }
}
