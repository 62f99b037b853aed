//! `ekg read`: open a sealed email message (`docs/mail.md`): the ticket's checks, a release
//! request to the ticket's gatekeeper, the release's checks, decryption. The message is
//! written only when all of it succeeded.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use ekg_binding as binding;
use ekg_core::ledger::ReleasePolicy;
use ekg_core::role::{Gateway, Recipient};

use crate::client::identity::{self, IdentityArgs};
use crate::client::{ClientConfig, ClientError, fail, now, os_rng, provider, read_input, write_output};
use crate::mail;

/// What `ekg read` was asked.
pub struct Args {
    /// The reader's identity.
    pub identity: IdentityArgs,
    /// Read as the sender organisation's gateway (not a listed recipient).
    pub gateway: bool,
    /// The client configuration.
    pub config: Option<PathBuf>,
    /// Trust anchors (PEM), instead of the configuration's.
    pub anchors: Vec<PathBuf>,
    /// The sealed message (`-`: standard input).
    pub input: PathBuf,
    /// The message (`-`: standard output; a file is written 0600).
    pub output: PathBuf,
    /// Show the message on a terminal even when that spends a `once` release.
    pub to_terminal: bool,
    /// Refuse a ticket the gatekeeper's issuance log does not hold (`ticket_not_logged`),
    /// checked before the release request is sent (`crate::client::logged`).
    pub require_log: bool,
}

/// Refuses, before the release request is sent, to spend a `once` release on a terminal
/// unless asked to (`--to-terminal`): under `once` the gatekeeper releases the key to a
/// reader one time only, and a screen keeps no copy.
pub fn check_destination(
    policy: ReleasePolicy,
    output: &Path,
    stdout_is_terminal: bool,
    to_terminal: bool,
) -> Result<(), ClientError> {
    let on_screen = output == Path::new("-") && stdout_is_terminal;
    if policy == ReleasePolicy::Once && on_screen && !to_terminal {
        return fail(
            "once_release_to_terminal",
            "the ticket's policy is once: the gatekeeper releases this key to you one time only, and standard \
             output is a terminal, which keeps no copy; write the message to a file (--output FILE, or > FILE), \
             or pass --to-terminal to spend the release on the screen (nothing was sent)",
        );
    }
    Ok(())
}

/// Runs `ekg read`.
pub fn run(args: &Args) -> Result<(), ClientError> {
    let config = ClientConfig::load(args.config.as_deref())?;
    let eml = read_input(&args.input, mail::MAX_SEALED_MESSAGE_LEN)?;
    let sealed = mail::unwrap(&eml)?;
    let credential = identity::load(&args.identity)?;
    let anchors = config.anchors(&args.anchors)?;
    let anchors_for_log = anchors.clone();
    let http = config.http()?;
    let mut rng = os_rng()?;
    let t = now();
    let require_log = args.require_log || config.require_log;
    let logged = |ticket: &ekg_core::role::Ticket| {
        if require_log { crate::client::logged::require_logged(&http, &anchors_for_log, ticket, t) } else { Ok(()) }
    };
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let plaintext = if args.gateway {
        let gw = Gateway::new(provider(), credential, anchors);
        let msg = gw.receive(&sealed, t)?;
        check_destination(msg.ticket().policy, &args.output, stdout_is_terminal, args.to_terminal)?;
        logged(msg.ticket())?;
        let pending = gw.request_key(&msg, t, &mut rng)?;
        let answer = http.post(msg.gatekeeper_uri(), binding::RELEASE_REQUEST, &pending.der)?;
        let key = gw.accept_key(&msg, &pending, &answer, now(), &mut rng)?;
        gw.open(&msg, &key)?
    } else {
        let r = Recipient::new(provider(), credential, anchors);
        let msg = r.receive(&sealed, t)?;
        check_destination(msg.ticket().policy, &args.output, stdout_is_terminal, args.to_terminal)?;
        logged(msg.ticket())?;
        let pending = r.request_release(&msg, t, &mut rng)?;
        let answer = http.post(msg.gatekeeper_uri(), binding::RELEASE_REQUEST, &pending.der)?;
        let key = r.accept_release(&msg, &pending, &answer, now(), &mut rng)?;
        r.open(&msg, &key)?
    };
    write_output(&args.output, &plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_once_release_is_not_spent_on_a_terminal_unless_asked() {
        let stdout = Path::new("-");
        let refused = check_destination(ReleasePolicy::Once, stdout, true, false).unwrap_err();
        assert_eq!(refused.code, "once_release_to_terminal");
        assert!(check_destination(ReleasePolicy::Once, stdout, true, true).is_ok(), "--to-terminal");
        assert!(check_destination(ReleasePolicy::Once, stdout, false, false).is_ok(), "a pipe or a file");
        assert!(check_destination(ReleasePolicy::Once, Path::new("bob.eml"), true, false).is_ok(), "--output");
        assert!(check_destination(ReleasePolicy::SameCertificate, stdout, true, false).is_ok(), "fetched again");
    }
}
