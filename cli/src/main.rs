//! `ekg`: the Email Key Gatekeeper reference implementation's command line.

#![forbid(unsafe_code)]

mod demo;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { out, seed, now } => demo::run(&out, seed, now),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ekg: {e}");
            ExitCode::FAILURE
        }
    }
}
