//! Cosmos DB backends for tests: the local Cosmos-compatible server
//! (`@vercel/cosmosdb-server` behind `tests/cosmos-server/launcher.js`,
//! installed and started here, never skipped) and the SDK's in-memory
//! emulator. Every test gets its own database and container.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock},
};

use azure_data_cosmos::{
    AccountEndpoint, AccountReference, CosmosClient, CosmosRuntimeBuilder, RoutingStrategy,
    options::Region,
};
use azure_data_cosmos_driver::in_memory_emulator::{
    InMemoryEmulatorHttpClient, VirtualAccountConfig, VirtualRegion,
};
use chat_sessions::store::{
    Backoff, DynMigrationStore,
    cosmos::{CosmosConfig, CosmosStore, connect, init_containers},
};

/// The well-known key of local Cosmos emulators (not a secret).
pub const EMULATOR_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

const SERVER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cosmos-server");

/// The launcher process, kept for the life of the test binary: when the
/// binary exits, the launcher's stdin closes and it stops.
struct Server {
    port: u16,
    _child: Child,
}

static SERVER: OnceLock<Mutex<Option<Server>>> = OnceLock::new();

/// Installs the server's npm package if needed (`npm ci`), starts the
/// launcher once per test binary, and returns its port. Panics rather than
/// skips when it cannot: a Cosmos test that did not run must fail.
pub fn server_port() -> u16 {
    let mut guard = SERVER
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(server) = guard.as_ref() {
        return server.port;
    }
    let installed = Path::new(SERVER_DIR).join("node_modules/@vercel/cosmosdb-server/package.json");
    if !installed.exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix", SERVER_DIR])
            .stdout(Stdio::null())
            .status()
            .expect("npm must be installed to run the Cosmos tests");
        assert!(status.success(), "npm ci for the Cosmos test server failed");
    }
    let (child, port) = launch(0);
    *guard = Some(Server {
        port,
        _child: child,
    });
    port
}

