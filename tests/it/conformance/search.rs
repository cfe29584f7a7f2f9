//! The search conformance suite: what `SearchStore` promises, the same on
//! every backend (matching, owners, order, paging, freshness, any
//! characters). Every backend runs it through `search_suite!`.

use std::{collections::HashSet, sync::Arc};

use chat_sessions::{
    domain::{
        ChatMessage, FunctionCall, JsonObject, MessageId, MessageType, NewMessage, SessionPatch,
        Timestamp, ToolCall, ToolCallType, ToolParts, UserId,
    },
    search::{HitKey, SearchTerms},
    store::{MigrationStore, Owner, SearchHit, SearchQuery, SearchStore, SessionImport},
};

use super::{
    message, new_session, sid,
    tools::{answering, calling},
    unique, user,
};

/// One `#[tokio::test]` per behaviour; `$factory` is an async expression
/// yielding `(Arc<S>, guard)` where `S` is a `MigrationStore` and a
/// `SearchStore`.
#[macro_export]
macro_rules! search_suite {
    ($factory:expr) => {
        $crate::search_suite!(@tests $factory;
            search_matches_word_prefixes_in_any_case,
            search_requires_every_term,
            search_finds_session_names_without_a_message,
            search_orders_newest_first_and_pages_every_hit_once,
            search_breaks_ties_by_ids_across_pages,
            search_never_reaches_another_owner,
            search_is_fresh_after_append_rename_and_delete,
            search_narrows_by_is_active,
            search_takes_any_characters_literally,
            search_finds_imported_messages,
            search_hits_open_their_session,
            search_finds_messages_by_their_tool_calls_function_names,
            search_covers_every_branch_and_a_hit_opens_its_branch,
        );
    };
    (@tests $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _guard) = $factory.await;
                $crate::conformance::search::$name(store).await;
            }
        )*
    };
}

/// What the suite needs of a backend.
pub trait Searchable: MigrationStore + SearchStore {}
impl<S: MigrationStore + SearchStore> Searchable for S {}

fn query(q: &str, limit: u32) -> SearchQuery {
    SearchQuery {
        terms: SearchTerms::parse(q).unwrap(),
        limit,
        is_active: None,
        after: None,
    }
}

/// Every hit of `q` for `owner`, walking pages of `limit`; checks that no
/// page is longer than `limit` and that the walk ends.
pub async fn search_all<S: Searchable>(
    store: &S,
    owner: &Owner,
    q: &str,
    limit: u32,
) -> Vec<SearchHit> {
    search_all_with(store, owner, query(q, limit)).await
}

async fn search_all_with<S: Searchable>(
    store: &S,
    owner: &Owner,
    mut q: SearchQuery,
) -> Vec<SearchHit> {
    let mut all = Vec::new();
    for _ in 0..10_000 {
        let page = store.search(owner, &q).await.unwrap();
        assert!(page.hits.len() <= q.limit as usize);
        all.extend(page.hits);
        match page.continuation {
            Some(next) => q.after = Some(next),
            None => return all,
        }
    }
    panic!("the search never ended");
}

fn message_ids(hits: &[SearchHit]) -> Vec<&str> {
    hits.iter()
        .map(|h| h.message_id.as_ref().map_or("", MessageId::as_str))
        .collect()
}

async fn session_with<S: Searchable>(
    store: &S,
    owner: &UserId,
    name: Option<&str>,
    contents: &[(&str, &str)],
) -> chat_sessions::domain::SessionId {
    let id = sid(&unique("s"));
    let mut new = new_session(&id, Some(owner));
    new.session_name = name.map(str::to_owned);
    store.create_session(new).await.unwrap();
    for (mid, content) in contents {
        store
            .append_message(
                &Owner::User(owner.clone()),
                &id,
                message(Some(mid), content),
            )
            .await
            .unwrap();
    }
    id
}

