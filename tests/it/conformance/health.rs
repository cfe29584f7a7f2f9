//! Conformance: readiness. A store that can serve says so when asked (with
//! one real request to its backend), and asking writes nothing a user could
//! ever see.

use chat_sessions::store::{DynStore, ListQuery, Owner, StoreState};

pub async fn a_reachable_store_is_ready_and_asking_changes_nothing(store: DynStore) {
    assert_eq!(store.state(), StoreState::Ready);
    for _ in 0..3 {
        store.check_ready().await.unwrap();
    }
    assert_eq!(store.state(), StoreState::Ready);
    let everything = store
        .list_sessions(
            &Owner::Anonymous,
            &ListQuery {
                limit: 200,
                is_active: None,
                continuation: None,
            },
        )
        .await
        .unwrap();
    assert!(everything.sessions.is_empty(), "{everything:?}");
}
