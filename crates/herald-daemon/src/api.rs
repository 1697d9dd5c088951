//! The status API on its own address (`--api-addr`), under `/api/v1/`, optionally behind a
//! bearer token (`--api-token-file`): it shows event contents and changes the outbox, so it is
//! not on the health address, which is open to the kubelet's probes.
//!
//! - `GET /api/v1/objects`: every object of the manifests (Providers, Alerts, Secrets, and the
//!   files for problems that belong to no object), ready or not, with the reasons.
//! - `GET /api/v1/providers`: each Provider's waiting and dead counts, last success, last error
//!   and consecutive failures; with a shared outbox, the cluster's counts and each replica's
//!   share (`"scope": "cluster"`).
//! - `GET /api/v1/deliveries?state=&provider=&limit=`: deliveries, newest first.
//! - `GET /api/v1/deliveries/{id}`: one delivery with its event.
//! - `POST /api/v1/deliveries/{id}/retry`, `POST /api/v1/deliveries/retry?provider=P` (that
//!   Provider's dead deliveries) or `?all-dead=true`: attempt again now.
//! - `DELETE /api/v1/deliveries/{id}`: drop a delivery.
//!
//! Answers are JSON; the shapes are documented in `docs/delivery-status.md`. This module only
//! translates HTTP to calls of the dispatcher (`dispatch::Dispatcher`); `herald outbox` uses
//! the same JSON shapes ([`delivery_json`]) when it reads a stopped daemon's outbox directly.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::Shared;
use crate::dispatch::rfc3339;
use crate::engine::RemoveError;
use crate::outbox::{Record, State};

type Reply = Response<Full<Bytes>>;

/// The most deliveries one listing returns.
pub const MAX_LIMIT: usize = 10_000;

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: StatusCode, message: &str) -> Reply {
    json_reply(status, &json!({ "error": message }))
}

/// A delivery as the API and `herald outbox` show it.
pub fn delivery_json(r: &Record, in_flight: bool) -> Value {
    json!({
        "id": r.id,
        "provider": r.provider,
        "type": r.provider_type,
        "alert": r.alert,
        "object": r.object,
        "reason": r.reason,
        "state": if in_flight { "in-flight" } else { r.state.as_str() },
        "dead_reason": r.dead_reason.map(|d| d.as_str()),
        "attempts": r.attempts,
        "accepted": rfc3339(r.accepted_at),
        "last_attempt": r.last_attempt_at.map(rfc3339),
        "next_attempt": r.next_attempt_at.map(rfc3339),
        "age_from": rfc3339(r.clock_from),
        "finished": r.finished_at.map(rfc3339),
        "last_error": r.last_error,
    })
}

/// A delivery's event for the API: `null` once delivered (the outbox keeps only what the
/// listing shows of it then).
pub fn event_json(event: Option<&herald_core::Event>) -> Value {
    event.map_or(Value::Null, |e| {
        serde_json::to_value(e).unwrap_or(Value::Null)
    })
}