pub async fn search_matches_word_prefixes_in_any_case<S: Searchable>(store: Arc<S>) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = session_with(
        &*store,
        &alice,
        Some("Ops"),
        &[
            ("m1", "We run Kubernetes in production"),
            ("m2", "Das ist ÜBER alles"),
            ("m3", "minikube is small"),
            ("m4", "ΣΟΦΟΣ and σοφος"),
        ],
    )
    .await;
    let hits = search_all(&*store, &owner, "kube", 20).await;
    assert_eq!(message_ids(&hits), ["m1"]);
    let hit = &hits[0];
    assert_eq!(hit.session_id, id);
    assert_eq!(hit.session_name.as_deref(), Some("Ops"));
    assert_eq!(hit.message_type, Some(MessageType::User));
    assert_eq!(hit.snippet, "We run Kubernetes in production");
    assert_eq!(
        message_ids(&search_all(&*store, &owner, "über", 20).await),
        ["m2"]
    );
    assert_eq!(
        message_ids(&search_all(&*store, &owner, "ÜBERALL", 20).await),
        Vec::<&str>::new()
    );
    assert_eq!(
        message_ids(&search_all(&*store, &owner, "σοφοσ", 20).await),
        ["m4"]
    );
    assert!(search_all(&*store, &owner, "ernetes", 20).await.is_empty());
    assert!(search_all(&*store, &owner, "nowhere", 20).await.is_empty());
    // One- and two-letter prefixes, what a search box sends first.
    assert_eq!(
        message_ids(&search_all(&*store, &owner, "k", 20).await),
        ["m1"]
    );
    assert_eq!(
        message_ids(&search_all(&*store, &owner, "MI", 20).await),
        ["m3"]
    );
}

pub async fn search_requires_every_term<S: Searchable>(store: Arc<S>) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    session_with(
        &*store,
        &alice,
        None,
        &[
            ("m1", "the tram to Belém leaves from Praça da Figueira"),
            ("m2", "the tram to Porto"),
            ("m3", "Belém tower"),
        ],
    )
    .await;
    let hits = search_all(&*store, &owner, "TRAM belém", 20).await;
    assert_eq!(message_ids(&hits), ["m1"]);
    assert!(hits[0].snippet.contains("tram"));
    assert!(
        search_all(&*store, &owner, "tram lisbon", 20)
            .await
            .is_empty()
    );
}

pub async fn search_finds_session_names_without_a_message<S: Searchable>(store: Arc<S>) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = session_with(&*store, &alice, Some("Trip to Lisbon"), &[("m1", "hello")]).await;
    let hits = search_all(&*store, &owner, "lisb", 20).await;
    assert_eq!(hits.len(), 1, "{hits:?}");
    let hit = &hits[0];
    assert_eq!(hit.session_id, id);
    assert_eq!(hit.message_id, None);
    assert_eq!(hit.message_type, None);
    assert_eq!(hit.snippet, "Trip to Lisbon");
    let stored = store.get_session(&owner, &id).await.unwrap().value;
    assert_eq!(hit.created_at, stored.updated_at);
    // A name and a message of the same session are two hits.
    store
        .append_message(&owner, &id, message(Some("m2"), "Lisbon trams"))
        .await
        .unwrap();
    let hits = search_all(&*store, &owner, "lisbon", 20).await;
    assert_eq!(message_ids(&hits), ["m2", ""]);
}

