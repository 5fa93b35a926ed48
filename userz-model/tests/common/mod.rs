//! Helpers shared by the integration tests: front ends that put the scripted
//! model server behind a Unix socket, TLS or a misbehaving raw server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use userz_core::error::Error;

/// `(message, retryable)` of a model effect error; panics on anything else.
#[track_caller]
pub fn effect(err: Error) -> (String, bool) {
    match err {
        Error::Effect { port, message, retryable } => {
            assert_eq!(port, "model");
            (message, retryable)
        }
        other => panic!("expected a model effect error, got {other:?}"),
    }
}

/// Forwards every connection on a new Unix socket in `dir` to `upstream`.
pub async fn unix_front(dir: &Path, upstream: SocketAddr) -> PathBuf {
    let path = dir.join("egress.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut server = TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    path
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

pub fn test_certificate() -> rustls_pki_types::CertificateDer<'static> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(data("localhost.cert.pem")).unwrap()
}

/// Terminates TLS (certificate for `localhost`) and forwards plaintext to `upstream`.
pub async fn tls_front(upstream: SocketAddr) -> SocketAddr {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::PrivateKeyDer;
    let key = PrivateKeyDer::from_pem_file(data("localhost.key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![test_certificate()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let mut server = TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                }
            });
        }
    });
    addr
}

/// A server that reads one request head and answers `response` verbatim
/// (for shapes the scripted server does not produce, like an endless
/// chunked body).
pub async fn raw_server(response: Vec<u8>, chunk_forever: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let response = Arc::new(response);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let response = Arc::clone(&response);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = stream.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                if stream.write_all(&response).await.is_err() {
                    return;
                }
                if chunk_forever {
                    let chunk = format!("{:x}\r\n{}\r\n", 4096, "a".repeat(4096));
                    while stream.write_all(chunk.as_bytes()).await.is_ok() {}
                }
            });
        }
    });
    addr
}

/// A loopback port nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}
