//! The model's symbols: principals (one certificate each: the certificate is the address),
//! their anchors, and the fresh key names; the ledger's symbolic types. Shared by the
//! configurations, the actors and the reductions, which import it and not each other.

use ekg_core::ledger::LedgerTypes;

/// A principal's address (one certificate per principal: the certificate is the address).
pub type Addr = u8;

/// The sender, `alice@a.example`.
pub const SENDER: Addr = 1;
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

/// The anchor a principal's certificate chains to (symbolic path validation, V5).
pub fn anchor(addr: Addr) -> Addr {
    match addr {
        RECIPIENT_GATEWAY => CA_B,
        ATTACKER => CA_M,
        _ => CA_A,
    }
}

/// A one-time key (and its key id).
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
    type CertId = Addr;
    type KeyHandle = KeyName;
    /// A key request is its signer and attempt (a retry is a new request, a fresh nonce).
    type RequestId = (Addr, u8);
}
