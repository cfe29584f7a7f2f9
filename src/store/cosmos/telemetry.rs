//! Every Cosmos DB operation reported as the SDK finishes it (its
//! diagnostics handler): a client span under the request's server span, in
//! OpenTelemetry's conventions for Azure Cosmos DB (operation, container,
//! status and sub-status, request charge), the operation metrics, and the
//! request's cost (`Server-Timing`, the server span's total). Nothing of a
//! document, a partition key (a user id) or a query's values is reported.

use std::time::SystemTime;

use azure_core::http::Context;
use azure_data_cosmos::diagnostics::{
    CosmosOperationContext, DiagnosticsContext, DiagnosticsHandler,
};
use opentelemetry::KeyValue;

use crate::telemetry::{
    cost,
    instruments::{self, CosmosOperation},
    spans::{self, Child},
};

/// The diagnostics handler the Cosmos DB client is built with.
#[derive(Debug, Default)]
pub(super) struct Report;

impl DiagnosticsHandler for Report {
    fn handle(&self, diagnostics: &DiagnosticsContext, cx: &Context<'_>) {
        let op = cx.value::<CosmosOperationContext>();
        let status = diagnostics.effective_status();
        let requests = diagnostics.request_count();
        let throttled = diagnostics
            .requests()
            .iter()
            .filter(|r| r.status().is_throttled())
            .count();
        let operation = CosmosOperation {
            operation: op
                .and_then(CosmosOperationContext::operation_name)
                .unwrap_or("unknown"),
            container: op
                .and_then(CosmosOperationContext::container_name)
                .unwrap_or(""),
            status: status.map_or(0, |s| u16::from(s.status_code())),
            request_charge: diagnostics.total_request_charge().value(),
            elapsed: diagnostics.duration(),
            requests,
            throttled,
        };
        cost::cosmos(requests, operation.request_charge, operation.elapsed);
        instruments::cosmos_operation(&operation);
        if spans::recording() {
            let sub_status = status.and_then(|s| s.sub_status()).map_or(0, |s| s.value());
            let database = op.and_then(CosmosOperationContext::database_name);
            let address = op.and_then(CosmosOperationContext::server_address);
            span(&operation, sub_status, database, address);
        }
    }
}

/// The client span of one operation, backdated to when it began.
fn span(op: &CosmosOperation<'_>, sub_status: u16, database: Option<&str>, address: Option<&str>) {
    let ended = SystemTime::now();
    let started = ended.checked_sub(op.elapsed).unwrap_or(ended);
    let mut attributes = vec![
        KeyValue::new("db.system.name", "azure.cosmosdb"),
        KeyValue::new("db.operation.name", op.operation.to_owned()),
        KeyValue::new("db.collection.name", op.container.to_owned()),
        KeyValue::new("db.response.status_code", op.status.to_string()),
        KeyValue::new(
            "azure.cosmosdb.response.sub_status_code",
            i64::from(sub_status),
        ),
        KeyValue::new("azure.cosmosdb.operation.request_charge", op.request_charge),
        KeyValue::new("chat_sessions.cosmos.requests", op.requests as i64),
    ];
    if let Some(database) = database {
        attributes.push(KeyValue::new("db.namespace", database.to_owned()));
    }
    if let Some(address) = address {
        attributes.push(KeyValue::new("server.address", address.to_owned()));
    }
    // A missing item, a taken id or a stale version are answers the store
    // expects; a throttled, failed or unanswered operation is not.
    let failed = op.status == 0 || op.status == 429 || op.status >= 500;
    spans::record(
        Child::Client,
        format!("{} {}", op.operation, op.container),
        started,
        ended,
        attributes,
        failed,
    );
}
