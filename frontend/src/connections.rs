//! The front end's connections: each accepted TCP connection is watched, so
//! that the sessions API tokens started on it end when it closes (a BI tool
//! that reconnects often would otherwise leave a session behind each time,
//! until its idle limit).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedSender;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// An accepted connection that says when it is gone: dropped, it sends its
/// peer's address.
pub struct Tracked {
    stream: TcpStream,
    peer: SocketAddr,
    closed: UnboundedSender<SocketAddr>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // The receiver is gone only when the server is: nothing to tell.
        let _ = self.closed.send(self.peer);
    }
}

/// The connections `listener` accepts, each of which sends its peer's
/// address to `closed` when it closes.
pub fn incoming(listener: TcpListener, closed: UnboundedSender<SocketAddr>) -> impl Stream<Item = io::Result<Tracked>> {
    futures::stream::unfold((listener, closed), |(listener, closed)| async move {
        let accepted = listener.accept().await.map(|(stream, peer)| {
            // Small messages (a statement, a cancel) go out at once.
            let _ = stream.set_nodelay(true);
            Tracked { stream, peer, closed: closed.clone() }
        });
        Some((accepted, (listener, closed)))
    })
}

impl Connected for Tracked {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
