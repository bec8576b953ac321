//! A TCP connection that counts the bytes it receives: what `sentio sql`
//! reports as received from the front end is every byte that came off its
//! socket (HTTP/2 framing, headers and TLS records included), not only the
//! Arrow data.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes received so far on every connection made by one [`connector`].
pub type Received = Arc<AtomicU64>;

/// A tonic connector that dials `host_port` over TCP and counts every byte
/// read from the socket into `received`. TLS, when the endpoint has it, is
/// layered on top by tonic, so the count is of encrypted bytes.
pub fn connector(
    host_port: String,
    received: Received,
) -> impl tower::Service<
    tonic::codegen::http::Uri,
    Response = TokioIo<Counted>,
    Error = io::Error,
    Future = impl Future<Output = io::Result<TokioIo<Counted>>> + Send,
> + Clone
+ Send {
    tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let (host_port, received) = (host_port.clone(), Arc::clone(&received));
        async move {
            let socket = TcpStream::connect(&host_port).await?;
            socket.set_nodelay(true)?;
            Ok(TokioIo::new(Counted { socket, received }))
        }
    })
}

/// A TCP stream whose reads are counted.
pub struct Counted {
    socket: TcpStream,
    received: Received,
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.socket).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        self.received.fetch_add(read as u64, Ordering::Relaxed);
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn every_byte_read_is_counted() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(&[7u8; 100_000]).await.unwrap();
        });
        let received = Received::default();
        let socket = TcpStream::connect(addr).await.unwrap();
        let mut counted = Counted { socket, received: Arc::clone(&received) };
        let mut all = Vec::new();
        counted.read_to_end(&mut all).await.unwrap();
        server.await.unwrap();
        assert_eq!((all.len(), received.load(Ordering::Relaxed)), (100_000, 100_000));
    }
}
