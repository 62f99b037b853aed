//! A store that is not this gatekeeper's own is refused (`docs/server.md`, "Store identity").
//!
//! A database store carries an identity (16 random bytes drawn when it is first opened) and a
//! generation (raised at every start and every `store_generation_secs` while the server
//! runs). The gatekeeper keeps both in an identity file of its own, kept apart from the
//! database (beside the storage key by default): restoring or replacing the database does not
//! restore the identity file with it. At start:
//!
//! | database            | identity file       | start                                       |
//! |---------------------|---------------------|---------------------------------------------|
//! | none or no identity | none                | a new store: identity drawn, file written   |
//! | none or no identity | some                | `store_missing` / `store_replaced`          |
//! | identity X, gen g   | none                | adopted (first start on this host), warned  |
//! | identity Y ≠ X      | X                   | `store_replaced`                            |
//! | X, g < file's       | X                   | `store_rolled_back`                         |
//! | X, g ≥ file's       | X                   | started (g > file's: other instances or a   |
//! |                     |                     | crash between the two writes)               |
//!
//! `ekg serve --adopt-store` takes the database as found (a new one, or a backup restored on
//! purpose) and starts from it. Each advance writes the database first and the file after,
//! so a crash between the two leaves the database ahead, which is accepted.
//!
//! What this detects: a database lost, emptied, swapped for another gatekeeper's, or restored
//! from a backup taken before the last advance (so at most `store_generation_secs` of records
//! can be lost unnoticed). What it does not: an attacker who can write both files.

use std::io::Write;
use std::path::{Path, PathBuf};

use ekg_core::ledger::StoreError;
use serde::{Deserialize, Serialize};

use super::AnyStore;

/// The table holding the identity: one row.
pub const TABLE: &str = "CREATE TABLE IF NOT EXISTS ekg_store (
    one BIGINT PRIMARY KEY CHECK (one = 1),
    store_id BYTEA NOT NULL,
    generation BIGINT NOT NULL
)";

/// Reads the identity row.
pub(super) const READ: &str = "SELECT store_id, generation FROM ekg_store WHERE one = 1";

/// Sets the identity if there is none, else raises the generation of the same identity; the
/// new generation (no row: the database now holds another identity).
pub(super) const ADVANCE: &str = "INSERT INTO ekg_store (one, store_id, generation) VALUES (1, $1, 1)
    ON CONFLICT (one) DO UPDATE SET generation = ekg_store.generation + 1
    WHERE ekg_store.store_id = excluded.store_id
    RETURNING generation";

/// The largest identity file read.
pub const MAX_FILE_BYTES: u64 = 4096;

/// A store's identity and the generation it was seen at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Drawn when the store was first opened.
    pub store_id: [u8; 16],
    /// Raised at every start and every interval.
    pub generation: u64,
}

/// Why a store is refused at start: each has a stable code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The SQLite file is missing or empty while the identity file names a store.
    Missing(String),
    /// The database holds no identity, or another one, than the identity file's.
    Replaced(String),
    /// The database's generation is older than the identity file's.
    RolledBack(String),
    /// The identity file cannot be read, parsed or written.
    Invalid(String),
    /// The store failed while reading or writing its identity.
    Store(String),
}

impl Refusal {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Missing(_) => "store_missing",
            Refusal::Replaced(_) => "store_replaced",
            Refusal::RolledBack(_) => "store_rolled_back",
            Refusal::Invalid(_) => "store_identity_invalid",
            Refusal::Store(_) => "storage_failed",
        }
    }

    /// What happened and what to do.
    pub fn detail(&self) -> &str {
        match self {
            Refusal::Missing(d)
            | Refusal::Replaced(d)
            | Refusal::RolledBack(d)
            | Refusal::Invalid(d)
            | Refusal::Store(d) => d,
        }
    }
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.code(), self.detail())
    }
}

const ADOPT: &str = "restore the right database, or start once with `ekg serve --adopt-store` to take this one \
                     as it is (keys released after its last write may be released again; docs/server.md, \
                     \"Store identity\")";

/// What to do at start, from the database's identity and the identity file's (`adopt`: the
/// operator's `--adopt-store`): the identity to advance (`store_id`; the generation is the
/// one seen), or why not.
pub fn decide(database: Option<Identity>, file: Option<Identity>, adopt: bool) -> Result<Option<Identity>, Refusal> {
    match (database, file) {
        (None, None) => Ok(None),
        (None, Some(f)) if !adopt => Err(Refusal::Replaced(format!(
            "the database holds no store identity, but the identity file names store {} at generation {}: \
             the database was lost, emptied or replaced; {ADOPT}",
            hex::encode(f.store_id),
            f.generation
        ))),
        (None, Some(_)) => Ok(None),
        (Some(d), None) => Ok(Some(d)),
        (Some(d), Some(f)) if d.store_id != f.store_id && !adopt => Err(Refusal::Replaced(format!(
            "the database is store {}, the identity file names store {}: this is another gatekeeper's database; {ADOPT}",
            hex::encode(d.store_id),
            hex::encode(f.store_id)
        ))),
        (Some(d), Some(f)) if d.generation < f.generation && !adopt => Err(Refusal::RolledBack(format!(
            "the database is at generation {}, the identity file at {}: the database was restored from an older \
             copy, or lost writes; {ADOPT}",
            d.generation, f.generation
        ))),
        (Some(d), Some(_)) => Ok(Some(d)),
    }
}

/// The identity file's form (TOML).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileForm {
    store_id: String,
    generation: u64,
}

