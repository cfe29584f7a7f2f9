//! What conversations as trees cost on Cosmos DB: a fork (an append under
//! an earlier message) and the switch back, at the end, in the middle and
//! at the start of a 1,000-message session; appends after each; and reading
//! a 50-message session that has many alternatives.

use chat_sessions::{
    domain::{MessageId, NewMessage, Parent},
    store::{BranchStore as _, Owner, cosmos::CosmosStore, prelude::*},
};

use crate::{Cost, cosmos, measure, typical_message};

fn row(operation: &str, at: &str, cost: Cost) {
    println!(
        "| {operation} | {at} | {:.1} | {:.2} | {:.2} |",
        cost.requests, cost.model_ru, cost.emulator_ru
    );
}

/// A session of `n` typical messages on a fresh emulator; its store, owner,
/// id and the ids of its messages.
async fn session(
    content: &str,
    user: &str,
    n: usize,
) -> (
    CosmosStore,
    Box<dyn std::any::Any>,
    Owner,
    chat_sessions::domain::SessionId,
    Vec<MessageId>,
) {
    let (store, client) = cosmos::emulator_cosmos_store().await;
    let (owner, id) = cosmos::owned_session(&store, user, &format!("s_{user}")).await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let appended = store
            .append_message(&owner, &id, typical_message(content, i))
            .await
            .unwrap();
        ids.push(appended.message.id);
    }
    store.start_item_log();
    (store, Box::new(client), owner, id, ids)
}

/// The mean cost of `n` appends to the current branch.
async fn appends(
    store: &CosmosStore,
    owner: &Owner,
    id: &chat_sessions::domain::SessionId,
    content: &str,
    n: usize,
) -> Cost {
    let mut costs = Vec::new();
    for i in 0..n {
        let m = typical_message(content, i);
        let (appended, cost) = measure(store, store.append_message(owner, id, m)).await;
        appended.unwrap();
        costs.push(cost);
    }
    Cost::mean(&costs)
}

/// A typical message under `parent`.
fn under(content: &str, parent: &MessageId) -> NewMessage {
    let mut m = typical_message(content, 1);
    m.parent = Parent::Message(parent.clone());
    m
}

pub async fn run(content: &str) {
    println!("## Trees (store calls, emulator, default seal policy)\n");
    println!(
        "| Operation | Where (of 1,000 messages) | Requests | RU (published table) | RU (emulator) |"
    );
    println!("|---|---|---:|---:|---:|");
    for (label, at) in [
        ("end (under 999th)", 998),
        ("middle (under 501st)", 500),
        ("start (under 2nd)", 1),
    ] {
        let user = format!("tree_{at}");
        let (store, _client, owner, id, ids) = session(content, &user, 1000).await;
        row(
            "append, before (mean of 10)",
            label,
            appends(&store, &owner, &id, content, 10).await,
        );
        let leaf = store
            .get_session_tail(&owner, &id, 1)
            .await
            .unwrap()
            .value
            .messages[0]
            .id
            .clone();
        let (forked, cost) = measure(
            &store,
            store.append_message(&owner, &id, under(content, &ids[at])),
        )
        .await;
        assert!(forked.unwrap().created);
        row("fork: append under an earlier message", label, cost);
        row(
            "append after the fork (mean of 10)",
            label,
            appends(&store, &owner, &id, content, 10).await,
        );
        let (read, cost) = measure(&store, store.get_session_tail(&owner, &id, 50)).await;
        read.unwrap();
        row("`messages_limit=50` after the fork", label, cost);
        let (switched, switch) =
            measure(&store, store.switch_branch(&owner, &id, &leaf, None)).await;
        assert_eq!(switched.unwrap().value.messages.len(), 1010);
        row(
            "switch back to the old leaf (answer included)",
            label,
            switch,
        );
        // The answer is the whole session, as a GET reads it.
        let (read, get) = measure(&store, store.get_session(&owner, &id)).await;
        read.unwrap();
        row("`GET` of the whole session after it", label, get);
        row(
            "append after the switch (mean of 10)",
            label,
            appends(&store, &owner, &id, content, 10).await,
        );
    }
    for alternatives in [0usize, 10, 100] {
        let user = format!("tree_get_{alternatives}");
        let (store, _client, owner, id, ids) = session(content, &user, 50).await;
        for _ in 0..alternatives {
            let (forked, _) = measure(
                &store,
                store.append_message(&owner, &id, under(content, &ids[48])),
            )
            .await;
            forked.unwrap();
        }
        let (read, cost) = measure(&store, store.get_session(&owner, &id)).await;
        assert_eq!(read.unwrap().value.messages.len(), 50);
        row(
            &format!("`GET` a 50-message session, {alternatives} alternatives of its last message"),
            "-",
            cost,
        );
        row(
            &format!("append to it ({alternatives} alternatives; mean of 10)"),
            "-",
            appends(&store, &owner, &id, content, 10).await,
        );
    }
    println!();
}
