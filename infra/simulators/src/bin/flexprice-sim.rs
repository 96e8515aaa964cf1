//! `flexprice-sim`: the Flexprice simulator as a server.
//!
//! Usage: `flexprice-sim [--port 4020] [--api-key KEY] [--webhook-url URL --webhook-secret whsec_...]`
//! (or FLEXPRICE_SIM_API_KEY / FLEXPRICE_SIM_WEBHOOK_URL / FLEXPRICE_SIM_WEBHOOK_SECRET).

use std::net::{Ipv4Addr, SocketAddr};

use shared::domain::secret::Secret;
use simulators::common::cli_arg;
use simulators::flexprice::{Simulator, WebhookTarget};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::adapters::telemetry::init();
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = cli_arg(&args, "--port", "FLEXPRICE_SIM_PORT")
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(4020);
    let api_key = cli_arg(&args, "--api-key", "FLEXPRICE_SIM_API_KEY")
        .unwrap_or_else(|| "fp_sim_api_key".into());
    let webhook = match (
        cli_arg(&args, "--webhook-url", "FLEXPRICE_SIM_WEBHOOK_URL"),
        cli_arg(&args, "--webhook-secret", "FLEXPRICE_SIM_WEBHOOK_SECRET"),
    ) {
        (Some(url), Some(secret)) => Some(WebhookTarget {
            url,
            secret: Secret::new(secret),
        }),
        _ => None,
    };
    let running = Simulator::new(&api_key, webhook)?
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await?;
    println!("flexprice-sim listening on {}", running.url);
    tokio::signal::ctrl_c().await?;
    running.task.abort();
    Ok(())
}
