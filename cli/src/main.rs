//! `ekg`: the Email Key Gatekeeper reference implementation's command line.

#![forbid(unsafe_code)]

mod audit;
mod check;
mod client;
mod conformance;
mod demo;
mod fixtures;
mod inspect;
mod keys;
mod list_agent;
mod load;
mod mail;
mod progress;
mod read;
mod send;
mod serve;
mod simulate;

use std::path::PathBuf;
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
    Fixtures {
        #[command(subcommand)]
        action: FixturesAction,
    },
    /// Simulate late binding (the gatekeeper) against early binding (S/MIME-style) on the
    /// same workload: the README's main job. Exit 2: an invariant was violated; exit 3: a key
    /// owed to a reading recipient was not delivered after the network healed.
    Simulate {
        /// Shipped scenario names (the ten of fixtures/scenarios: default, mailing-list,
        /// cross-org-with-loss, gatekeeper-outage, low-certificate-availability,
        /// untrusted-org, compromised-recipient, seed-policy, compromise, labelled-itar) or
        /// TOML paths. Default: `default`.
        scenarios: Vec<String>,
        /// Run every shipped scenario (ten), then print and write a summary of their
        /// headlines (OUT/summary.txt, OUT/index.html).
        #[arg(long)]
        all: bool,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Output directory (one subdirectory per scenario).
        #[arg(long, default_value = "target/sim")]
        out: PathBuf,
        /// Threads for RSA key generation (the event loop is single-threaded).
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
    /// Run one full flow across two organisations and write every artifact (PKI as PEM,
    /// signed request, ticket, grant, sealed message, release requests, releases, the
    /// gateway's fetch) with a readable dump of each.
    Demo {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Seed for the test PKI and every random choice of the flow.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Protocol time as Unix seconds (default: the system clock, so that `openssl cms
        /// -verify`, which checks certificates against the clock, agrees).
        #[arg(long)]
        now: Option<u64>,
    },
    /// Serve the gatekeeper over HTTP (docs/protocol.md §8, docs/server.md): the HTTP
    /// binding, a durable SQLite store or a PostgreSQL one shared by several instances,
    /// metrics; SIGTERM stops it gracefully.
    Serve(ServeArgs),
    /// Drive a gatekeeper with pre-signed key requests, then release requests for what it
    /// issued, from concurrent clients; report throughput and p50/p99/max latency per
    /// operation (docs/performance.md). Exit 1 if any request failed.
    Load(LoadArgs),
    /// Seal an email message (RFC 5322, from a file or standard input) for its recipients
    /// through the sender's gatekeeper: the sealed RFC 8551 message on standard output
    /// (docs/mail.md).
    Send(SendArgs),
    /// Open a sealed email message: ask the ticket's gatekeeper for the key, check the
    /// release, decrypt; the original message on standard output (docs/mail.md).
    Read(ReadArgs),
    /// Expand a sealed message addressed to a mailing list, as the list's agent
    /// (docs/protocol.md §13, the draft's "Mailing Lists", docs/mail.md): fetch the key as
    /// the list, ask the list's own gatekeeper for a key for the members, re-address the
    /// message key (the content is not encrypted again); the message for the members on
    /// standard output. Loops
    /// (`list_loop`) and more than 8 nested expansions (`list_depth_exceeded`) are refused.
    ListAgent(ListAgentArgs),
    /// Show what an EKG artifact is and says (DER, PEM or a sealed .eml): signer, sender,
    /// recipients, key id, gatekeeper, times, policy, and which checks pass. Exit 1 if one
    /// fails. Never shows a key.
    Inspect {
        /// The artifact (`-`: standard input).
        file: PathBuf,
        /// Client configuration (its anchors check certificate paths).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Trust anchors (PEM): check certificate paths against them.
        #[arg(long)]
        anchors: Vec<PathBuf>,
    },
    /// Black-box conformance (docs/conformance.md): `server` tests a running gatekeeper over
    /// HTTP, `client` tests a client implementation through its shim, `shim` is ours. Exit 1
    /// on any unexpected result.
    Conformance {
        #[command(subcommand)]
        action: conformance::Action,
    },
    /// Audit a gatekeeper's issuance log (docs/protocol.md §10 and §3.4a, the draft's "The
    /// Issuance Log", steps A1 to A6): `verify` checks the log, signed tree heads, their
    /// consistency and a ticket's inclusion. Exit 1 with a stable code (`log_fork`, `ticket_not_logged`, `tree_head_bad_signature`, ...) on a refusal.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
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
    Check {
        /// Also check the full configuration (3 recipients, both gateways, attacker, lossy
        /// duplicating network, one crash) under both policies, the gatekeeper as ekg-core
        /// implements it (`+v14`; about 30 s).
        #[arg(long)]
        full: bool,
        /// Also check the deep set: the full configuration with the draft's key issuance
        /// (minutes and several GiB; docs/model.md §7 has the figures).
        #[arg(long)]
        deep: bool,
        /// Only configurations whose name contains this.
        #[arg(long)]
        only: Option<String>,
        /// Checker threads (1 to 256).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Serve stateright's Explorer for the first selected configuration instead.
        #[arg(long)]
        explore: bool,
        /// Explorer address (a loopback IP and port).
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: std::net::SocketAddr,
        /// Depth-first search (memory: fingerprints only) instead of breadth-first.
        #[arg(long)]
        dfs: bool,
        /// The reduced search for every configuration: parallel breadth-first, deduplicating
        /// on a representative (symmetry and write-only facts; docs/model.md §7); it does not
        /// evaluate `eventually`. The full configuration always uses it.
        #[arg(long)]
        reduced: bool,
        /// Stop each configuration after this many seconds (1 to 86400; marked TRUNCATED, and
        /// the run then fails: a cut search proves nothing).
        #[arg(long)]
        timeout_secs: Option<u64>,
    },
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The configuration file (TOML; docs/server.md).
    #[arg(long, required_unless_present_any = ["demo", "test_mode"])]
    config: Option<PathBuf>,
    /// Serve the reference gatekeeper for `ekg conformance server`: no configuration, each
    /// case's state loaded through the management endpoint (docs/conformance.md §2), memory
    /// only, loopback only (default 127.0.0.1:8443).
    #[arg(long, conflicts_with_all = ["config", "check_config", "demo", "tls_cert", "tls_key"])]
    test_mode: bool,
    /// The vectors whose PKI the test mode's states name (default: the built-in copy of
    /// fixtures/v1's PKI).
    #[arg(long, requires = "test_mode")]
    vectors: Option<PathBuf>,
    /// Check the configuration (every field, every file it names), then stop.
    #[arg(long)]
    check_config: bool,
    /// Take the database as found, though it is not the store the identity file names: a new
    /// empty one after a loss, or a backup restored on purpose (keys released after the backup
    /// may be released again). docs/server.md, "Store identity".
    #[arg(long, conflicts_with_all = ["check_config", "demo", "test_mode"])]
    adopt_store: bool,
    /// Serve a demo gatekeeper: the test PKI of example.com and example.org, a fresh storage
    /// key and a new database, written into --dir; prints what to try.
    #[arg(long, conflicts_with_all = ["config", "check_config"])]
    demo: bool,
    /// The demo's directory (default: a new one under the system's temporary directory).
    #[arg(long, requires = "demo")]
    dir: Option<PathBuf>,
    /// Listen on this address instead of the configuration's (demo: 127.0.0.1:8443).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// TLS certificate chain (PEM); with --tls-key.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1), readable by its owner only; with --tls-cert.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Log format on standard error: `text` or `json` (one object a line). RUST_LOG filters
    /// (default `info`).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(clap::Args, Debug)]
struct LoadArgs {
    /// The gatekeeper's base URL (plain HTTP), e.g. http://127.0.0.1:8443/; or several
    /// instances' URLs, comma-separated (at most 16), called in turn.
    #[arg(long, required_unless_present = "in_process", conflicts_with = "in_process")]
    target: Option<String>,
    /// Instead: serve this configuration in this process, without HTTP, on a fresh temporary
    /// database (the figure the HTTP one is compared with).
    #[arg(long)]
    in_process: Option<PathBuf>,
    /// The PKI directory: DOMAIN/NAME.pem, DOMAIN/NAME.key, anchors.pem (an `ekg serve
    /// --demo` directory's pki/).
    #[arg(long)]
    pki: PathBuf,
    /// The sender, DOMAIN/NAME.
    #[arg(long, default_value = "example.com/alice")]
    sender: String,
    /// The recipient, DOMAIN/NAME.
    #[arg(long, default_value = "example.org/bob")]
    recipient: String,
    /// The gatekeeper URI its tickets name (default: --target, or the configuration's).
    #[arg(long)]
    uri: Option<String>,
    /// Concurrent clients (1 to 256).
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Seconds per operation, at most (1 to 120).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Requests per operation, at most (1 to 100000), all signed before the clock starts.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// With --in-process: this many keys pending in the fresh database before the run (0 to
    /// 2000000), made by the core's issuance round; the report then gives this process's
    /// memory before and during the run.
    #[arg(long, default_value_t = 0)]
    prefill: u64,
    /// With --in-process: this SQLite file instead of a fresh temporary database (created if
    /// absent, kept after the run: `ekg serve` can then run on what --prefill wrote).
    #[arg(long)]
    database: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct IdentityFlags {
    /// Your identity: a PEM file with your certificate, its chain and your PKCS#8 key (or
    /// the certificates only, with --key), or a PKCS#12 file (.p12, .pfx). Files holding a
    /// key must be chmod 600.
    #[arg(long)]
    identity: PathBuf,
    /// Your PKCS#8 key (PEM), when --identity holds certificates only.
    #[arg(long)]
    key: Option<PathBuf>,
    /// A file whose first line is the PKCS#12 passphrase (chmod 600); without it the
    /// passphrase is asked on the terminal. Never on the command line.
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
    /// The client configuration (TOML: anchors, gatekeepers by domain, TLS roots).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Trust anchors (PEM), instead of the configuration's.
    #[arg(long)]
    anchors: Vec<PathBuf>,
}

impl IdentityFlags {
    fn identity(&self) -> client::identity::IdentityArgs {
        client::identity::IdentityArgs {
            identity: self.identity.clone(),
            key: self.key.clone(),
            passphrase_file: self.passphrase_file.clone(),
        }
    }
}

#[derive(clap::Args, Debug)]
struct SendArgs {
    #[command(flatten)]
    who: IdentityFlags,
    /// A recipient (repeat it); default: the message's To, Cc and Bcc.
    #[arg(long)]
    to: Vec<String>,
    /// The gatekeeper URI; default: the configuration's for your domain.
    #[arg(long)]
    gatekeeper: Option<String>,
    /// A security label (repeat it, at most 16): an attribute-value URI,
    /// `https://<namespace>/attr/<name>/value/<value>` (docs/protocol.md §12, the draft's "Security
    /// Labels and Release Policies").
    #[arg(long)]
    label: Vec<String>,
    /// The message (default: standard input).
    #[arg(long, default_value = "-")]
    input: PathBuf,
    /// The sealed message (default: standard output).
    #[arg(long, default_value = "-")]
    output: PathBuf,
}

#[derive(clap::Args, Debug)]
struct ListAgentArgs {
    #[command(flatten)]
    who: IdentityFlags,
    /// The list definition (TOML: `address = "team@example.com"`, `members = [...]`).
    #[arg(long)]
    list: PathBuf,
    /// The list's gatekeeper URI; default: the configuration's for the list's domain.
    #[arg(long)]
    gatekeeper: Option<String>,
    /// The sealed message for the list (default: standard input).
    #[arg(long, default_value = "-")]
    input: PathBuf,
    /// The expanded message for the members (default: standard output).
    #[arg(long, default_value = "-")]
    output: PathBuf,
}

#[derive(clap::Args, Debug)]
struct ReadArgs {
    #[command(flatten)]
    who: IdentityFlags,
    /// Read as the sender organisation's gateway (its certificate, not a listed recipient's).
    #[arg(long)]
    gateway: bool,
    /// The sealed message (default: standard input).
    #[arg(long, default_value = "-")]
    input: PathBuf,
    /// The message (default: standard output; a file is written chmod 600).
    #[arg(long, default_value = "-")]
    output: PathBuf,
    /// Under policy `once`, show the message on a terminal anyway: without it `ekg read`
    /// refuses (before asking the gatekeeper) to spend the only release on a screen.
    #[arg(long)]
    to_terminal: bool,
    /// Refuse a ticket that is not in its gatekeeper's issuance log (`ticket_not_logged`):
    /// its inclusion proof and signed tree head are fetched and checked before the release
    /// request is sent (docs/protocol.md §10.8). The client configuration's
    /// `require_log = true` does the same.
    #[arg(long)]
    require_log: bool,
    /// Put an access token (OAuth 2.0 JWT, docs/protocol.md §12.5) in the release request:
    /// the standard output of `sh -c CMD` (nothing of the message is added to CMD; at most
    /// 30 s and 8 KiB). The client configuration's `token_command` does the same.
    #[arg(long, value_name = "CMD")]
    token_command: Option<String>,
}

#[derive(Subcommand, Debug)]
enum FixturesAction {
    /// Write every vector file, schema and PEM of the PKI.
    Generate {
        /// Directory (the committed vectors live in fixtures/v1).
        #[arg(long, default_value = "fixtures/v1")]
        out: PathBuf,
    },
    /// Run the vectors; print `N passed, N failed`; exit 1 if any failed.
    Check {
        /// Directory of the vectors.
        #[arg(long, default_value = "fixtures/v1")]
        dir: PathBuf,
        /// Also write one JSON Lines record per test here.
        #[arg(long)]
        jsonl: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum AuditAction {
    /// Check a log file (A1), each tree head's signature against the gatekeeper's
    /// certificate and its root against the log (A2, A3), every two heads' consistency (A5),
    /// and a ticket's inclusion (A4) and an address's commitment (A6).
    Verify(audit::VerifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Each command gives its own exit code on success (simulate: 2 or 3 for a correctness or
    // liveness failure; fixtures check: 1 when a vector failed); any error is 1.
    let result: Result<ExitCode, Box<dyn std::error::Error>> = match cli.command {
        Command::Simulate { scenarios, all, seed, out, threads } => {
            simulate::run(simulate::Args { scenarios, all, seed, out, threads })
                .map(|v| ExitCode::from(v.exit_code()))
                .map_err(Into::into)
        }
        Command::Fixtures { action } => match action {
            FixturesAction::Generate { out } => fixtures::generate(&out).map(|()| true),
            FixturesAction::Check { dir, jsonl } => fixtures::check(&dir, jsonl.as_deref()),
        }
        .map(|passed| if passed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        .map_err(Into::into),
        Command::Serve(a) => serve::run(serve::Args {
            config: a.config,
            check_config: a.check_config,
            adopt_store: a.adopt_store,
            demo: a.demo,
            dir: a.dir,
            listen: a.listen,
            tls_cert: a.tls_cert,
            tls_key: a.tls_key,
            test_mode: a.test_mode,
            vectors: a.vectors,
            log_json: a.log_format == "json",
        }),
        Command::Conformance { action } => conformance::run(action).map_err(Into::into),
        Command::Load(a) => load::run(load::Args {
            target: a.target,
            in_process: a.in_process,
            pki: a.pki,
            sender: a.sender,
            recipient: a.recipient,
            uri: a.uri,
            concurrency: a.concurrency,
            duration: a.duration,
            requests: a.requests,
            prefill: a.prefill,
            database: a.database,
        }),
        Command::Send(a) => send::run(&send::Args {
            identity: a.who.identity(),
            to: a.to,
            gatekeeper: a.gatekeeper,
            labels: a.label,
            config: a.who.config,
            anchors: a.who.anchors,
            input: a.input,
            output: a.output,
        })
        .map(|()| ExitCode::SUCCESS)
        .map_err(Into::into),
        Command::Read(a) => read::run(&read::Args {
            identity: a.who.identity(),
            gateway: a.gateway,
            config: a.who.config,
            anchors: a.who.anchors,
            input: a.input,
            output: a.output,
            to_terminal: a.to_terminal,
            require_log: a.require_log,
            token_command: a.token_command,
        })
        .map(|()| ExitCode::SUCCESS)
        .map_err(Into::into),
        Command::ListAgent(a) => list_agent::run(&list_agent::Args {
            identity: a.who.identity(),
            list: a.list,
            gatekeeper: a.gatekeeper,
            config: a.who.config,
            anchors: a.who.anchors,
            input: a.input,
            output: a.output,
        })
        .map(|()| ExitCode::SUCCESS)
        .map_err(Into::into),
        Command::Inspect { file, config, anchors } => inspect::run(&inspect::Args { file, config, anchors })
            .map(|ok| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            .map_err(Into::into),
        Command::Audit { action: AuditAction::Verify(a) } => {
            audit::verify(&a).map(|()| ExitCode::SUCCESS).map_err(Into::into)
        }
        Command::Demo { out, seed, now } => demo::run(&out, seed, now).map(|()| ExitCode::SUCCESS),
        Command::Keys { action } => keys::run(action).map(|()| ExitCode::SUCCESS),
        Command::Check { full, deep, only, threads, explore, addr, dfs, reduced, timeout_secs } => {
            let timeout = timeout_secs.map(std::time::Duration::from_secs);
            let search = ekg_model::report::Search { threads, dfs, timeout, reduced };
            let explore = explore.then_some(addr);
            check::run(check::Args { full, deep, only: only.as_deref(), search, explore })
                .map(|ok| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("ekg: {e}");
        ExitCode::FAILURE
    })
}
