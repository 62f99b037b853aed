//! The one durable form of a record: every store writes a key's records as this codec makes
//! them, and nothing else of the protocol (the SQL stores index what they must find or
//! condition on: the key id, its version and deadline, the request it answered).
//!
//! Format, versions 1 and 2 (big-endian integers; `str` is a `u16` length then UTF-8 bytes; `addr` a
//! `str` that parses as an address; `req?` a byte 0, or 1 then `addr` sender, 16-byte nonce,
//! `u64` request time):
//!
//! | byte 0 | byte 1 (tag) | then |
//! |---|---|---|
//! | `1` | `1` Issued | key id (16), handle (40), sender `addr`, `u16` count then `addr` each, policy (`0` once, `1` same_certificate), issued at `u64`, expires at `u64`, `req?` (an unlabelled key) |
//! | `1` | `5` Issued, labelled | as tag `1`, then `u16` count (1..16) then each label as a `str` (an attribute-value URI, `docs/protocol.md` §11) |
//! | `1` | `2` Released | key id (16), `u16` count then `addr` each, certificate id (32), at `u64` |
//! | `1` | `3` Destroyed | key id (16), at `u64`, expires at `u64`, reason (`0` all released, `1` expired), `req?` |
//! | `1` | `4` Purged | key id (16) |
//! | `2` | `1` Issued | as version 1, then the storage epoch `u64` after the handle |
//!
//! Version 2 differs from version 1 only in Issued: the handle is wrapped under the storage
//! key of the epoch that follows it (`docs/protocol.md`, "Key custody"); a version 1 Issued
//! is wrapped under the single storage key of the releases before epochs
//! ([`StorageEpoch::Legacy`]). An encoder writes version 2 for an Issued of a numbered epoch
//! and version 1 for everything else, so that a store without epochs keeps the bytes it
//! always had; the decoder reads both.
//!
//! An unlabelled key's `Issued` record is byte for byte what it was before labels existed, and
//! a record written before them decodes as unlabelled. A labelled key's has its own tag, so
//! that a labelled record cut after `req?` is refused, never read as an unlabelled one.
//!
//! Decoding is strict: a version or tag it does not know, a length past the end, an address
//! that does not parse, or a byte left over is `storage_failed`.

use super::{Concrete, DestroyReason, Record, ReleasePolicy, RequestRecord};
use crate::access::policy::AttributeValue;
use crate::address::EmailAddress;
use crate::error::{Rejection, Result, reject};
use crate::ids::{CertId, KeyId, Nonce, RequestId, StorageEpoch, StoredKey, WrappedKey};
use crate::time::UnixTime;

/// The newest codec version this build writes (an Issued of a numbered storage epoch).
pub const VERSION: u8 = 2;
/// The version of every other record (and of an Issued under the legacy storage key).
const VERSION_1: u8 = 1;

const ISSUED: u8 = 1;
const RELEASED: u8 = 2;
const DESTROYED: u8 = 3;
const PURGED: u8 = 4;
const ISSUED_LABELLED: u8 = 5;

