//! The operator's commands on destinations: `destinations`, `pause` and `resume`.

use std::io::IsTerminal;

use anyhow::Result;
use clap::Args;
use inbox_core::clock::now_ms;
use inbox_core::destination::DestinationView;
use inbox_core::store::{destination_views, set_paused};

use super::args::StoreArgs;
use super::environment::Environment;
use crate::terminal;

#[derive(Args)]
pub struct Destinations {
    /// JSON lines even on a terminal.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

impl Destinations {
    pub async fn run(self, env: &Environment) -> Result<()> {
        let (store, _) = self.store.open(env).await?;
        let views = destination_views(store.as_ref()).await?;
        let stdout = std::io::stdout();
        if !self.json && stdout.is_terminal() {
            print!("{}", table(&views));
        } else {
            for view in views {
                println!("{}", serde_json::to_string(&view)?);
            }
        }
        Ok(())
    }
}

/// `inbox pause NAME` and `inbox resume NAME`.
#[derive(Args)]
pub struct Switch {
    /// The destination, as `inbox destinations` names it.
    name: String,
    #[command(flatten)]
    store: StoreArgs,
}

impl Switch {
    pub async fn run(self, env: &Environment, paused: bool) -> Result<()> {
        let (store, _) = self.store.open(env).await?;
        let view = set_paused(store.as_ref(), &self.name, paused, now_ms()).await?;
        println!("{}", serde_json::to_string(&view)?);
        Ok(())
    }
}

fn table(views: &[DestinationView]) -> String {
    let mut out = format!(
        "{:<40} {:<7} {:>8} {:>8}  {:<19}  {}\n",
        "DESTINATION", "STATE", "FAILURES", "HELD", "OPENED", "LAST ERROR"
    );
    for view in views {
        out.push_str(&format!(
            "{:<40} {:<7} {:>8} {:>8}  {:<19}  {}\n",
            view.name,
            view.state,
            view.failures,
            view.held,
            view.opened_at.map(terminal::local_time).unwrap_or_default(),
            view.last_error.as_deref().unwrap_or("")
        ));
    }
    out
}
