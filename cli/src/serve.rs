//! `ekg serve`: the gatekeeper as a network service (`docs/server.md`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use ekg_server::config::{self, TlsFiles};
use ekg_server::{ServeError, Settings};

type DynError = Box<dyn std::error::Error>;

/// What `ekg serve` was asked. Without the `testmode` feature (a production build,
/// `docs/server.md`) there is no `--test-mode`, `--vectors`, `--demo` or `--dir`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration file (TOML; docs/server.md).
    #[cfg_attr(feature = "testmode", arg(long, required_unless_present_any = ["demo", "test_mode"]))]
    #[cfg_attr(not(feature = "testmode"), arg(long, required = true))]
    pub config: Option<PathBuf>,
    /// Serve the reference gatekeeper for `ekg conformance server`: no configuration, each
    /// case's state loaded through the management endpoint (docs/conformance.md §2), memory
    /// only, loopback only (default 127.0.0.1:8443).
    #[cfg(feature = "testmode")]
    #[arg(long, conflicts_with_all = ["config", "check_config", "adopt_store", "demo", "tls_cert", "tls_key"])]
    pub test_mode: bool,
    /// The vectors whose PKI the test mode's states name (default: the built-in copy of
    /// fixtures/v1's PKI).
    #[cfg(feature = "testmode")]
    #[arg(long, requires = "test_mode")]
    pub vectors: Option<PathBuf>,
    /// Check the configuration (every field, every file it names), then stop.
    #[arg(long)]
    pub check_config: bool,
    /// Take the database as found, though it is not the store the identity file names: a new
    /// empty one after a loss, or a backup restored on purpose (keys released after the backup
    /// may be released again). docs/server.md, "Store identity".
    #[arg(long, conflicts_with = "check_config")]
    pub adopt_store: bool,
    /// Serve a demo gatekeeper: the test PKI of example.com and example.org, a fresh storage
    /// key and a new database, written into --dir; prints what to try.
    #[cfg(feature = "testmode")]
    #[arg(long, conflicts_with_all = ["config", "check_config", "adopt_store"])]
    pub demo: bool,
    /// The demo's directory (default: a new one under the system's temporary directory).
    #[cfg(feature = "testmode")]
    #[arg(long, requires = "demo")]
    pub dir: Option<PathBuf>,
    /// Listen on this address instead of the configuration's (demo: 127.0.0.1:8443).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM); with --tls-key.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1), readable by its owner only; with --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Log format on standard error: `text` or `json` (one object a line). RUST_LOG filters
    /// (default `info`).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// The environment variable that names a planted bug (`docs/conformance.md` §6): read by
/// `ekg serve --test-mode` only; any other `ekg serve` refuses to start while it is set. A
/// build without the `testmode` feature has no planted bugs and never reads it.
#[cfg(feature = "testmode")]
pub const PLANTED_BUG_ENV: &str = "EKG_PLANTED_BUG";

