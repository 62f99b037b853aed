//! `ekg conformance shim`: the reference client behind the shim protocol of
//! `docs/conformance.md` §3, so that `ekg conformance client` can test it like any other
//! implementation. Stateless: every input is a file, the output goes to `--out`. Exit 0: done;
//! 1: refused, the rejection code on the first line of standard output; 89: not implemented.
//!
//! `EKG_SHIM_FAULT` plants a defect, to show that the runner catches it: `path_order` carries
//! the certificates of a key request in path order (leaf first) instead of DER order;
//! `no_ticket_digest` leaves the authenticated ticket digest out of a sealed message.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ekg_core::crypto::pki::{Credential, PathLimits, TrustAnchors};
use ekg_core::crypto::{AwsLc, CryptoProvider};
use ekg_core::role::{Gateway, KeyRequestContent, PendingKeyRequest, PendingRelease, Recipient, Sender};
use ekg_core::wire::signed;
use ekg_core::wire::{self, oid};
use ekg_core::{EmailAddress, OneTimeKey, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Exit code of a refusal.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code of "not implemented" (BoGo's).
pub const EXIT_UNIMPLEMENTED: u8 = 89;
/// Most bytes of a shim input file.
pub const MAX_INPUT_LEN: u64 = 16 * 1024 * 1024;

/// The flags every command takes.
#[derive(clap::Args, Debug)]
pub struct Party {
    /// The party's certificate (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// Its PKCS#8 key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Intermediate certificates (PEM), if any.
    #[arg(long)]
    pub chain: Option<PathBuf>,
    /// A trust anchor (PEM; repeat).
    #[arg(long)]
    pub anchor: Vec<PathBuf>,
    /// Protocol time (RFC 3339).
    #[arg(long)]
    pub now: String,
    /// Where the output goes.
    #[arg(long)]
    pub out: PathBuf,
}

/// The shim's commands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Sign a key request for `--to` addresses to the gatekeeper `--gatekeeper-uri`.
    KeyRequest {
        #[command(flatten)]
        party: Party,
        /// The gatekeeper's URI.
        #[arg(long)]
        gatekeeper_uri: String,
        /// A recipient address (repeat).
        #[arg(long)]
        to: Vec<String>,
    },
    /// Accept the grant and ticket answering `--request`, seal `--message` under the key.
    Seal {
        #[command(flatten)]
        party: Party,
        /// The gatekeeper's URI.
        #[arg(long)]
        gatekeeper_uri: String,
        /// The key request this sender made (DER).
        #[arg(long)]
        request: PathBuf,
        /// The grant (DER).
        #[arg(long)]
        grant: PathBuf,
        /// The ticket (DER).
        #[arg(long)]
        ticket: PathBuf,
        /// The message to seal.
        #[arg(long)]
        message: PathBuf,
    },
    /// Check a sealed message and sign a release request for its key.
    ReleaseRequest {
        #[command(flatten)]
        party: Party,
        /// The sealed message (DER).
        #[arg(long)]
        sealed: PathBuf,
        /// As the sender organisation's gateway.
        #[arg(long)]
        gateway: bool,
    },
    /// Check the release answering `--release-request` and open the sealed message.
    Open {
        #[command(flatten)]
        party: Party,
        /// The sealed message (DER).
        #[arg(long)]
        sealed: PathBuf,
        /// The release request this party made (DER).
        #[arg(long)]
        release_request: PathBuf,
        /// The gatekeeper's release (DER).
        #[arg(long)]
        release: PathBuf,
        /// As the sender organisation's gateway.
        #[arg(long)]
        gateway: bool,
    },
    /// Check a sealed message and open it with a key given in hex (the vectors that give it).
    Decrypt {
        #[command(flatten)]
        party: Party,
        /// The sealed message (DER).
        #[arg(long)]
        sealed: PathBuf,
        /// The one-time key, 64 hex digits.
        #[arg(long)]
        key_hex: String,
    },
}

/// Why the shim stopped.
enum Stop {
    Refused(ekg_core::Error),
    Usage(String),
}

impl From<ekg_core::Error> for Stop {
    fn from(e: ekg_core::Error) -> Self {
        Stop::Refused(e)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Stop> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Stop::Usage(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    f.take(MAX_INPUT_LEN + 1).read_to_end(&mut out).map_err(|e| Stop::Usage(format!("{}: {e}", path.display())))?;
    if out.len() as u64 > MAX_INPUT_LEN {
        return Err(Stop::Usage(format!("{}: larger than {MAX_INPUT_LEN} bytes", path.display())));
    }
    Ok(out)
}

fn text(path: &Path) -> Result<String, Stop> {
    String::from_utf8(read(path)?).map_err(|_| Stop::Usage(format!("{}: not UTF-8", path.display())))
}

fn provider() -> &'static dyn CryptoProvider {
    &AwsLc
}

struct Loaded {
    credential: Credential,
    anchors: TrustAnchors,
    now: UnixTime,
    out: PathBuf,
    chain_ders: Vec<Vec<u8>>,
}

fn load(p: &Party) -> Result<Loaded, Stop> {
    let chain = p.chain.as_deref().map(text).transpose()?.unwrap_or_default();
    let cert = text(&p.cert)?;
    let credential = Credential::from_pem(provider(), &cert, &chain, &text(&p.key)?)?;
    let anchor_pem: String = p.anchor.iter().map(|a| text(a)).collect::<Result<Vec<_>, _>>()?.concat();
    let anchors = TrustAnchors::from_pem(provider(), &anchor_pem, PathLimits { max_path_len: 4 })?;
    let now = UnixTime::from_rfc3339(&p.now).ok_or_else(|| Stop::Usage(format!("--now {}: not RFC 3339", p.now)))?;
    let mut all = Vec::new();
    for pem in [&cert, &chain] {
        let mut rest = pem.as_str();
        while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
            let tail = &rest[start..];
            let end = tail.find("-----END CERTIFICATE-----").map_or(tail.len(), |e| e + 25);
            if let Some(Ok((_, d))) = tail.as_bytes().get(..end).map(der::pem::decode_vec) {
                all.push(d);
            }
            rest = tail.get(end..).unwrap_or("");
        }
    }
    Ok(Loaded { credential, anchors, now, out: p.out.clone(), chain_ders: all })
}

fn rng() -> Result<ChaCha20Rng, Stop> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Stop::Usage(format!("OS RNG: {e}")))?;
    Ok(ChaCha20Rng::from_seed(seed))
}

