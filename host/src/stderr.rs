//! A guest's stderr as the host keeps it: the last few KB written since the
//! current call began, for error messages; a write is never refused.
//!
//! wasmtime-wasi's `MemoryOutputPipe` traps the guest once its capacity is
//! used up, so an instance that logs freely, or serves several calls, would
//! fail for having talked. Here the oldest bytes give way instead: the end
//! of a traceback or a panic message is what a caller needs.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// A bounded tail of what a guest wrote. Clones share the buffer.
#[derive(Clone)]
pub(crate) struct Capture {
    buffer: Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

impl Capture {
    /// Keeps the last `capacity` bytes written.
    pub(crate) fn new(capacity: usize) -> Self {
        Capture {
            buffer: Arc::new(Mutex::new(Vec::with_capacity(capacity))),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is kept, as text.
    pub(crate) fn contents(&self) -> String {
        String::from_utf8_lossy(&self.lock()).into_owned()
    }

    /// Forgets what was written (a new call begins).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn append(&self, bytes: &[u8]) {
        let mut buffer = self.lock();
        let bytes = &bytes[bytes.len().saturating_sub(self.capacity)..];
        let over = (buffer.len() + bytes.len()).saturating_sub(self.capacity);
        buffer.drain(..over);
        buffer.extend_from_slice(bytes);
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Any amount: what does not fit pushes out the oldest.
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_and_never_refuses() {
        let capture = Capture::new(8);
        let mut stream = capture.clone();
        for chunk in ["hello ", "world, ", "this is long"] {
            stream.write(Bytes::from(chunk)).unwrap();
            assert!(stream.check_write().unwrap() > 0);
        }
        assert_eq!(capture.contents(), " is long");
        stream
            .write(Bytes::from("a very long single write"))
            .unwrap();
        assert_eq!(capture.contents(), "le write");
        capture.clear();
        assert_eq!(capture.contents(), "");
    }
}
