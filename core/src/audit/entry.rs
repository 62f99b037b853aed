//! Log entries: what an auditor needs of one issuance or release, in a fixed binary encoding
//! (`docs/protocol.md` §10.2), and never a key, a wrapped key, a token or an address.
//!
//! Addresses appear only as keyed commitments, HMAC-SHA-256 (RFC 2104) of the address's
//! canonical form under the gatekeeper's [`LogSalt`]: whoever is told an address and the salt
//! can check it; a reader of the log alone cannot enumerate or confirm addresses.

use core::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::address::EmailAddress;
use crate::asn1::MAX_RECIPIENTS;
use crate::error::{Rejection, Result, reject};
use crate::ids::{Digest, KEY_ID_LEN, KeyId};
use crate::time::UnixTime;

/// The encoding's version octet.
pub const ENTRY_VERSION: u8 = 1;
/// Length of an entry before its commitments.
pub const ENTRY_HEADER_LEN: usize = 1 + 1 + 8 + KEY_ID_LEN + 32 + 2 + 2;
/// Longest entry: an issuance to the most recipients the profile allows.
pub const MAX_ENTRY_LEN: usize = ENTRY_HEADER_LEN + 32 * MAX_RECIPIENTS;
/// Most entries a log file may hold (`ekg audit verify` reads the whole file).
pub const MAX_LOG_ENTRIES: usize = 1 << 20;
/// Largest log file, in bytes.
pub const MAX_LOG_LEN: usize = 256 << 20;
/// Length of the log salt (the HMAC key), in bytes.
pub const LOG_SALT_LEN: usize = 32;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A key was issued and its ticket signed (`1`).
    Issue,
    /// A key was released to one requester (`2`).
    Release,
}

impl EntryKind {
    fn code(self) -> u8 {
        match self {
            EntryKind::Issue => 1,
            EntryKind::Release => 2,
        }
    }
}

/// The gatekeeper's secret key of the address commitments. Zeroized on drop, redacted in
/// `Debug`. Never in the log; given to an auditor who is to check addresses.
#[derive(Clone)]
pub struct LogSalt(Zeroizing<[u8; LOG_SALT_LEN]>);

impl LogSalt {
    /// A salt from its bytes (drawn by the caller from a CSPRNG).
    pub fn from_bytes(bytes: [u8; LOG_SALT_LEN]) -> Self {
        LogSalt(Zeroizing::new(bytes))
    }

    /// From a slice of exactly [`LOG_SALT_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; LOG_SALT_LEN]>::try_from(bytes).ok().map(LogSalt::from_bytes)
    }

    /// The salt's bytes, for its keeper to store (never into the log).
    pub fn expose(&self) -> &[u8; LOG_SALT_LEN] {
        &self.0
    }

    /// `HMAC-SHA-256(salt, canonical address)`: the commitment an entry holds.
    pub fn commit(&self, address: &EmailAddress) -> Digest {
        // HMAC takes a key of any length; 32 bytes never fails.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_slice()).unwrap_or_else(|_| unreachable!());
        mac.update(address.to_string().as_bytes());
        Digest(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for LogSalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogSalt(<redacted>)")
    }
}

/// One entry of the issuance log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Issuance or release.
    pub kind: EntryKind,
    /// When the gatekeeper decided it (its `now`).
    pub time: UnixTime,
    /// The key's id.
    pub key_id: KeyId,
    /// SHA-256 of the ticket's DER.
    pub ticket_hash: Digest,
    /// How many recipients the ticket lists.
    pub recipient_count: u16,
    /// Issue: the commitments of every listed address; release: of the one address served
    /// (a gateway's own). Sorted ascending, distinct.
    pub address_commitments: Vec<Digest>,
}

impl LogEntry {
    /// The entry of an issuance: `ticket_der` as signed, its recipients.
    pub fn issue(
        salt: &LogSalt,
        time: UnixTime,
        key_id: KeyId,
        ticket_der: &[u8],
        recipients: &[EmailAddress],
    ) -> Result<Self> {
        let recipient_count = count(recipients.len())?;
        let address_commitments = recipients.iter().map(|a| salt.commit(a)).collect();
        LogEntry {
            kind: EntryKind::Issue,
            time,
            key_id,
            ticket_hash: ticket_hash(ticket_der),
            recipient_count,
            address_commitments: vec![],
        }
        .with_commitments(address_commitments)
    }

    /// The entry of a release of the key of `ticket_der` (which lists `recipient_count`
    /// addresses) to `delivered_to`.
    pub fn release(
        salt: &LogSalt,
        time: UnixTime,
        key_id: KeyId,
        ticket_der: &[u8],
        recipient_count: usize,
        delivered_to: &EmailAddress,
    ) -> Result<Self> {
        LogEntry::release_hashed(salt, time, key_id, ticket_hash(ticket_der), recipient_count, delivered_to)
    }

