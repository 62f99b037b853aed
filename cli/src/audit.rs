//! `ekg audit verify`: an auditor's checks of a gatekeeper's issuance log
//! (`docs/protocol.md` §10, steps A1 to A6 of §3.4a).
//!
//! Every refusal is one stable code (`log_malformed`, `tree_head_bad_signature`,
//! `log_root_mismatch`, `ticket_not_logged`, `log_fork`, ...), printed as `ekg: CODE: detail`
//! with exit status 1. Every input is bounded (§10.6).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ekg_core::EmailAddress;
use ekg_core::audit::head::MAX_TREE_HEAD_LEN;
use ekg_core::audit::{Log, LogSalt, TreeHead, entry};
use ekg_core::role::Ticket;
use ekg_core::wire::limits::MAX_TICKET_LEN;

use crate::client::{ClientError, fail, provider, read_input};

/// Most tree heads one run checks.
pub const MAX_HEADS: usize = 16;
/// Most gatekeeper certificates one run trusts.
pub const MAX_GATEKEEPER_CERTIFICATES: usize = 8;
/// Largest certificate or salt file.
const MAX_SMALL_FILE_LEN: usize = 64 * 1024;

/// `ekg audit ...`.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Check a log file (A1), each tree head's signature against the gatekeeper's
    /// certificate and its root against the log (A2, A3), every two heads' consistency (A5),
    /// and a ticket's inclusion (A4) and an address's commitment (A6).
    Verify(VerifyArgs),
}

/// Runs `ekg audit ACTION`.
pub fn run(action: &Action) -> Result<(), ClientError> {
    match action {
        Action::Verify(args) => verify(args),
    }
}

/// What `ekg audit verify` was asked.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The log file (entries back to back, §10.2; at most 256 MiB and 2^20 entries).
    #[arg(long)]
    pub log: PathBuf,
    /// A signed tree head (DER or PEM; repeat it, at most 16): each is checked against the
    /// log, and every two against each other.
    #[arg(long)]
    pub head: Vec<PathBuf>,
    /// The gatekeeper's certificate (PEM or DER; repeat it for a rotated key, at most 8):
    /// a head signed by any other is refused.
    #[arg(long = "gatekeeper-cert")]
    pub gatekeeper_cert: Vec<PathBuf>,
    /// A ticket (DER or PEM) whose issuance must be in the log, under the largest head.
    #[arg(long)]
    pub ticket: Option<PathBuf>,
    /// With --ticket and --salt-file: an address the ticket's issue entry must commit to.
    #[arg(long, requires_all = ["ticket", "salt_file"])]
    pub address: Option<String>,
    /// The log salt (64 hex digits on the first line), from the gatekeeper's operator.
    #[arg(long)]
    pub salt_file: Option<PathBuf>,
}

/// Runs the checks; the report on standard output; the first refusal as the error.
pub fn verify(args: &VerifyArgs) -> Result<(), ClientError> {
    print!("{}", verify_report(args)?);
    Ok(())
}

