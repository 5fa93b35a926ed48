//! `cargo run -p userz-embedded-axum`: the host service on `USERZ_LISTEN`
//! (default `127.0.0.1:3000`) with Userz inside it.

use std::net::SocketAddr;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = userz_server::Config::load(None)?;
    if std::env::var_os("USERZ_LISTEN").is_none() {
        config.listen = SocketAddr::from(([127, 0, 0, 1], 3000));
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let public_url = config.public_url(listener.local_addr()?);
    let (app, userz) = userz_embedded_axum::assemble(config, public_url.clone()).await?;
    println!("acme backend with Userz on {public_url} (its own /status and /api/orders; the Userz dashboard at /)");
    if let Some(curl) = userz.curl_line() {
        println!("submit feedback:\n  {curl}");
    }
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    userz.shutdown();
    Ok(())
}
