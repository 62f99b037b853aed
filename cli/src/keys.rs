//! `ekg keys`: the gatekeeper's key material. `storage-key` writes a fresh storage key file
//! (64 hex digits and a newline, mode 0600 from creation; an existing file is never
//! overwritten), the file that `gatekeeper.storage_key` names (`docs/server.md`).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// What `ekg keys` makes.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Write a fresh storage key (32 random bytes from the operating system, as 64 hex digits)
    /// to a new file, mode 0600. Refuses to overwrite an existing file: a storage key
    /// replaced is every stored key lost.
    StorageKey {
        /// The file to create.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `ekg keys`.
pub fn run(action: Action) -> Result<(), Box<dyn std::error::Error>> {
    match action {
        Action::StorageKey { out } => {
            let key = ekg_server::demo::fresh_storage_key()?;
            // Every copy in a zeroizing buffer: 64 hex digits and a newline.
            let mut text = zeroize::Zeroizing::new([b'\n'; 65]);
            hex::encode_to_slice(key.as_slice(), text.get_mut(..64).ok_or("buffer")?)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .map_err(|e| format!("{}: {e} (an existing storage key is never overwritten)", out.display()))?;
            f.write_all(text.as_slice())?;
            f.sync_all()?;
            eprintln!(
                "ekg keys: storage key written to {} (mode 0600): back it up apart from the database",
                out.display()
            );
            Ok(())
        }
    }
}
