//! `chat-sessions openapi`: prints the OpenAPI document, the source of the
//! checked-in `openapi.json`. It needs no settings, no store and no logger.

/// Runs the command.
pub fn run() {
    use std::io::Write as _;
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(crate::api::openapi::document_json().as_bytes());
}
