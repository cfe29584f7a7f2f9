//! Whether a store can serve, in words an operator can act on: what
//! liveness (`GET /api/health`) reports without touching the backend, and
//! what readiness (`GET /api/health/ready`) finds when it asks the backend.

use std::{fmt, time::Duration};

use async_trait::async_trait;

/// What a store says about itself, for health answers and logs.
#[async_trait]
pub trait HealthStore {
    /// A short name of the backend, for health answers and logs.
    fn kind(&self) -> &'static str;

    /// The store's state as last known, without asking the backend (what
    /// liveness reports). A store that was opened before serving is ready.
    fn state(&self) -> StoreState {
        StoreState::Ready
    }

    /// Asks the backend, with its cheapest real request, whether it can
    /// serve now (what readiness reports).
    async fn check_ready(&self) -> Result<(), Unready> {
        Ok(())
    }
}

/// The store's state as last known, without asking the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreState {
    /// Open, and the last check (if any) found it answering.
    Ready,
    /// Not connected yet: the first connection is still being attempted.
    Connecting {
        /// Attempts made so far.
        attempts: u32,
        /// Why the last attempt failed; `None` before the first one ends.
        last: Option<Unready>,
    },
    /// Connected, but the last readiness check failed.
    Unavailable(Unready),
}

impl StoreState {
    /// A one-word name: `ready`, `connecting` or `unavailable`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Connecting { .. } => "connecting",
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// Why it is not ready, if known.
    pub fn cause(&self) -> Option<&Unready> {
        match self {
            Self::Ready => None,
            Self::Connecting { last, .. } => last.as_ref(),
            Self::Unavailable(why) => Some(why),
        }
    }
}

/// Why a store cannot serve now, and when to ask again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unready {
    /// What is wrong.
    pub cause: Cause,
    /// When asking again may help.
    pub retry_after: Duration,
}

impl Unready {
    /// `cause`, worth asking again after `retry_after`.
    pub fn new(cause: Cause, retry_after: Duration) -> Self {
        Self { cause, retry_after }
    }
}

impl fmt::Display for Unready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cause.fmt(f)
    }
}

/// What keeps a store from serving. Each variant's text says what is wrong
/// and what to do, naming the setting involved; none ever carries a key, a
/// token or another secret (the `reason`s are the innermost error of the
/// SDK, which carries none either).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// No attempt has finished yet.
    Starting {
        /// The backend, e.g. `Cosmos DB`.
        backend: &'static str,
    },
    /// The managed identity (or developer login) could not get a token.
    Credential {
        /// Which identity was asked for.
        identity: Identity,
        /// The innermost error.
        reason: String,
    },
    /// The account refused the token or key it was given (401/403).
    Refused {
        /// The HTTP status from the account.
        status: u16,
        /// The innermost error.
        reason: String,
    },
    /// The endpoint cannot be reached (DNS, connection, TLS, timeout).
    Unreachable {
        /// The configured endpoint.
        endpoint: String,
        /// The innermost error.
        reason: String,
    },
    /// The database named in the settings does not exist.
    DatabaseMissing {
        /// Its name.
        database: String,
    },
    /// The container named in the settings does not exist.
    ContainerMissing {
        /// The database.
        database: String,
        /// The container.
        container: String,
    },
    /// The backend answers, but refuses work for now (throttling, a 5xx).
    Busy {
        /// The HTTP status.
        status: u16,
        /// The innermost error.
        reason: String,
    },
    /// The disk holding the embedded store's data directory is full.
    StorageFull {
        /// The data directory, as configured.
        dir: String,
    },
    /// The embedded store's data directory cannot be written: read-only,
    /// or gone.
    StorageUnavailable {
        /// The data directory, as configured.
        dir: String,
        /// What the system said.
        reason: String,
    },
    /// Anything else.
    Other {
        /// What failed, in the store's words.
        reason: String,
    },
}

