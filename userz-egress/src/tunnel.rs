//! Byte pumping for an established CONNECT tunnel, closed when idle.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

const BUF: usize = 16 * 1024;

/// Copies both ways until both sides have closed, or until neither side has
/// sent a byte for `idle` (then `TimedOut`). A side's EOF is passed on as a
/// write shutdown so half-closed protocols keep working.
pub(crate) async fn pump<A, B>(a: A, b: B, idle: Duration) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let mut a_buf = vec![0u8; BUF];
    let mut b_buf = vec![0u8; BUF];
    let (mut a_open, mut b_open) = (true, true);
    let deadline = tokio::time::sleep(idle);
    tokio::pin!(deadline);
    while a_open || b_open {
        tokio::select! {
            read = a_read.read(&mut a_buf), if a_open => {
                match read? {
                    0 => { a_open = false; b_write.shutdown().await?; }
                    n => b_write.write_all(&a_buf[..n]).await?,
                }
            }
            read = b_read.read(&mut b_buf), if b_open => {
                match read? {
                    0 => { b_open = false; a_write.shutdown().await?; }
                    n => a_write.write_all(&b_buf[..n]).await?,
                }
            }
            () = &mut deadline => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "egress tunnel idle"));
            }
        }
        deadline.as_mut().reset(Instant::now() + idle);
    }
    Ok(())
}