    /// As [`LogEntry::release`], with the ticket's hash already known (a verified ticket
    /// carries it).
    pub fn release_hashed(
        salt: &LogSalt,
        time: UnixTime,
        key_id: KeyId,
        ticket_hash: Digest,
        recipient_count: usize,
        delivered_to: &EmailAddress,
    ) -> Result<Self> {
        let recipient_count = count(recipient_count)?;
        LogEntry { kind: EntryKind::Release, time, key_id, ticket_hash, recipient_count, address_commitments: vec![] }
            .with_commitments(vec![salt.commit(delivered_to)])
    }

    fn with_commitments(mut self, mut commitments: Vec<Digest>) -> Result<Self> {
        commitments.sort_unstable();
        commitments.dedup();
        self.address_commitments = commitments;
        self.check()?;
        Ok(self)
    }

    /// Whether `address` is among this entry's commitments under `salt` (A6).
    pub fn names(&self, salt: &LogSalt, address: &EmailAddress) -> Result<()> {
        if self.address_commitments.binary_search(&salt.commit(address)).is_ok() {
            Ok(())
        } else {
            Err(reject(
                Rejection::LogAddressMismatch,
                format!("{address} is not committed in this entry under this salt"),
            ))
        }
    }

    /// The encoding of `docs/protocol.md` §10.2 (the Merkle leaf's data).
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.check()?;
        let n = self.address_commitments.len();
        let mut out = Vec::with_capacity(ENTRY_HEADER_LEN + 32 * n);
        out.push(ENTRY_VERSION);
        out.push(self.kind.code());
        out.extend_from_slice(&self.time.0.to_be_bytes());
        out.extend_from_slice(&self.key_id.0);
        out.extend_from_slice(&self.ticket_hash.0);
        out.extend_from_slice(&self.recipient_count.to_be_bytes());
        out.extend_from_slice(&count(n)?.to_be_bytes());
        for c in &self.address_commitments {
            out.extend_from_slice(&c.0);
        }
        Ok(out)
    }

    /// Decodes one entry from the front of `bytes`; returns it and the bytes it took.
    pub fn decode_prefix(bytes: &[u8]) -> Result<(LogEntry, usize)> {
        let mut r = Cursor { bytes, at: 0 };
        let version = r.take::<1>()?[0];
        if version != ENTRY_VERSION {
            return Err(malformed(format!("entry version {version}")));
        }
        let kind = match r.take::<1>()?[0] {
            1 => EntryKind::Issue,
            2 => EntryKind::Release,
            k => return Err(malformed(format!("entry kind {k}"))),
        };
        let time = UnixTime(u64::from_be_bytes(r.take()?));
        let key_id = KeyId(r.take()?);
        let ticket_hash = Digest(r.take()?);
        let recipient_count = u16::from_be_bytes(r.take()?);
        let n = usize::from(u16::from_be_bytes(r.take()?));
        if n > MAX_RECIPIENTS {
            return Err(malformed(format!("{n} commitments")));
        }
        let address_commitments = (0..n).map(|_| r.take().map(Digest)).collect::<Result<Vec<_>>>()?;
        let entry = LogEntry { kind, time, key_id, ticket_hash, recipient_count, address_commitments };
        entry.check()?;
        Ok((entry, r.at))
    }

    /// The rules of §10.2 that the types do not hold.
    fn check(&self) -> Result<()> {
        let n = self.address_commitments.len();
        if self.recipient_count == 0 || usize::from(self.recipient_count) > MAX_RECIPIENTS {
            return Err(malformed(format!("recipient count {}", self.recipient_count)));
        }
        let want = match self.kind {
            EntryKind::Issue => usize::from(self.recipient_count),
            EntryKind::Release => 1,
        };
        if n != want {
            return Err(malformed(format!("{:?} entry with {n} commitments, {want} required", self.kind)));
        }
        if self.address_commitments.windows(2).any(|w| w.first() >= w.get(1)) {
            return Err(malformed("commitments not in ascending order or repeated"));
        }
        Ok(())
    }
}

/// SHA-256 of a ticket's DER, as entries record it.
pub fn ticket_hash(ticket_der: &[u8]) -> Digest {
    Digest(Sha256::digest(ticket_der).into())
}

/// Encodes a log file: the entries' encodings one after another (§10.2).
pub fn encode_log(entries: &[LogEntry]) -> Result<Vec<u8>> {
    if entries.len() > MAX_LOG_ENTRIES {
        return Err(malformed(format!("{} entries > {MAX_LOG_ENTRIES}", entries.len())));
    }
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.encode()?);
    }
    Ok(out)
}

