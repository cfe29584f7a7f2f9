//! Reaching the account at start and telling why it fails: the connection
//! a background task retries ([`reach`]), the readiness check of a connected
//! store, and the translation of SDK errors into causes an operator can act
//! on ([`Cause`]).
//!
//! What the SDK reports, as found against the local Cosmos server and a
//! local App Service identity endpoint (`IDENTITY_ENDPOINT` /
//! `IDENTITY_HEADER`):
//! - no token: `401/20402` ("failed to acquire AAD token"), whose innermost
//!   error is the identity endpoint's answer ("The requested identity has not
//!   been assigned to this resource" for its 400, "The request failed: …"
//!   otherwise) or the transport error reaching it;
//! - endpoint unreachable: `503/20010` (connection, DNS) or another
//!   client-side 503 / 408, never from the wire;
//! - missing database or container: `404/0` from resolving the container.
//!   A data request to a container deleted later gives `404/1003`.

use std::time::Duration;

use async_trait::async_trait;
use azure_data_cosmos::{AccountReference, ContainerClient, CosmosClient, CosmosError};

use super::{BACKEND, CosmosConfig, CosmosStore, client};
use crate::store::{
    Cause, Connection, HealthStore, StoreState, Unready,
    health::{Identity, innermost},
};

/// Where the store is and who it signs in as, for the causes it reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// `COSMOS_ENDPOINT`.
    pub endpoint: String,
    /// How it signs in; `None` with an account key.
    pub identity: Option<Identity>,
    /// `COSMOS_DATABASE`.
    pub database: String,
    /// `COSMOS_SESSIONS_CONTAINER`.
    pub container: String,
}

impl Target {
    /// The target `config` describes.
    pub fn of(config: &CosmosConfig) -> Self {
        Self {
            endpoint: config.endpoint.clone(),
            identity: client::identity(config),
            database: config.database.clone(),
            container: config.sessions_container.clone(),
        }
    }
}

/// The item the readiness check reads: it never exists, so a healthy
/// container answers 404 for one request unit.
const PROBE_PARTITION: &str = "__chat_sessions_readiness__";
const PROBE_ID: &str = "probe";

/// One connection attempt: the client (which reads the account, and so
/// needs a token), the sessions container, and one request to it. The
/// client comes back too, for the migration's legacy container.
pub async fn reach(
    config: &CosmosConfig,
    account: AccountReference,
) -> Result<(CosmosClient, ContainerClient), Unready> {
    let target = Target::of(config);
    let client = client::client(config, account)
        .await
        .map_err(|e| classify(&e, &target))?;
    let container = client
        .database_client(&config.database)
        .container_client(&config.sessions_container, None)
        .await
        .map_err(anyhow::Error::new);
    let container = match container {
        Ok(container) => container,
        Err(e) if cosmos_error(&e).is_some_and(|c| status(c) == 404) => {
            return Err(missing(&client, &target).await);
        }
        Err(e) => return Err(classify(&e, &target)),
    };
    probe(&container, &target).await?;
    Ok((client, container))
}

/// [`reach`] once, and the store over what it reached: for the commands
/// that need the store at once rather than in the background.
pub async fn open(
    config: &CosmosConfig,
    account: AccountReference,
) -> Result<(CosmosClient, CosmosStore), Unready> {
    let (client, container) = reach(config, account).await?;
    let connection = Connection::connected(BACKEND, container);
    let store = CosmosStore::over(connection, Target::of(config)).with_seal_policy(config.seal);
    Ok((client, store))
}

/// Which of database and container is missing, after the container was not
/// found.
async fn missing(client: &CosmosClient, target: &Target) -> Unready {
    let cause = match client.database_client(&target.database).read(None).await {
        Err(e) if status(&e) == 404 => Cause::DatabaseMissing {
            database: target.database.clone(),
        },
        _ => Cause::ContainerMissing {
            database: target.database.clone(),
            container: target.container.clone(),
        },
    };
    Unready::new(cause, Duration::ZERO)
}

#[async_trait]
impl HealthStore for CosmosStore {
    fn kind(&self) -> &'static str {
        "cosmos"
    }

    fn state(&self) -> StoreState {
        self.connection.state()
    }

    async fn check_ready(&self) -> Result<(), Unready> {
        let target = &self.target;
        self.connection
            .check_ready(async |container| probe(container, target).await)
            .await
    }
}

