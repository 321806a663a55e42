//! The error shape for what hyper refuses before the router sees a request: a request
//! line longer than 64 KiB (414), headers over its buffer (431), bytes that are not HTTP
//! (400). hyper answers those itself, with an empty body and no hook to change it, then
//! closes the connection. [`ErrorPages`] wraps each accepted connection and replaces such
//! an answer (a 4xx/5xx head with `content-length: 0`, which the router never writes: its
//! errors always carry the JSON body, see `error::normalize`) with the same status and the
//! `{code, message, suggestions}` body.
//!
//! Connections are written unvectored (`is_write_vectored` is false), so hyper hands a
//! whole head to one `poll_write` and a head is recognised whole.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::error::ApiError;
use crate::error::ErrorCode;

/// Accepts like `listener`, wrapping every connection in [`ErrorPages`].
pub struct Listener(pub TcpListener);

impl axum::serve::Listener for Listener {
    type Io = ErrorPages<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (ErrorPages::new(io), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection whose bodiless error answers get the API's error body.
pub struct ErrorPages<T> {
    inner: T,
    /// A replacement being written: its bytes, how many are out, and the length of the
    /// head it replaces (reported as written once all are out).
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> ErrorPages<T> {
    pub fn new(inner: T) -> Self {
        ErrorPages {
            inner,
            pending: None,
        }
    }
}

/// The whole response replacing `head` when it is a bodiless error head.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let status = text
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse::<u16>()
        .ok()?;
    let status = StatusCode::from_u16(status).ok()?;
    let lines = text.strip_suffix("\r\n\r\n")?.to_ascii_lowercase();
    let bodiless = lines.split("\r\n").any(|l| l == "content-length: 0");
    if !(status.is_client_error() || status.is_server_error()) || !bodiless {
        return None;
    }
    let err = match status {
        StatusCode::URI_TOO_LONG => ApiError::new(
            ErrorCode::UriTooLong,
            "the request line is longer than the server reads (64 KiB)",
            vec![
                "a scan id is a few dozen characters: check the URL".into(),
                "send long inputs (symbol lists) in a POST body instead of the query string".into(),
            ],
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::new(
            ErrorCode::HeadersTooLarge,
            "the request's headers are larger than the server reads",
            vec!["send fewer or shorter headers".into()],
        ),
        _ => ApiError::new(
            ErrorCode::InvalidInput,
            format!("the server could not read the request as HTTP/1.1 ({status})"),
            vec!["send a well-formed HTTP/1.1 request".into()],
        ),
    };
    let body = serde_json::to_vec(&err.to_json()).ok()?;
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<T: AsyncRead + Unpin> AsyncRead for ErrorPages<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ErrorPages<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            // Only a short write can be such a head; a body chunk is never parsed.
            if buf.len() <= 1024 {
                this.pending = replacement(buf).map(|r| (r, 0, buf.len()));
            }
        }
        let Some((bytes, out, replaced)) = this.pending.as_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        // Called again with the same head after Pending, as AsyncWrite requires.
        while *out < bytes.len() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*out..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *out += n;
        }
        let replaced = *replaced;
        this.pending = None;
        Poll::Ready(Ok(replaced))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_error_heads_are_replaced() {
        let head = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 08:44:58 GMT\r\n\r\n";
        let out = String::from_utf8(replacement(head).expect("replaced")).expect("utf8");
        assert!(out.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{out}");
        let body: serde_json::Value =
            serde_json::from_str(out.split("\r\n\r\n").nth(1).expect("body")).expect("json");
        assert_eq!(body["error"]["code"], "URI_TOO_LONG");
        for kept in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 120\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\nmore",
            b"{\"error\":\"HTTP/1.1 400 \"}",
        ] {
            assert!(replacement(kept).is_none(), "{}", String::from_utf8_lossy(kept));
        }
    }
}