fn verify_report(args: &VerifyArgs) -> Result<String, ClientError> {
    let mut out = String::new();
    if args.head.len() > MAX_HEADS || args.gatekeeper_cert.len() > MAX_GATEKEEPER_CERTIFICATES {
        return fail(
            "input_too_large",
            format!("at most {MAX_HEADS} heads and {MAX_GATEKEEPER_CERTIFICATES} certificates"),
        );
    }
    // A1.
    let log = Log::decode(&read_input(&args.log, entry::MAX_LOG_LEN)?)?;
    let issues = log.entries().iter().filter(|e| e.kind == entry::EntryKind::Issue).count();
    let _ = writeln!(
        out,
        "ok A1 log {}: {} entries ({issues} issue, {} release), root {}",
        args.log.display(),
        log.entries().len(),
        log.entries().len() - issues,
        log.tree().root()
    );
    // A2, A3.
    if !args.head.is_empty() && args.gatekeeper_cert.is_empty() {
        return fail("invalid_configuration", "--head needs --gatekeeper-cert");
    }
    let certificates =
        args.gatekeeper_cert.iter().map(|p| der_of(p, MAX_SMALL_FILE_LEN)).collect::<Result<Vec<_>, _>>()?;
    let mut heads: Vec<(&Path, TreeHead)> = Vec::new();
    for path in &args.head {
        let head = TreeHead::open(provider(), &der_of(path, MAX_TREE_HEAD_LEN)?, &certificates)
            .map_err(|e| with_file(e.into(), path))?;
        heads.push((path, head));
    }
    // A5: every two heads, before either meets the log: two signed heads that disagree are
    // evidence of a fork by themselves, whichever log is shown beside them.
    for (i, (pa, a)) in heads.iter().enumerate() {
        for (pb, b) in heads.iter().skip(i + 1) {
            log.check_heads(a, b).map_err(|e| {
                let mut e: ClientError = e.into();
                e.detail = format!("{} and {}: {}", pa.display(), pb.display(), e.detail);
                e
            })?;
        }
    }
    // A3: each head against the log.
    for (path, head) in &heads {
        log.check_head(head).map_err(|e| with_file(e.into(), path))?;
        let _ = writeln!(
            out,
            "ok A2 A3 head {}: size {}, root {}, signed {}",
            path.display(),
            head.tree_size,
            head.root_hash,
            head.timestamp.to_rfc3339()
        );
    }
    if heads.len() > 1 {
        let _ = writeln!(out, "ok A5 {} heads are of one append-only log", heads.len());
    }
    // A4, A6.
    if let Some(path) = &args.ticket {
        let Some((_, largest)) = heads.iter().max_by_key(|(_, h)| h.tree_size) else {
            return fail("invalid_configuration", "--ticket needs a --head to check inclusion under");
        };
        let ticket = Ticket::open(provider(), &der_of(path, MAX_TICKET_LEN)?).map_err(|e| with_file(e.into(), path))?;
        let inclusion = log.check_ticket(&ticket.der, largest).map_err(|e| with_file(e.into(), path))?;
        let _ = writeln!(
            out,
            "ok A4 ticket {} (key id {}): entry {}, inclusion proof of {} hashes under the head of size {}",
            path.display(),
            ticket.key_id,
            inclusion.index,
            inclusion.proof.len(),
            largest.tree_size
        );
        if let (Some(address), Some(salt_file)) = (&args.address, &args.salt_file) {
            let address = EmailAddress::parse(address)?;
            inclusion.entry.names(&read_salt(salt_file)?, &address)?;
            let _ = writeln!(out, "ok A6 the entry commits to {address}");
        }
    }
    Ok(out)
}

/// Reads a log salt file: 64 hex digits on its first line.
fn read_salt(path: &Path) -> Result<LogSalt, ClientError> {
    let text = read_input(path, MAX_SMALL_FILE_LEN)?;
    let line = String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_owned();
    hex::decode(&line)
        .ok()
        .and_then(|b| LogSalt::from_slice(&b))
        .map_or_else(|| fail("invalid_configuration", format!("{}: not 64 hex digits", path.display())), Ok)
}

/// A file's DER: as is, or the first PEM block.
fn der_of(path: &Path, limit: usize) -> Result<Vec<u8>, ClientError> {
    // PEM is 4/3 of the DER and some lines.
    let bytes = read_input(path, limit.saturating_mul(2))?;
    if bytes.first() == Some(&0x30) {
        return Ok(bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let start = text
        .find("-----BEGIN ")
        .map_or_else(|| fail("malformed_pem", format!("{}: not DER or PEM", path.display())), Ok)?;
    der::pem::decode_vec(text[start..].as_bytes())
        .map(|(_, der)| der)
        .map_err(|e| ClientError { code: "malformed_pem".into(), detail: format!("{}: {e}", path.display()) })
}

fn with_file(mut e: ClientError, path: &Path) -> ClientError {
    e.detail = format!("{}: {}", path.display(), e.detail);
    e
}