impl CosmosStore {
    /// The same store, reporting causes about `target`.
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = std::sync::Arc::new(target);
        self
    }
}

/// One point read of an item that never exists: 404 means the container
/// answers.
async fn probe(container: &ContainerClient, target: &Target) -> Result<(), Unready> {
    match container.read_item(PROBE_PARTITION, PROBE_ID, None).await {
        Ok(_) => Ok(()),
        Err(e) if e.status().is_not_found() => Ok(()),
        // The container (or its database) was deleted.
        Err(e) if status(&e) == 404 => Err(Unready::new(
            Cause::ContainerMissing {
                database: target.database.clone(),
                container: target.container.clone(),
            },
            Duration::ZERO,
        )),
        Err(e) => Err(classify(&anyhow::Error::new(e), target)),
    }
}

fn status(e: &CosmosError) -> u16 {
    u16::from(e.status().status_code())
}

fn cosmos_error(e: &anyhow::Error) -> Option<&CosmosError> {
    e.chain().find_map(|c| c.downcast_ref::<CosmosError>())
}

/// The cause of a failed attempt or check, from the SDK's error.
pub fn classify(e: &anyhow::Error, target: &Target) -> Unready {
    let reason = innermost(e.as_ref());
    let cause = match cosmos_error(e) {
        None => Cause::Other { reason },
        Some(c) => {
            let s = c.status();
            let sub = s.sub_status().map(|s| s.value());
            match (status(c), sub) {
                // The SDK could not get a token, or not sign the request.
                (401, Some(20401 | 20402)) => match &target.identity {
                    Some(identity) => Cause::Credential {
                        identity: identity.clone(),
                        reason,
                    },
                    None => Cause::Other {
                        reason: format!("signing the request with COSMOS_KEY failed: {reason}"),
                    },
                },
                (401 | 403, _) if c.is_from_wire() && !s.is_write_forbidden() => Cause::Refused {
                    status: status(c),
                    reason,
                },
                (408 | 503, _) if !c.is_from_wire() => Cause::Unreachable {
                    endpoint: target.endpoint.clone(),
                    reason,
                },
                (code @ (408 | 429 | 449 | 500..=599), _) => Cause::Busy {
                    status: code,
                    reason,
                },
                (code, _) => Cause::Other {
                    reason: format!("Cosmos DB answered {code}: {reason}"),
                },
            }
        }
    };
    Unready::new(cause, Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::StatusCode;
    use azure_data_cosmos::CosmosStatus;

    fn target(identity: Option<Identity>) -> Target {
        Target {
            endpoint: "https://acct.documents.azure.com:443/".into(),
            identity,
            database: "chat".into(),
            container: "chat_sessions".into(),
        }
    }

    fn error(status: u16, sub: Option<u16>, message: &'static str) -> anyhow::Error {
        let mut s = CosmosStatus::new(StatusCode::from(status));
        if let Some(sub) = sub {
            s = s.with_sub_status(sub);
        }
        anyhow::Error::new(
            CosmosError::builder()
                .with_status(s)
                .with_message(message)
                .with_source(std::io::Error::other("the innermost reason"))
                .build(),
        )
        .context("connecting to Cosmos DB")
    }

    #[test]
    fn a_token_failure_names_the_identity() {
        let why = classify(
            &error(401, Some(20402), "failed to acquire AAD token"),
            &target(Some(Identity::UserAssigned("1234".into()))),
        );
        assert_eq!(why.cause.code(), "credential");
        let text = why.to_string();
        assert!(text.contains("client id 1234"), "{text}");
        assert!(text.contains("the innermost reason"), "{text}");
    }

    #[test]
    fn a_client_side_503_is_an_unreachable_endpoint() {
        let why = classify(&error(503, Some(20010), "fetch"), &target(None));
        assert_eq!(why.cause.code(), "unreachable");
        assert!(
            why.to_string()
                .contains("https://acct.documents.azure.com:443/")
        );
    }

    #[test]
    fn anything_else_is_reported_with_its_status() {
        let why = classify(&error(400, None, "bad"), &target(None));
        assert_eq!(why.cause.code(), "other");
        assert!(why.to_string().contains("400"), "{why}");
    }
}
