//! `ekg list-agent`: expand a sealed message addressed to a mailing list, where the list lives
//! (`docs/protocol.md` §13, `docs/mail.md`): fetch the key as the list (one listed recipient),
//! ask the list's own gatekeeper for a key for the members with the expansion history,
//! re-address the message key. The content is not encrypted again. The expanded message is
//! written only when everything succeeded; members read it with `ekg read`.

use std::path::{Path, PathBuf};

use ekg_binding as binding;
use ekg_core::EmailAddress;
use ekg_core::role::{ListAgent, Recipient, Sender};
use serde::Deserialize;

use crate::client::identity;
use crate::client::{
    ClientConfig, ClientError, ClientFlags, MAX_CONFIG_LEN, fail, now, os_rng, parse_toml, provider, read_input,
    write_output,
};
use crate::mail;

/// What `ekg list-agent` was asked.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The list's identity (its certificate names the list address) and client configuration.
    #[command(flatten)]
    pub client: ClientFlags,
    /// The list definition (TOML: `address = "team@example.com"`, `members = [...]`).
    #[arg(long)]
    pub list: PathBuf,
    /// The list's gatekeeper URI; default: the configuration's for the list's domain.
    #[arg(long)]
    pub gatekeeper: Option<String>,
    /// The sealed message for the list (default: standard input).
    #[arg(long, default_value = "-")]
    pub input: PathBuf,
    /// The expanded message for the members (default: standard output).
    #[arg(long, default_value = "-")]
    pub output: PathBuf,
}

/// A list definition: `address = "team@example.com"`, `members = ["bob@example.org", ...]`
/// (1 to 1000 distinct addresses, never the list itself; the file at most 1 MiB).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListDefinition {
    /// The list's address.
    pub address: String,
    /// The members' addresses (a member may be another list).
    pub members: Vec<String>,
}

impl ListDefinition {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<ListDefinition, ClientError> {
        let bytes = read_input(path, MAX_CONFIG_LEN as usize)?;
        let text = String::from_utf8(bytes).or_else(|_| fail("invalid_configuration", "the list is not UTF-8"))?;
        parse_toml(path, &text)
    }
}

fn parse(a: &str) -> Result<EmailAddress, ClientError> {
    EmailAddress::parse(a).map_err(|e| ClientError { code: e.code().into(), detail: format!("{a}: {}", e.detail()) })
}

/// Runs `ekg list-agent`.
pub fn run(args: &Args) -> Result<(), ClientError> {
    let config = ClientConfig::load(args.client.config.as_deref())?;
    let eml = read_input(&args.input, mail::MAX_SEALED_MESSAGE_LEN)?;
    let sealed = mail::unwrap(&eml)?;
    let list = ListDefinition::load(&args.list)?;
    let address = parse(&list.address)?;
    let members = list.members.iter().map(|m| parse(m)).collect::<Result<Vec<_>, _>>()?;
    let uri = config.gatekeeper(args.gatekeeper.as_deref(), address.domain())?;
    let anchors = config.anchors(&args.client.anchors)?;
    // The list's identity twice: as a recipient of the sender's gatekeeper, as a sender at its own.
    let recipient = Recipient::new(provider(), identity::load(&args.client.identity)?, anchors.clone());
    let sender = Sender::new(provider(), identity::load(&args.client.identity)?, anchors, uri.clone())?;
    if *sender.address() != address {
        return fail(
            "invalid_configuration",
            format!("the list is {address}, the identity's first address is {}", sender.address()),
        );
    }
    let agent = ListAgent::new(provider(), recipient, sender, members)?;
    let http = config.http()?;
    let mut rng = os_rng()?;
    let t = now();
    let message = agent.receive(&sealed, t)?;
    let pending = agent.request_release(&message, t, &mut rng)?;
    let answer = http.post(message.gatekeeper_uri(), binding::RELEASE_REQUEST, &pending.der)?;
    let received = agent.accept_release(&message, &pending, &answer, now(), &mut rng)?;
    let t = now();
    let request = agent.request_expansion(&message, t, &mut rng)?;
    let answer = http.post(&uri, binding::KEY_REQUEST, &request.der)?;
    let (grant, ticket) = ekg_core::role::decode_issuance_response(&answer)?;
    let send = agent.accept_grant(&request, &grant, &ticket, t, &mut rng)?;
    let expanded = agent.expand(&message, &received, &send)?;
    drop((received, send));
    let out = mail::wrap(&eml, &expanded)?;
    write_output(&args.output, &out)
}
