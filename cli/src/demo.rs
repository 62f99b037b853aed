//! `ekg demo`: one full flow, every artifact written to disk.

mod log;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use ekg_core::crypto::default_provider;
use ekg_core::crypto::pki::{Credential, PathLimits, TrustAnchors, provider_cert_id};
use ekg_core::ledger::{Concrete, MemoryStore, ReleasePolicy};
use ekg_core::role::{
    Gatekeeper, GatekeeperConfig, Gateway, GatewayPrincipal, Recipient, Sender, SenderRule, StorageKey,
};
use ekg_core::wire::dump;
use ekg_core::{EmailAddress, UnixTime};
use ekg_server::demo::write_org;
use ekg_server::files::write_secret;
use ekg_testpki::{Federation, Issued, pem};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

type DynError = Box<dyn std::error::Error>;

struct Out<'a> {
    dir: &'a Path,
    manifest: String,
}

impl Out<'_> {
    fn artifact(&mut self, name: &str, what: &str, der: &[u8]) -> Result<(), DynError> {
        fs::write(self.dir.join(format!("{name}.der")), der)?;
        fs::write(self.dir.join(format!("{name}.txt")), dump(der))?;
        writeln!(self.manifest, "{name}.der  {:>7} bytes  {what}", der.len())?;
        Ok(())
    }

    fn file(&mut self, name: &str, what: &str, bytes: &[u8]) -> Result<(), DynError> {
        fs::write(self.dir.join(name), bytes)?;
        writeln!(self.manifest, "{name}  {what}")?;
        Ok(())
    }
}

fn credential(i: &Issued) -> Result<Credential, DynError> {
    Ok(Credential::from_der(default_provider(), &i.cert_der, &i.chain_der, &i.key_pkcs8)?)
}

fn addr(s: &str) -> Result<EmailAddress, DynError> {
    Ok(EmailAddress::parse(s)?)
}

/// What `ekg demo` was asked.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed for the test PKI and every random choice of the flow.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Protocol time as Unix seconds (default: the system clock, so that `openssl cms
    /// -verify`, which checks certificates against the clock, agrees).
    #[arg(long)]
    pub now: Option<u64>,
}