pub async fn search_orders_newest_first_and_pages_every_hit_once<S: Searchable>(store: Arc<S>) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let mut expected = HashSet::new();
    for s in 0..3 {
        let name = format!("Chat {s} about cats");
        let contents: Vec<(String, String)> = (0..9)
            .map(|i| {
                let text = if i % 3 == 0 {
                    "dogs only"
                } else {
                    "cats and dogs"
                };
                (format!("m{s}_{i}"), format!("{text} #{i}"))
            })
            .collect();
        let refs: Vec<(&str, &str)> = contents.iter().map(|(a, b)| (&a[..], &b[..])).collect();
        let id = session_with(&*store, &alice, Some(&name), &refs).await;
        expected.insert(format!("{id}/"));
        for (mid, text) in &contents {
            if text.starts_with("cats") {
                expected.insert(format!("{id}/{mid}"));
            }
        }
    }
    let all = search_all(&*store, &owner, "cat", 20).await;
    for limit in [1, 4, 7] {
        let paged = search_all(&*store, &owner, "cat", limit).await;
        assert_eq!(paged, all, "pages of {limit}");
    }
    let found: Vec<String> = all
        .iter()
        .map(|h| {
            format!(
                "{}/{}",
                h.session_id,
                h.message_id.as_ref().map_or("", MessageId::as_str)
            )
        })
        .collect();
    assert_eq!(found.len(), expected.len(), "{found:?}");
    assert_eq!(found.iter().cloned().collect::<HashSet<_>>(), expected);
    let keys: Vec<HitKey> = all.iter().map(SearchHit::key).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "newest first, no ties left"
    );
    assert!(all.windows(2).all(|w| w[0].created_at >= w[1].created_at));
}

/// Imports keep their timestamps, so many hits can share one instant: the
/// ids order them, and pages split them without loss.
pub async fn search_breaks_ties_by_ids_across_pages<S: Searchable>(store: Arc<S>) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let at = Timestamp::parse("2023-05-01T10:00:00.000000Z").unwrap();
    let mut expected = Vec::new();
    for s in ["s_tie_a", "s_tie_b"] {
        let id = sid(&format!("{s}_{}", unique("x")));
        let messages: Vec<ChatMessage> = (0..5)
            .map(|i| ChatMessage {
                tool_calls: None,
                tool_call_id: None,
                name: None,
                parent_id: None,
                edited_at: None,
                siblings: None,
                id: MessageId::parse(format!("m{i}")).unwrap(),
                content: format!("same instant {i}"),
                message_type: MessageType::Assistant,
                user_id: Some(alice.clone()),
                metadata: JsonObject::new(),
                created_at: at,
            })
            .collect();
        for m in &messages {
            expected.push(HitKey::new(at, &id, Some(&m.id)));
        }
        store
            .import_messages(SessionImport {
                id,
                user_id: Some(alice.clone()),
                messages,
            })
            .await
            .unwrap();
    }
    expected.sort();
    for limit in [1, 2, 3, 10] {
        let keys: Vec<HitKey> = search_all(&*store, &owner, "instant", limit)
            .await
            .iter()
            .map(SearchHit::key)
            .collect();
        assert_eq!(keys, expected, "pages of {limit}");
    }
}

pub async fn search_never_reaches_another_owner<S: Searchable>(store: Arc<S>) {
    let alice = user(&unique("alice"));
    let bob = user(&unique("bob"));
    session_with(
        &*store,
        &bob,
        Some("secret plans"),
        &[("b1", "secret words")],
    )
    .await;
    let unowned = sid(&unique("anon"));
    let mut new = new_session(&unowned, None);
    new.session_name = Some("secret anonymous".into());
    store.create_session(new).await.unwrap();
    store
        .append_message(
            &Owner::Anonymous,
            &unowned,
            message(Some("a1"), "secret anon words"),
        )
        .await
        .unwrap();
    session_with(&*store, &alice, None, &[("a1", "nothing to see")]).await;
    assert!(
        search_all(&*store, &Owner::User(alice), "secret", 5)
            .await
            .is_empty()
    );
    let bobs = search_all(&*store, &Owner::User(bob), "secret", 5).await;
    assert_eq!(bobs.len(), 2);
    // Anonymous (local mode) searches the sessions without an owner only.
    let anon = search_all(&*store, &Owner::Anonymous, "secret", 50).await;
    assert!(!anon.is_empty());
    assert!(anon.iter().all(|h| h.session_id != bobs[0].session_id));
    assert!(anon.iter().any(|h| h.session_id == unowned));
}

