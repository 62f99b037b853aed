//! `ekg send`: seal an email message for its recipients through the sender's gatekeeper
//! (`docs/mail.md`): key request, grant, one sealing for all, the RFC 8551 wrapping. The
//! output is written only when everything succeeded.

use std::path::PathBuf;

use ekg_binding as binding;
use ekg_core::EmailAddress;
use ekg_core::role::Sender;

use crate::client::identity;
use crate::client::{ClientConfig, ClientError, ClientFlags, fail, now, os_rng, provider, read_input, write_output};
use crate::mail;

/// What `ekg send` was asked.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The sender's identity and client configuration.
    #[command(flatten)]
    pub client: ClientFlags,
    /// A recipient (repeat it); default: the message's To, Cc and Bcc.
    #[arg(long)]
    pub to: Vec<String>,
    /// The gatekeeper URI; default: the configuration's for your domain.
    #[arg(long)]
    pub gatekeeper: Option<String>,
    /// A security label (repeat it, at most 16): an attribute-value URI,
    /// `https://<namespace>/attr/<name>/value/<value>` (docs/protocol.md §12, the draft's "Security
    /// Labels and Release Policies").
    #[arg(long)]
    pub label: Vec<String>,
    /// The message (default: standard input).
    #[arg(long, default_value = "-")]
    pub input: PathBuf,
    /// The sealed message (default: standard output).
    #[arg(long, default_value = "-")]
    pub output: PathBuf,
}

/// Runs `ekg send`; a line on standard error for each Bcc recipient the ticket will show.
pub fn run(args: &Args) -> Result<(), ClientError> {
    let config = ClientConfig::load(args.client.config.as_deref())?;
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
        .label
        .iter()
        .map(|l| {
            ekg_core::access::policy::AttributeValue::parse(l)
                .map_err(|e| ClientError { code: e.code().into(), detail: format!("--label {l}: {}", e.detail()) })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let credential = identity::load(&args.client.identity)?;
    let sender_address = credential.addresses().into_iter().next();
    let uri = match (&sender_address, &args.gatekeeper) {
        (Some(a), flag) => config.gatekeeper(flag.as_deref(), a.domain())?,
        (None, Some(u)) => u.clone(),
        (None, None) => return fail("no_gatekeeper", "no --gatekeeper, and the certificate names no address"),
    };
    let anchors = config.anchors(&args.client.anchors)?;
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
