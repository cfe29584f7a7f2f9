//! What the tests check JSON with: the seed's member names, member lists,
//! and the Functions host's recorded payloads (`tests/fixtures/functions/`).

use std::path::Path;

use serde_json::Value;

/// The members of the seed's chat session, plus `archived_at` (issue 10),
/// sorted: always all present in the API's JSON and in the stored document
/// (null where nullable).
pub const SESSION_MEMBERS: [&str; 11] = [
    "archived_at",
    "context",
    "created_at",
    "id",
    "is_active",
    "last_message_at",
    "message_count",
    "messages",
    "session_name",
    "updated_at",
    "user_id",
];

/// The members of the seed's chat message, sorted.
pub const MESSAGE_MEMBERS: [&str; 6] = [
    "content",
    "created_at",
    "id",
    "message_type",
    "metadata",
    "user_id",
];

/// What conversations as trees added to the session, always present:
/// clients that know nothing of branches ignore it.
pub const SESSION_TREE_MEMBERS: [&str; 1] = ["total_message_count"];

/// What conversations as trees added to every message, always present
/// (null for a first message). `edited_at` and `siblings` appear only on
/// the messages that have them.
pub const MESSAGE_TREE_MEMBERS: [&str; 1] = ["parent_id"];

/// The members of a session in the API's JSON: the seed's and the tree's,
/// sorted.
pub fn session_members() -> Vec<&'static str> {
    let mut all = [SESSION_MEMBERS.as_slice(), &SESSION_TREE_MEMBERS].concat();
    all.sort_unstable();
    all
}

/// The members of a message in the API's JSON (without tool parts, edits or
/// siblings): the seed's and the tree's, sorted.
pub fn message_members() -> Vec<&'static str> {
    let mut all = [MESSAGE_MEMBERS.as_slice(), &MESSAGE_TREE_MEMBERS].concat();
    all.sort_unstable();
    all
}

/// The text member `member` of every element of the JSON array `list`.
pub fn texts<'a>(list: &'a Value, member: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|element| element[member].as_str().unwrap())
        .collect()
}

/// The member names of a JSON object, sorted.
pub fn sorted_keys(object: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// The Functions host's recorded payload `name` (tests/fixtures/functions/).
pub fn fixture(name: &str) -> Value {
    read_json(&Path::new("tests/fixtures/functions").join(name))
}

/// A JSON file, parsed; panics naming the file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
