//! `razorpay-sim`: the Razorpay simulator as a server.
//!
//! Usage: `razorpay-sim [--port 4010] [--key-id ID] [--key-secret SECRET]
//!                      [--webhook-url URL --webhook-secret SECRET]`
//! (or RAZORPAY_SIM_KEY_ID / RAZORPAY_SIM_KEY_SECRET / RAZORPAY_SIM_WEBHOOK_URL /
//! RAZORPAY_SIM_WEBHOOK_SECRET).

use std::net::{Ipv4Addr, SocketAddr};

use shared::domain::secret::Secret;
use simulators::common::cli_arg;
use simulators::razorpay::{SimConfig, Simulator, WebhookTarget};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::adapters::telemetry::init();
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = cli_arg(&args, "--port", "RAZORPAY_SIM_PORT")
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(4010);
    let key_id =
        cli_arg(&args, "--key-id", "RAZORPAY_SIM_KEY_ID").unwrap_or_else(|| "rzp_test_sim".into());
    let key_secret = cli_arg(&args, "--key-secret", "RAZORPAY_SIM_KEY_SECRET")
        .unwrap_or_else(|| "sim_key_secret".into());
    let mut config = SimConfig::new(&key_id, &key_secret);
    if let (Some(url), Some(secret)) = (
        cli_arg(&args, "--webhook-url", "RAZORPAY_SIM_WEBHOOK_URL"),
        cli_arg(&args, "--webhook-secret", "RAZORPAY_SIM_WEBHOOK_SECRET"),
    ) {
        config.webhook = Some(WebhookTarget {
            url,
            secret: Secret::new(secret),
        });
    }
    let running = Simulator::new(config)?
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await?;
    println!(
        "razorpay-sim listening on {} (key id {key_id})",
        running.url
    );
    tokio::signal::ctrl_c().await?;
    running.task.abort();
    Ok(())
}