/// Runs `ekg serve`.
pub fn run(args: &Args) -> Result<ExitCode, DynError> {
    init_logs(args.log_format == "json");
    #[cfg(feature = "testmode")]
    {
        if !args.test_mode && std::env::var_os(PLANTED_BUG_ENV).is_some() {
            return Err(format!(
                "{PLANTED_BUG_ENV} is set: planted bugs exist only under `ekg serve --test-mode`; \
                 refusing to serve (unset it)"
            )
            .into());
        }
        if args.demo {
            return demo(args);
        }
        if args.test_mode {
            return test_mode(args);
        }
    }
    let path = args.config.as_deref().ok_or("ekg serve needs --config FILE (or --demo)")?;
    let mut settings = config::load(path)?;
    apply(&mut settings, args)?;
    if args.check_config {
        println!("{}", summary(&settings));
        // The rules that need the clock: the gatekeeper's certificate now, renewal, CRLs.
        for line in ekg_server::certificates::check_at(
            settings.provider,
            &settings.gatekeeper,
            &settings.credential,
            &settings.certificates,
            settings.clock.now(),
        )? {
            println!("{line}");
        }
        println!("configuration ok: {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    serve(settings, None)
}

fn apply(settings: &mut Settings, args: &Args) -> Result<(), DynError> {
    settings.adopt_store = args.adopt_store;
    if let Some(l) = args.listen {
        settings.listen = l;
    }
    match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => {
            let files = TlsFiles { cert: c.clone(), key: k.clone() };
            ekg_server::tls::acceptor(&files)?;
            settings.tls = Some(files);
        }
        (None, None) => {}
        _ => return Err("--tls-cert and --tls-key go together".into()),
    }
    config::plain_http_allowed(settings.listen, settings.tls.is_some(), settings.allow_plain_http)
        .map_err(|rule| format!("--listen: {rule}"))?;
    Ok(())
}

fn summary(s: &Settings) -> String {
    let scheme = if s.tls.is_some() { "https" } else { "http" };
    format!(
        "gatekeeper {} ({} sender rules, {} recipient rules, {} gateways, {} CRLs, {} retired certificates, policy {}), \
         listening on {scheme}://{}, store {}, {} workers",
        s.gatekeeper.uri,
        s.gatekeeper.senders.len(),
        s.gatekeeper.recipients.len(),
        s.gatekeeper.gateways.len(),
        s.gatekeeper.anchors.revocation().lists().len(),
        s.gatekeeper.retired.len(),
        match s.gatekeeper.policy {
            ekg_core::ledger::ReleasePolicy::Once => "once",
            ekg_core::ledger::ReleasePolicy::SameCertificate => "same_certificate",
        },
        s.listen,
        s.database,
        s.workers
    )
}

/// Logs on standard error, filtered by `RUST_LOG` (default `info`), as text or JSON lines.
fn init_logs(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.with_ansi(false).try_init() };
}

/// Serves until SIGTERM or Ctrl-C, then stops gracefully; SIGHUP reloads what can be.
fn serve(settings: Settings, banner: Option<String>) -> Result<ExitCode, DynError> {
    let line = summary(&settings);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async move {
        let (reload, reloads) = tokio::sync::mpsc::channel(4);
        let signals = Signals::install()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let watcher = tokio::spawn(signals.watch(stop, reload));
        let stop = async move {
            let _ = stopped.await;
        };
        let r = ekg_server::run(settings, stop, reloads, move |addr| {
            tracing::info!(version = env!("CARGO_PKG_VERSION"), %addr, config = %line, "ekg serve started");
            println!("ekg serve {}: {line}", env!("CARGO_PKG_VERSION"));
            println!(
                "ekg serve: listening on {addr} (SIGTERM or Ctrl-C stops it gracefully; SIGHUP reloads TLS and CRLs)"
            );
            if let Some(b) = banner {
                println!("{b}");
            }
        })
        .await;
        watcher.abort();
        r
    });
    match result {
        Ok(()) => {
            tracing::info!("ekg serve stopped");
            println!("ekg serve: stopped");
            Ok(ExitCode::SUCCESS)
        }
        Err(ServeError::Config(e)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
}

/// The signals `ekg serve` handles. SIGTERM and SIGINT stop it gracefully; SIGHUP reloads;
/// SIGUSR1 and SIGUSR2 (whose default action would kill it without draining) are logged and
/// otherwise ignored.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, ekg_server::ServeError> {
        use tokio::signal::unix::{SignalKind, signal};
        let on = |kind: SignalKind| signal(kind).map_err(|e| ekg_server::ServeError::Io(format!("signals: {e}")));
        Ok(Signals {
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
            hup: on(SignalKind::hangup())?,
            usr1: on(SignalKind::user_defined1())?,
            usr2: on(SignalKind::user_defined2())?,
        })
    }

    /// Until a stop signal: then `stop` is sent.
    async fn watch(mut self, stop: tokio::sync::oneshot::Sender<()>, reload: tokio::sync::mpsc::Sender<()>) {
        loop {
            tokio::select! {
                _ = self.term.recv() => { tracing::info!(signal = "SIGTERM", "stopping: draining requests in flight"); break; }
                _ = self.int.recv() => { tracing::info!(signal = "SIGINT", "stopping: draining requests in flight"); break; }
                _ = self.hup.recv() => {
                    tracing::info!(signal = "SIGHUP", "reloading");
                    let _ = reload.try_send(());
                }
                _ = self.usr1.recv() => tracing::info!(signal = "SIGUSR1", "ignored"),
                _ = self.usr2.recv() => tracing::info!(signal = "SIGUSR2", "ignored"),
            }
        }
        let _ = stop.send(());
    }
}

