//! The integration tests, one test binary (`cargo test --test it`; a module
//! alone with `cargo test --test it <module>::`).
//!
//! Shared, no tests of their own:
//! - [`common`]: the router called in-process ([`common::TestApp`]), the
//!   router served on a loopback port ([`common::spawn_app`]), the real
//!   binary as a child process ([`common::binary::Binary`]), the Cosmos DB
//!   backends ([`common::cosmos`]: the local Cosmos-compatible server, which
//!   it installs and starts itself, and the SDK's in-memory emulator), and
//!   JSON helpers with the Functions host's recorded payloads
//!   ([`common::json`]);
//! - [`conformance`]: the `SessionStore` conformance suite, one function per
//!   behaviour, instantiated per backend by `conformance_suite!`;
//! - [`http_suite`]: every endpoint and every error through the router,
//!   instantiated per backend by `http_suite!`;
//! - [`legacy_data`]: a generated legacy (one document per message) data set
//!   and the check of a migrated store against it.
//!
//! The tests, by module, and on which backends ("the Cosmos server" is the
//! local Cosmos-compatible server, "the emulator" the SDK's in-memory one):
//! - [`store_sqlite`]: the conformance suite, and reopening the file
//!   (on: embedded SQLite);
//! - [`store_cosmos`]: the conformance suite, the stored document's shape
//!   (on: the Cosmos server and the emulator), the request budget per
//!   operation (on: the emulator);
//! - [`api`]: the HTTP suite, a failing store, concurrent clients over a
//!   real socket (on: embedded SQLite);
//! - [`api_cosmos`]: the HTTP suite (on: the Cosmos server and the emulator);
//! - [`cosmos_appends`]: appends of one request in steady state, another
//!   process's writes, retries found in sealed pages (on: the Cosmos server
//!   and the emulator);
//! - [`cosmos_tree`]: conversations as trees where Cosmos DB differs: the
//!   requests of forks, switches and reads (counted at the server too),
//!   alternatives outside the session document and gone with it, a change
//!   too large for one batch refused, sessions from before trees, several
//!   processes branching under faults (on: the Cosmos server);
//! - [`cosmos_faults`]: throttling, 503s, reset connections, lost answers
//!   and delays injected by the Cosmos server: concurrent writers over HTTP,
//!   lost answers, the migration (on: the Cosmos server);
//! - [`sealing`]: sessions that outgrow one Cosmos document, sealed into
//!   pages (on: the Cosmos server and the emulator; the API part on embedded
//!   SQLite too);
//! - [`startup`]: the real binary started before its dependencies are there
//!   (identity endpoint refusing tokens, no Cosmos server listening, missing
//!   database or container) serves, says why, and recovers without a
//!   restart; settings that can never work stop it at once; SIGTERM during
//!   concurrent appends loses nothing acknowledged (on: the Cosmos server,
//!   and embedded SQLite for SIGTERM);
//! - [`disk`]: the embedded store on a full disk (a small tmpfs the test
//!   mounts, so it needs root): appends refused with 507 and nothing kept,
//!   reads going on, readiness naming the disk, the CLI stopping with one
//!   line, and recovery once the disk grows; the WAL cut back to its bound
//!   after a burst (on: embedded SQLite);
//! - [`durability`]: the real binary killed with SIGKILL while serving loses
//!   nothing it acknowledged (on: embedded SQLite);
//! - [`docs`]: every repository path the Markdown docs name exists; the
//!   command line's help says what it reads (no store);
//! - [`functions`]: the Azure Functions app: function folders, `host.json`,
//!   `local.settings.json.example`, the host's payloads replayed against the
//!   router (on: embedded SQLite);
//! - [`lifecycle_cli`]: `chat-sessions export`, `erase` and `retention`
//!   (the real binary) and the `RetentionSweep` timer (on: embedded SQLite);
//! - [`lifecycle_cosmos`]: export, erase and retention where Cosmos DB
//!   differs: sealed pages streamed and erased, leftover pages, the legacy
//!   container erased with the user, documents without `archived_at`
//!   (on: the Cosmos server; sealed pages on the emulator too);
//! - [`import_cli`]: `chat-sessions import` as a process: report, exit
//!   codes, a refused file writes nothing (on: embedded SQLite; the import
//!   itself is in the suites: `conformance/import.rs`,
//!   `http_suite/import.rs`);
//! - [`limits`]: bounded under load and abuse: the per-instance caps on
//!   imports, erases and requests in flight (503 naming the limit, shed
//!   not queued), the per-user write rate (429 for that user only, nothing
//!   acknowledged lost), slow headers and bodies cut off, and an import's
//!   memory sampled from `/proc` (on: embedded SQLite and the Cosmos
//!   server);
//! - [`migration`]: the migration from JSONL: result, idempotence, merging,
//!   dry runs, budgets, the CLI killed mid-run, the queue function
//!   (on: embedded SQLite);
//! - [`migration_cosmos`]: the migration from the legacy Cosmos container,
//!   with `--delete-old` (on: the Cosmos server);
//! - [`search`]: `GET /api/chat/search` over HTTP (on: embedded SQLite and
//!   the Cosmos server), through the real binary and the `search`
//!   subcommand, the embedded index (built for older files, in step with the
//!   data, bounded work per page), hits in sealed pages (on: the Cosmos
//!   server); the search conformance suite itself runs from
//!   [`store_sqlite`] and [`store_cosmos`] (not on the emulator: its query
//!   engine has no subqueries);
//! - [`openapi`]: the OpenAPI document against the route table and the
//!   checked-in `openapi.json` (on: no store, or embedded SQLite);
//! - [`webapp`]: the web app's files, its security headers and CORS over
//!   HTTP (on: embedded SQLite);
//! - [`browser`]: the web app and CORS in Debian's headless Chromium driven
//!   by Playwright (`tests/browser/`), against the real binary (on: embedded
//!   SQLite);
//! - [`telemetry`]: traces, metrics and logs at a local OTLP receiver and
//!   Application Insights endpoint (`common::telemetry`), with the real
//!   binary: request charges against the Cosmos server's, the caller's
//!   trace, managed-identity ingestion, privacy, exporters down or hanging,
//!   `Server-Timing`, log lines as the Functions host grades them (on:
//!   embedded SQLite and the Cosmos server).

// First, so that their macros (`conformance_suite!`, `http_suite!`) are in
// scope in the modules below.
mod common;
#[macro_use]
mod conformance;
#[macro_use]
mod http_suite;
mod legacy_data;

mod api;
mod api_cosmos;
mod browser;
mod context;
mod cosmos_appends;
mod cosmos_faults;
mod cosmos_tree;
mod disk;
mod docs;
mod durability;
mod functions;
mod import_cli;
mod lifecycle_cli;
mod lifecycle_cosmos;
mod limits;
mod listing_cache;
mod migration;
mod migration_cosmos;
mod openapi;
mod sealing;
mod search;
mod search_plan;
mod search_upgrade;
mod startup;
mod store_cosmos;
mod store_sqlite;
mod telemetry;
mod webapp;
