//! Fault injection (latency, 503s, 429s, dropped connections, a rate limit) and the admin
//! routes that read and change it at run time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, AppState, DropConnection, Faults, Inner, lock, now_secs};

/// The rate limit's fixed one-second window.
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    /// The Unix second of the window.
    second: u64,
    /// Calls admitted in it.
    count: u32,
}

impl RateWindow {
    /// Admits one call if fewer than `limit` were admitted this second.
    fn admit(&mut self, limit: u32, now: u64) -> bool {
        if self.second != now {
            self.second = now;
            self.count = 0;
        }
        if self.count < limit {
            self.count += 1;
            true
        } else {
            false
        }
    }
}

/// The response [`super::Sandbox::serve`] turns into a closed connection (a plain 503 under any
/// other server).
fn dropped() -> Response {
    let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
    response.extensions_mut().insert(DropConnection);
    response.headers_mut().insert("x-sandbox-fault", HeaderValue::from_static("dropped"));
    response
}

/// What one call suffers.
enum Fate {
    /// Nothing.
    Normal,
    /// Dropped before the handler runs.
    DropBefore,
    /// Dropped after the handler ran.
    DropAfter,
    /// 503.
    Error,
    /// 429.
    Throttle,
}

/// Applies `faults` to one call.
async fn apply(app: &Inner, faults: &Faults, request: Request, next: Next) -> Response {
    if let Some(limit) = faults.rate_limit_per_second {
        let admitted = lock(&app.rate_window).admit(limit, now_secs());
        if !admitted {
            app.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            return ApiError::Throttled { retry_after: 1 }.into_response();
        }
    }
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let fate = {
        let roll: f64 = rand::random();
        let before: bool = rand::random();
        if roll < faults.drop_rate {
            if before { Fate::DropBefore } else { Fate::DropAfter }
        } else if roll < faults.drop_rate + faults.error_rate {
            Fate::Error
        } else if roll < faults.drop_rate + faults.error_rate + faults.throttle_rate {
            Fate::Throttle
        } else {
            Fate::Normal
        }
    };
    match fate {
        Fate::Normal => next.run(request).await,
        Fate::DropBefore => {
            app.stats.dropped_before.fetch_add(1, Ordering::Relaxed);
            dropped()
        }
        Fate::DropAfter => {
            let _ = next.run(request).await;
            app.stats.dropped_after.fetch_add(1, Ordering::Relaxed);
            dropped()
        }
        Fate::Error => {
            app.stats.injected_errors.fetch_add(1, Ordering::Relaxed);
            ApiError::ServerError.into_response()
        }
        Fate::Throttle => {
            app.stats.injected_throttles.fetch_add(1, Ordering::Relaxed);
            ApiError::Throttled { retry_after: faults.retry_after_seconds }.into_response()
        }
    }
}

/// Middleware on resource routes: counts the call and applies the faults.
pub(crate) async fn inject(State(app): State<AppState>, request: Request, next: Next) -> Response {
    app.stats.requests.fetch_add(1, Ordering::Relaxed);
    let faults = app.faults();
    apply(&app, &faults, request, next).await
}

/// Middleware on the token endpoint: applies the faults only with `include_token_endpoint`.
pub(crate) async fn inject_token(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let faults = app.faults();
    if faults.include_token_endpoint {
        apply(&app, &faults, request, next).await
    } else {
        next.run(request).await
    }
}

/// `GET /_sandbox/faults`.
pub(crate) async fn get_faults(State(app): State<AppState>) -> axum::Json<Faults> {
    axum::Json(app.faults())
}

/// `PUT /_sandbox/faults`: replaces the faults; 400 with every problem when invalid.
pub(crate) async fn put_faults(
    State(app): State<AppState>,
    body: axum::body::Bytes,
) -> Result<axum::Json<Faults>, ApiError> {
    let faults: Faults = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("not a valid faults object: {e}")))?;
    let problems = faults.problems();
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems.join("; ")));
    }
    *app.faults.write().unwrap_or_else(std::sync::PoisonError::into_inner) = faults.clone();
    Ok(axum::Json(faults))
}

/// `GET /_sandbox/stats`.
pub(crate) async fn stats(State(app): State<AppState>) -> axum::Json<Value> {
    let mut stats = app.stats.to_json(&app.authority);
    stats["faults"] = json!(app.faults());
    axum::Json(stats)
}

#[cfg(test)]
mod tests {
    use super::RateWindow;

    #[test]
    fn the_rate_window_admits_the_limit_per_second() {
        let mut window = RateWindow::default();
        assert!(window.admit(2, 10));
        assert!(window.admit(2, 10));
        assert!(!window.admit(2, 10));
        assert!(window.admit(2, 11));
    }
}