impl Record<Concrete> {
    /// The record in its durable form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Writer(Vec::with_capacity(64));
        match self {
            Record::Issued { handle: StoredKey { epoch: StorageEpoch::Numbered(_), .. }, .. } => out.u8(VERSION),
            _ => out.u8(VERSION_1),
        }
        match self {
            Record::Issued { key_id, handle, sender, recipients, policy, issued_at, expires_at, request, labels } => {
                out.u8(if labels.is_empty() { ISSUED } else { ISSUED_LABELLED });
                out.bytes(key_id.as_bytes());
                out.bytes(&handle.wrapped.0);
                if let StorageEpoch::Numbered(n) = handle.epoch {
                    out.u64(n);
                }
                out.address(sender);
                out.addresses(recipients);
                out.u8(match policy {
                    ReleasePolicy::Once => 0,
                    ReleasePolicy::SameCertificate => 1,
                });
                out.u64(issued_at.secs());
                out.u64(expires_at.secs());
                out.request(request.as_ref());
                if !labels.is_empty() {
                    out.len(labels.len());
                    for label in labels {
                        out.len(label.as_str().len());
                        out.bytes(label.as_str().as_bytes());
                    }
                }
            }
            Record::Released { key_id, addresses, cert, at } => {
                out.u8(RELEASED);
                out.bytes(key_id.as_bytes());
                out.addresses(addresses);
                out.bytes(&cert.0);
                out.u64(at.secs());
            }
            Record::Destroyed { key_id, at, expires_at, reason, request } => {
                out.u8(DESTROYED);
                out.bytes(key_id.as_bytes());
                out.u64(at.secs());
                out.u64(expires_at.secs());
                out.u8(match reason {
                    DestroyReason::AllReleased => 0,
                    DestroyReason::Expired => 1,
                });
                out.request(request.as_ref());
            }
            Record::Purged { key_id } => {
                out.u8(PURGED);
                out.bytes(key_id.as_bytes());
            }
        }
        out.0
    }

    /// A record from its durable form (`storage_failed` if it is not one).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        let tag = r.u8()?;
        match (version, tag) {
            (VERSION_1, _) | (VERSION, ISSUED | ISSUED_LABELLED) => {}
            (VERSION, _) => return Err(corrupt(&format!("record codec version {version} with tag {tag}"))),
            _ => return Err(corrupt(&format!("record codec version {version} (this build reads 1 and {VERSION})"))),
        }
        let key_id = KeyId(r.array()?);
        let record = match tag {
            ISSUED | ISSUED_LABELLED => Record::Issued {
                key_id,
                handle: {
                    let wrapped = WrappedKey(r.array()?);
                    let epoch =
                        if version == VERSION { StorageEpoch::Numbered(r.u64()?) } else { StorageEpoch::Legacy };
                    StoredKey { epoch, wrapped }
                },
                sender: r.address()?,
                recipients: r.addresses()?,
                policy: match r.u8()? {
                    0 => ReleasePolicy::Once,
                    1 => ReleasePolicy::SameCertificate,
                    p => return Err(corrupt(&format!("policy {p}"))),
                },
                issued_at: UnixTime(r.u64()?),
                expires_at: UnixTime(r.u64()?),
                request: r.request()?,
                labels: if tag == ISSUED_LABELLED { r.labels()? } else { Vec::new() },
            },
            RELEASED => {
                Record::Released { key_id, addresses: r.addresses()?, cert: CertId(r.array()?), at: UnixTime(r.u64()?) }
            }
            DESTROYED => Record::Destroyed {
                key_id,
                at: UnixTime(r.u64()?),
                expires_at: UnixTime(r.u64()?),
                reason: match r.u8()? {
                    0 => DestroyReason::AllReleased,
                    1 => DestroyReason::Expired,
                    x => return Err(corrupt(&format!("destruction reason {x}"))),
                },
                request: r.request()?,
            },
            PURGED => Record::Purged { key_id },
            t => return Err(corrupt(&format!("record tag {t}"))),
        };
        if !r.0.is_empty() {
            return Err(corrupt("bytes after the record"));
        }
        Ok(record)
    }
}

