//! chat-sessions: chat history as one document per session, served over HTTP
//! by a single binary that runs as an Azure Functions custom handler, on
//! Azure Cosmos DB or, with no cloud at all, on an embedded SQLite store.
//!
//! # Where things are
//!
//! Start at [`app`]: it builds the whole service from the settings, and every
//! other module is one hop from it.
//!
//! | To find… | look in |
//! |---|---|
//! | how the service is assembled: which store, which routers | [`app`] |
//! | a setting and its default (`COSMOS_ENDPOINT`, `AUTH_MODE`, …) | [`config`] |
//! | sessions, messages, ids, timestamps and their validation | [`domain`] |
//! | the newest messages that fit a token budget, token counts | [`context`] |
//! | the rules of search: terms, words, case folding, snippets, hit order | [`search`] |
//! | the export/import line format (NDJSON `{"type":"session"…}`) | [`export`] |
//! | who the caller is (local `user_id`, Easy Auth headers) | [`auth`] |
//! | an HTTP endpoint: route, method, Azure Function name, handler | [`api::routes`] (the one table), then [`api::sessions`], [`api::messages`], [`api::legacy`], [`api::meta`] |
//! | an error answer (RFC 9457 problem+json, status codes) | [`api::error`] |
//! | `ETag`, `If-Match`, `If-None-Match` | [`api::conditional`], [`api::cache`] |
//! | the OpenAPI document | [`api::openapi`] (from the route table) |
//! | the Azure Functions host protocol (queue, timer, non-forwarded HTTP) | [`functions`] |
//! | queue messages of the migration | [`functions::queue`] |
//! | the storage contract every backend fulfils | [`store::SessionStore`], [`store::MigrationStore`], [`store::SearchStore`] |
//! | liveness and readiness of the store, causes in operator words | [`store::health`], [`store::Connection`] (a backend reached in the background), `store::cosmos` (`health.rs`) |
//! | start, SIGTERM and the drain | [`cli::serve`], [`app::start_backend`] |
//! | the embedded store (SQLite, group commit) | [`store::sqlite`] |
//! | Cosmos DB (documents, sealed pages, patches, client setup) | [`store::cosmos`] |
//! | limits under load: requests in flight, imports/exports/erases at once, the per-user write rate, slow clients | [`limits`], [`api::admit`], [`cli::serve`] |
//! | importing a file (our export, ChatGPT's `conversations.json`) | [`import`] |
//! | the migration from per-message documents | [`migration`] |
//! | export, erase (store side) | [`store::export`], [`store::erase`] |
//! | retention rules (archive, delete after N days) | [`retention`] |
//! | traces, metrics, log lines, `Server-Timing`, the exporters | [`telemetry`] |
//! | a subcommand (`serve`, `migrate`, `init-cosmos`, `search`, `export`, `erase`, `retention`, `openapi`) | [`cli`] |
//!
//! Dependencies point one way: `cli` → `app` → (`api`, `functions`) →
//! (`store`, `migration`) → `domain`, and every layer may report to
//! [`telemetry`], which depends on none of them. `api` knows nothing of the
//! Functions host or the migration; `store` knows nothing of HTTP.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod context;
pub mod digest;
pub mod domain;
pub mod export;
pub mod functions;
pub mod import;
pub mod limits;
pub mod migration;
pub mod origins;
pub mod retention;
pub mod search;
pub mod settings;
pub mod store;
pub mod telemetry;
