//! Counting tokens as OpenAI's models count them: the named encoding
//! (`o200k_base`, `cl100k_base`, shipped inside `tiktoken-rs`), plus the
//! per-message overhead of OpenAI's published recipe for chat messages
//! (cookbook, "How to count tokens with tiktoken").

use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::{LazyLock, Mutex, OnceLock},
};

use tiktoken_rs::CoreBPE;

use crate::domain::{ChatMessage, ValidationError};

/// Tokens every message costs besides its values (`<|start|>role…<|end|>`).
pub const TOKENS_PER_MESSAGE: u32 = 3;
/// Tokens a `name` member costs besides its value.
pub const TOKENS_PER_NAME: u32 = 1;
/// Tokens that prime the model's reply (`<|start|>assistant<|message|>`),
/// counted once per request that sends any message.
pub const REPLY_PRIMING: u32 = 3;

/// A tokenizer the count can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GPT-4o, GPT-4.1, o-series, GPT-5.
    O200kBase,
    /// GPT-4, GPT-3.5-turbo.
    Cl100kBase,
}

impl Encoding {
    /// Every encoding, by wire name.
    pub const ALL: [Self; 2] = [Self::O200kBase, Self::Cl100kBase];

    /// Parses the wire name (`o200k_base`, `cl100k_base`).
    pub fn parse(value: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == value)
            .ok_or_else(|| ValidationError::new("encoding", "must be o200k_base or cl100k_base"))
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::O200kBase => "o200k_base",
            Self::Cl100kBase => "cl100k_base",
        }
    }

    fn loaded(self) -> &'static OnceLock<&'static CoreBPE> {
        static O200K: OnceLock<&'static CoreBPE> = OnceLock::new();
        static CL100K: OnceLock<&'static CoreBPE> = OnceLock::new();
        match self {
            Self::O200kBase => &O200K,
            Self::Cl100kBase => &CL100K,
        }
    }

    fn bpe(self) -> &'static CoreBPE {
        self.loaded().get_or_init(|| match self {
            Self::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Self::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        })
    }

    /// Whether the encoding's tables are in memory. Loading them takes
    /// about 200 ms of CPU, once per process: callers on an async runtime
    /// load them on a blocking thread first ([`load`](Self::load)).
    pub fn is_loaded(self) -> bool {
        self.loaded().get().is_some()
    }

    /// Loads the encoding's tables (no-op once loaded).
    pub fn load(self) {
        self.bpe();
    }

    /// The tokens of `text` as ordinary text: special-token spellings such
    /// as `<|endoftext|>` in a message are text, as the model API treats
    /// them.
    pub fn count(self, text: &str) -> u32 {
        if text.is_empty() {
            return 0;
        }
        self.bpe().encode_ordinary(text).len() as u32
    }

    /// A chat message's tokens by OpenAI's recipe: [`TOKENS_PER_MESSAGE`],
    /// then every member's value, and [`TOKENS_PER_NAME`] more for `name`.
    pub fn chat_message(self, members: &[(&str, &str)]) -> u32 {
        members
            .iter()
            .map(|(key, value)| {
                self.count(value) + if *key == "name" { TOKENS_PER_NAME } else { 0 }
            })
            .sum::<u32>()
            + TOKENS_PER_MESSAGE
    }
}

/// The members a message has when sent to the model (`format=openai`),
/// the ones its count is made of: role, content, the serialized tool calls
/// (an estimate: the model sees them in its own syntax) and the call a tool
/// message answers.
pub fn openai_members(message: &ChatMessage) -> Vec<(&'static str, std::borrow::Cow<'_, str>)> {
    let mut members = vec![
        // The Chat Completions roles are the message types' wire names.
        ("role", message.message_type.as_str().into()),
        ("content", message.content.as_str().into()),
    ];
    if let Some(calls) = &message.tool_calls {
        let json = serde_json::to_string(calls).unwrap_or_default();
        members.push(("tool_calls", json.into()));
    }
    if let Some(id) = &message.tool_call_id {
        members.push(("tool_call_id", id.as_str().into()));
    }
    members
}

/// Token counts of messages already counted, so that a conversation read
/// again is not tokenized again. Keyed by a 64-bit hash of what the count
/// depends on (encoding, role, content, tool parts), so an edited message is
/// a new key; bounded, emptied when full.
#[derive(Debug, Default)]
pub struct TokenCache {
    counts: Mutex<HashMap<u64, u32>>,
}

/// Entries kept before the cache starts over (~16 bytes each).
const CACHE_ENTRIES: usize = 1 << 18;

/// The process's cache.
pub static CACHE: LazyLock<TokenCache> = LazyLock::new(TokenCache::default);

impl TokenCache {
    /// `message`'s tokens under `encoding`, by [`Encoding::chat_message`]
    /// over [`openai_members`].
    pub fn message_tokens(&self, encoding: Encoding, message: &ChatMessage) -> u32 {
        let key = key(encoding, message);
        if let Some(&count) = self.lock().get(&key) {
            return count;
        }
        let members = openai_members(message);
        let borrowed: Vec<(&str, &str)> = members.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        let count = encoding.chat_message(&borrowed);
        let mut counts = self.lock();
        if counts.len() >= CACHE_ENTRIES {
            counts.clear();
        }
        counts.insert(key, count);
        count
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u32>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn key(encoding: Encoding, message: &ChatMessage) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    encoding.hash(&mut hasher);
    message.message_type.hash(&mut hasher);
    message.content.hash(&mut hasher);
    message.tool_call_id.hash(&mut hasher);
    for call in message.tool_calls.iter().flatten() {
        call.id.hash(&mut hasher);
        call.function.name.hash(&mut hasher);
        call.function.arguments.hash(&mut hasher);
    }
    hasher.finish()
}
