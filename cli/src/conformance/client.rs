//! `ekg conformance client`: a client implementation driven through its shim
//! (`docs/conformance.md` §3). Production cases (`produce/...`): what the shim makes is
//! consumed by the reference (its key and release requests go to the reference gatekeeper, its
//! sealed messages to the reference recipient). Consumption cases (`consume/open`, and every
//! vector of `client_test.json` as `client/N`): what the reference makes is handed to the shim.

use ekg_core::crypto::CryptoProvider;
use ekg_core::role::{Recipient, Sender, Ticket, decode_issuance_response};
use ekg_core::wire;
use ekg_core::wire::sealed::SealedMessage;
use ekg_core::{EmailAddress, OneTimeKey, UnixTime};
use ekg_fixtures::target::{InProcess, Loaded, Target};
use ekg_fixtures::{NOW, Pki};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use serde_json::Value;

use super::driver::{Driver, Shim};
use super::report::{Case, Verdict};

fn p() -> &'static dyn CryptoProvider {
    ekg_fixtures::provider()
}

/// A case's outcome before expectations: pass, fail (what happened), or skip (why).
enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

fn outcome(r: Result<Outcome, String>) -> Outcome {
    r.unwrap_or_else(|e| Outcome::Fail(format!("runner error: {e}")))
}

/// The reference gatekeeper (the default configuration of the vectors, `policy`) in process.
fn gatekeeper<'p>(pki: &'p Pki, policy: &str) -> Result<InProcess<'p>, String> {
    let mut gk = InProcess::new(pki, 21);
    match gk.load(&ekg_fixtures::target::state(&ekg_fixtures::default_config(policy), None, NOW, None)) {
        Ok(Loaded::Ready) => Ok(gk),
        other => Err(format!("the reference gatekeeper did not start: {other:?}")),
    }
}

fn uri(pki: &Pki) -> Result<String, String> {
    let c = pki.credential(p(), "ekg@example.com").map_err(|e| e.to_string())?;
    c.uris().into_iter().next().ok_or_else(|| "the gatekeeper certificate names no URI".into())
}

fn addrs(list: &[&str]) -> Result<Vec<EmailAddress>, String> {
    list.iter().map(|a| EmailAddress::parse(a).map_err(|e| e.code().to_owned())).collect()
}

/// A message sealed by the reference: alice for `to`, with the grant answering her request.
struct Sealed {
    sealed: Vec<u8>,
    message: Vec<u8>,
}

const MESSAGE: &[u8] = b"Subject: conformance\r\n\r\nhello from the runner\r\n";

fn reference_seal(pki: &Pki, gk: &mut InProcess<'_>, to: &[&str]) -> Result<Sealed, String> {
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let sender = Sender::new(
        p(),
        pki.credential(p(), "alice@example.com").map_err(|e| e.to_string())?,
        anchors(pki)?,
        uri(pki)?,
    )
    .map_err(|e| e.code().to_owned())?;
    let pending = sender.request_key(&addrs(to)?, NOW, &mut rng).map_err(|e| e.code().to_owned())?;
    let answer = gk.key_request(&pending.der).map_err(|e| e.to_string())?.map_err(|r| r.code)?;
    let (grant, ticket) = decode_issuance_response(&answer.body).map_err(|e| e.code().to_owned())?;
    let key = sender.accept_grant(&pending, &grant, &ticket, NOW, &mut rng).map_err(|e| e.code().to_owned())?;
    let sealed = sender.seal(&key, MESSAGE, &mut rng).map_err(|e| e.code().to_owned())?;
    Ok(Sealed { sealed, message: MESSAGE.to_vec() })
}

fn anchors(pki: &Pki) -> Result<ekg_core::crypto::pki::TrustAnchors, String> {
    pki.anchors(p(), 4).map_err(|e| e.to_string())
}