fn fault() -> String {
    std::env::var("EKG_SHIM_FAULT").unwrap_or_default()
}

/// Runs one shim command.
pub fn run(command: &Command) -> ExitCode {
    match execute(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stop::Refused(e)) => {
            println!("{}", e.code());
            eprintln!("refused: {}: {}", e.code(), e.detail());
            ExitCode::from(EXIT_REFUSED)
        }
        Err(Stop::Usage(m)) => {
            eprintln!("ekg conformance shim: {m}");
            ExitCode::from(2)
        }
    }
}

/// The planted defects `EKG_SHIM_FAULT` may name.
pub const FAULTS: &[&str] = &["path_order", "no_ticket_digest"];

fn execute(command: &Command) -> Result<(), Stop> {
    let f = fault();
    if !f.is_empty() && !FAULTS.contains(&f.as_str()) {
        return Err(Stop::Usage(format!("EKG_SHIM_FAULT={f}: one of {}", FAULTS.join(", "))));
    }
    let mut rng = rng()?;
    let p = provider();
    let (out, bytes) = match command {
        Command::KeyRequest { party, gatekeeper_uri, to } => {
            let l = load(party)?;
            let to = to.iter().map(|a| EmailAddress::parse(a)).collect::<Result<Vec<_>, _>>()?;
            let sender = Sender::new(p, l.credential, l.anchors, gatekeeper_uri.clone())?;
            let pending = sender.request_key(&to, l.now, &mut rng)?;
            let der = if fault() == "path_order" { in_path_order(&pending.der, &l.chain_ders) } else { pending.der };
            (l.out, der)
        }
        Command::Seal { party, gatekeeper_uri, request, grant, ticket, message } => {
            let l = load(party)?;
            let sender = Sender::new(p, l.credential, l.anchors, gatekeeper_uri.clone())?;
            let request = read(request)?;
            let s = signed::open(p, &request, oid::CT_KEY_REQUEST, wire::limits::MAX_KEY_REQUEST_LEN)?;
            let pending = PendingKeyRequest {
                digest: p.sha256(&request),
                content: KeyRequestContent::decode(&s.content)?,
                der: request,
            };
            let key = sender.accept_grant(&pending, &read(grant)?, &read(ticket)?, l.now, &mut rng)?;
            let sealed = sender.seal(&key, &read(message)?, &mut rng)?;
            let sealed = if fault() == "no_ticket_digest" { without_ticket_digest(&sealed) } else { sealed };
            (l.out, sealed)
        }
        Command::ReleaseRequest { party, sealed, gateway } => {
            let l = load(party)?;
            let sealed = read(sealed)?;
            let der = if *gateway {
                let g = Gateway::new(p, l.credential, l.anchors);
                let m = g.receive(&sealed, l.now)?;
                g.request_key(&m, l.now, &mut rng)?.der
            } else {
                let r = Recipient::new(p, l.credential, l.anchors);
                let m = r.receive(&sealed, l.now)?;
                r.request_release(&m, l.now, &mut rng)?.der
            };
            (l.out, der)
        }
        Command::Open { party, sealed, release_request, release, gateway } => {
            let l = load(party)?;
            let (sealed, der, release) = (read(sealed)?, read(release_request)?, read(release)?);
            let plain = if *gateway {
                let g = Gateway::new(p, l.credential, l.anchors);
                let m = g.receive(&sealed, l.now)?;
                let pending = PendingRelease { digest: p.sha256(&der), der, key_id: *m.key_id() };
                let key = g.accept_key(&m, &pending, &release, l.now, &mut rng)?;
                g.open(&m, &key)?
            } else {
                let r = Recipient::new(p, l.credential, l.anchors);
                let m = r.receive(&sealed, l.now)?;
                let pending = PendingRelease { digest: p.sha256(&der), der, key_id: *m.key_id() };
                let key = r.accept_release(&m, &pending, &release, l.now, &mut rng)?;
                r.open(&m, &key)?
            };
            (l.out, plain.to_vec())
        }
        Command::Decrypt { party, sealed, key_hex } => {
            let l = load(party)?;
            let raw: [u8; 32] = hex::decode(key_hex)
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| Stop::Usage("--key-hex: 64 hex digits".into()))?;
            let r = Recipient::new(p, l.credential, l.anchors);
            let m = r.receive(&read(sealed)?, l.now)?;
            (l.out, r.open(&m, &OneTimeKey::from_bytes(raw))?.to_vec())
        }
    };
    std::fs::write(&out, bytes).map_err(|e| Stop::Usage(format!("{}: {e}", out.display())))
}

