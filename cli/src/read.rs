//! `ekg read`: open a sealed email message (`docs/mail.md`): the ticket's checks, a release
//! request to the ticket's gatekeeper, the release's checks, decryption. The message is
//! written only when all of it succeeded.

use std::path::PathBuf;

use ekg_core::role::{Gateway, Recipient};
use ekg_server::binding;

use crate::client::identity::{self, IdentityArgs};
use crate::client::{ClientConfig, ClientError, now, os_rng, provider, read_input, write_output};
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
}

/// Runs `ekg read`.
pub fn run(args: &Args) -> Result<(), ClientError> {
    let config = ClientConfig::load(args.config.as_deref())?;
    let eml = read_input(&args.input, mail::MAX_SEALED_MESSAGE_LEN)?;
    let sealed = mail::unwrap(&eml)?;
    let credential = identity::load(&args.identity)?;
    let anchors = config.anchors(&args.anchors)?;
    let http = config.http()?;
    let mut rng = os_rng()?;
    let t = now();
    let plaintext = if args.gateway {
        let gw = Gateway::new(provider(), credential, anchors);
        let msg = gw.receive(&sealed, t)?;
        let pending = gw.request_key(&msg, t, &mut rng)?;
        let answer = http.post(msg.gatekeeper_uri(), binding::RELEASE_REQUEST, &pending.der)?;
        let key = gw.accept_key(&msg, &pending, &answer, now(), &mut rng)?;
        gw.open(&msg, &key)?
    } else {
        let r = Recipient::new(provider(), credential, anchors);
        let msg = r.receive(&sealed, t)?;
        let pending = r.request_release(&msg, t, &mut rng)?;
        let answer = http.post(msg.gatekeeper_uri(), binding::RELEASE_REQUEST, &pending.der)?;
        let key = r.accept_release(&msg, &pending, &answer, now(), &mut rng)?;
        r.open(&msg, &key)?
    };
    write_output(&args.output, &plaintext)
}
