//! The tree operations ([`BranchStore`]) on this backend.

use async_trait::async_trait;

use super::CosmosStore;
use crate::{
    domain::{ChatMessage, ChatSession, DeleteScope, MessageEdit, MessageId, SessionId},
    store::{BranchStore, ETag, Owner, StoreError, StoreResult, TreePage, TreeQuery, Versioned},
};

fn not_yet() -> StoreError {
    StoreError::Internal(anyhow::anyhow!("not built yet"))
}

#[async_trait]
impl BranchStore for CosmosStore {
    async fn read_branch(
        &self,
        _owner: &Owner,
        _id: &SessionId,
        _message: &MessageId,
    ) -> StoreResult<Versioned<ChatSession>> {
        Err(not_yet())
    }

    async fn switch_branch(
        &self,
        _owner: &Owner,
        _id: &SessionId,
        _message: &MessageId,
        _if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatSession>> {
        Err(not_yet())
    }

    async fn list_tree(
        &self,
        _owner: &Owner,
        _id: &SessionId,
        _query: TreeQuery,
    ) -> StoreResult<TreePage> {
        Err(not_yet())
    }

    async fn edit_message(
        &self,
        _owner: &Owner,
        _id: &SessionId,
        _message: &MessageId,
        _edit: &MessageEdit,
        _if_match: Option<&ETag>,
    ) -> StoreResult<Versioned<ChatMessage>> {
        Err(not_yet())
    }

    async fn delete_message(
        &self,
        _owner: &Owner,
        _id: &SessionId,
        _message: &MessageId,
        _scope: DeleteScope,
        _if_match: Option<&ETag>,
    ) -> StoreResult<ETag> {
        Err(not_yet())
    }
}