/// The query of a URI as decoded pairs.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Answers a request on the API address: 401 without the token when one is required, the API
/// under `/api/v1/`, 404 elsewhere.
pub(crate) async fn serve(shared: &Shared, req: Request<hyper::body::Incoming>) -> Reply {
    if let Some(token) = &shared.api_token
        && !token.admits(req.headers())
    {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let path = req.uri().path();
    if path == "/api/v1" || path.starts_with("/api/v1/") {
        handle(shared, req).await
    } else {
        error(
            StatusCode::NOT_FOUND,
            "not found (the API is under /api/v1/)",
        )
    }
}

/// Every object's status, as `GET /api/v1/objects` gives it.
fn objects_json(shared: &Shared) -> Value {
    let snapshot = shared.snapshot();
    let objects: Vec<Value> = snapshot
        .catalog
        .statuses()
        .map(|s| {
            json!({
                "kind": s.key.kind.as_str(),
                "namespace": s.key.namespace,
                "name": s.key.name,
                "ready": s.is_ready(),
                "reasons": s.reasons(),
                "warnings": s.warnings.iter().map(|w| w.reason()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Value::Array(objects)
}

/// Answers a request under `/api/v1/`.
async fn handle(shared: &Shared, req: Request<hyper::body::Incoming>) -> Reply {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let query = query_pairs(req.uri().query());
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let rest = path.strip_prefix("/api/v1").unwrap_or("");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let d = &shared.dispatcher;
    // State changes reach the outbox through its writer a moment after they happen: commit
    // them first, so that what the outbox says agrees with `/api/v1/providers`.
    if segments.first() == Some(&"deliveries")
        && let Err(e) = crate::outbox::flush(&**d.store()).await
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["objects"]) => json_reply(StatusCode::OK, &objects_json(shared)),
        (&Method::GET, ["providers"]) => json_reply(StatusCode::OK, &providers_json(d)),
        (&Method::GET, ["deliveries"]) => {
            let state = match param("state").map(str::parse::<State>).transpose() {
                Ok(s) => s,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e),
            };
            let limit = match param("limit").map(str::parse::<usize>).transpose() {
                Ok(l) => l.unwrap_or(100).clamp(1, MAX_LIMIT),
                Err(e) => {
                    return error(StatusCode::BAD_REQUEST, &format!("invalid limit: {e}"));
                }
            };
            let provider = param("provider");
            let in_flight = d.in_flight();
            match d.store().list(limit, &mut |r| {
                state.is_none_or(|s| s == r.state) && provider.is_none_or(|p| p == r.provider)
            }) {
                Ok(list) => {
                    let items: Vec<Value> = list
                        .iter()
                        .map(|r| delivery_json(r, in_flight.contains(&r.id)))
                        .collect();
                    json_reply(StatusCode::OK, &json!({ "deliveries": items }))
                }
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        (&Method::POST, ["deliveries", "retry"]) => {
            let ids = match (param("provider"), param("all-dead")) {
                (Some(p), _) => d.store().dead_ids(Some(p)),
                (None, Some("true")) => d.store().dead_ids(None),
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "say which deliveries: ?provider=NAMESPACE/NAME or ?all-dead=true",
                    );
                }
            };
            retry(shared, ids).await
        }
        (method, ["deliveries", id, more @ ..]) => {
            let Ok(id) = id.parse::<u64>() else {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid delivery id {id:?}"),
                );
            };
            match (method, more) {
                (&Method::GET, []) => match d.store().get_with_event(id) {
                    Ok(Some((r, event))) => {
                        let mut v = delivery_json(&r, d.in_flight().contains(&id));
                        v["event"] = event_json(event.as_ref());
                        json_reply(StatusCode::OK, &v)
                    }
                    Ok(None) => not_found(id),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                },
                (&Method::POST, ["retry"]) => retry(shared, Ok(vec![id])).await,
                (&Method::DELETE, []) => match d.remove(id).await {
                    Ok(Some(_)) => json_reply(StatusCode::OK, &json!({ "dropped": id })),
                    Ok(None) => not_found(id),
                    Err(e @ RemoveError::InFlight(_)) => {
                        error(StatusCode::CONFLICT, &e.to_string())
                    }
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                },
                _ => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `GET /api/v1/providers`: the reports, and whose deliveries they count (this replica's
/// alone, or with a shared outbox the cluster's, as seen from the replica named).
fn providers_json(d: &crate::dispatch::Dispatcher) -> Value {
    let mut body = json!({ "providers": d.report(), "scope": "replica" });
    if let Some(cluster) = d.cluster() {
        body["scope"] = json!("cluster");
        body["replica"] = json!(cluster.me);
    }
    body
}

fn not_found(id: u64) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        &format!("delivery {id} is not in the outbox"),
    )
}

async fn retry(shared: &Shared, ids: Result<Vec<u64>, crate::outbox::StoreError>) -> Reply {
    let ids = match ids {
        Ok(ids) => ids,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    match shared.dispatcher.retry(&ids).await {
        Ok(done) => json_reply(StatusCode::OK, &json!({ "retried": done })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::query_pairs;

    #[test]
    fn queries_are_decoded() {
        assert_eq!(
            query_pairs(Some("provider=apps%2Fslack&all-dead=true&x")),
            [
                ("provider".to_owned(), "apps/slack".to_owned()),
                ("all-dead".to_owned(), "true".to_owned()),
                ("x".to_owned(), String::new()),
            ]
        );
        assert!(query_pairs(None).is_empty());
    }
}
