//! The embedded store's query plan: how much a page reads, and that pages
//! read through the prefix indexes and through expanded words agree.

use chat_sessions::{
    domain::{ChatMessage, JsonObject, MessageId, MessageType, Timestamp, UserId},
    search::SearchTerms,
    store::{
        MigrationStore, Owner, SearchStore, SessionImport,
        sqlite::{Durability, SqliteStore},
    },
};

use crate::conformance::search::search_all;

/// A new embedded store holding one imported session of alice's with
/// `count` messages, `m` and the number zero-padded to `width` digits, the
/// first at the start of 2024, message `i` written `seconds(i)` later, with
/// `content(i)`; returns the store (and its directory) and alice as owner.
async fn imported(
    session: &str,
    count: usize,
    width: usize,
    seconds: impl Fn(usize) -> i64,
    content: impl Fn(usize) -> String,
) -> (SqliteStore, tempfile::TempDir, Owner) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), Durability::Normal).unwrap();
    let alice: UserId = crate::conformance::user("alice");
    let start = Timestamp::parse("2024-01-01T00:00:00Z")
        .unwrap()
        .as_datetime();
    let messages: Vec<ChatMessage> = (0..count)
        .map(|i| ChatMessage {
            tool_calls: None,
            tool_call_id: None,
            name: None,
            parent_id: None,
            edited_at: None,
            siblings: None,
            id: MessageId::parse(format!("m{i:0width$}")).unwrap(),
            content: content(i),
            message_type: MessageType::User,
            user_id: None,
            metadata: JsonObject::new(),
            created_at: Timestamp::from_datetime(start + chrono::Duration::seconds(seconds(i))),
        })
        .collect();
    store
        .import_messages(SessionImport {
            id: crate::conformance::sid(session),
            user_id: Some(alice.clone()),
            messages,
        })
        .await
        .unwrap();
    (store, dir, Owner::User(alice))
}

/// A query the index cannot narrow (punctuation only) looks at a bounded
/// number of candidates per page; the walk still yields every hit once.
#[tokio::test]
async fn an_unnarrowed_query_pages_with_bounded_work() {
    let (store, _dir, owner) = imported(
        "session_many",
        12_000,
        5,
        |i| i as i64,
        |i| {
            if i % 4_000 == 7 {
                format!("100% #{i}")
            } else {
                format!("plain {i}")
            }
        },
    )
    .await;
    let mut q = chat_sessions::store::SearchQuery {
        terms: SearchTerms::parse("%").unwrap(),
        limit: 20,
        is_active: None,
        after: None,
    };
    let mut pages = 0;
    let mut found = Vec::new();
    loop {
        let page = store.search(&owner, &q).await.unwrap();
        pages += 1;
        found.extend(
            page.hits
                .into_iter()
                .map(|h| h.message_id.unwrap().to_string()),
        );
        match page.continuation {
            Some(next) => q.after = Some(next),
            None => break,
        }
    }
    assert_eq!(found, ["m08007", "m04007", "m00007"]);
    assert!(pages >= 3, "the work was split over {pages} pages");
}

/// Prefixes the index holds (key and 1–3 characters) and prefixes FTS5
/// expands over the owner's words walk the same hits once, newest first,
/// whether hits are everywhere, rare, or only the oldest, with pages that
/// end inside a second.
#[tokio::test]
async fn indexed_and_expanded_prefixes_agree() {
    // Two messages a second: pages end inside seconds too.
    let (store, _dir, owner) = imported(
        "session_scan",
        300,
        3,
        |i| (i / 2) as i64,
        |i| match i {
            3 => "the oldest Otter".to_owned(),
            _ if i % 10 == 0 => format!("plain otter {i}"),
            _ => format!("plain {i}"),
        },
    )
    .await;
    let ids = |hits: Vec<chat_sessions::store::SearchHit>| -> Vec<String> {
        hits.into_iter()
            .map(|h| h.message_id.unwrap().to_string())
            .collect()
    };
    let newest_first = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..300)
            .rev()
            .filter(|&i| keep(i))
            .map(|i| format!("m{i:03}"))
            .collect()
    };
    for limit in [7, 20, 50] {
        let all = ids(search_all(&store, &owner, "pl", limit).await);
        assert_eq!(all, newest_first(&|i| i != 3), "limit {limit}");
        for q in ["p", "plai", "PLAIN"] {
            assert_eq!(ids(search_all(&store, &owner, q, limit).await), all, "{q}");
        }
        let otters = ids(search_all(&store, &owner, "OTT", limit).await);
        assert_eq!(
            otters,
            newest_first(&|i| i == 3 || i % 10 == 0),
            "limit {limit}"
        );
        let words = ids(search_all(&store, &owner, "otter", limit).await);
        assert_eq!(words, otters, "limit {limit}");
        let oldest = ids(search_all(&store, &owner, "oldest ot", limit).await);
        assert_eq!(oldest, ["m003"], "limit {limit}");
        assert!(
            search_all(&store, &owner, "plain oldest", limit)
                .await
                .is_empty()
        );
    }
}
