//! Prompt-ready history: the newest messages of a session that fit a token
//! budget, counted as the model counts them. [`tokens`] counts,
//! [`select`] chooses; the store reads only as far back as the choice goes
//! ([`crate::store::ContextStore::read_context`]).

pub mod select;
pub mod tokens;

pub use select::{BudgetTooSmall, Chosen, Selection};
pub use tokens::{CACHE, Encoding, TokenCache};