/// Until SIGTERM or SIGINT (the test mode: other signals keep their default action).
#[cfg(feature = "testmode")]
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// `ekg serve --test-mode`: the reference gatekeeper under the management endpoint.
#[cfg(feature = "testmode")]
fn test_mode(args: &Args) -> Result<ExitCode, DynError> {
    let planted = plant_from_env()?;
    let listen = args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443)));
    let pki = match &args.vectors {
        Some(dir) => ekg_fixtures::Pki::load(dir)?,
        None => ekg_fixtures::Pki::from_federation(ekg_testpki::Federation::shared()),
    };
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let settings = ekg_server::testmode::TestSettings {
        listen,
        pki,
        provider: &ekg_core::crypto::AwsLc,
        workers,
        body_timeout: std::time::Duration::from_secs(10),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let clock = std::sync::Arc::new(ekg_server::service::Clock::default());
    runtime.block_on(ekg_server::testmode::run(settings, clock, stop_signal(), |addr| {
        println!("ekg serve --test-mode: TEST ONLY, memory only; listening on {addr}");
        if let Some(bug) = planted {
            println!("  PLANTED BUG: {bug} ({}): this gatekeeper is wrong on purpose", bug.description());
        }
        println!("  management endpoint: http://{addr}{}", ekg_server::testmode::MANAGE_BASE);
        println!("  try: ekg conformance server --target http://{addr}/");
    }))?;
    println!("ekg serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// The bug `EKG_PLANTED_BUG` names, planted in this process (none if it is unset or empty).
#[cfg(feature = "testmode")]
fn plant_from_env() -> Result<Option<ekg_core::role::planted::PlantedBug>, DynError> {
    use ekg_core::role::planted::{self, PlantedBug};
    let Some(name) = std::env::var_os(PLANTED_BUG_ENV) else { return Ok(None) };
    let name = name.to_str().ok_or_else(|| format!("{PLANTED_BUG_ENV}: not UTF-8"))?;
    if name.is_empty() {
        return Ok(None);
    }
    let bug = PlantedBug::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
        format!("{PLANTED_BUG_ENV}={name}: no such planted bug (known: {})", known.join(", "))
    })?;
    planted::plant(bug).map_err(|other| format!("{PLANTED_BUG_ENV}: {other} is already planted"))?;
    Ok(Some(bug))
}

#[cfg(feature = "testmode")]
fn demo(args: &Args) -> Result<ExitCode, DynError> {
    let listen = args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443)));
    if !listen.ip().is_loopback() {
        return Err("ekg serve --demo listens on a loopback address only".into());
    }
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("ekg-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let key = ekg_server::files::fresh_storage_key()?;
    let files = ekg_server::demo::write(&dir, listen, &key, "")?;
    let settings = config::load(&files.config)?;
    serve(settings, Some(demo_banner(&files)))
}

#[cfg(feature = "testmode")]
fn demo_banner(f: &ekg_server::demo::DemoFiles) -> String {
    let pki = f.pki.display();
    format!(
        "
ekg serve --demo: example.com's gatekeeper at {uri}, policy once.
  configuration: {config}
  PKI (TEST KEYS from a public seed: never for real mail): {pki}
    example.com: alice, carol, gateway, gatekeeper; example.org: bob, bob2 (bob's second
    certificate), dave, gateway;
    DOMAIN/NAME.pem (certificate), DOMAIN/NAME.key (PKCS#8, 0600), anchors.pem
  database: {db}

Try it (another terminal):
  curl -s {uri}healthz
  curl -s {uri}metrics | head
  # the whole protocol with openssl and curl only (alice -> bob, carol):
  scripts/openssl-client.sh {pki} {uri}
  # sealed email (client configuration: {client});
  # `ekg` is target/release/ekg after `cargo build --release --locked -p ekg`:
  printf 'From: alice@example.com\\r\\nTo: bob@example.org\\r\\nSubject: hi\\r\\n\\r\\nhello\\r\\n' |
    ekg send --config {client} --identity {pki}/example.com/alice.pem > sealed.eml
  ekg read --config {client} --identity {pki}/example.org/bob.pem < sealed.eml
  # load: throughput and latency per operation
  ekg load --target {uri} --pki {pki}
",
        uri = f.uri,
        client = f.client.display(),
        config = f.config.display(),
        db = f.dir.join("ekg.db").display(),
    )
}