/// The reference recipient `who` opens `sealed` through the reference gatekeeper.
fn reference_open(
    pki: &Pki,
    gk: &mut InProcess<'_>,
    who: &str,
    sealed: &[u8],
) -> Result<Result<Vec<u8>, String>, String> {
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    let r = Recipient::new(p(), pki.credential(p(), who).map_err(|e| e.to_string())?, anchors(pki)?);
    let m = match r.receive(sealed, NOW) {
        Ok(m) => m,
        Err(e) => return Ok(Err(e.code().to_owned())),
    };
    let pending = r.request_release(&m, NOW, &mut rng).map_err(|e| e.code().to_owned())?;
    let release = match gk.release_request(&pending.der).map_err(|e| e.to_string())? {
        Ok(a) => a.body,
        Err(r) => return Ok(Err(format!("the reference gatekeeper refused its release: {}", r.code))),
    };
    Ok(r.accept_release(&m, &pending, &release, NOW, &mut rng)
        .and_then(|key| r.open(&m, &key).map(|p| p.to_vec()))
        .map_err(|e| e.code().to_owned()))
}

impl Driver<'_> {
    /// `who` asks for a key for `to` through the shim; the reference gatekeeper must answer it,
    /// and the ticket must list `to`.
    fn key_request(&mut self, pki: &Pki, who: &str, to: &[&str]) -> Result<Outcome, String> {
        let mut args = vec!["--gatekeeper-uri".to_owned(), uri(pki)?];
        for a in to {
            args.extend(["--to".to_owned(), (*a).to_owned()]);
        }
        let der = match self.call("key-request", who, NOW, &args)? {
            Shim::Done(d) => d,
            Shim::Refused(c) => return Ok(Outcome::Fail(format!("the shim refused: {c}"))),
            Shim::Unimplemented(r) => return Ok(Outcome::Skip(r)),
        };
        let mut gk = gatekeeper(pki, "once")?;
        let answer = match gk.key_request(&der).map_err(|e| e.to_string())? {
            Ok(a) => a,
            Err(r) => return Ok(Outcome::Fail(format!("the reference gatekeeper refused it: {}", r.code))),
        };
        let (_, ticket) = decode_issuance_response(&answer.body).map_err(|e| e.code().to_owned())?;
        let ticket = Ticket::open(p(), &ticket).map_err(|e| e.code().to_owned())?;
        let mut listed: Vec<String> = ticket.request.recipients.iter().map(ToString::to_string).collect();
        let mut want: Vec<String> = to.iter().map(|a| (*a).to_owned()).collect();
        listed.sort();
        want.sort();
        Ok(if listed == want { Outcome::Pass } else { Outcome::Fail(format!("the ticket lists {listed:?}")) })
    }

    /// The shim seals for bob under a key the reference gatekeeper issued for the shim's own
    /// request; the reference recipient bob must open it.
    fn seal(&mut self, pki: &Pki) -> Result<Outcome, String> {
        let uri = uri(pki)?;
        let args = vec!["--gatekeeper-uri".to_owned(), uri.clone(), "--to".into(), "bob@example.org".into()];
        let request = match self.call("key-request", "alice@example.com", NOW, &args)? {
            Shim::Done(d) => d,
            Shim::Refused(c) => return Ok(Outcome::Fail(format!("the shim refused its key request: {c}"))),
            Shim::Unimplemented(r) => return Ok(Outcome::Skip(r)),
        };
        let mut gk = gatekeeper(pki, "once")?;
        let answer = match gk.key_request(&request).map_err(|e| e.to_string())? {
            Ok(a) => a,
            Err(r) => {
                return Ok(Outcome::Fail(format!("the reference gatekeeper refused its key request: {}", r.code)));
            }
        };
        let (grant, ticket) = decode_issuance_response(&answer.body).map_err(|e| e.code().to_owned())?;
        let files = [
            ("--request", self.file("request.der", &request)?),
            ("--grant", self.file("grant.der", &grant)?),
            ("--ticket", self.file("ticket.der", &ticket)?),
            ("--message", self.file("message.eml", MESSAGE)?),
        ];
        let mut args = vec!["--gatekeeper-uri".to_owned(), uri];
        for (flag, path) in files {
            args.extend([flag.to_owned(), path.display().to_string()]);
        }
        let sealed = match self.call("seal", "alice@example.com", NOW, &args)? {
            Shim::Done(d) => d,
            Shim::Refused(c) => return Ok(Outcome::Fail(format!("the shim refused the grant: {c}"))),
            Shim::Unimplemented(r) => return Ok(Outcome::Skip(r)),
        };
        Ok(match reference_open(pki, &mut gk, "bob@example.org", &sealed)? {
            Ok(plain) if plain == MESSAGE => Outcome::Pass,
            Ok(_) => Outcome::Fail("bob opened another message".into()),
            Err(code) => Outcome::Fail(format!("the reference recipient refused it: {code}")),
        })
    }

    /// The shim, as `who`, asks for the key of a message the reference sealed; the reference
    /// gatekeeper must release it (to a gateway, as a gateway release).
    fn release_request(&mut self, pki: &Pki, who: &str, gateway: bool) -> Result<Outcome, String> {
        let mut gk = gatekeeper(pki, "once")?;
        let s = reference_seal(pki, &mut gk, &["bob@example.org"])?;
        let mut args = vec!["--sealed".to_owned(), self.file("sealed.der", &s.sealed)?.display().to_string()];
        if gateway {
            args.push("--gateway".into());
        }
        let der = match self.call("release-request", who, NOW, &args)? {
            Shim::Done(d) => d,
            Shim::Refused(c) => return Ok(Outcome::Fail(format!("the shim refused the message: {c}"))),
            Shim::Unimplemented(r) => return Ok(Outcome::Skip(r)),
        };
        let want = if gateway { "gateway" } else { "first" };
        Ok(match gk.release_request(&der).map_err(|e| e.to_string())? {
            Ok(a) if a.kind == Some(want) => Outcome::Pass,
            Ok(a) => Outcome::Fail(format!("released as {:?}, not {want}", a.kind)),
            Err(r) => Outcome::Fail(format!("the reference gatekeeper refused it: {}", r.code)),
        })
    }

    /// The reference seals for bob and releases to the reference bob's request; the shim, as
    /// bob, must open the message with that release.
    fn open(&mut self, pki: &Pki) -> Result<Outcome, String> {
        let mut gk = gatekeeper(pki, "once")?;
        let s = reference_seal(pki, &mut gk, &["bob@example.org"])?;
        let mut rng = ChaCha20Rng::seed_from_u64(51);
        let bob =
            Recipient::new(p(), pki.credential(p(), "bob@example.org").map_err(|e| e.to_string())?, anchors(pki)?);
        let m = bob.receive(&s.sealed, NOW).map_err(|e| e.code().to_owned())?;
        let pending = bob.request_release(&m, NOW, &mut rng).map_err(|e| e.code().to_owned())?;
        let release = gk.release_request(&pending.der).map_err(|e| e.to_string())?.map_err(|r| r.code)?;
        let args = vec![
            "--sealed".to_owned(),
            self.file("sealed.der", &s.sealed)?.display().to_string(),
            "--release-request".into(),
            self.file("release-request.der", &pending.der)?.display().to_string(),
            "--release".into(),
            self.file("release.der", &release.body)?.display().to_string(),
        ];
        Ok(match self.call("open", "bob@example.org", NOW, &args)? {
            Shim::Done(plain) if plain == s.message => Outcome::Pass,
            Shim::Done(_) => Outcome::Fail("the shim opened another message".into()),
            Shim::Refused(c) => Outcome::Fail(format!("the shim refused: {c}")),
            Shim::Unimplemented(r) => Outcome::Skip(r),
        })
    }

    /// One vector of `client_test.json` through the shim.
    fn vector(&mut self, group: &Value, test: &Value) -> Result<Outcome, String> {
        let s = |k: &str| test.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let hexf = |k: &str| hex::decode(s(k)).map_err(|e| format!("{k}: {e}"));
        let now = UnixTime::from_rfc3339(&s("now")).ok_or("now")?;
        let party = s("party");
        let check = group.get("check").and_then(Value::as_str).unwrap_or_default();
        let (command, args, want_plain) = match check {
            "grant" => {
                let args = vec![
                    "--gatekeeper-uri".to_owned(),
                    s("gatekeeperUri"),
                    "--request".into(),
                    self.file("request.der", &hexf("request")?)?.display().to_string(),
                    "--grant".into(),
                    self.file("grant.der", &hexf("grant")?)?.display().to_string(),
                    "--ticket".into(),
                    self.file("ticket.der", &hexf("ticket")?)?.display().to_string(),
                    "--message".into(),
                    self.file("message.eml", MESSAGE)?.display().to_string(),
                ];
                ("seal", args, None)
            }
            "receive" => {
                let args = vec![
                    "--sealed".to_owned(),
                    self.file("sealed.der", &hexf("sealed")?)?.display().to_string(),
                    "--key-hex".into(),
                    s("key"),
                ];
                let want = test.pointer("/expected/plaintext").and_then(Value::as_str).map(hex::decode);
                ("decrypt", args, want.transpose().map_err(|e| e.to_string())?)
            }
            "release" => {
                let sealed = hexf("sealed")?;
                let args = vec![
                    "--sealed".to_owned(),
                    self.file("sealed.der", &sealed)?.display().to_string(),
                    "--release-request".into(),
                    self.file("release-request.der", &hexf("releaseRequest")?)?.display().to_string(),
                    "--release".into(),
                    self.file("release.der", &hexf("release")?)?.display().to_string(),
                ];
                // The plaintext the expected key opens (the vector gives the key).
                let key = test.pointer("/expected/key").and_then(Value::as_str).map(hex::decode);
                let want = match key.transpose().map_err(|e| e.to_string())? {
                    Some(k) => Some(open_with(&sealed, &k)?),
                    None => None,
                };
                ("open", args, want)
            }
            other => return Err(format!("check {other}")),
        };
        let expected = test.get("result").and_then(Value::as_str).unwrap_or("");
        let code = test.get("code").and_then(Value::as_str);
        Ok(match self.call(command, &party, now, &args)? {
            Shim::Unimplemented(r) => Outcome::Skip(r),
            Shim::Refused(got) => {
                if expected == "invalid" && code.is_none_or(|c| c == got) {
                    Outcome::Pass
                } else {
                    Outcome::Fail(format!("invalid {got}"))
                }
            }
            Shim::Done(out) => {
                if expected != "valid" {
                    Outcome::Fail("valid".into())
                } else if check == "grant" {
                    // The sealed message must open under the vector's key.
                    let key = test.pointer("/expected/key").and_then(Value::as_str).unwrap_or_default();
                    match open_with(&out, &hex::decode(key).map_err(|e| e.to_string())?) {
                        Ok(p) if p == MESSAGE => Outcome::Pass,
                        Ok(_) => Outcome::Fail("sealed another message".into()),
                        Err(e) => Outcome::Fail(format!("the sealed message does not open under the key: {e}")),
                    }
                } else if want_plain.as_deref() == Some(out.as_slice()) {
                    Outcome::Pass
                } else {
                    Outcome::Fail("another plaintext".into())
                }
            }
        })
    }
}

