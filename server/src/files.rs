//! The files the server keeps and the descriptors it needs: a database readable by its owner
//! only, enough descriptors for the connection cap, secrets written 0600 from creation
//! ([`write_secret`]) and fresh storage keys ([`fresh_storage_key`]).
//!
//! Secret files the server reads (`gatekeeper.key`, the storage key, `server.tls_key`) are
//! refused when group or others may read them (`config::read_secret`): the server did not
//! make them and cannot know who has read them. The database is the server's own: an
//! existing one (and its `-wal`, `-shm` and `-journal` files) that group or others may read,
//! as a copy or a restored backup usually is (`cp`, `sqlite3 .backup` follow the umask), is
//! set to 0600 at start with a warning, since refusing would only make the operator type the
//! `chmod` the server can do. What it holds is wrapped keys (useless without the storage
//! key), addresses and times.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Sets the SQLite database at `path` and its companion files to 0600 if group or others may
/// read or write them. A missing file is left to SQLite (it creates 0600 files).
pub fn owner_only_database(path: &Path) -> Result<(), String> {
    for file in companions(path) {
        let Ok(meta) = std::fs::metadata(&file) else { continue };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("{}: mode {mode:o}, and it cannot be set to 0600: {e}", file.display()))?;
            tracing::warn!(file = %file.display(), was = format!("{mode:o}"), "database file set to 0600");
        }
    }
    Ok(())
}

fn companions(path: &Path) -> Vec<PathBuf> {
    let mut all = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        all.push(PathBuf::from(p));
    }
    all
}

/// Descriptors a connection cap needs besides the connections: the listener, the store, the
/// refusals being answered, the runtime.
const SPARE_DESCRIPTORS: u64 = 64 + crate::listener::MAX_REFUSALS_IN_FLIGHT as u64;

/// Raises the soft limit of open descriptors to the hard limit if it is below what
/// `max_connections` needs, and warns if even that is too few (accept then fails with
/// "too many open files", and connections wait in the listen queue).
pub fn warn_if_few_descriptors(max_connections: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let need = max_connections as u64 + SPARE_DESCRIPTORS;
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(cur) = limit.current
        && cur < need
    {
        let raised = limit.maximum.map_or(need, |max| max.min(need.max(cur)));
        let wanted = rustix::process::Rlimit { current: Some(raised), maximum: limit.maximum };
        if setrlimit(Resource::Nofile, wanted).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    match limit.current {
        Some(cur) if cur < need => tracing::warn!(
            open_files_limit = cur,
            needed = need,
            "the open-files limit is below max_connections and its spares: raise it (LimitNOFILE=)"
        ),
        _ => tracing::debug!(open_files_limit = ?limit.current, "descriptors enough for max_connections"),
    }
}

/// Writes a private key readable by its owner only (0600 from creation).
pub fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)
}

/// 32 fresh bytes from the operating system, for a storage key.
pub fn fresh_storage_key() -> std::io::Result<zeroize::Zeroizing<[u8; 32]>> {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(key.as_mut_slice()).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_world_readable_database_and_its_wal_are_set_to_0600() {
        let dir = std::env::temp_dir().join(format!("ekg-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("ekg.db");
        let wal = dir.join("ekg.db-wal");
        for f in [&db, &wal] {
            std::fs::write(f, b"x").unwrap();
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        owner_only_database(&db).unwrap();
        for f in [&db, &wal] {
            assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
        }
        // Missing: nothing to do.
        owner_only_database(&dir.join("none.db")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
