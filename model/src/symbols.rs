//! The model's symbols: principals and their certificates (each principal's own certificate
//! is named by its address; two more certificates make one address with two certificates and
//! one certificate with two addresses), their anchors, and the fresh key names; the ledger's
//! symbolic types. Shared by the
//! configurations, the actors and the reductions, which import it and not each other.

use ekg_core::ledger::{LedgerTypes, Record};

/// An address.
pub type Addr = u8;

/// A certificate. A principal's own certificate has its address as name and holds that one
/// address; [`R1_RENEWED`] and [`R2_R3`] are the two others ([`addresses`]).
pub type Cert = u8;

/// The sender, `alice@a.example`.
pub const SENDER: Addr = 1;
/// The first listed recipient (sender's organisation).
pub const R1: Addr = 2;
/// The second listed recipient (recipient organisation).
pub const R2: Addr = 3;
/// The third listed recipient (recipient organisation).
pub const R3: Addr = 4;
/// A second certificate of [`R1`] (a renewed certificate, on another device).
pub const R1_RENEWED: Cert = 20;
/// One certificate holding two listed addresses, [`R2`] and [`R3`].
pub const R2_R3: Cert = 21;
/// The sender organisation's gateway, `gateway@a.example`.
pub const SENDER_GATEWAY: Addr = 10;
/// The recipient organisation's gateway, `gateway@b.example`.
pub const RECIPIENT_GATEWAY: Addr = 11;
/// The attacker, `mallory@m.example`: a valid certificate, listed nowhere.
pub const ATTACKER: Addr = 12;
/// The sender organisation's CA (`a.example`), the anchor of its users and gateway.
pub const CA_A: Addr = 100;
/// The recipient organisation's CA (`b.example`).
pub const CA_B: Addr = 101;
/// The attacker's CA (trusted: its certificate is valid).
pub const CA_M: Addr = 102;

/// The addresses of the certificates that are not a principal's own (which holds its name).
fn other_addresses(cert: Cert) -> Option<&'static [Addr]> {
    match cert {
        R1_RENEWED => Some(&[R1]),
        R2_R3 => Some(&[R2, R3]),
        _ => None,
    }
}

/// The addresses a certificate holds (its rfc822Names).
pub fn addresses(cert: Cert) -> Vec<Addr> {
    other_addresses(cert).map_or_else(|| vec![cert], <[Addr]>::to_vec)
}

/// Whether `cert` holds `addr`.
pub fn holds(cert: Cert, addr: Addr) -> bool {
    other_addresses(cert).map_or(cert == addr, |a| a.contains(&addr))
}

/// The anchor a certificate chains to (symbolic path validation, V5).
pub fn anchor(cert: Cert) -> Addr {
    match cert {
        RECIPIENT_GATEWAY => CA_B,
        ATTACKER => CA_M,
        _ => CA_A,
    }
}

/// A fresh value: a key id, or a key (the model reads both from the bytes
/// `ekg_core::role::draw_fresh` returned).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName {
    /// The gatekeeper's boot (fresh names survive crashes, as random ones would).
    pub boot: u8,
    /// Issue sequence within that boot.
    pub seq: u8,
}

/// The ledger's symbolic types: the very `ekg_core::ledger::Ledger`, with names for keys and
/// principals instead of bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym;

impl LedgerTypes for Sym {
    type KeyId = KeyName;
    type Address = Addr;
    type CertId = Cert;
    /// The key as stored: its own fresh value, apart from the key id.
    type KeyHandle = KeyName;
    /// A key request is its signer, its message and its attempt (each message and each retry
    /// is a new request, a fresh nonce).
    type RequestId = (Addr, u8, u8);
}

pub(crate) type RecordOrder = (KeyName, u8, Vec<Addr>, Addr);

/// The canonical order of records: by key, then kind, then addresses and certificate.
pub(crate) fn record_order(r: &Record<Sym>) -> RecordOrder {
    match r {
        Record::Issued { key_id, .. } => (*key_id, 0, vec![], 0),
        Record::Released { key_id, addresses, cert, .. } => (*key_id, 1, addresses.clone(), *cert),
        Record::Destroyed { key_id, .. } => (*key_id, 2, vec![], 0),
        Record::Purged { key_id } => (*key_id, 3, vec![], 0),
    }
}

/// Sorts records into the canonical order (stable: equal keys are equal records here).
pub fn sort_records(records: &mut [Record<Sym>]) {
    records.sort_by_cached_key(record_order);
}
