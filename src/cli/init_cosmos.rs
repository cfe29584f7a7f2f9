//! `chat-sessions init-cosmos`: creates the database and containers on a
//! local emulator (key auth). In Azure, `infra/` provisions them: a managed
//! identity cannot create containers.

use anyhow::Context as _;

use crate::{
    config::{Config, Overrides},
    store::cosmos,
};

/// Runs the command.
pub async fn run() -> anyhow::Result<()> {
    let config = Config::from_env(Overrides::default())?;
    let cosmos = config
        .cosmos
        .context("COSMOS_ENDPOINT is not set: there is no Cosmos DB to initialise")?;
    if cosmos.key.is_none() {
        anyhow::bail!(
            "init-cosmos needs COSMOS_KEY (an emulator's key): with Entra ID the data plane cannot \
             create containers; in Azure, infra/ provisions them"
        );
    }
    let client = cosmos::connect(&cosmos).await?;
    cosmos::init_containers(&client, &cosmos).await
}
