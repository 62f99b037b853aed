//! The issuance log of `ekg demo`'s flow (`docs/protocol.md` §10), written beside the
//! artifacts for `ekg audit verify` to check.

use std::path::Path;

use ekg_core::audit::{LogEntry, LogSalt, TreeHead, entry};
use ekg_core::crypto::pki::Credential;
use ekg_core::role::Ticket;
use ekg_core::{EmailAddress, UnixTime};

use crate::client::provider;

/// The log of a demo flow, kept beside the gatekeeper (the service does not log yet: see
/// `docs/protocol.md` §10.7).
pub struct DemoLog {
    salt: LogSalt,
    entries: Vec<LogEntry>,
    heads: Vec<(usize, Vec<u8>)>,
}

impl DemoLog {
    /// A log under `salt`.
    pub fn new(salt: [u8; entry::LOG_SALT_LEN]) -> Self {
        DemoLog { salt: LogSalt::from_bytes(salt), entries: Vec::new(), heads: Vec::new() }
    }

    /// Logs the issuance of `ticket_der`.
    pub fn issue(&mut self, now: UnixTime, ticket_der: &[u8]) -> ekg_core::Result<()> {
        let t = Ticket::open(provider(), ticket_der)?;
        self.entries.push(LogEntry::issue(&self.salt, now, t.key_id, ticket_der, &t.request.recipients)?);
        Ok(())
    }

    /// Logs a release of the key of `ticket_der` to `delivered_to`.
    pub fn release(&mut self, now: UnixTime, ticket_der: &[u8], delivered_to: &EmailAddress) -> ekg_core::Result<()> {
        let t = Ticket::open(provider(), ticket_der)?;
        let n = t.request.recipients.len();
        self.entries.push(LogEntry::release(&self.salt, now, t.key_id, ticket_der, n, delivered_to)?);
        Ok(())
    }

    /// Signs the head of the log as it stands.
    pub fn sign_head(
        &mut self,
        now: UnixTime,
        gatekeeper: &Credential,
        rng: &mut dyn ekg_core::crypto::CryptoRng,
    ) -> ekg_core::Result<()> {
        let mut tree = ekg_core::audit::Tree::new();
        for e in &self.entries {
            tree.push(&e.encode()?);
        }
        let head = TreeHead { tree_size: tree.size(), root_hash: tree.root(), timestamp: now };
        self.heads.push((self.entries.len(), head.sign(provider(), gatekeeper, rng)?));
        Ok(())
    }

    /// Writes `issuance.log`, `head-N.der` (N: its size) and `salt.hex` (0600) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("issuance.log"), entry::encode_log(&self.entries)?)?;
        let mut names = vec!["issuance.log".to_owned()];
        for (size, der) in &self.heads {
            let name = format!("head-{size}.der");
            std::fs::write(dir.join(&name), der)?;
            names.push(name);
        }
        ekg_server::files::write_secret(&dir.join("salt.hex"), hex::encode(self.salt.expose()).as_bytes())?;
        names.push("salt.hex".to_owned());
        Ok(names)
    }
}
