//! Loading the binary forwarding table (`forwarding_table.bin`, from
//! `glb-director-cli build-config`) at start-up and on every reload.
//!
//! The file is read whole and validated before anything is built from it,
//! so a reload of a bad or half-copied file changes nothing: the caller
//! keeps serving the table it has.

use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};

use glb_core::hash::LaneEngine;
use glb_core::route::{Forwarder, RouteOptions};
use glb_core::table::{TableFile, TableFileError};

/// Why a forwarding table could not be loaded; every variant names the
/// file.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The table file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The file is not a valid binary forwarding table.
    #[error("{}: not a valid forwarding table: {error}", path.display())]
    Invalid {
        /// The table file.
        path: PathBuf,
        /// What is wrong with it.
        error: TableFileError,
    },
    /// The table is valid but the engine cannot use it.
    #[error("{}: cannot load: {message}", path.display())]
    Unusable {
        /// The table file.
        path: PathBuf,
        /// Why, in the engine's words.
        message: String,
    },
}

/// Reads and validates the table at `path`, then hands it to `build`,
/// which turns it into the engine's own form (a [`Forwarder`], BPF maps,
/// ...); `build`'s error is reported as [`TableError::Unusable`].
pub fn load<T, E: Display>(
    path: &Path,
    build: impl FnOnce(&TableFile<'_>) -> Result<T, E>,
) -> Result<T, TableError> {
    let read_err = |error| TableError::Read {
        path: path.to_owned(),
        error,
    };
    // A file larger than any table could be is refused before it is read.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            use std::io::Read;
            f.take(glb_core::table::MAX_FILE_SIZE as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(read_err)?;
    if bytes.len() > glb_core::table::MAX_FILE_SIZE {
        return Err(TableError::Unusable {
            path: path.to_owned(),
            message: format!(
                "larger than the largest table file ({} bytes, {} tables)",
                glb_core::table::MAX_FILE_SIZE,
                glb_core::model::MAX_TABLES
            ),
        });
    }
    let file = TableFile::parse(&bytes).map_err(|error| TableError::Invalid {
        path: path.to_owned(),
        error,
    })?;
    build(&file).map_err(|e| TableError::Unusable {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Loads the table at `path` for the packet path, routing with `options`
/// and hashing flows on `engine`'s instructions.
pub fn load_forwarder(
    path: &Path,
    options: RouteOptions,
    engine: LaneEngine,
) -> Result<Forwarder, TableError> {
    load(path, |file| {
        Ok::<_, std::convert::Infallible>(Forwarder::new(file, options).with_lane_engine(engine))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file() {
        let load_err = |path: &Path| {
            load_forwarder(path, RouteOptions::default(), LaneEngine::portable()).unwrap_err()
        };
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.bin");
        let e = load_err(&missing);
        assert!(matches!(e, TableError::Read { .. }));
        assert!(
            e.to_string()
                .starts_with(&format!("{}: cannot read: ", missing.display()))
        );
        let bad = dir.path().join("bad.bin");
        std::fs::write(&bad, b"GLBD but not a table").unwrap();
        let e = load_err(&bad);
        assert!(
            e.to_string().starts_with(&format!(
                "{}: not a valid forwarding table: ",
                bad.display()
            )),
            "{e}"
        );
    }
}
