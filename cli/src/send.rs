//! `ekg send`: seal an email message for its recipients through the sender's gatekeeper
//! (`docs/mail.md`): key request, grant, one sealing for all, the RFC 8551 wrapping. The
//! output is written only when everything succeeded.

use std::path::PathBuf;

use ekg_binding as binding;
use ekg_core::EmailAddress;
use ekg_core::role::Sender;

use crate::client::identity::{self, IdentityArgs};
use crate::client::{ClientConfig, ClientError, fail, now, os_rng, provider, read_input, write_output};
use crate::mail;

/// What `ekg send` was asked.
pub struct Args {
    /// The sender's identity.
    pub identity: IdentityArgs,
    /// Recipients (default: the message's To, Cc and Bcc).
    pub to: Vec<String>,
    /// The gatekeeper URI (default: the client configuration's for the sender's domain).
    pub gatekeeper: Option<String>,
    /// Security labels (attribute-value URIs, `docs/protocol.md` §12).
    pub labels: Vec<String>,
    /// The client configuration.
    pub config: Option<PathBuf>,
    /// Trust anchors (PEM), instead of the configuration's.
    pub anchors: Vec<PathBuf>,
    /// The message (`-`: standard input).
    pub input: PathBuf,
    /// The sealed message (`-`: standard output).
    pub output: PathBuf,
}

/// Runs `ekg send`; a line on standard error for each Bcc recipient the ticket will show.
pub fn run(args: &Args) -> Result<(), ClientError> {
    let config = ClientConfig::load(args.config.as_deref())?;
    let message = read_input(&args.input, mail::MAX_MESSAGE_LEN)?;
    let content = mail::protected_content(&message)?;
    let recipients: Vec<String> = if args.to.is_empty() {
        let r = mail::recipients(&message)?;
        if !r.bcc.is_empty() {
            eprintln!(
                "ekg send: warning: the ticket lists every recipient and every recipient can read it: Bcc {} will be seen by all (send them a message of their own to keep them hidden)",
                r.bcc.join(", ")
            );
        }
        r.visible.into_iter().chain(r.bcc).collect()
    } else {
        args.to.clone()
    };
    if recipients.is_empty() {
        return fail("no_recipients", "the message has no To, Cc or Bcc, and no --to was given");
    }
    let recipients = recipients
        .iter()
        .map(|a| {
            EmailAddress::parse(a)
                .map_err(|e| ClientError { code: e.code().into(), detail: format!("{a}: {}", e.detail()) })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let labels = args
        .labels
        .iter()
        .map(|l| {
            ekg_core::access::policy::AttributeValue::parse(l)
                .map_err(|e| ClientError { code: e.code().into(), detail: format!("--label {l}: {}", e.detail()) })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let credential = identity::load(&args.identity)?;
    let sender_address = credential.addresses().into_iter().next();
    let uri = match (&args.gatekeeper, &sender_address) {
        (Some(u), _) => u.clone(),
        (None, Some(a)) => match config.gatekeeper_for(a.domain()) {
            Some(u) => u.to_owned(),
            None => {
                return fail(
                    "no_gatekeeper",
                    format!("no --gatekeeper and no gatekeeper for {} in the configuration", a.domain()),
                );
            }
        },
        (None, None) => return fail("no_gatekeeper", "no --gatekeeper, and the certificate names no address"),
    };
    let anchors = config.anchors(&args.anchors)?;
    let http = config.http()?;
    let sender = Sender::new(provider(), credential, anchors, uri.clone())?;
    let mut rng = os_rng()?;
    let t = now();
    let pending = sender.request_labelled_key(&recipients, &labels, t, &mut rng)?;
    let answer = http.post(&uri, binding::KEY_REQUEST, &pending.der)?;
    let (grant, ticket) = ekg_core::role::decode_issuance_response(&answer)?;
    let key = sender.accept_grant(&pending, &grant, &ticket, t, &mut rng)?;
    let sealed = sender.seal(&key, &content, &mut rng)?;
    drop(key);
    let out = mail::wrap(&message, &sealed)?;
    write_output(&args.output, &out)
}