impl Cause {
    /// A stable short code, for logs and alert rules.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Starting { .. } => "starting",
            Self::Credential { .. } => "credential",
            Self::Refused { .. } => "refused",
            Self::Unreachable { .. } => "unreachable",
            Self::DatabaseMissing { .. } => "database-missing",
            Self::ContainerMissing { .. } => "container-missing",
            Self::Busy { .. } => "busy",
            Self::StorageFull { .. } => "storage-full",
            Self::StorageUnavailable { .. } => "storage-unavailable",
            Self::Other { .. } => "other",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Starting { backend } => {
                write!(
                    f,
                    "connecting to {backend}: the first attempt has not finished yet"
                )
            }
            Self::Credential { identity, reason } => {
                write!(
                    f,
                    "{identity} could not get a token for Cosmos DB: {reason}. "
                )?;
                f.write_str(match identity {
                    Identity::DeveloperLogin => {
                        "Sign in with `az login` (or `azd auth login`), or set COSMOS_KEY for a \
                         local emulator"
                    }
                    _ => {
                        "Check that this identity is assigned to the Function App; right after a \
                         deployment the assignment can take a few minutes to reach the app, and \
                         this service keeps retrying meanwhile"
                    }
                })
            }
            Self::Refused { status, reason } => write!(
                f,
                "Cosmos DB refused the app's credentials (HTTP {status}): {reason}. With a managed \
                 identity, give it a data role on the account (Cosmos DB Built-in Data \
                 Contributor; role assignments can take a few minutes to apply); with COSMOS_KEY, \
                 check the key"
            ),
            Self::Unreachable { endpoint, reason } => write!(
                f,
                "Cosmos DB at {endpoint} (COSMOS_ENDPOINT) cannot be reached: {reason}. Check the \
                 endpoint, DNS, and the account's network rules (firewall, private endpoint); \
                 this service keeps retrying"
            ),
            Self::DatabaseMissing { database } => write!(
                f,
                "the Cosmos DB database {database:?} (COSMOS_DATABASE) does not exist in the \
                 account. Deploy infra/ (which creates it), or run `chat-sessions init-cosmos` \
                 (creates the database and containers; needs COSMOS_KEY, so local emulators only)"
            ),
            Self::ContainerMissing {
                database,
                container,
            } => write!(
                f,
                "the Cosmos DB container {container:?} (COSMOS_SESSIONS_CONTAINER) does not exist \
                 in database {database:?}. Deploy infra/ (which creates it), or run \
                 `chat-sessions init-cosmos` (creates the database and containers; needs \
                 COSMOS_KEY, so local emulators only)"
            ),
            Self::Busy { status, reason } => write!(
                f,
                "Cosmos DB answers but cannot take work now (HTTP {status}): {reason}"
            ),
            Self::StorageFull { dir } => write!(
                f,
                "the disk holding the data directory {dir} (DATA_DIR) is full: writes are \
                 refused (507) and reads still work. Free space on that disk, or grow it; writes \
                 resume by themselves, without a restart, and nothing acknowledged before is lost"
            ),
            Self::StorageUnavailable { dir, reason } => write!(
                f,
                "the data directory {dir} (DATA_DIR) cannot be written: {reason}. Writes are \
                 refused (507). Check that it exists, is mounted and is writable by this \
                 service; restart the service if writes do not resume"
            ),
            Self::Other { reason } => f.write_str(reason),
        }
    }
}

/// Which identity the app signs in to Cosmos DB as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A user-assigned managed identity, by client id (`AZURE_CLIENT_ID`).
    UserAssigned(String),
    /// The app's system-assigned managed identity (no `AZURE_CLIENT_ID`).
    SystemAssigned,
    /// The developer's `az` / `azd` login (no managed identity here).
    DeveloperLogin,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UserAssigned(client_id) => write!(
                f,
                "the user-assigned managed identity with client id {client_id} (AZURE_CLIENT_ID)"
            ),
            Self::SystemAssigned => {
                f.write_str("the system-assigned managed identity (AZURE_CLIENT_ID is not set)")
            }
            Self::DeveloperLogin => f.write_str("the developer login (az / azd)"),
        }
    }
}

/// The innermost error of `error`'s source chain, on one line and at most
/// 300 characters: the part of an SDK error that says what really happened
/// ("Connection refused", "The requested identity has not been assigned to
/// this resource"), without the layers of context around it.
pub fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let text = inner.to_string();
    let line = text.lines().next().unwrap_or_default().trim();
    let mut out: String = line.chars().take(300).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_name_their_setting_and_what_to_do() {
        let missing = Cause::ContainerMissing {
            database: "chat".into(),
            container: "sessions".into(),
        }
        .to_string();
        assert!(missing.contains("\"sessions\""), "{missing}");
        assert!(missing.contains("COSMOS_SESSIONS_CONTAINER"), "{missing}");
        assert!(missing.contains("init-cosmos"), "{missing}");
        let credential = Cause::Credential {
            identity: Identity::UserAssigned("0000".into()),
            reason: "The requested identity has not been assigned to this resource".into(),
        }
        .to_string();
        assert!(
            credential.contains("client id 0000 (AZURE_CLIENT_ID)"),
            "{credential}"
        );
        assert!(credential.contains("has not been assigned"), "{credential}");
    }

    #[test]
    fn innermost_is_the_last_source_on_one_line() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused\nmore");
        let outer = anyhow::Error::new(io).context("connecting");
        assert_eq!(innermost(outer.as_ref()), "refused");
    }
}