pub async fn search_is_fresh_after_append_rename_and_delete<S: Searchable>(store: Arc<S>) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = session_with(&*store, &alice, Some("Old title"), &[]).await;
    store
        .append_message(&owner, &id, message(Some("m1"), "fresh zebra"))
        .await
        .unwrap();
    assert_eq!(
        message_ids(&search_all(&*store, &owner, "zebra", 20).await),
        ["m1"]
    );
    assert_eq!(search_all(&*store, &owner, "old", 20).await.len(), 1);
    let patch = SessionPatch {
        session_name: Some(Some("Brand new".into())),
        ..SessionPatch::default()
    };
    store
        .update_session(&owner, &id, &patch, None)
        .await
        .unwrap();
    assert!(search_all(&*store, &owner, "old", 20).await.is_empty());
    let renamed = search_all(&*store, &owner, "brand", 20).await;
    assert_eq!(renamed.len(), 1);
    assert_eq!(renamed[0].session_name.as_deref(), Some("Brand new"));
    // The message's hit shows the new name too.
    let hit = search_all(&*store, &owner, "zebra", 20).await;
    assert_eq!(hit[0].session_name.as_deref(), Some("Brand new"));
    store.delete_session(&owner, &id, None).await.unwrap();
    assert!(search_all(&*store, &owner, "zebra", 20).await.is_empty());
    assert!(search_all(&*store, &owner, "brand", 20).await.is_empty());
}

pub async fn search_narrows_by_is_active<S: Searchable>(store: Arc<S>) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let active = session_with(&*store, &alice, None, &[("m1", "apple pie")]).await;
    let archived = session_with(&*store, &alice, None, &[("m2", "apple tart")]).await;
    let patch = SessionPatch {
        is_active: Some(false),
        ..SessionPatch::default()
    };
    store
        .update_session(&owner, &archived, &patch, None)
        .await
        .unwrap();
    let mut q = query("apple", 20);
    assert_eq!(search_all_with(&*store, &owner, q.clone()).await.len(), 2);
    q.is_active = Some(true);
    let only = search_all_with(&*store, &owner, q.clone()).await;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].session_id, active);
    q.is_active = Some(false);
    let only = search_all_with(&*store, &owner, q).await;
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].session_id, archived);
}

/// Quotes, operators, wildcards, SQL: searched for as written, never an
/// error.
pub async fn search_takes_any_characters_literally<S: Searchable>(store: Arc<S>) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let odd = [
        "\"quoted\"",
        "*",
        "-v",
        "a:b",
        "(x)",
        "AND",
        "NEAR",
        "50%",
        "_under_",
        "back\\slash",
        "'; DROP TABLE messages; --",
        "c++",
        "[a-z]+",
        "{1}",
        "$^.|?",
        "@r0",
        "#",
        "ΣΟΦΟΣ",
    ];
    let contents: Vec<(String, String)> = odd
        .iter()
        .enumerate()
        .map(|(i, text)| (format!("m{i}"), format!("before {text} after")))
        .collect();
    let refs: Vec<(&str, &str)> = contents.iter().map(|(a, b)| (&a[..], &b[..])).collect();
    session_with(&*store, &alice, None, &refs).await;
    for (i, text) in odd.iter().enumerate() {
        let hits = search_all(&*store, &owner, text, 50).await;
        let ids = message_ids(&hits);
        assert!(ids.contains(&format!("m{i}").as_str()), "{text}: {ids:?}");
        for hit in &hits {
            let content = &contents[hit.message_id.as_ref().unwrap().as_str()[1..]
                .parse::<usize>()
                .unwrap()]
            .1;
            assert!(
                SearchTerms::parse(text).unwrap().matches(content),
                "{text} in {content}"
            );
        }
    }
    // Things that look like syntax and match nothing.
    for q in ["\"\"", "*)", "NOT x", "OR OR", "\\\"'", "%%%%", "$$"] {
        assert!(search_all(&*store, &owner, q, 10).await.is_empty(), "{q}");
    }
}

