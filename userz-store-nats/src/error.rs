//! The crate's private error, converted into [`userz_core::Error`].

use userz_core::Error;

/// What went wrong talking to NATS. Converts into [`userz_core::Error`]: transport
/// and server trouble become `Unavailable`/`Timeout`, undecodable messages `Corrupt`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// Could not connect.
    #[error("connect: {0}")]
    Connect(String),
    /// A request or publish did not get an answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The server answered with a JetStream API error.
    #[error("jetstream error {code}: {description}")]
    Api {
        /// JetStream `err_code`.
        code: u64,
        /// The server's description.
        description: String,
    },
    /// Transport or client failure.
    #[error("{0}")]
    Transport(String),
    /// A stored message lacks a header or holds an undecodable one.
    #[error("corrupt message: {0}")]
    Corrupt(String),
}

impl From<NatsError> for Error {
    fn from(e: NatsError) -> Self {
        match e {
            NatsError::Timeout(m) => Error::Timeout(format!("nats: {m}")),
            NatsError::Corrupt(m) => Error::Corrupt(format!("nats: {m}")),
            other => Error::Unavailable(format!("nats: {other}")),
        }
    }
}

/// Maps any client error into a transport error (timeouts kept apart).
pub(crate) fn transport<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| {
        let msg = format!("{what}: {e}");
        if msg.contains("timed out") {
            NatsError::Timeout(msg).into()
        } else {
            NatsError::Transport(msg).into()
        }
    }
}
