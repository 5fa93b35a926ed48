//! The raw baseline of the HTTP load bench (`benches/load/run.sh`): a bare
//! axum handler for `POST /v1/feedback` that only parses the JSON body into a
//! `serde_json::Value` and answers 201. No auth, no validation, no storage:
//! what the full server's figures are compared with.
//!
//! ```sh
//! load-baseline --addr 127.0.0.1:0   # prints "listening on 127.0.0.1:PORT"
//! ```

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "load-baseline", about = "Bare axum POST /v1/feedback that parses JSON and answers 201")]
struct Args {
    /// Address to listen on (loopback only; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
}

async fn feedback(Json(body): Json<serde_json::Value>) -> StatusCode {
    // Keep the parse observable so it cannot be optimised away.
    if body.is_object() {
        StatusCode::CREATED
    } else {
        StatusCode::BAD_REQUEST
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if !args.addr.ip().is_loopback() {
        return Err(format!("--addr {} is not a loopback address", args.addr).into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr).await?;
        println!("listening on {}", listener.local_addr()?);
        let app = Router::new().route("/v1/feedback", post(feedback));
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}