pub async fn search_finds_imported_messages<S: Searchable>(store: Arc<S>) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = sid(&unique("legacy"));
    let at = |s: &str| Timestamp::parse(s).unwrap();
    let old = |mid: &str, content: &str, when: &str| ChatMessage {
        tool_calls: None,
        tool_call_id: None,
        name: None,
        parent_id: None,
        edited_at: None,
        siblings: None,
        id: MessageId::parse(mid).unwrap(),
        content: content.into(),
        message_type: MessageType::User,
        user_id: Some(alice.clone()),
        metadata: JsonObject::new(),
        created_at: at(when),
    };
    store
        .import_messages(SessionImport {
            id: id.clone(),
            user_id: Some(alice.clone()),
            messages: vec![
                old("l1", "legacy walrus", "2020-01-01T00:00:00Z"),
                old("l2", "legacy narwhal", "2020-01-02T00:00:00Z"),
            ],
        })
        .await
        .unwrap();
    let hits = search_all(&*store, &owner, "legacy", 20).await;
    assert_eq!(message_ids(&hits), ["l2", "l1"]);
    assert_eq!(hits[0].created_at, at("2020-01-02T00:00:00Z"));
    // A later import merges in more, found as well.
    store
        .import_messages(SessionImport {
            id,
            user_id: Some(alice.clone()),
            messages: vec![old("l0", "legacy beluga", "2019-12-31T00:00:00Z")],
        })
        .await
        .unwrap();
    let hits = search_all(&*store, &owner, "legacy", 20).await;
    assert_eq!(message_ids(&hits), ["l2", "l1", "l0"]);
}

pub async fn search_hits_open_their_session<S: Searchable>(store: Arc<S>) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    for i in 0..3 {
        session_with(
            &*store,
            &alice,
            Some("walrus facts"),
            &[(&format!("m{i}"), "a walrus")],
        )
        .await;
    }
    let hits = search_all(&*store, &owner, "walrus", 2).await;
    assert_eq!(hits.len(), 6);
    for hit in hits {
        let session = store
            .get_session(&owner, &hit.session_id)
            .await
            .unwrap()
            .value;
        assert_eq!(session.session_name, hit.session_name);
        if let Some(mid) = &hit.message_id {
            let m = session.messages.iter().find(|m| &m.id == mid).unwrap();
            assert_eq!(m.created_at, hit.created_at);
            assert_eq!(Some(m.message_type), hit.message_type);
        }
    }
}

/// A message on a branch that is not the current one is found, and its hit
/// opens the branch that shows it; an edit and a delete keep search in
/// step.
pub async fn search_covers_every_branch_and_a_hit_opens_its_branch<S: Searchable>(store: Arc<S>) {
    use chat_sessions::domain::{DeleteScope, MessageEdit, Parent};
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = session_with(
        &*store,
        &alice,
        None,
        &[("q", "question"), ("first", "an aardvark")],
    )
    .await;
    let q = MessageId::parse("q").unwrap();
    let mut again = message(Some("second"), "a narwhal");
    again.parent = Parent::Message(q.clone());
    store.append_message(&owner, &id, again).await.unwrap();
    let hits = search_all(&*store, &owner, "aardvark", 10).await;
    assert_eq!(hits.len(), 1, "a message off the current branch is found");
    let first = hits[0].message_id.clone().unwrap();
    assert_eq!(first.as_str(), "first");
    let branch = store.read_branch(&owner, &id, &first).await.unwrap().value;
    assert_eq!(branch.messages.last().map(|m| &m.id), Some(&first));
    // An edit re-indexes the message, a delete removes it.
    let edit = MessageEdit {
        content: Some("a pangolin".into()),
        metadata: None,
    };
    store
        .edit_message(&owner, &id, &first, &edit, None)
        .await
        .unwrap();
    assert!(search_all(&*store, &owner, "aardvark", 10).await.is_empty());
    assert_eq!(search_all(&*store, &owner, "pangolin", 10).await.len(), 1);
    let second = MessageId::parse("second").unwrap();
    store
        .delete_message(&owner, &id, &second, DeleteScope::Message, None)
        .await
        .unwrap();
    assert!(search_all(&*store, &owner, "narwhal", 10).await.is_empty());
}