/// Starts a local Cosmos server on `port` (0: a free one) and returns it
/// with its port once it listens. It stops when the handle is dropped (its
/// stdin closes); `npm ci` must have run ([`server_port`] does it).
pub fn launch(port: u16) -> (Child, u16) {
    let mut child = Command::new("node")
        .arg(Path::new(SERVER_DIR).join("launcher.js"))
        .env("PORT", port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("COSMOS_SERVER_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("node must be installed to run the Cosmos tests");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("reading the launcher's LISTENING line");
    let port: u16 = line
        .trim()
        .strip_prefix("LISTENING ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected launcher output: {line:?}"));
    (child, port)
}

/// Settings for a fresh database on the local server.
pub fn server_config() -> CosmosConfig {
    CosmosConfig {
        endpoint: format!("http://127.0.0.1:{}/", server_port()),
        database: format!("test_{}", uuid::Uuid::new_v4().simple()),
        sessions_container: "chat_sessions".into(),
        legacy_container: "chat_messages".into(),
        legacy_partition_key: "/session_id".into(),
        key: Some(azure_core::credentials::Secret::new(EMULATOR_KEY)),
        client_id: None,
        region: "South Central US".into(),
        seal: Default::default(),
    }
}

/// A client and fresh containers on the local server.
pub async fn server_client() -> (CosmosClient, CosmosConfig) {
    let config = server_config();
    let client = connect(&config)
        .await
        .expect("connecting to the local Cosmos server");
    init_containers(&client, &config)
        .await
        .expect("creating test containers");
    (client, config)
}

/// A [`CosmosStore`] on the local Cosmos-compatible server.
pub async fn server_store() -> (DynMigrationStore, Box<dyn std::any::Any + Send + Sync>) {
    let (store, _) = server_cosmos_store().await;
    (Arc::new(store), Box::new(()))
}

/// The concrete store on the local server, with its client.
pub async fn server_cosmos_store() -> (CosmosStore, CosmosClient) {
    let (client, config) = server_client().await;
    let store = CosmosStore::open(&client, &config.database, &config.sessions_container)
        .await
        .expect("opening the sessions container");
    (store, client)
}

const EMULATOR_URL: &str = "https://eastus.emulator.local";

/// A client of a fresh in-memory emulator account with the containers made.
pub async fn emulator_client() -> (CosmosClient, CosmosConfig) {
    let config = VirtualAccountConfig::new(vec![VirtualRegion::new(
        "East US",
        azure_core::http::Url::parse(EMULATOR_URL).unwrap(),
    )])
    .expect("emulator account");
    let emulator = Arc::new(InMemoryEmulatorHttpClient::new(config));
    let account = AccountReference::with_authentication_key(
        EMULATOR_URL.parse::<AccountEndpoint>().unwrap(),
        azure_core::credentials::Secret::new("dGVzdGtleQ=="),
    );
    let client = CosmosClient::builder()
        .with_runtime(
            CosmosRuntimeBuilder::from(emulator.runtime_builder())
                .build()
                .await
                .expect("emulator runtime"),
        )
        .build(account, RoutingStrategy::ProximityTo(Region::EAST_US))
        .await
        .expect("emulator client");
    let settings = CosmosConfig {
        endpoint: EMULATOR_URL.into(),
        key: None,
        region: "East US".into(),
        ..server_config_without_server()
    };
    init_containers(&client, &settings)
        .await
        .expect("creating emulator containers");
    (client, settings)
}

fn server_config_without_server() -> CosmosConfig {
    CosmosConfig {
        endpoint: String::new(),
        database: "chat".into(),
        sessions_container: "chat_sessions".into(),
        legacy_container: "chat_messages".into(),
        legacy_partition_key: "/session_id".into(),
        key: None,
        client_id: None,
        region: String::new(),
        seal: Default::default(),
    }
}

/// The concrete store on a fresh in-memory emulator.
pub async fn emulator_cosmos_store() -> (CosmosStore, CosmosClient) {
    let (client, config) = emulator_client().await;
    let store = CosmosStore::open(&client, &config.database, &config.sessions_container)
        .await
        .expect("opening the emulator container");
    (store, client)
}

/// A [`CosmosStore`] on the SDK's in-memory emulator.
pub async fn emulator_store() -> (DynMigrationStore, Box<dyn std::any::Any + Send + Sync>) {
    let (store, client) = emulator_cosmos_store().await;
    (Arc::new(store), Box::new(client))
}

/// Every stored document of one user's partition, raw.
pub async fn partition_docs(
    container: &azure_data_cosmos::ContainerClient,
    user: &str,
) -> Vec<serde_json::Value> {
    use futures::TryStreamExt as _;
    container
        .query_items::<serde_json::Value>(
            azure_data_cosmos::Query::from("SELECT * FROM c"),
            azure_data_cosmos::FeedScope::partition(user.to_owned()),
            None,
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// The store `serve` runs on Cosmos DB: made not connected
/// ([`CosmosStore::connecting`]), then connected in the background's way
/// (at once) to a fresh in-memory emulator, so that the suite checks that
/// every operation reaches the container once it is there.
pub async fn connecting_emulator_store() -> (DynMigrationStore, Box<dyn std::any::Any + Send + Sync>)
{
    let (client, config) = emulator_client().await;
    let opened = CosmosStore::open(&client, &config.database, &config.sessions_container)
        .await
        .expect("opening the emulator container");
    let container = opened.container().unwrap().clone();
    let store = Arc::new(CosmosStore::connecting(&config));
    assert!(store.container().is_err(), "not connected before connect");
    store
        .connect(Backoff::default(), || {
            let container = container.clone();
            async move { Ok(container) }
        })
        .await;
    (store, Box::new(client))
}

/// Turns on fault injection on the local server for `database`'s documents
/// (see `tests/cosmos-server/README.md`): `plan` names per-request
/// probabilities of `throttle`, `unavailable`, `reset`, `lost_response`
/// and `delay`, and the `seed`.
pub async fn set_faults(database: &str, plan: serde_json::Value) {
    let url = format!("http://127.0.0.1:{}/_faults/{database}", server_port());
    let response = reqwest::Client::new()
        .put(url)
        .json(&plan)
        .send()
        .await
        .expect("fault control");
    assert_eq!(response.status(), 204, "{:?}", response.text().await);
}

/// Turns faults off for `database`; returns what was injected
/// (`{"requests": n, "injected": {"throttle": n, …}}`).
pub async fn clear_faults(database: &str) -> serde_json::Value {
    let url = format!("http://127.0.0.1:{}/_faults/{database}", server_port());
    let response = reqwest::Client::new()
        .delete(url)
        .send()
        .await
        .expect("fault control");
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Creates session `id` owned by `user` (no name, an empty context) in
/// `store`; returns its owner and id.
pub async fn owned_session(
    store: &CosmosStore,
    user: &str,
    id: &str,
) -> (
    chat_sessions::store::Owner,
    chat_sessions::domain::SessionId,
) {
    use chat_sessions::{
        domain::{JsonObject, NewSession, SessionId, Timestamp, UserId},
        store::{Owner, prelude::*},
    };
    let user = UserId::parse(user).unwrap();
    let id = SessionId::parse(id).unwrap();
    store
        .create_session(
            NewSession::new(
                Some(id.clone()),
                Some(user.clone()),
                None,
                JsonObject::new(),
                Timestamp::now(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    (Owner::User(user), id)
}

/// Requests the local server answered for `database` after answer number
/// `after` (from its log of charges), and the number of its newest answer:
/// an operation's requests counted at the server itself.
pub async fn answered(database: &str, after: u64) -> (u64, u64) {
    let url = format!("http://127.0.0.1:{}/_launcher/charges", server_port());
    let log: Vec<serde_json::Value> = reqwest::get(url).await.unwrap().json().await.unwrap();
    let path = format!("/dbs/{database}/");
    let count = log
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > after)
        .filter(|e| e["path"].as_str().unwrap().contains(&path))
        .count() as u64;
    (count, log.last().map_or(0, |e| e["seq"].as_u64().unwrap()))
}
