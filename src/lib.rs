//! chat-sessions: chat history as one document per session, served over HTTP
//! by a single binary that runs as an Azure Functions custom handler.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod functions;
pub mod jobs;
pub mod migrate_cli;
pub mod migration;
pub mod store;
