//! One connection's bytes: the timeouts hyper does not have, and the refusals hyper writes
//! without a body.
//!
//! [`ConnIo`] sits between hyper and the stream (above TLS) and enforces, per connection:
//! - the **idle timeout**: no request in progress (before the first, or between keep-alive
//!   requests) for `idle` closes the connection quietly;
//! - the **header timeout**: a request head started but not complete within `header` is
//!   answered `408 request_timeout` and the connection closed;
//! - the **write timeout**: bytes handed to the stream must all be written within `write`
//!   (a client that does not read its responses, pipelined or not, loses the connection);
//! - **half-close**: a client that shuts down its sending side after a complete request
//!   (`shutdown(SHUT_WR)`) still gets the answer; the end of input is shown to hyper only
//!   once no request is in progress;
//! - **problem bodies for hyper's own refusals**: hyper answers a request it cannot parse
//!   (`400`, `414`, `431`) with an empty body; those bytes are replaced by the same status
//!   with a problem+json body and a stable code (`docs/protocol.md` §8.2).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::ConnState;
use crate::binding::{Problem, http_codes};

/// The three timeouts of a connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// No request in progress.
    pub idle: Duration,
    /// First byte of a request head to its end.
    pub header: Duration,
    /// Bytes handed to the stream to their being written.
    pub write: Duration,
}

/// The stream of one connection, with its timeouts (see the module's documentation).
pub(crate) struct ConnIo<S> {
    inner: S,
    state: Arc<ConnState>,
    timeouts: Timeouts,
    /// The read deadline (idle, or header), if one runs.
    read_timer: Option<(Pin<Box<Sleep>>, ReadWait)>,
    /// The write deadline, from the first write after the stream was last flushed.
    write_timer: Option<Pin<Box<Sleep>>>,
    /// Bytes of our own to write before anything hyper writes (a replaced refusal, a 408).
    out: Vec<u8>,
    out_pos: usize,
    /// The client ended its input while a request was in progress: shown once it is answered.
    eof_held: bool,
    /// The client ended its input before the handler had read the request's body whole:
    /// held until the handler's next look at the body says whether it was whole.
    eof_pending: bool,
    /// A 408 was queued: once it is written, reading fails (hyper closes).
    closing: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ReadWait {
    Idle,
    Header,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl<S: AsyncRead + AsyncWrite + Unpin> ConnIo<S> {
    pub(crate) fn new(inner: S, state: Arc<ConnState>, timeouts: Timeouts) -> ConnIo<S> {
        ConnIo {
            inner,
            state,
            timeouts,
            read_timer: None,
            write_timer: None,
            out: Vec::new(),
            out_pos: 0,
            eof_held: false,
            eof_pending: false,
            closing: false,
        }
    }

    /// Polls the write deadline, arming it if none runs: an error once it has passed.
    fn poll_write_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let write = self.timeouts.write;
        let timer = self.write_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(write)));
        if timer.as_mut().poll(cx).is_ready() {
            self.state.mark_closed();
            return Err(timed_out("the client did not read the response in time"));
        }
        Ok(())
    }

    /// Writes our own bytes (`out`) first; ready once there are none left.
    fn poll_drain_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            self.poll_write_deadline(cx)?;
            let rest = self.out.get(self.out_pos..).unwrap_or_default();
            match Pin::new(&mut self.inner).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.out_pos += n,
                Poll::Ready(Err(e)) => {
                    self.state.mark_closed();
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }

    /// Arms (or keeps) the read deadline of `wait` and polls it: true once it has passed.
    fn read_deadline_passed(&mut self, cx: &mut Context<'_>, wait: ReadWait) -> bool {
        let after = match wait {
            ReadWait::Idle => self.timeouts.idle,
            ReadWait::Header => self.timeouts.header,
        };
        let keep = matches!(&self.read_timer, Some((_, w)) if *w == wait);
        if !keep {
            let start = match wait {
                ReadWait::Idle => Instant::now(),
                ReadWait::Header => self.state.head_started_at().map_or_else(Instant::now, Instant::from_std),
            };
            self.read_timer = Some((Box::pin(tokio::time::sleep_until(start + after)), wait));
        }
        match &mut self.read_timer {
            Some((timer, _)) => timer.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }
}

