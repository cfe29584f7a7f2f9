//! The HTTP client every exporter sends with. Requests run on the
//! telemetry's own small runtime, so that the exporters work from any
//! thread (the metric reader's, the queues') and never on the request
//! runtime; each has a deadline; and for Entra-only Application Insights
//! ingestion each carries a token of the app's managed identity.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use tokio::runtime::Handle;

use super::settings::EntraIdentity;

/// The scope of a token for Azure Monitor ingestion.
const MONITOR_SCOPE: &str = "https://monitor.azure.com/.default";

/// Sends exports; cheap to clone.
#[derive(Clone)]
pub(super) struct ExportClient {
    http: reqwest::Client,
    runtime: Handle,
    timeout: Duration,
    entra: Option<Arc<dyn TokenCredential>>,
    /// A loopback `host:port` the configuration names with `http://`, which
    /// the Application Insights exporter would turn into `https://`.
    plain_http: Option<String>,
}

impl std::fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportClient")
            .field("timeout", &self.timeout)
            .field("entra", &self.entra.is_some())
            .finish()
    }
}

impl ExportClient {
    /// A client whose requests run on `runtime` and end after `timeout`.
    pub(super) fn new(runtime: Handle, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .context("building the telemetry HTTP client")?;
        Ok(Self {
            http,
            runtime,
            timeout,
            entra: None,
            plain_http: None,
        })
    }

    /// The same client, sending to `authority` (a loopback `host:port`, as
    /// a local ingestion endpoint or test has) over plain HTTP even where
    /// an exporter asks for `https://`.
    pub(super) fn with_plain_http(mut self, authority: String) -> Self {
        self.plain_http = Some(authority);
        self
    }

    /// The same client, signing every request in as `identity`.
    pub(super) fn with_entra(mut self, identity: &EntraIdentity) -> anyhow::Result<Self> {
        let credential = azure_identity::ManagedIdentityCredential::new(Some(
            azure_identity::ManagedIdentityCredentialOptions {
                user_assigned_id: match identity {
                    EntraIdentity::SystemAssigned => None,
                    EntraIdentity::UserAssigned(id) => {
                        Some(azure_identity::UserAssignedId::ClientId(id.clone()))
                    }
                },
                ..Default::default()
            },
        ))
        .context("setting up the managed identity for Application Insights")?;
        self.entra = Some(credential);
        Ok(self)
    }

    /// The runtime the requests run on.
    pub(super) fn runtime(&self) -> Handle {
        self.runtime.clone()
    }

    async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let mut request = reqwest::Request::try_from(request)?;
        if let Some(authority) = &self.plain_http
            && request.url().scheme() == "https"
            && request.url()[url::Position::BeforeHost..url::Position::AfterPort] == **authority
        {
            let _ = request.url_mut().set_scheme("http");
        }
        if let Some(credential) = &self.entra {
            let token = credential.get_token(&[MONITOR_SCOPE], None).await?;
            let bearer = format!("Bearer {}", token.token.secret());
            let mut value = reqwest::header::HeaderValue::from_str(&bearer)?;
            value.set_sensitive(true);
            request
                .headers_mut()
                .insert(reqwest::header::AUTHORIZATION, value);
        }
        let response = self.http.execute(request).await?;
        let mut answer = Response::builder().status(response.status());
        for (name, value) in response.headers() {
            answer = answer.header(name, value);
        }
        let body = response.bytes().await?;
        Ok(answer.body(body)?)
    }
}

#[async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.clone();
        let deadline = self.timeout;
        // On the telemetry runtime, whichever thread or executor awaits it.
        self.runtime
            .spawn(async move {
                tokio::time::timeout(deadline, client.send(request))
                    .await
                    .map_err(|_| HttpError::from("the telemetry export timed out"))?
            })
            .await?
    }
}
