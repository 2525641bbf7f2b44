//! The one shape of a configuration error in the suite: the file, the
//! key at fault — a path in the file's own terms such as
//! `lcores."lcore-2".work_source` or `forwarding_table.src`, empty when
//! the whole file is at fault — and the problem. It reads
//! `FILE: KEY: PROBLEM`.

use std::fmt;
use std::path::Path;

/// Why a configuration file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File name (as given).
    pub file: String,
    /// The key at fault, as a path, or empty for the whole file.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about `key` of `file`.
    pub fn new(file: &str, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// An error about the whole of `file`.
    pub fn whole(file: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(file, "", message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads a configuration file; the error names it.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::whole(&path.display().to_string(), format!("cannot read: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_file_key_and_problem() {
        let e = ConfigError::new("hc.conf", "forwarding_table.src", "must be a string");
        assert_eq!(
            e.to_string(),
            "hc.conf: forwarding_table.src: must be a string"
        );
        assert_eq!(
            ConfigError::whole("hc.conf", "file is empty").to_string(),
            "hc.conf: file is empty"
        );
        let e = read(Path::new("/nonexistent/glb.conf")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/glb.conf: cannot read: "),
            "{e}"
        );
    }
}
