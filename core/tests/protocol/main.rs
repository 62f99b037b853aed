//! The protocol end to end, one test per verification step of docs/protocol.md, each with
//! its positive case beside it.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

#[path = "../common/mod.rs"]
mod common;

mod client;
mod flow;
mod gatekeeper;
mod release;
mod request;
mod storage;

use common::*;
use der::asn1::{GeneralizedTime, Ia5String, OctetString};
use der::{DateTime, Encode};
use ekg_core::crypto::pki::{PathLimits, TrustAnchors};
use ekg_core::ledger::{KeyState, MemoryStore, ReleaseKind, ReleasePolicy};
use ekg_core::role::{Gatekeeper, Recipient};
use ekg_core::wire::signed;
use ekg_core::wire::{KeyRequest, oid};
use ekg_core::{Rejection, UnixTime};

fn sign_request(signer: &ekg_testpki::Issued, sender: &str, recipients: &[&str], time: UnixTime) -> Vec<u8> {
    let req = KeyRequest {
        version: 0,
        sender: Ia5String::new(sender).expect("ia5"),
        recipients: recipients.iter().map(|r| Ia5String::new(r).expect("ia5")).collect(),
        nonce: OctetString::new(vec![9; 16]).expect("nonce"),
        request_time: GeneralizedTime::from_date_time(
            DateTime::from_unix_duration(std::time::Duration::from_secs(time.0)).expect("time"),
        ),
        labels: None,
        expansion: None,
    };
    signed::sign(p(), &credential(signer), oid::CT_KEY_REQUEST, &req.to_der().expect("der"), time, &mut rng(1))
        .expect("sign")
}

fn issue_code(gk: &mut Gk, der: &[u8]) -> Option<&'static str> {
    code(gk.handle_key_request(der, NOW, &mut rng(2)))
}

fn flip_last(mut der: Vec<u8>) -> Vec<u8> {
    let n = der.len() - 1;
    der[n] ^= 1;
    der
}

fn flip_at(mut der: Vec<u8>, needle: &[u8]) -> Vec<u8> {
    let i = der.windows(needle.len()).position(|w| w == needle).expect("needle");
    der[i] ^= 1;
    der
}