fn corrupt(why: &str) -> crate::error::Error {
    reject(Rejection::StorageFailed, format!("stored record: {why}"))
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }

    /// Addresses and counts fit a `u16`: an address is at most 320 bytes and a list at most
    /// `MAX_RECIPIENTS` (1000), both checked long before anything is recorded.
    fn len(&mut self, n: usize) {
        self.0.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
    }

    fn address(&mut self, a: &EmailAddress) {
        let text = a.to_string();
        self.len(text.len());
        self.bytes(text.as_bytes());
    }

    fn addresses(&mut self, list: &[EmailAddress]) {
        self.len(list.len());
        for a in list {
            self.address(a);
        }
    }

    fn request(&mut self, request: Option<&RequestRecord<Concrete>>) {
        match request {
            None => self.u8(0),
            Some(q) => {
                self.u8(1);
                self.address(&q.id.sender);
                self.bytes(q.id.nonce.as_bytes());
                self.u64(q.time.secs());
            }
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<usize> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn address(&mut self) -> Result<EmailAddress> {
        let n = self.u16()?;
        let text = core::str::from_utf8(self.take(n)?).map_err(|_| corrupt("an address is not UTF-8"))?;
        EmailAddress::parse(text).map_err(|e| corrupt(&format!("address: {}", e.detail())))
    }

    fn addresses(&mut self) -> Result<Vec<EmailAddress>> {
        let n = self.u16()?;
        (0..n).map(|_| self.address()).collect()
    }

    fn labels(&mut self) -> Result<Vec<AttributeValue>> {
        let n = self.u16()?;
        if n == 0 || n > crate::access::policy::MAX_LABELS {
            return Err(corrupt(&format!("{n} labels")));
        }
        (0..n)
            .map(|_| {
                let len = self.u16()?;
                let text = core::str::from_utf8(self.take(len)?).map_err(|_| corrupt("a label is not UTF-8"))?;
                AttributeValue::parse(text).map_err(|e| corrupt(&format!("label: {}", e.detail())))
            })
            .collect()
    }

    fn request(&mut self) -> Result<Option<RequestRecord<Concrete>>> {
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let sender = self.address()?;
                let nonce = Nonce(self.array()?);
                let time = UnixTime(self.u64()?);
                Ok(Some(RequestRecord { id: RequestId { sender, nonce }, time }))
            }
            f => Err(corrupt(&format!("request flag {f}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).expect("address")
    }

    fn samples() -> Vec<Record<Concrete>> {
        let request = Some(RequestRecord {
            id: RequestId { sender: a("alice@example.com"), nonce: Nonce([9; 16]) },
            time: UnixTime(1_000),
        });
        vec![
            Record::Issued {
                key_id: KeyId([1; 16]),
                handle: StoredKey { epoch: StorageEpoch::Legacy, wrapped: WrappedKey([2; 40]) },
                sender: a("alice@example.com"),
                recipients: vec![a("Bob@example.org"), a("carol@example.com")],
                policy: ReleasePolicy::SameCertificate,
                issued_at: UnixTime(1_001),
                expires_at: UnixTime(u64::MAX),
                request: request.clone(),
                labels: vec![],
            },
            Record::Issued {
                key_id: KeyId([5; 16]),
                handle: StoredKey { epoch: StorageEpoch::Legacy, wrapped: WrappedKey([2; 40]) },
                sender: a("alice@example.com"),
                recipients: vec![a("Bob@example.org")],
                policy: ReleasePolicy::Once,
                issued_at: UnixTime(1_001),
                expires_at: UnixTime(2_001),
                request: None,
                labels: vec![
                    AttributeValue::parse("https://example.com/attr/export/value/itar").expect("label"),
                    AttributeValue::parse("https://example.com/attr/classification/value/secret").expect("label"),
                ],
            },
            Record::Released {
                key_id: KeyId([1; 16]),
                addresses: vec![a("Bob@example.org")],
                cert: CertId([3; 32]),
                at: UnixTime(5),
            },
            Record::Destroyed {
                key_id: KeyId([1; 16]),
                at: UnixTime(6),
                expires_at: UnixTime(7),
                reason: DestroyReason::Expired,
                request,
            },
            Record::Destroyed {
                key_id: KeyId([4; 16]),
                at: UnixTime(6),
                expires_at: UnixTime(7),
                reason: DestroyReason::AllReleased,
                request: None,
            },
            Record::Purged { key_id: KeyId([1; 16]) },
            Record::Issued {
                key_id: KeyId([5; 16]),
                handle: StoredKey { epoch: StorageEpoch::Numbered(20_500), wrapped: WrappedKey([6; 40]) },
                sender: a("alice@example.com"),
                recipients: vec![a("bob@example.org")],
                policy: ReleasePolicy::Once,
                issued_at: UnixTime(1_771_200_000),
                expires_at: UnixTime(1_773_792_000),
                request: None,
                labels: vec![],
            },
            // Labelled, under a numbered epoch: version 2 with the labelled tag.
            Record::Issued {
                key_id: KeyId([7; 16]),
                handle: StoredKey { epoch: StorageEpoch::Numbered(20_501), wrapped: WrappedKey([8; 40]) },
                sender: a("alice@example.com"),
                recipients: vec![a("bob@example.org")],
                policy: ReleasePolicy::Once,
                issued_at: UnixTime(1_771_200_000),
                expires_at: UnixTime(1_773_792_000),
                request: None,
                labels: vec![AttributeValue::parse("https://example.com/attr/export/value/itar").expect("label")],
            },
        ]
    }

    #[test]
    fn a_record_without_an_epoch_keeps_the_version_1_bytes() {
        // The bytes a version 1 build wrote for a Purged and an Issued: read as they were,
        // an Issued under the legacy key, and written back the same.
        let purged = [&[1u8, 4][..], &[1; 16]].concat();
        assert_eq!(Record::decode(&purged).expect("decode"), Record::Purged { key_id: KeyId([1; 16]) });
        let issued = samples().remove(0).encode();
        assert_eq!(&issued[..2], &[1, 1]);
        assert_eq!(&issued[18..58], &[2; 40]);
        assert_eq!(issued.len(), 58 + 2 + 17 + 2 + 2 + 15 + 2 + 17 + 1 + 16 + 1 + 2 + 17 + 16 + 8);
    }

    #[test]
    fn an_issued_record_of_an_epoch_carries_it_in_version_2() {
        let mut samples = samples();
        let labelled = samples.pop().expect("sample").encode();
        assert_eq!(&labelled[..2], &[2, ISSUED_LABELLED]);
        assert_eq!(&labelled[58..66], &20_501u64.to_be_bytes());
        let Record::Issued { handle, labels, .. } = Record::decode(&labelled).expect("decode") else { panic!() };
        assert_eq!((handle.epoch, labels.len()), (StorageEpoch::Numbered(20_501), 1));
        let r = samples.pop().expect("sample");
        let bytes = r.encode();
        assert_eq!(&bytes[..2], &[2, 1]);
        assert_eq!(&bytes[58..66], &20_500u64.to_be_bytes());
        let Record::Issued { handle, .. } = Record::decode(&bytes).expect("decode") else { panic!() };
        assert_eq!(handle.epoch, StorageEpoch::Numbered(20_500));
        // Version 2 is Issued only.
        let purged = [&[2u8, 4][..], &[1; 16]].concat();
        assert!(Record::decode(&purged).is_err());
    }

    #[test]
    fn every_record_survives_its_durable_form() {
        for r in samples() {
            assert_eq!(Record::decode(&r.encode()).expect("decode"), r);
        }
    }

    #[test]
    fn an_unlabelled_issue_keeps_the_form_it_had_before_labels() {
        // Version 1, tag Issued, the fields, `req?` 0, and nothing after it: what a build
        // before labels wrote (and still reads).
        let Record::Issued { .. } = &samples()[0] else { panic!() };
        let mut before = vec![1, 1];
        before.extend_from_slice(&[1; 16]);
        before.extend_from_slice(&[2; 40]);
        let sender = "alice@example.com";
        before.extend_from_slice(&(sender.len() as u16).to_be_bytes());
        before.extend_from_slice(sender.as_bytes());
        before.extend_from_slice(&2u16.to_be_bytes());
        for text in ["Bob@example.org", "carol@example.com"] {
            before.extend_from_slice(&(text.len() as u16).to_be_bytes());
            before.extend_from_slice(text.as_bytes());
        }
        before.push(1);
        before.extend_from_slice(&1_001u64.to_be_bytes());
        before.extend_from_slice(&u64::MAX.to_be_bytes());
        before.push(1);
        before.extend_from_slice(&(sender.len() as u16).to_be_bytes());
        before.extend_from_slice(sender.as_bytes());
        before.extend_from_slice(&[9; 16]);
        before.extend_from_slice(&1_000u64.to_be_bytes());
        assert_eq!(samples()[0].encode(), before);
        let Record::Issued { labels, .. } = Record::decode(&before).expect("decode") else { panic!() };
        assert!(labels.is_empty());
    }

    #[test]
    fn a_labelled_issue_keeps_its_labels() {
        let r = &samples()[1];
        let Record::Issued { labels, .. } = Record::decode(&r.encode()).expect("decode") else { panic!() };
        assert_eq!(labels.len(), 2);
        assert_eq!(labels[1].as_str(), "https://example.com/attr/classification/value/secret");
        // An empty label list is not a second encoding of "unlabelled", and labels under the
        // unlabelled tag are bytes left over.
        let mut empty = samples()[0].encode();
        empty[1] = ISSUED_LABELLED;
        empty.extend_from_slice(&0u16.to_be_bytes());
        assert!(Record::decode(&empty).is_err());
        let mut untagged = r.encode();
        untagged[1] = ISSUED;
        assert!(Record::decode(&untagged).is_err());
    }

    #[test]
    fn a_local_part_keeps_its_case() {
        let r = &samples()[2];
        let Record::Released { addresses, .. } = Record::decode(&r.encode()).expect("decode") else { panic!() };
        assert_eq!(addresses[0].local_part(), "Bob");
    }

    #[test]
    fn truncated_extended_or_unknown_forms_are_refused() {
        for r in samples() {
            let bytes = r.encode();
            for cut in 0..bytes.len() {
                assert!(Record::decode(&bytes[..cut]).is_err(), "{r:?} cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Record::decode(&longer).is_err());
            let mut other = bytes.clone();
            other[0] = 3;
            assert!(Record::decode(&other).is_err(), "an unknown version");
            other[0] = bytes[0];
            other[1] = 9;
            assert!(Record::decode(&other).is_err(), "an unknown tag");
        }
    }
}