/// Reads the identity file (`None`: there is none).
pub fn read_file(path: &Path) -> Result<Option<Identity>, Refusal> {
    let invalid = |rule: String| Refusal::Invalid(format!("{}: {rule}", path.display()));
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(invalid(e.to_string())),
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(invalid(format!("at most {MAX_FILE_BYTES} bytes")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    let form: FileForm =
        toml::from_str(&text).map_err(|e| invalid(format!("not an identity file: {}", e.message())))?;
    let store_id = hex::decode(&form.store_id)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| invalid("store_id: 32 hex digits".into()))?;
    Ok(Some(Identity { store_id, generation: form.generation }))
}

/// Writes the identity file atomically (a temporary file, fsynced, renamed, the directory
/// fsynced), owner-only.
pub fn write_file(path: &Path, identity: Identity) -> Result<(), Refusal> {
    use std::os::unix::fs::OpenOptionsExt;
    let invalid = |e: std::io::Error| Refusal::Invalid(format!("{}: {e}", path.display()));
    let form = FileForm { store_id: hex::encode(identity.store_id), generation: identity.generation };
    let text = format!(
        "# The identity of this gatekeeper's store (docs/server.md, \"Store identity\").\n\
         # Keep it apart from the database: never restore it from the database's backups.\n{}",
        toml::to_string(&form).map_err(|e| Refusal::Invalid(e.to_string()))?
    );
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(invalid)?;
    f.write_all(text.as_bytes()).map_err(invalid)?;
    f.sync_all().map_err(invalid)?;
    std::fs::rename(&tmp, path).map_err(invalid)?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(invalid)?;
    Ok(())
}

/// The identity of a running store and its file: [`Generations::advance`] raises the
/// generation (at start, then at intervals).
#[derive(Clone, Debug)]
pub struct Generations {
    store: AnyStore,
    file: PathBuf,
    store_id: [u8; 16],
}

impl Generations {
    /// Checks `store` against the identity file at `file` ([`decide`]), then advances once.
    pub fn start(store: &AnyStore, file: &Path, adopt: bool) -> Result<Generations, Refusal> {
        let on_file = read_file(file)?;
        let in_store = store.clone().identity().map_err(|e| Refusal::Store(e.0))?;
        let store_id = match decide(in_store, on_file, adopt)? {
            Some(d) => {
                if on_file.is_none() {
                    tracing::warn!(file = %file.display(), "store identity file created for an existing store");
                }
                d.store_id
            }
            None => {
                let mut id = [0u8; 16];
                getrandom::fill(&mut id).map_err(|e| Refusal::Store(format!("OS RNG: {e}")))?;
                tracing::info!(store_id = %hex::encode(id), "a new store identity");
                id
            }
        };
        let g = Generations { store: store.clone(), file: file.to_owned(), store_id };
        g.advance()?;
        Ok(g)
    }

    /// Raises the generation in the store, then in the identity file; the new generation.
    pub fn advance(&self) -> Result<u64, Refusal> {
        let generation = self.store.clone().advance_generation(&self.store_id).map_err(|e| Refusal::Store(e.0))?;
        let generation = generation.ok_or_else(|| {
            Refusal::Replaced(format!(
                "the database no longer holds store {}: it was replaced while the server ran",
                hex::encode(self.store_id)
            ))
        })?;
        write_file(&self.file, Identity { store_id: self.store_id, generation })?;
        Ok(generation)
    }
}

/// Whether a SQLite database file is missing or empty (no store in it yet).
pub fn sqlite_absent(path: &Path) -> bool {
    std::fs::metadata(path).map_or(true, |m| m.len() == 0)
}

/// The identity row, from either engine's answer.
pub(super) fn from_row(store_id: Vec<u8>, generation: i64) -> Result<Identity, StoreError> {
    let store_id = <[u8; 16]>::try_from(store_id).map_err(|_| StoreError("ekg_store.store_id: not 16 bytes".into()))?;
    let generation = u64::try_from(generation).map_err(|_| StoreError("ekg_store.generation: negative".into()))?;
    Ok(Identity { store_id, generation })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8, generation: u64) -> Option<Identity> {
        Some(Identity { store_id: [b; 16], generation })
    }

    #[test]
    fn the_table_of_the_module_doc() {
        assert_eq!(decide(None, None, false), Ok(None));
        assert_eq!(decide(None, id(1, 3), false).unwrap_err().code(), "store_replaced");
        assert_eq!(decide(None, id(1, 3), true), Ok(None));
        assert_eq!(decide(id(1, 3), None, false), Ok(id(1, 3)));
        assert_eq!(decide(id(2, 3), id(1, 3), false).unwrap_err().code(), "store_replaced");
        assert_eq!(decide(id(2, 3), id(1, 3), true), Ok(id(2, 3)));
        assert_eq!(decide(id(1, 2), id(1, 3), false).unwrap_err().code(), "store_rolled_back");
        assert_eq!(decide(id(1, 2), id(1, 3), true), Ok(id(1, 2)));
        assert_eq!(decide(id(1, 3), id(1, 3), false), Ok(id(1, 3)));
        assert_eq!(decide(id(1, 9), id(1, 3), false), Ok(id(1, 9)));
    }

    #[test]
    fn the_file_round_trips_and_refuses_what_it_cannot_read() {
        let dir = std::env::temp_dir().join(format!("ekg-identity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store-identity");
        assert_eq!(read_file(&path), Ok(None));
        write_file(&path, Identity { store_id: [7; 16], generation: 42 }).unwrap();
        assert_eq!(read_file(&path), Ok(id(7, 42)));
        std::fs::write(&path, "store_id = \"00\"\ngeneration = 1\n").unwrap();
        assert_eq!(read_file(&path).unwrap_err().code(), "store_identity_invalid");
        std::fs::write(&path, vec![b'#'; 5000]).unwrap();
        assert_eq!(read_file(&path).unwrap_err().code(), "store_identity_invalid");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
