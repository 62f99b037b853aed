//! Reading what a configuration names, within bounds, with errors that name the field: the
//! leaf every module that reads a configured file uses (`config`, `tls`, `certificates`,
//! `custody`).

use std::path::Path;

use zeroize::Zeroizing;

/// Largest configuration file, and largest PEM or key file it names.
pub const MAX_FILE_LEN: u64 = 1024 * 1024;
/// A field that does not hold: which, and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field (`gatekeeper.storage_key`).
    pub field: String,
    /// What it must be.
    pub rule: String,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "configuration: {}: {}", self.field, self.rule)
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn bad<T>(field: &str, rule: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { field: field.to_owned(), rule: rule.into() })
}

/// Reads a file of at most [`MAX_FILE_LEN`] bytes.
pub fn read_bounded(path: &Path, field: &str) -> Result<Vec<u8>, ConfigError> {
    read_bounded_to(path, field, MAX_FILE_LEN)
}

/// Reads a file of at most `max` bytes.
pub fn read_bounded_to(path: &Path, field: &str, max: u64) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let f = std::fs::File::open(path).or_else(|e| bad(field, format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    f.take(max + 1).read_to_end(&mut out).or_else(|e| bad(field, format!("{}: {e}", path.display())))?;
    if out.len() as u64 > max {
        return bad(field, format!("{}: larger than {max} bytes", path.display()));
    }
    Ok(out)
}

/// Reads a secret file that must be readable by its owner only.
pub fn read_secret(path: &Path, field: &str) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).or_else(|e| bad(field, format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return bad(field, format!("{} is readable by group or others: chmod 600 it", path.display()));
    }
    read_bounded(path, field).map(Zeroizing::new)
}

pub(crate) fn text(bytes: &[u8], field: &str) -> Result<String, ConfigError> {
    String::from_utf8(bytes.to_vec()).or_else(|_| bad(field, "not UTF-8 text"))
}