/// The planted defect `path_order`: the certificates SET rewritten in path order.
fn in_path_order(der: &[u8], path: &[Vec<u8>]) -> Vec<u8> {
    let mut sorted = path.to_vec();
    sorted.sort();
    let joined = sorted.concat();
    let Some(at) = der.windows(joined.len().max(1)).position(|w| w == joined.as_slice()) else {
        return der.to_vec();
    };
    let mut out = der.to_vec();
    if let Some(slot) = out.get_mut(at..at + joined.len()) {
        slot.copy_from_slice(&path.concat());
    }
    out
}

/// The planted defect `no_ticket_digest`: the authenticated ticket digest left out.
fn without_ticket_digest(sealed: &[u8]) -> Vec<u8> {
    use der::{Decode, Encode};
    let edit = || -> Result<Vec<u8>, der::Error> {
        let ci = wire::ContentInfo::from_der(sealed)?;
        let mut aed: cms::authenveloped_data::AuthEnvelopedData = ci.content.decode_as()?;
        if let Some(attrs) = aed.auth_attrs.take() {
            let kept: Vec<_> = attrs.iter().filter(|a| a.oid != oid::AA_TICKET_DIGEST).cloned().collect();
            aed.auth_attrs = Some(der::asn1::SetOfVec::try_from(kept)?);
        }
        let any = der::Any::from_der(&aed.to_der()?)?;
        wire::ContentInfo { content_type: ci.content_type, content: any }.to_der()
    };
    edit().unwrap_or_else(|_| sealed.to_vec())
}
