//! `ekg`: the Email Key Gatekeeper reference implementation's command line.
//!
//! Each command's module declares its arguments (`Args`, or an `Action` for a command with
//! subcommands) once, with their help text; this file only names the commands and
//! dispatches. Without the `testmode` feature (a production gatekeeper, `docs/server.md`)
//! the commands that carry test material are left out: `fixtures`, `simulate`, `demo`,
//! `conformance`, and `serve --test-mode` and `--demo`.

#![forbid(unsafe_code)]

mod audit;
mod check;
mod client;
#[cfg(feature = "testmode")]
mod conformance;
#[cfg(feature = "testmode")]
mod demo;
#[cfg(feature = "testmode")]
mod fixtures;
mod inspect;
mod keys;
mod list_agent;
mod load;
mod mail;
#[cfg(feature = "testmode")]
mod progress;
mod read;
mod send;
mod serve;
#[cfg(feature = "testmode")]
mod simulate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The Email Key Gatekeeper: reference implementation, model checker and simulator.
#[derive(Parser, Debug)]
#[command(name = "ekg", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Conformance vectors: `generate` writes them from ekg-core, `check` runs them against
    /// the reference implementation (`fixtures/README.md`).
    #[cfg(feature = "testmode")]
    Fixtures {
        #[command(subcommand)]
        action: fixtures::Action,
    },
    /// Simulate late binding (the gatekeeper) against early binding (S/MIME-style) on the
    /// same workload: the README's main job. Exit 2: an invariant was violated; exit 3: a key
    /// owed to a reading recipient was not delivered after the network healed.
    #[cfg(feature = "testmode")]
    Simulate(simulate::Args),
    /// Run one full flow across two organisations and write every artifact (PKI as PEM,
    /// signed request, ticket, grant, sealed message, release requests, releases, the
    /// gateway's fetch) with a readable dump of each.
    #[cfg(feature = "testmode")]
    Demo(demo::Args),
    /// Serve the gatekeeper over HTTP (docs/protocol.md §8, docs/server.md): the HTTP
    /// binding, a durable SQLite store or a PostgreSQL one shared by several instances,
    /// metrics; SIGTERM stops it gracefully.
    Serve(serve::Args),
    /// Drive a gatekeeper with pre-signed key requests, then release requests for what it
    /// issued, from concurrent clients; report throughput and p50/p99/max latency per
    /// operation (docs/performance.md). Exit 1 if any request failed.
    Load(load::Args),
    /// Seal an email message (RFC 5322, from a file or standard input) for its recipients
    /// through the sender's gatekeeper: the sealed RFC 8551 message on standard output
    /// (docs/mail.md).
    Send(send::Args),
    /// Open a sealed email message: ask the ticket's gatekeeper for the key, check the
    /// release, decrypt; the original message on standard output (docs/mail.md).
    Read(read::Args),
    /// Expand a sealed message addressed to a mailing list, as the list's agent
    /// (docs/protocol.md §13, the draft's "Mailing Lists", docs/mail.md): fetch the key as
    /// the list, ask the list's own gatekeeper for a key for the members, re-address the
    /// message key (the content is not encrypted again); the message for the members on
    /// standard output. Loops
    /// (`list_loop`) and more than 8 nested expansions (`list_depth_exceeded`) are refused.
    ListAgent(list_agent::Args),
    /// Show what an EKG artifact is and says (DER, PEM or a sealed .eml): signer, sender,
    /// recipients, key id, gatekeeper, times, policy, and which checks pass. Exit 1 if one
    /// fails. Never shows a key.
    Inspect(inspect::Args),
    /// Black-box conformance (docs/conformance.md): `server` tests a running gatekeeper over
    /// HTTP, `client` tests a client implementation through its shim, `shim` is ours. Exit 1
    /// on any unexpected result.
    #[cfg(feature = "testmode")]
    Conformance {
        #[command(subcommand)]
        action: conformance::Action,
    },
    /// Audit a gatekeeper's issuance log (docs/protocol.md §10 and §3.4a, the draft's "The
    /// Issuance Log", steps A1 to A6): `verify` checks the log, signed tree heads, their
    /// consistency and a ticket's inclusion. Exit 1 with a stable code (`log_fork`, `ticket_not_logged`, `tree_head_bad_signature`, ...) on a refusal.
    Audit {
        #[command(subcommand)]
        action: audit::Action,
    },
    /// Key material for operators: `storage-key --out FILE` writes a fresh storage key (mode
    /// 0600); `gatekeeper-csr` makes the gatekeeper's key and a CSR with the certificate
    /// profile it needs; `next`, `rotate`, `list` and `retire` rotate the signing key
    /// (docs/server.md, "Rotating the signing key").
    Keys {
        #[command(subcommand)]
        action: keys::Action,
    },
    /// Model-check the protocol: the results matrix (configuration x property), with unique
    /// states and time, and every counterexample as a readable trace (actors by name), all
    /// within 100 columns.
    Check(check::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Each command gives its own exit code on success (simulate: 2 or 3 for a correctness or
    // liveness failure; fixtures check: 1 when a vector failed); any error is 1.
    let result: Result<ExitCode, Box<dyn std::error::Error>> = match cli.command {
        #[cfg(feature = "testmode")]
        Command::Simulate(a) => simulate::run(a).map(|v| ExitCode::from(v.exit_code())).map_err(Into::into),
        #[cfg(feature = "testmode")]
        Command::Fixtures { action } => fixtures::run(&action).map(passed).map_err(Into::into),
        Command::Serve(a) => serve::run(&a),
        #[cfg(feature = "testmode")]
        Command::Conformance { action } => conformance::run(action).map_err(Into::into),
        Command::Load(a) => load::run(a),
        Command::Send(a) => send::run(&a).map(|()| ExitCode::SUCCESS).map_err(Into::into),
        Command::Read(a) => read::run(&a).map(|()| ExitCode::SUCCESS).map_err(Into::into),
        Command::ListAgent(a) => list_agent::run(&a).map(|()| ExitCode::SUCCESS).map_err(Into::into),
        Command::Inspect(a) => inspect::run(&a).map(passed).map_err(Into::into),
        Command::Audit { action } => audit::run(&action).map(|()| ExitCode::SUCCESS).map_err(Into::into),
        #[cfg(feature = "testmode")]
        Command::Demo(a) => demo::run(&a).map(|()| ExitCode::SUCCESS),
        Command::Keys { action } => keys::run(action).map(|()| ExitCode::SUCCESS),
        Command::Check(a) => check::run(&a).map(passed),
    };
    result.unwrap_or_else(|e| {
        eprintln!("ekg: {e}");
        ExitCode::FAILURE
    })
}

/// Exit 0 when every check passed, else 1.
fn passed(ok: bool) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
