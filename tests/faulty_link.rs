//! A TCP relay between Sentio and a server that fails one chosen request
//! the way a network or a stopped server does: its answer lost on the way
//! back, or the server gone as it arrives.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What the link does to the requests passing through it. A request is
/// named by a piece of its HTTP request line (`PUT /bucket/key`).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Everything passes.
    None,
    /// The first matching request reaches the server, which acts on it, but
    /// its answer is lost: the connection closes instead. Then everything
    /// passes again.
    LoseAnswerTo(String),
    /// The server stops as the first matching request arrives: that request
    /// never reaches it, and neither does anything after it.
    StopAt(String),
    /// Stopped: every connection is cut.
    Stopped,
}

/// The relay, listening on a loopback port of its own.
pub struct FaultyLink {
    port: u16,
    fault: Arc<Mutex<Fault>>,
}

impl FaultyLink {
    /// Relays to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream.trim_start_matches("http://").to_string();
        let fault = Arc::new(Mutex::new(Fault::None));
        let shared = Arc::clone(&fault);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if *shared.lock().unwrap() == Fault::Stopped {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let fault = Arc::clone(&shared);
                std::thread::spawn(move || relay(client, server, &fault));
            }
        });
        Self { port, fault }
    }

    /// The URL to give Sentio instead of the server's.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets what happens next.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// What the link does now (a fault that has struck has changed it).
    pub fn fault(&self) -> Fault {
        self.fault.lock().unwrap().clone()
    }
}

/// Copies one connection both ways until either side closes it or the
/// fault cuts it.
fn relay(client: TcpStream, server: TcpStream, fault: &Mutex<Fault>) {
    let lose_answer = Arc::new(AtomicBool::new(false));
    let (mut to_client, mut from_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let lose = Arc::clone(&lose_answer);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n @ 1..) = from_server.read(&mut buf) {
            if lose.load(Ordering::SeqCst) || to_client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(Shutdown::Both);
        let _ = from_server.shutdown(Shutdown::Both);
    });
    let (mut from_client, mut to_server) = (client, server);
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(n @ 1..) = from_client.read(&mut buf) {
        let chunk = &buf[..n];
        let request_line = chunk.split(|b| *b == b'\r').next().map(String::from_utf8_lossy).unwrap_or_default();
        {
            let mut f = fault.lock().unwrap();
            match &*f {
                Fault::Stopped => break,
                Fault::StopAt(p) if request_line.contains(p.as_str()) => {
                    *f = Fault::Stopped;
                    break;
                }
                Fault::LoseAnswerTo(p) if request_line.contains(p.as_str()) => {
                    lose_answer.store(true, Ordering::SeqCst);
                    *f = Fault::None;
                }
                _ => {}
            }
        }
        if to_server.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = from_client.shutdown(Shutdown::Both);
    let _ = to_server.shutdown(Shutdown::Both);
}
