//! `ekg read --token-command CMD` (client configuration: `token_command`): the access token a
//! release request carries (`docs/protocol.md` §12.5), printed by a command the user chose.
//!
//! The command is the user's own text, run as `sh -c CMD` with no argument added: nothing of
//! the message (addresses, the gatekeeper's URI, headers) is put into it. Its standard input
//! is empty, its standard error is the user's terminal; its standard output, at most
//! [`MAX_OUTPUT_LEN`] octets read within [`TIMEOUT`], trimmed of white space, is the token.
//! The token is never written anywhere by `ekg`: not in an error, not in a log.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::{ClientError, fail};

/// The longest the command may run.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// The most it may print: the longest token (`accessToken`, 8192 characters) and a line
/// ending or white space around it.
pub const MAX_OUTPUT_LEN: usize = ekg_core::wire::limits::MAX_ACCESS_TOKEN_LEN + 64;
/// Longest command text.
pub const MAX_COMMAND_LEN: usize = 4096;

const CODE: &str = "token_command_failed";

/// Runs `command` and returns the token it printed.
pub fn run(command: &str) -> Result<Zeroizing<String>, ClientError> {
    run_within(command, TIMEOUT)
}

/// [`run`] with another time bound (tests).
pub fn run_within(command: &str, timeout: Duration) -> Result<Zeroizing<String>, ClientError> {
    if command.trim().is_empty() || command.len() > MAX_COMMAND_LEN {
        return fail(CODE, format!("the token command is 1 to {MAX_COMMAND_LEN} characters"));
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .or_else(|e| fail(CODE, format!("the token command did not start: {e}")))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return fail(CODE, "the token command's output could not be read");
    };
    // Read on a thread (bounded by MAX_OUTPUT_LEN + 1), wait here (bounded by `timeout`).
    let reader = std::thread::spawn(move || {
        let mut out = Zeroizing::new(Vec::new());
        let read = stdout.take(MAX_OUTPUT_LEN as u64 + 1).read_to_end(&mut out);
        read.map(|_| out)
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return fail(CODE, format!("the token command did not finish within {}s", timeout.as_secs()));
            }
        }
    };
    // The command exited; a child of it that keeps the pipe open could block the reader: it
    // is given the rest of the time bound, then left behind.
    let out = loop {
        if reader.is_finished() {
            break reader.join().ok().and_then(Result::ok);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if !status.success() {
        return fail(CODE, format!("the token command failed ({status})"));
    }
    let Some(out) = out else {
        return fail(CODE, "the token command's output could not be read");
    };
    if out.len() > MAX_OUTPUT_LEN {
        return fail(CODE, format!("the token command printed more than {MAX_OUTPUT_LEN} octets"));
    }
    let token = out.trim_ascii();
    if token.is_empty()
        || token.len() > ekg_core::wire::limits::MAX_ACCESS_TOKEN_LEN
        || !token.iter().all(u8::is_ascii_graphic)
    {
        // Neither the output nor a part of it: it may be a token.
        return fail(CODE, "the token command printed no token (1 to 8192 printable ASCII characters, no spaces)");
    }
    Ok(Zeroizing::new(String::from_utf8_lossy(token).into_owned()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn code(r: Result<Zeroizing<String>, ClientError>) -> String {
        r.map_or_else(|e| e.code, |t| t.to_string())
    }

    #[test]
    fn the_token_is_what_the_command_printed_trimmed() {
        assert_eq!(code(run("printf ' eyJ.a.b\\n'")), "eyJ.a.b");
    }

    #[test]
    fn failures_are_token_command_failed_and_never_show_the_output() {
        let long = format!("head -c {} /dev/zero | tr '\\0' a", MAX_OUTPUT_LEN + 1);
        let secretish = "printf 'SECRET-TOKEN-TEXT'; exit 3";
        for cmd in ["exit 1", "true", "printf 'two words'", &long, secretish, "", "printf 'x\\001y'"] {
            let e = run(cmd).unwrap_err();
            assert_eq!(e.code, CODE, "{cmd}");
            assert!(!e.detail.contains("SECRET") && !e.detail.contains("two words"), "{}", e.detail);
        }
        let started = Instant::now();
        let e = run_within("sleep 5", Duration::from_millis(300)).unwrap_err();
        assert!(e.detail.contains("did not finish"), "{}", e.detail);
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn a_token_of_the_longest_length_is_taken() {
        let n = ekg_core::wire::limits::MAX_ACCESS_TOKEN_LEN;
        assert_eq!(code(run(&format!("head -c {n} /dev/zero | tr '\\0' a; echo"))).len(), n);
        assert_eq!(code(run(&format!("head -c {} /dev/zero | tr '\\0' a", n + 1))), CODE);
    }
}
