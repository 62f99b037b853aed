//! `ekg read`: open a sealed email message (`docs/mail.md`): the ticket's checks, a release
//! request to the ticket's gatekeeper, the release's checks, decryption. The message is
//! written only when all of it succeeded.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use ekg_binding as binding;
use ekg_core::ledger::ReleasePolicy;
use ekg_core::role::{Gateway, Recipient};

use crate::client::identity;
use crate::client::{ClientConfig, ClientError, ClientFlags, fail, now, os_rng, provider, read_input, write_output};
use crate::mail;

/// What `ekg read` was asked.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The reader's identity and client configuration.
    #[command(flatten)]
    pub client: ClientFlags,
    /// Read as the sender organisation's gateway (its certificate, not a listed recipient's).
    #[arg(long)]
    pub gateway: bool,
    /// The sealed message (default: standard input).
    #[arg(long, default_value = "-")]
    pub input: PathBuf,
    /// The message (default: standard output; a file is written chmod 600).
    #[arg(long, default_value = "-")]
    pub output: PathBuf,
    /// Under policy `once`, show the message on a terminal anyway: without it `ekg read`
    /// refuses (before asking the gatekeeper) to spend the only release on a screen.
    #[arg(long)]
    pub to_terminal: bool,
    /// Refuse a ticket that is not in its gatekeeper's issuance log (`ticket_not_logged`):
    /// its inclusion proof and signed tree head are fetched and checked before the release
    /// request is sent (docs/protocol.md §10.8). The client configuration's
    /// `require_log = true` does the same.
    #[arg(long)]
    pub require_log: bool,
    /// Put an access token (OAuth 2.0 JWT, docs/protocol.md §12.5) in the release request:
    /// the standard output of `sh -c CMD` (nothing of the message is added to CMD; at most
    /// 30 s and 8 KiB). The client configuration's `token_command` does the same.
    #[arg(long, value_name = "CMD")]
    pub token_command: Option<String>,
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
    let config = ClientConfig::load(args.client.config.as_deref())?;
    let eml = read_input(&args.input, mail::MAX_SEALED_MESSAGE_LEN)?;
    let sealed = mail::unwrap(&eml)?;
    let credential = identity::load(&args.client.identity)?;
    let anchors = config.anchors(&args.client.anchors)?;
    let anchors_for_log = anchors.clone();
    let http = config.http()?;
    let mut rng = os_rng()?;
    let t = now();
    let require_log = config.require_log(args.require_log);
    let logged = |ticket: &ekg_core::role::Ticket| {
        if require_log { crate::client::logged::require_logged(&http, &anchors_for_log, ticket, t) } else { Ok(()) }
    };
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let token_command = config.token_command(args.token_command.as_deref());
    if args.gateway && token_command.is_some() {
        return fail("invalid_configuration", "a gateway sends no access token (--token-command is for recipients)");
    }
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
        // The token is asked for once the message is known to be ours and worth a request.
        let pending = match token_command {
            Some(cmd) => r.request_release_with_token(&msg, &crate::client::token::run(cmd)?, t, &mut rng)?,
            None => r.request_release(&msg, t, &mut rng)?,
        };
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