/// An assistant message with `content` calling each function of `names`.
fn calls(id: &str, content: &str, names: &[&str]) -> NewMessage {
    NewMessage::with_tools(
        Some(MessageId::parse(id).unwrap()),
        content.into(),
        MessageType::Assistant,
        None,
        JsonObject::new(),
        ToolParts {
            tool_calls: Some(
                names
                    .iter()
                    .map(|name| ToolCall {
                        id: format!("call_{name}"),
                        call_type: ToolCallType::Function,
                        function: FunctionCall {
                            name: (*name).into(),
                            arguments: r#"{"query":"zanzibar"}"#.into(),
                        },
                    })
                    .collect(),
            ),
            ..ToolParts::default()
        },
    )
    .unwrap()
}

/// A message is found by the function names of its tool calls as by its
/// content (at word starts, any case, terms split between both), as soon as
/// it is posted or imported; the snippet of a name hit is the names. The
/// arguments, and a tool message's `name`, are not searched.
pub async fn search_finds_messages_by_their_tool_calls_function_names<S: Searchable>(
    store: Arc<S>,
) {
    let alice = user(&unique("alice"));
    let owner = Owner::User(alice.clone());
    let id = session_with(&*store, &alice, None, &[("m0", "How is the weather?")]).await;
    for m in [
        calling("m1", "call_1"),
        answering("m2", "call_1", "12 °C, rain"),
        calls(
            "m3",
            "Let me check the forecast.",
            &["lookup_city", "send-mail"],
        ),
    ] {
        store.append_message(&owner, &id, m).await.unwrap();
    }
    let hits = search_all(&*store, &owner, "get_weather", 20).await;
    assert_eq!(message_ids(&hits), ["m1"]);
    assert_eq!(hits[0].snippet, "get_weather");
    assert_eq!(hits[0].message_type, Some(MessageType::Assistant));
    // `weather` is a word of `get_weather`; pages of one walk both hits.
    let hits = search_all(&*store, &owner, "WEATH", 1).await;
    assert_eq!(message_ids(&hits), ["m1", "m0"]);
    assert!(search_all(&*store, &owner, "eather", 20).await.is_empty());
    let hits = search_all(&*store, &owner, "mail", 20).await;
    assert_eq!(message_ids(&hits), ["m3"]);
    assert_eq!(
        hits[0].snippet,
        "Let me check the forecast.\nlookup_city\nsend-mail"
    );
    assert_eq!(
        message_ids(&search_all(&*store, &owner, "forecast lookup", 20).await),
        ["m3"]
    );
    assert!(
        search_all(&*store, &owner, "forecast weather", 20)
            .await
            .is_empty()
    );
    // Arguments and call ids are not searched.
    for q in ["zanzibar", "zürich", "call_1", "query"] {
        assert!(search_all(&*store, &owner, q, 20).await.is_empty(), "{q}");
    }

    // Imported messages too.
    let imported = sid(&unique("imported"));
    let at = Timestamp::parse("2021-06-01T00:00:00Z").unwrap();
    let old = ChatMessage::stored(
        calls("i1", "", &["fetch_invoice"]),
        Some(alice.clone()),
        at,
        None,
    );
    store
        .import_messages(SessionImport {
            id: imported.clone(),
            user_id: Some(alice.clone()),
            messages: vec![old],
        })
        .await
        .unwrap();
    let hits = search_all(&*store, &owner, "invoice", 20).await;
    assert_eq!(message_ids(&hits), ["i1"]);
    assert_eq!(hits[0].session_id, imported);
    assert_eq!(hits[0].snippet, "fetch_invoice");
}