/// Runs the demo flow into `args.out`.
pub fn run(args: &Args) -> Result<(), DynError> {
    let (dir, seed, now) = (args.out.as_path(), args.seed, args.now);
    let provider = default_provider();
    let now = match now {
        Some(n) => UnixTime(n),
        None => ekg_server::service::wall_clock(),
    };
    println!(
        "ekg demo: seed {seed}, now {now}; reproduce with: ekg demo --out {} --seed {seed} --now {}",
        dir.display(),
        now.0
    );
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    fs::create_dir_all(dir)?;
    let fed = Federation::generate(seed);
    let pki = dir.join("pki");
    fs::create_dir_all(&pki)?;
    write_org(&pki, &fed.sender_org)?;
    write_org(&pki, &fed.recipient_org)?;
    let anchors_pem: String = fed.anchors().iter().map(|c| pem("CERTIFICATE", c)).collect();
    fs::write(pki.join("anchors.pem"), &anchors_pem)?;
    let anchors = TrustAnchors::from_pem(provider, &anchors_pem, PathLimits::default())?;
    let mut out = Out { dir, manifest: String::new() };
    writeln!(out.manifest, "# ekg demo artifacts (seed {seed}, now {now})")?;
    writeln!(
        out.manifest,
        "# pki/: each organisation's CA, gatekeeper, gateway and users (cert + chain .pem, PKCS#8 .key); pki/anchors.pem"
    )?;
    writeln!(
        out.manifest,
        "# THESE ARE TEST KEYS: every key follows from the public seed {seed} (ekg-testpki), so anyone can \
         make them again. Never use them for real mail. Key files are written with mode 0600."
    )?;

    // The gatekeeper of example.com.
    let org = &fed.sender_org;
    let org_ca = provider_cert_id(provider, &org.ca.issued.cert_der);
    let mut config = GatekeeperConfig::new(org.gatekeeper_uri(), anchors.clone());
    config.senders = vec![SenderRule { domain: Some(org.domain.clone()), issuer: Some(org_ca) }];
    config.gateways = vec![GatewayPrincipal { address: addr(&format!("gateway@{}", org.domain))?, issuer: org_ca }];
    config.policy = ReleasePolicy::Once;
    let mut storage_key = [0u8; 32];
    rng.fill_bytes(&mut storage_key);
    // The issuance log of this flow (docs/protocol.md §10), kept beside the gatekeeper.
    // Its own RNG, so that the flow's artifacts stay what they were for a seed.
    let mut log_rng = ChaCha20Rng::seed_from_u64(seed ^ 0x6973_7375_616e_6365);
    let mut salt = [0u8; 32];
    log_rng.fill_bytes(&mut salt);
    let mut log = log::DemoLog::new(salt);
    let gatekeeper_credential = credential(&org.gatekeeper)?;
    let mut gk: Gatekeeper<MemoryStore<Concrete>> = Gatekeeper::new(
        provider,
        config,
        credential(&org.gatekeeper)?,
        StorageKey::from_bytes(storage_key),
        MemoryStore::new(),
    )?;

    // 1. Alice asks for a key for bob (example.org) and carol (example.com).
    let alice =
        Sender::new(provider, credential(org.user("alice@example.com"))?, anchors.clone(), org.gatekeeper_uri())?;
    let recipients = [addr("bob@example.org")?, addr("carol@example.com")?];
    let pending = alice.request_key(&recipients, now, &mut rng)?;
    out.artifact("01-key-request", "SignedData(alice) { KeyRequest }", &pending.der)?;

    // 2. The gatekeeper issues: grant and ticket.
    let issuance = gk.handle_key_request(&pending.der, now, &mut rng)?;
    out.artifact(
        "02-ticket",
        "SignedData(gatekeeper) { TicketInfo { ..., SignedData(alice) { KeyRequest } } }",
        &issuance.ticket,
    )?;
    out.artifact("03-grant", "AuthEnvelopedData(KTRI RSA-OAEP -> alice) { KeyDelivery }", &issuance.grant)?;
    out.file("key-id.hex", "the one-time key's id (KEKIdentifier)", issuance.key_id.to_string().as_bytes())?;
    log.issue(now, &issuance.ticket)?;
    log.sign_head(now, &gatekeeper_credential, &mut log_rng)?;

    // 3. Alice opens the grant and seals the message once.
    let send_key = alice.accept_grant(&pending, &issuance.grant, &issuance.ticket, now, &mut rng)?;
    let message = b"From: alice@example.com\r\nTo: bob@example.org, carol@example.com\r\nSubject: late key binding\r\n\r\nOne ciphertext for every recipient.\r\n";
    out.file("message.txt", "the plaintext sealed below", message)?;
    let sealed = alice.seal(&send_key, message, &mut rng)?;
    out.artifact(
        "04-sealed-message",
        "AuthEnvelopedData(KEKRI key id) { message }, ticket digest authenticated, ticket attached",
        &sealed,
    )?;
    out.file(
        "04-sealed-message.eml",
        "the same as an RFC 8551 S/MIME message (docs/protocol.md section 9)",
        &crate::mail::wrap(message, &sealed)?,
    )?;
    // The one-time key itself, so that `openssl cms -decrypt -secretkey` needs no digging.
    // A test key: it follows from the public seed like every key here.
    write_secret(&dir.join("one-time-key.hex"), hex::encode(send_key.key.expose()).as_bytes())?;
    writeln!(out.manifest, "one-time-key.hex  the message's one-time key (TEST KEY, from the seed; 0600)")?;

    // 4. The sender organisation's gateway fetches the key to inspect outbound mail.
    let gateway = Gateway::new(provider, credential(&org.gateway)?, anchors.clone());
    let outbound = gateway.receive(&sealed, now)?;
    let fetch = gateway.request_key(&outbound, now, &mut rng)?;
    out.artifact("05-gateway-request", "SignedData(gateway) { ReleaseRequest { ticket } }", &fetch.der)?;
    let gw_release = gk.handle_release_request(&fetch.der, now, &mut rng)?;
    out.artifact(
        "06-gateway-release",
        "AuthEnvelopedData(-> gateway) { SignedData(gatekeeper) { KeyDelivery } }",
        &gw_release.der,
    )?;
    log.release(now, &issuance.ticket, &addr(&format!("gateway@{}", org.domain))?)?;
    let gw_key = gateway.accept_key(&outbound, &fetch, &gw_release.der, now, &mut rng)?;
    let inspected = gateway.open(&outbound, &gw_key)?;
    println!("gateway of {} read the outbound message ({} bytes, {:?})", org.domain, inspected.len(), gw_release.kind);

    // 5. Each recipient countersigns the ticket and gets the key, once.
    let mut step = 7;
    for (who, address, issued) in [
        ("bob", "bob@example.org", fed.recipient_org.user("bob@example.org")),
        ("carol", "carol@example.com", org.user("carol@example.com")),
    ] {
        let r = Recipient::new(provider, credential(issued)?, anchors.clone());
        let msg = r.receive(&sealed, now)?;
        let req = r.request_release(&msg, now, &mut rng)?;
        out.artifact(
            &format!("{step:02}-release-request-{who}"),
            &format!("SignedData({who}) {{ ReleaseRequest {{ ticket }} }}"),
            &req.der,
        )?;
        let release = gk.handle_release_request(&req.der, now, &mut rng)?;
        out.artifact(
            &format!("{:02}-release-{who}", step + 1),
            &format!("AuthEnvelopedData(-> {who}) {{ SignedData(gatekeeper) {{ KeyDelivery }} }}"),
            &release.der,
        )?;
        log.release(now, &issuance.ticket, &addr(address)?)?;
        let key = r.accept_release(&msg, &req, &release.der, now, &mut rng)?;
        let plain = r.open(&msg, &key)?;
        if plain.as_slice() != message {
            return Err("recipient decrypted something else".into());
        }
        println!("{who} released ({:?}) and read the message", release.kind);
        // A second request is refused: once only.
        let again = r.request_release(&msg, now, &mut rng)?;
        match gk.handle_release_request(&again.der, now, &mut rng) {
            Err(e) => println!("{who} asking again: refused with {}", e.code()),
            Ok(_) => return Err("a second release was made".into()),
        }
        step += 2;
    }
    println!("keys still held by the gatekeeper: {}", gk.held_keys().map_err(|e| e.to_string())?);
    log.sign_head(now, &gatekeeper_credential, &mut log_rng)?;
    for name in log.write(&dir.join("log"))? {
        writeln!(out.manifest, "log/{name}  the issuance log of this flow (docs/protocol.md section 10)")?;
    }
    out.file("OPENSSL.sh", "every artifact opened with openssl alone: sh OPENSSL.sh", OPENSSL_SH.as_bytes())?;
    fs::write(dir.join("MANIFEST.txt"), &out.manifest)?;
    println!("wrote {} (see MANIFEST.txt)", dir.display());
    Ok(())
}

