//! Validation layer 4 against the platform: the M2M client behind the validators'
//! [`RecordLookup`], and how a pipeline is told to run (or explicitly skip) business rules.
//!
//! The pipeline is synchronous and runs on a blocking thread; the client is async. An
//! [`ApiRecordLookup`] holds a [`Handle`] of the runtime the client lives on and blocks on it for
//! each look-up ([`Handle::block_on`], which must not be called from an async task: imports run
//! their pipeline in `spawn_blocking`, `intake check` on its main thread). The async retry path
//! calls [`find_records`] directly.
//!
//! A look-up lists every page of `GET /{resource}/?where=…&fields=…&per_page=100`. It fails — the
//! file fails, no row is rejected — when the API fails after the client's own retries (5xx, 429,
//! timeouts), refuses the request (400, 403: the client lacks `<resource>:list`), or when one
//! request matches more than [`MAX_LOOKUP_PAGES`] pages (the `where` does not select few records;
//! checking on would be slow and the rule is likely wrong).

use intake_validators::{LookupRequest, RecordLookup};
use serde_json::{Map, Value};
use tokio::runtime::Handle;

use crate::m2m::client::MAX_PER_PAGE;
use crate::m2m::{ApiClient, ApiError, ListQuery};
use crate::template::Template;

/// The most pages one look-up reads (100 items each).
pub const MAX_LOOKUP_PAGES: u32 = 20;

/// How a pipeline runs validation layer 4 (`business_rules`).
#[derive(Debug, Clone, Default)]
pub enum BusinessRuleLookups {
    /// No platform client: a template with business rules cannot run, and says so (the
    /// default, so that rules are never skipped silently).
    #[default]
    Unavailable,
    /// Skip the business rules, on request (`intake check --skip-business-rules`); the check
    /// report says that they were skipped.
    Skip,
    /// Look records up through this client, blocking the pipeline's thread on `runtime`.
    Api {
        /// The platform client (it needs `<resource>:list` on each rule's resource).
        client: ApiClient,
        /// The runtime the client's connections live on.
        runtime: Handle,
    },
}

impl BusinessRuleLookups {
    /// Look-ups through `client`, on the current runtime: call it from async code (an import)
    /// and hand the result to the blocking thread that runs the pipeline.
    pub fn current(client: ApiClient) -> Self {
        BusinessRuleLookups::Api { client, runtime: Handle::current() }
    }
}

/// The M2M client as the validators' [`RecordLookup`], for a pipeline on a blocking thread.
#[derive(Debug, Clone)]
pub struct ApiRecordLookup {
    client: ApiClient,
    runtime: Handle,
    requests: u64,
}

impl ApiRecordLookup {
    /// Look-ups through `client`, blocking on `runtime`.
    pub fn new(client: ApiClient, runtime: Handle) -> Self {
        Self { client, runtime, requests: 0 }
    }

    /// List requests made so far (each page counts).
    pub fn requests(&self) -> u64 {
        self.requests
    }
}

impl RecordLookup for ApiRecordLookup {
    fn find(&mut self, request: &LookupRequest) -> Result<Vec<Map<String, Value>>, String> {
        let (records, pages) = self
            .runtime
            .block_on(find_records(&self.client, request))
            .map_err(|e| e.to_string())?;
        self.requests += u64::from(pages);
        Ok(records)
    }
}

/// Why a look-up found no answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The API failed or refused the request.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// More records match than a look-up reads.
    #[error(
        "more than {} records match {} keys; the rule's where must select few records per row",
        MAX_LOOKUP_PAGES * MAX_PER_PAGE,
        key_count
    )]
    TooMany {
        /// The keys asked for.
        key_count: usize,
    },
}

/// Every record `request` matches (all pages) and the number of list requests made.
pub async fn find_records(
    client: &ApiClient,
    request: &LookupRequest,
) -> Result<(Vec<Map<String, Value>>, u32), LookupError> {
    let mut records = Vec::new();
    let mut query = ListQuery {
        filter: Some(request.filter.clone()),
        // A fixed order, so that pages do not shift while they are read.
        sort: Some("_id".to_owned()),
        fields: Some(request.fields.clone()),
        page: 1,
        per_page: MAX_PER_PAGE,
    };
    loop {
        if query.page > MAX_LOOKUP_PAGES {
            return Err(LookupError::TooMany { key_count: request.key_count });
        }
        let page = client.list(&request.resource, &query).await?;
        let count = page.items.len();
        records.extend(page.items.into_iter().map(|item| item.body));
        if count < MAX_PER_PAGE as usize || records.len() as u64 >= page.total {
            return Ok((records, query.page));
        }
        query.page += 1;
    }
}

/// The `<resource>:list` capabilities a template's business rules need.
pub fn lookup_scopes(template: &Template) -> Vec<String> {
    intake_validators::BusinessRules::resources(&template.validation.business_rules)
        .into_iter()
        .map(|resource| format!("{resource}:list"))
        .collect()
}