fn open_with(sealed: &[u8], key: &[u8]) -> Result<Vec<u8>, String> {
    let raw: [u8; 32] = key.try_into().map_err(|_| "a 32-byte key")?;
    let m = SealedMessage::parse(p(), sealed, wire::limits::MAX_ENVELOPE_LEN).map_err(|e| e.code().to_owned())?;
    m.open(p(), &OneTimeKey::from_bytes(raw)).map(|p| p.to_vec()).map_err(|e| e.code().to_owned())
}

/// Every case of client mode, in order: `(id, family, flags, comment, expected, outcome)`.
pub fn run(pki: &Pki, driver: &mut Driver<'_>, selected: &dyn Fn(&str, &str, &[String]) -> bool) -> Vec<Case> {
    type Job<'j> = Box<dyn FnOnce(&mut Driver<'_>) -> Result<Outcome, String> + 'j>;
    let produce: Vec<(&str, &[&str], &str, Job<'_>)> = vec![
        (
            "produce/key_request",
            &["KeyRequest"],
            "alice's key request for bob is answered",
            Box::new(|d: &mut Driver<'_>| d.key_request(pki, "alice@example.com", &["bob@example.org"])),
        ),
        (
            "produce/key_request_three",
            &["KeyRequest", "RecipientList"],
            "a key request for three recipients, given out of order, is answered and the ticket lists them",
            Box::new(|d: &mut Driver<'_>| {
                d.key_request(pki, "alice@example.com", &["dave@example.org", "bob@example.org", "carol@example.com"])
            }),
        ),
        (
            "produce/key_request_intermediate",
            &["KeyRequest", "Path", "SetOrder"],
            "a sender under one intermediate CA: its certificates in DER SET OF order",
            Box::new(|d: &mut Driver<'_>| d.key_request(pki, "via_intermediate", &["bob@example.org"])),
        ),
        (
            "produce/key_request_two_intermediates",
            &["KeyRequest", "Path", "SetOrder"],
            "a sender under two intermediate CAs: its certificates in DER SET OF order",
            Box::new(|d: &mut Driver<'_>| d.key_request(pki, "via_two_intermediates", &["bob@example.org"])),
        ),
        (
            "produce/seal",
            &["Seal"],
            "the shim seals under the granted key; the reference recipient opens it",
            Box::new(|d: &mut Driver<'_>| d.seal(pki)),
        ),
        (
            "produce/release_request",
            &["ReleaseRequest"],
            "bob's release request for a message sealed by the reference is answered",
            Box::new(|d: &mut Driver<'_>| d.release_request(pki, "bob@example.org", false)),
        ),
        (
            "produce/release_request_gateway",
            &["ReleaseRequest", "Gateway"],
            "the sender organisation's gateway fetches the key",
            Box::new(|d: &mut Driver<'_>| d.release_request(pki, "gateway@example.com", true)),
        ),
        (
            "consume/open",
            &["Open"],
            "bob opens a message with the reference gatekeeper's release",
            Box::new(|d: &mut Driver<'_>| d.open(pki)),
        ),
    ];
    let mut cases = Vec::new();
    for (id, flags, comment, job) in produce {
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let family = id.split('/').next().unwrap_or("");
        if !selected(id, family, &flags) {
            continue;
        }
        cases.push(case(id, "", 0, family, flags, comment, "valid", outcome(job(driver))));
    }
    cases
}

/// The vectors of `client_test.json` through the shim, as `client/N`.
pub fn run_vectors(
    doc: &Value,
    driver: &mut Driver<'_>,
    selected: &dyn Fn(&str, &str, &[String]) -> bool,
) -> Vec<Case> {
    let mut cases = Vec::new();
    for (group, test) in ekg_fixtures::tests_of(doc) {
        let tc_id = test.get("tcId").and_then(Value::as_u64).unwrap_or(0);
        let id = format!("client/{tc_id}");
        let flags = super::flags_of(test);
        if !selected(&id, "client", &flags) {
            continue;
        }
        let comment = test.get("comment").and_then(Value::as_str).unwrap_or("").to_owned();
        let r = outcome(driver.vector(group, test));
        cases.push(case(
            &id,
            "client_test.json",
            tc_id,
            "client",
            flags,
            &comment,
            &ekg_fixtures::expected_of(test),
            r,
        ));
    }
    cases
}

#[allow(clippy::too_many_arguments)]
fn case(
    id: &str,
    file: &str,
    tc_id: u64,
    family: &str,
    flags: Vec<String>,
    comment: &str,
    expected: &str,
    o: Outcome,
) -> Case {
    let (verdict, got, reason) = match o {
        Outcome::Pass => (Verdict::Pass, expected.to_owned(), String::new()),
        Outcome::Fail(g) => (Verdict::Fail, g, String::new()),
        Outcome::Skip(r) => (Verdict::Skip, "not run".to_owned(), r),
    };
    Case {
        id: id.to_owned(),
        file: file.to_owned(),
        tc_id,
        family: family.to_owned(),
        flags,
        expected: expected.to_owned(),
        got,
        verdict,
        reason,
        comment: comment.to_owned(),
    }
}