impl<S> ConnIo<S> {
    /// The end of input came during a request: held (a half-close after a whole body: the
    /// answer is owed) or shown to hyper (a body cut short, or the request is over).
    fn poll_eof_verdict(&mut self, cx: &mut Context<'_>, busy: bool) -> Poll<io::Result<()>> {
        if !busy {
            self.eof_pending = false;
            return Poll::Ready(Ok(()));
        }
        self.state.wait_for_eof_verdict(cx.waker());
        if self.state.is_body_read() {
            self.eof_pending = false;
            self.eof_held = true;
            self.state.mark_half_closed();
        } else if self.state.is_body_waiting() {
            // The handler waits for bytes that will not come.
            self.eof_pending = false;
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.closing {
            ready!(this.poll_drain_out(cx))?;
            return Poll::Ready(Err(timed_out("the request head did not arrive in time")));
        }
        let busy = this.state.in_flight();
        if this.eof_pending {
            return this.poll_eof_verdict(cx, busy);
        }
        if this.eof_held {
            // The input ended during a request: its answer first, then the end.
            return if busy { Poll::Pending } else { Poll::Ready(Ok(())) };
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() == before {
                    if busy {
                        this.state.mark_input_ended();
                    }
                    // A half-close after a whole request is held back until its answer; a
                    // body cut short is shown at once (hyper then fails the body). hyper
                    // may have taken the whole body before the handler read it: then the
                    // handler's next look at the body decides.
                    if busy && !this.state.is_body_waiting() {
                        this.eof_pending = true;
                        return this.poll_eof_verdict(cx, busy);
                    }
                    return Poll::Ready(Ok(()));
                }
                if !busy {
                    this.state.head_bytes_arrived();
                }
                if this.read_timer.as_ref().is_some_and(|(_, w)| *w == ReadWait::Idle) {
                    this.read_timer = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                this.state.mark_closed();
                Poll::Ready(Err(e))
            }
            Poll::Pending if busy => {
                // A handler runs (reading a body has its own timeout; the work, the
                // request's deadline).
                this.read_timer = None;
                Poll::Pending
            }
            Poll::Pending => {
                if this.state.head_started_at().is_none() {
                    this.state.mark_idle();
                    if this.read_deadline_passed(cx, ReadWait::Idle) {
                        // Idle too long: closed quietly, as an idle keep-alive connection.
                        this.state.mark_closed();
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Pending;
                }
                if this.read_deadline_passed(cx, ReadWait::Header) {
                    let p = Problem::new(408, http_codes::REQUEST_TIMEOUT, "the request head did not arrive in time");
                    this.out.extend_from_slice(&raw_problem(&p));
                    this.closing = true;
                    this.read_timer = None;
                    this.state.mark_closed();
                    ready!(this.poll_drain_out(cx))?;
                    return Poll::Ready(Err(timed_out("the request head did not arrive in time")));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_drain_out(cx))?;
        this.state.not_idle();
        this.poll_write_deadline(cx)?;
        if let Some((cut, status)) = automatic_refusal(buf) {
            // hyper's bodiless refusal of a request it could not parse: ours instead.
            this.out.extend_from_slice(buf.get(..cut).unwrap_or_default());
            this.out.extend_from_slice(&raw_problem(&refusal_problem(status)));
            let _ = this.poll_drain_out(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Err(e)) => {
                this.state.mark_closed();
                Poll::Ready(Err(e))
            }
            Poll::Pending => {
                this.state.write_stalled();
                Poll::Pending
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain_out(cx))?;
        if this.write_timer.is_some() {
            this.poll_write_deadline(cx)?;
        }
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // Everything handed over is written: the next write starts a new deadline.
        this.write_timer = None;
        this.state.write_flowing();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain_out(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        // hyper then hands over one contiguous buffer (its "flatten" strategy), so that an
        // automatic refusal is always seen whole, at the end of one write.
        false
    }
}

/// The problem of a refusal hyper made (`400`, `414`, `431`).
pub(crate) fn refusal_problem(status: u16) -> Problem {
    match status {
        414 => Problem::new(414, http_codes::URI_TOO_LONG, "the request target is too long"),
        431 => Problem::new(431, http_codes::HEADERS_TOO_LARGE, "the request head is too large"),
        _ => Problem::new(400, http_codes::MALFORMED_HTTP, "the request is not well-formed HTTP/1.1"),
    }
}

/// A whole HTTP/1.1 answer carrying `p`, after which the connection closes.
pub(crate) fn raw_problem(p: &Problem) -> Vec<u8> {
    let body = p.to_json();
    let reason = hyper::StatusCode::from_u16(p.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let retry = if matches!(p.status, 429 | 503) {
        format!("retry-after: {}\r\n", crate::binding::RETRY_AFTER_SECS)
    } else {
        String::new()
    };
    format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n{body}",
        p.status,
        crate::binding::MEDIA_PROBLEM,
        body.len()
    )
    .into_bytes()
}

/// Where, in bytes hyper writes, its own bodiless refusal starts, and its status: a last head
/// (`HTTP/1.x 400|414|431 ...`) with `content-length: 0` that ends the buffer. The handlers
/// never answer these statuses without a body, so no answer of theirs has this form.
pub(crate) fn automatic_refusal(buf: &[u8]) -> Option<(usize, u16)> {
    const MAX_HEAD: usize = 512;
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let from = buf.len().saturating_sub(MAX_HEAD);
    let tail = buf.get(from..)?;
    let at = tail.windows(7).rposition(|w| w == b"HTTP/1.")?;
    let head = tail.get(at..)?;
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    if end + 4 != head.len() || head.get(8) != Some(&b' ') || head.get(12) != Some(&b' ') {
        return None;
    }
    let status: u16 = std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()?;
    let lower = head.to_ascii_lowercase();
    let empty = lower.windows(20).any(|w| w == b"\r\ncontent-length: 0\r");
    (matches!(status, 400 | 414 | 431) && empty).then_some((from + at, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bodiless_refusals_are_recognised_and_nothing_else() {
        let auto = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 05:01:31 GMT\r\n\r\n";
        assert_eq!(automatic_refusal(auto), Some((0, 431)));
        let mut after = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec();
        after.extend_from_slice(auto);
        assert_eq!(automatic_refusal(&after), Some((after.len() - auto.len(), 431)));
        let uri = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic_refusal(uri), Some((0, 414)));
        // Ours: a body, or another status.
        assert_eq!(automatic_refusal(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\n\r\n{...}"), None);
        assert_eq!(automatic_refusal(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(automatic_refusal(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        let raw = raw_problem(&refusal_problem(431));
        let text = String::from_utf8(raw).unwrap_or_default();
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{text}");
        assert!(
            text.ends_with("\"code\":\"headers_too_large\",\"detail\":\"the request head is too large\"}"),
            "{text}"
        );
    }
}
