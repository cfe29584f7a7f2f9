//! The migration on Cosmos DB: the legacy container on the local
//! Cosmos-compatible server, seeded through the SDK, into the sessions
//! container; with --delete-old, only orphans and conflicts stay behind.

use std::{collections::BTreeSet, sync::Arc};

use azure_data_cosmos::{ContainerClient, FeedScope, PartitionKey, Query};
use chat_sessions::{
    domain::SessionId,
    migration::{self, cosmos_source::CosmosLegacySource},
    store::{DynMigrationStore, Owner},
};
use futures::TryStreamExt as _;
use serde_json::Value;

use crate::{
    common::cosmos,
    legacy_data::{LegacySet, generate, run_pass, verify},
};

/// Writes the legacy set into the old container (partitioned by
/// `/session_id`). A container cannot hold one id twice in a partition, so
/// duplicate deliveries are not part of this set.
pub(crate) async fn seed(legacy: &ContainerClient, set: &LegacySet) {
    for record in &set.records {
        let id = record["id"].as_str().unwrap();
        let pk = match record.get("session_id") {
            Some(Value::String(s)) => PartitionKey::from(s.clone()),
            Some(Value::Null) => PartitionKey::from(PartitionKey::NULL),
            _ => PartitionKey::from(PartitionKey::UNDEFINED),
        };
        legacy.create_item(pk, id, record, None).await.unwrap();
    }
}

pub(crate) async fn legacy_ids(legacy: &ContainerClient) -> BTreeSet<String> {
    let docs: Vec<Value> = legacy
        .query_items::<Value>(
            Query::from("SELECT c.id FROM c"),
            FeedScope::full_container(),
            None,
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    docs.iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn run(
    store: &DynMigrationStore,
    legacy: &ContainerClient,
    dry_run: bool,
    delete_old: bool,
    run_id: &str,
) -> migration::Report {
    let mut source = CosmosLegacySource::new(legacy.clone(), "/session_id", 100);
    run_pass(&mut source, store, dry_run, delete_old, run_id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosmos_legacy_container_migrates_and_delete_old_leaves_only_orphans_and_conflicts() {
    let set = generate(400, 5, 60, false);
    assert!(set.records.len() > 2000, "thousands of messages");
    let (client, config) = cosmos::server_client().await;
    let database = client.database_client(&config.database);
    let legacy = database
        .container_client(&config.legacy_container, None)
        .await
        .unwrap();
    seed(&legacy, &set).await;
    let store = chat_sessions::store::cosmos::CosmosStore::open(
        &client,
        &config.database,
        &config.sessions_container,
    )
    .await
    .unwrap();
    let store: DynMigrationStore = Arc::new(store);
    let all_ids = legacy_ids(&legacy).await;
    assert_eq!(all_ids.len(), set.records.len());

    // Dry run: a report, and not one write.
    let dry = run(&store, &legacy, true, false, "dry").await;
    assert!(dry.finished);
    assert_eq!(dry.sessions_created as usize, set.sessions().len());
    assert_eq!(dry.messages_migrated as usize, set.message_count());
    let first = SessionId::parse(set.sessions().into_iter().next().unwrap()).unwrap();
    assert!(store.get_session(&Owner::Anonymous, &first).await.is_err());
    assert_eq!(legacy_ids(&legacy).await, all_ids);

    // The real run, deleting what it moved.
    let report = run(&store, &legacy, false, true, "real").await;
    assert!(report.finished);
    assert_eq!(report.sessions_created as usize, set.sessions().len());
    assert_eq!(report.messages_migrated as usize, set.message_count());
    assert_eq!(report.orphan_count as usize, set.orphans.len());
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.old_deleted as usize, set.message_count());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    verify(&store, &set).await;
    let left = legacy_ids(&legacy).await;
    let expected_left: BTreeSet<String> = set
        .records
        .iter()
        .filter(|r| {
            !r["session_id"].is_string() || r["session_id"] == set.conflict_session.as_str()
        })
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(left, expected_left, "only orphans and the conflict remain");

    // Again: nothing to move, nothing changes.
    let again = run(&store, &legacy, false, true, "again").await;
    assert_eq!(
        (
            again.sessions_created,
            again.messages_migrated,
            again.old_deleted
        ),
        (0, 0, 0)
    );
    verify(&store, &set).await;
}