/// Decodes a log file; every entry with its encoding (the leaf data), in order.
pub fn decode_log(bytes: &[u8]) -> Result<Vec<(LogEntry, Vec<u8>)>> {
    if bytes.len() > MAX_LOG_LEN {
        return Err(malformed(format!("log of {} bytes > {MAX_LOG_LEN}", bytes.len())));
    }
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if out.len() == MAX_LOG_ENTRIES {
            return Err(malformed(format!("more than {MAX_LOG_ENTRIES} entries")));
        }
        let (entry, used) =
            LogEntry::decode_prefix(rest).map_err(|e| malformed(format!("entry {}: {}", out.len(), e.detail())))?;
        let (raw, tail) = rest.split_at(used);
        out.push((entry, raw.to_vec()));
        rest = tail;
    }
    Ok(out)
}

fn count(n: usize) -> Result<u16> {
    u16::try_from(n).ok().filter(|&c| usize::from(c) <= MAX_RECIPIENTS).ok_or_else(|| malformed(format!("count {n}")))
}

fn malformed(detail: impl Into<String>) -> crate::error::Error {
    reject(Rejection::LogMalformed, detail)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let field = self
            .bytes
            .get(self.at..self.at + N)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or_else(|| malformed(format!("truncated at byte {}", self.at)))?;
        self.at += N;
        Ok(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn sample(salt: &LogSalt) -> LogEntry {
        LogEntry::issue(
            salt,
            UnixTime(1_780_000_000),
            KeyId([7; 16]),
            b"ticket",
            &[addr("b@example.org"), addr("a@example.org")],
        )
        .unwrap()
    }

    #[test]
    fn an_entry_round_trips_in_its_documented_layout() {
        let salt = LogSalt::from_bytes([1; 32]);
        let e = sample(&salt);
        let der = e.encode().unwrap();
        assert_eq!(der.len(), ENTRY_HEADER_LEN + 64);
        assert_eq!(&der[..2], &[1, 1]);
        assert_eq!(&der[2..10], &1_780_000_000u64.to_be_bytes());
        assert_eq!(&der[10..26], &[7; 16]);
        assert_eq!(&der[26..58], ticket_hash(b"ticket").as_bytes());
        assert_eq!(&der[58..62], &[0, 2, 0, 2]);
        let (back, used) = LogEntry::decode_prefix(&der).unwrap();
        assert_eq!((back, used), (e, der.len()));
    }

    #[test]
    fn an_entry_names_its_addresses_only_under_its_salt() {
        let salt = LogSalt::from_bytes([1; 32]);
        let e = sample(&salt);
        e.names(&salt, &addr("a@EXAMPLE.org")).unwrap();
        assert_eq!(e.names(&salt, &addr("c@example.org")).unwrap_err(), Rejection::LogAddressMismatch);
        let other = LogSalt::from_bytes([2; 32]);
        assert_eq!(e.names(&other, &addr("a@example.org")).unwrap_err(), Rejection::LogAddressMismatch);
        // No address in the clear.
        assert!(!e.encode().unwrap().windows(7).any(|w| w == b"example"));
        assert_eq!(format!("{salt:?}"), "LogSalt(<redacted>)");
    }

    #[test]
    fn every_truncation_and_bad_field_is_log_malformed() {
        let salt = LogSalt::from_bytes([1; 32]);
        let der = sample(&salt).encode().unwrap();
        for cut in 0..der.len() {
            assert_eq!(LogEntry::decode_prefix(&der[..cut]).unwrap_err(), Rejection::LogMalformed, "cut {cut}");
        }
        for (at, value) in [(0, 2), (1, 0), (1, 3), (58, 1), (59, 0), (61, 1), (61, 3)] {
            let mut bad = der.clone();
            bad[at] = value;
            assert_eq!(LogEntry::decode_prefix(&bad).unwrap_err(), Rejection::LogMalformed, "byte {at} = {value}");
        }
        // Commitments out of order.
        let mut swapped = der.clone();
        let (a, b) = swapped[ENTRY_HEADER_LEN..].split_at_mut(32);
        a.swap_with_slice(b);
        assert_eq!(LogEntry::decode_prefix(&swapped).unwrap_err(), Rejection::LogMalformed);
        // A release commits to exactly one address.
        let mut release = der;
        release[1] = 2;
        assert_eq!(LogEntry::decode_prefix(&release).unwrap_err(), Rejection::LogMalformed);
    }

    #[test]
    fn a_log_is_its_entries_back_to_back() {
        let salt = LogSalt::from_bytes([1; 32]);
        let issue = sample(&salt);
        let release =
            LogEntry::release(&salt, UnixTime(1_780_000_100), KeyId([7; 16]), b"ticket", 2, &addr("a@example.org"))
                .unwrap();
        let log = encode_log(&[issue.clone(), release.clone()]).unwrap();
        let back = decode_log(&log).unwrap();
        assert_eq!(back.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>(), vec![issue, release]);
        assert_eq!(back.iter().map(|(_, raw)| raw.len()).sum::<usize>(), log.len());
        assert_eq!(decode_log(&log[..log.len() - 1]).unwrap_err(), Rejection::LogMalformed);
        assert!(decode_log(&[]).unwrap().is_empty());
    }
}