/// The commands that open every artifact with `openssl` alone (run in the demo's directory).
const OPENSSL_SH: &str = r#"#!/bin/sh
# Every artifact of `ekg demo` opened with openssl alone; run it here: sh OPENSSL.sh
# Needs OpenSSL 3 with openssl/openssl#31695 (3.0.22 or later on the 3.0 branch; Debian 12
# has it in bookworm-security: apt-get install openssl): earlier releases mis-tag
# AuthEnvelopedData's authAttrs/unauthAttrs (openssl/openssl#26101) and cannot open the grant,
# the sealed message or the releases (RFC 5083).
set -eu
need=3.0.22
found=$(openssl version 2>/dev/null || echo "no openssl")
have=$(echo "$found" | awk '$1 == "OpenSSL" { print $2 }')
older=$(echo "$have" | awk -F. '{ split($3, p, /[^0-9]/); print ($1 == "" || $1 < 3 || ($1 == 3 && $2 == 0 && p[1] + 0 < 22)) ? "yes" : "no" }')
if [ -z "$have" ] || [ "$older" = yes ]; then
  echo "OPENSSL.sh: needs OpenSSL >= $need (found: $found)." >&2
  echo "  Older releases cannot parse AuthEnvelopedData (RFC 5083; openssl/openssl#26101, fixed by #31695)." >&2
  echo "  Debian 12: apt-get update && apt-get install openssl (3.0.22 from bookworm-security)." >&2
  exit 1
fi
aead() {
  echo "OPENSSL.sh: OpenSSL $have could not open an AuthEnvelopedData (RFC 5083): it needs openssl/openssl#31695" >&2
  echo "  (3.0.22 on the 3.0 branch; other branches: a release made after that fix)." >&2
  exit 1
}
v() { openssl cms -verify -inform DER -in "$1" -CAfile pki/anchors.pem -binary -out "$2"; }
d() { openssl cms -decrypt -inform DER -in "$1" -recip "pki/$2.pem" -inkey "pki/$2.key" -binary -out "$3" || aead; }
# 1. alice's key request, and 2. the gatekeeper's ticket: signatures and content.
v 01-key-request.der 01-key-request.content
v 02-ticket.der 02-ticket.content
# 3. The grant opens with alice's key: a KeyDelivery { keyId, key, requestDigest, deliveredTo }.
d 03-grant.der example.com/alice 03-grant.content
# 4. The sealed message opens with the one-time key, as DER and as an S/MIME .eml.
openssl cms -decrypt -inform DER -in 04-sealed-message.der -secretkey "$(cat one-time-key.hex)" \
  -secretkeyid "$(cat key-id.hex)" -binary -out 04-message.txt || aead
openssl cms -decrypt -inform SMIME -in 04-sealed-message.eml -secretkey "$(cat one-time-key.hex)" \
  -secretkeyid "$(cat key-id.hex)" -binary -out 04-message-from-eml.txt || aead
cmp 04-message.txt message.txt
cmp 04-message-from-eml.txt message.txt
# 5. to 10. Each release request is signed by its requester; each release opens with the
# requester's key and holds a KeyDelivery signed by the gatekeeper.
for r in 05-gateway-request 07-release-request-bob 09-release-request-carol; do v "$r.der" "$r.content"; done
d 06-gateway-release.der example.com/gateway 06-gateway-release.signed
d 08-release-bob.der example.org/bob 08-release-bob.signed
d 10-release-carol.der example.com/carol 10-release-carol.signed
for r in 06-gateway-release 08-release-bob 10-release-carol; do v "$r.signed" "$r.content"; done
# The issuance log's signed tree heads: SignedData of the gatekeeper { TreeHead }.
for h in log/head-*.der; do v "$h" "$h.content"; done
echo "OPENSSL.sh: every artifact verified or opened"
"#;
