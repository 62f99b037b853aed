//! `ekg serve`: the gatekeeper as a network service (`docs/server.md`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use ekg_server::config::{self, TlsFiles};
use ekg_server::{ServeError, Settings};

type DynError = Box<dyn std::error::Error>;

/// What `ekg serve` was asked.
pub struct Args {
    /// The configuration file.
    pub config: Option<PathBuf>,
    /// Check it, then stop.
    pub check_config: bool,
    /// Make a demo configuration and serve it.
    pub demo: bool,
    /// The demo's directory.
    pub dir: Option<PathBuf>,
    /// Listen here instead.
    pub listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS key (PEM).
    pub tls_key: Option<PathBuf>,
    /// The conformance test mode.
    pub test_mode: bool,
    /// The test mode's vectors directory.
    pub vectors: Option<PathBuf>,
}

/// Runs `ekg serve`.
pub fn run(args: Args) -> Result<ExitCode, DynError> {
    if args.demo {
        return demo(&args);
    }
    if args.test_mode {
        return test_mode(&args);
    }
    let path = args.config.as_deref().ok_or("ekg serve needs --config FILE (or --demo)")?;
    let mut settings = config::load(path)?;
    apply(&mut settings, &args)?;
    if args.check_config {
        println!("{}", summary(&settings));
        // The rules that need the clock: the gatekeeper's certificate now, renewal, CRLs.
        for line in ekg_server::certificates::check_at(&settings, settings.clock.now())? {
            println!("{line}");
        }
        println!("configuration ok: {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    serve(settings, None)
}

fn apply(settings: &mut Settings, args: &Args) -> Result<(), DynError> {
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
    if settings.tls.is_none() && !settings.listen.ip().is_loopback() {
        return Err(format!(
            "{}: plain HTTP only on a loopback address: give --tls-cert and --tls-key",
            settings.listen
        )
        .into());
    }
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

/// Serves until SIGTERM or Ctrl-C, then stops gracefully.
fn serve(settings: Settings, banner: Option<String>) -> Result<ExitCode, DynError> {
    let line = summary(&settings);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(ekg_server::run(settings, stop_signal(), move |addr| {
        println!("ekg serve: {line}");
        println!("ekg serve: listening on {addr} (SIGTERM or Ctrl-C stops it gracefully)");
        if let Some(b) = banner {
            println!("{b}");
        }
    }));
    match result {
        Ok(()) => {
            println!("ekg serve: stopped");
            Ok(ExitCode::SUCCESS)
        }
        Err(ServeError::Config(e)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
}

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
fn test_mode(args: &Args) -> Result<ExitCode, DynError> {
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
        println!("  management endpoint: http://{addr}{}", ekg_server::testmode::MANAGE_BASE);
        println!("  try: ekg conformance server --target http://{addr}/");
    }))?;
    println!("ekg serve: stopped");
    Ok(ExitCode::SUCCESS)
}

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
    let key = ekg_server::demo::fresh_storage_key()?;
    let files = ekg_server::demo::write(&dir, listen, &key, "")?;
    let settings = config::load(&files.config)?;
    serve(settings, Some(demo_banner(&files)))
}

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
