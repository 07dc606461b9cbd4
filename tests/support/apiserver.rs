//! An in-repo Kubernetes API test server (DESIGN.md section 5): the endpoints the agent
//! uses, with the real semantics, on 127.0.0.1 over plain HTTP.
//!
//! - `GET /api/v1/nodes/<n>` (any `resourceVersion` query answers the same)
//! - `PATCH /api/v1/nodes/<n>/status`: strategic merge patch (`status.conditions` merged by
//!   `type`, `$patch: delete` honoured) or JSON merge patch (lists replaced); other content
//!   types 415, malformed bodies 400, missing node 404, a condition without `type` 422
//! - `POST /api/v1/namespaces/<ns>/events`: 201, 409 AlreadyExists, 400 on a namespace
//!   mismatch, 422 without a name or when the event fails the API server's
//!   `legacyValidateEvent` (see [`legacy_validate_event`]: `involvedObject.namespace` must
//!   match the event's namespace, ...)
//! - `PATCH /api/v1/namespaces/<ns>/events/<name>`: strategic or merge patch, 404 if absent,
//!   422 if the patched event fails the same validation
//!
//! Objects keep `uid`, `resourceVersion` (bumped on every write) and `creationTimestamp`;
//! errors are `metav1.Status` JSON. Every request is recorded; faults can be injected.
//!
//! Use it from an integration test with `#[path = "support/apiserver.rs"] mod apiserver;`.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub body: Option<Value>,
    pub at: Instant,
}

/// What an injected fault does.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// Answer with this code (a metav1.Status body); `retry_after` seconds if set.
    Status { code: u16, retry_after: Option<u64> },
    /// Wait this long before handling the request normally.
    Delay(Duration),
    /// Close the connection without an answer.
    Drop,
}

struct Fault {
    remaining: usize,
    path_contains: Option<String>,
    kind: FaultKind,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, Value>,
    events: BTreeMap<(String, String), Value>,
    requests: Vec<Recorded>,
    faults: VecDeque<Fault>,
}

/// The running server. Dropping it stops accepting connections.
pub struct ApiServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    down: Arc<AtomicBool>,
    rv: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_k8s() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl ApiServer {
    /// Starts a server on an ephemeral port of 127.0.0.1.
    pub async fn start() -> ApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let down = Arc::new(AtomicBool::new(false));
        let rv = Arc::new(AtomicU64::new(1000));
        let (st, dn, rv2) = (state.clone(), down.clone(), rv.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                if dn.load(Ordering::SeqCst) {
                    drop(stream); // "down": the connection is closed at once
                    continue;
                }
                let (st, dn, rv) = (st.clone(), dn.clone(), rv2.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        handle(req, st.clone(), dn.clone(), rv.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        ApiServer {
            addr,
            state,
            down,
            rv,
            task,
        }
    }

    /// The URL for `--apiserver-override`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a Node with a fresh uid and the kubelet's usual conditions (Ready etc.).
    pub fn add_node(&self, name: &str) -> String {
        let uid = format!("uid-{name}-{:x}", fastrand::u64(..));
        let now = now_k8s();
        let kubelet = |t: &str, s: &str, r: &str| {
            json!({"type": t, "status": s, "reason": r, "message": format!("kubelet says {r}"),
                   "lastHeartbeatTime": now, "lastTransitionTime": now})
        };
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": uid, "resourceVersion": self.bump().to_string(),
                          "creationTimestamp": now},
            "spec": {},
            "status": {"conditions": [
                kubelet("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                kubelet("Ready", "True", "KubeletReady"),
            ]}
        });
        self.state
            .lock()
            .unwrap()
            .nodes
            .insert(name.to_string(), node);
        uid
    }

    /// Replaces or adds one condition on a node directly (as another writer would).
    pub fn set_condition(&self, node: &str, cond: Value) {
        let mut st = self.state.lock().unwrap();
        let n = st.nodes.get_mut(node).unwrap();
        let list = n["status"]["conditions"].as_array_mut().unwrap();
        list.retain(|c| c["type"] != cond["type"]);
        list.push(cond);
    }

    fn bump(&self) -> u64 {
        self.rv.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The stored node.
    pub fn node(&self, name: &str) -> Value {
        self.state.lock().unwrap().nodes[name].clone()
    }

    /// One condition of the stored node, by type.
    pub fn condition(&self, node: &str, type_: &str) -> Option<Value> {
        let n = self.node(node);
        n["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
    }

    /// All stored events.
    pub fn events(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .events
            .values()
            .cloned()
            .collect()
    }

    /// Deletes every stored event, as the API server does when events outlive their TTL
    /// (`--event-ttl`, 1 h by default).
    pub fn expire_events(&self) {
        self.state.lock().unwrap().events.clear();
    }

    /// All requests so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests with this method whose path contains `path`.
    pub fn requests_matching(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.contains(path))
            .collect()
    }

    /// Forgets recorded requests.
    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// The next `n` requests (whose path contains `path_contains`, if given) get `kind`.
    pub fn fail_next(&self, n: usize, path_contains: Option<&str>, kind: FaultKind) {
        self.state.lock().unwrap().faults.push_back(Fault {
            remaining: n,
            path_contains: path_contains.map(String::from),
            kind,
        });
    }

    /// While down, every connection is closed at once, without an answer.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

fn status_body(code: u16, reason: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    });
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn ok(code: u16, v: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "AlreadyExists",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        _ => "InternalError",
    }
}

/// The API server's `legacyValidateEvent` (pkg/apis/core/validation/events.go), which
/// every core/v1 Event create and update passes; returns the field errors.
///
/// - Without `eventTime` (an "old" event, as the agent writes): an empty
///   `involvedObject.namespace` (a cluster-scoped object such as a Node) requires the event
///   namespace to be empty or `default`; a non-empty one must equal the event namespace.
/// - With `eventTime`: an empty `involvedObject.namespace` requires the event namespace to be
///   `default` or `kube-system`; `reportingComponent`, `reportingInstance`, `action` and
///   `reason` are required (at most 128 characters each), `message` at most 1024.
/// - The event namespace must be a DNS-1123 subdomain.
pub fn legacy_validate_event(ev: &Value) -> Vec<String> {
    let ns = ev["metadata"]["namespace"].as_str().unwrap_or("");
    let io_ns = ev["involvedObject"]["namespace"].as_str().unwrap_or("");
    let str_of = |k: &str| ev[k].as_str().unwrap_or("");
    let mismatch = || {
        format!(
            "involvedObject.namespace: Invalid value: {io_ns:?}: does not match event.namespace"
        )
    };
    let mut errs = Vec::new();
    let has_event_time = ev.get("eventTime").is_some_and(|t| !t.is_null());
    if !has_event_time {
        if io_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                errs.push(mismatch());
            }
        } else if ns != io_ns {
            errs.push(mismatch());
        }
    } else {
        if io_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(mismatch());
        }
        for (field, limit) in [
            ("reportingComponent", 0),
            ("reportingInstance", 128),
            ("action", 128),
            ("reason", 128),
        ] {
            let v = str_of(field);
            if v.is_empty() {
                errs.push(format!("{field}: Required value"));
            } else if limit > 0 && v.chars().count() > limit {
                errs.push(format!(
                    "{field}: Invalid value: \"\": can have at most {limit} characters"
                ));
            }
        }
        if str_of("message").chars().count() > 1024 {
            errs.push("message: Invalid value: \"\": can have at most 1024 characters".into());
        }
    }
    if !is_dns1123_subdomain(ns) {
        errs.push(format!(
            "namespace: Invalid value: {ns:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ));
    }
    errs
}

fn is_dns1123_subdomain(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || c == '-' || c == '.')
}

/// A 422 `Invalid` answer for an event that failed validation, worded as the API server's.
fn invalid_event(name: &str, errs: &[String]) -> Response<Full<Bytes>> {
    let detail = if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("[{}]", errs.join(", "))
    };
    status_body(
        422,
        "Invalid",
        &format!("Event {name:?} is invalid: {detail}"),
    )
}

/// JSON merge patch (RFC 7386): objects merge, everything else replaces, null deletes.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Strategic merge for the fields the agent patches: `conditions` lists merge by `type`
/// (with `$patch: delete`), other lists replace, objects merge.
fn strategic_merge(target: &mut Value, patch: &Value) -> Result<(), String> {
    let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) else {
        *target = patch.clone();
        return Ok(());
    };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else if k == "conditions" && v.is_array() {
            let list = t.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
            if !list.is_array() {
                *list = Value::Array(vec![]);
            }
            let list = list.as_array_mut().unwrap();
            for item in v.as_array().unwrap() {
                let Some(ty) = item.get("type").and_then(Value::as_str) else {
                    return Err("map: map[] does not contain declared merge key: type".into());
                };
                let pos = list.iter().position(|c| c["type"] == ty);
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = pos {
                        list.remove(i);
                    }
                    continue;
                }
                match pos {
                    Some(i) => strategic_merge(&mut list[i], item)?,
                    None => list.push(item.clone()),
                }
            }
        } else if v.is_object() {
            strategic_merge(t.entry(k.clone()).or_insert(json!({})), v)?;
        } else {
            t.insert(k.clone(), v.clone());
        }
    }
    Ok(())
}

async fn handle(
    req: Request<Incoming>,
    st: Arc<Mutex<State>>,
    down: Arc<AtomicBool>,
    rv: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(String::from);
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_string());
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let parsed: Option<Result<Value, _>> =
        (!bytes.is_empty()).then(|| serde_json::from_slice::<Value>(&bytes));
    if down.load(Ordering::SeqCst) {
        return Err(std::io::Error::other("down"));
    }
    let fault = {
        let mut s = st.lock().unwrap();
        s.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: parsed.as_ref().and_then(|r| r.as_ref().ok().cloned()),
            at: Instant::now(),
        });
        let idx = s.faults.iter().position(|f| {
            f.remaining > 0 && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
        });
        idx.map(|i| {
            let f = &mut s.faults[i];
            f.remaining -= 1;
            let k = f.kind.clone();
            if f.remaining == 0 {
                s.faults.remove(i);
            }
            k
        })
    };
    match fault {
        Some(FaultKind::Status { code, retry_after }) => {
            let mut r = status_body(code, reason_for(code), "injected fault");
            if let Some(s) = retry_after {
                r.headers_mut()
                    .insert("retry-after", s.to_string().parse().unwrap());
            }
            return Ok(r);
        }
        Some(FaultKind::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultKind::Drop) => return Err(std::io::Error::other("dropped")),
        None => {}
    }
    let body = match parsed {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            return Ok(status_body(
                400,
                "BadRequest",
                &format!("invalid JSON: {e}"),
            ));
        }
        None => None,
    };
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let bump = || (rv.fetch_add(1, Ordering::SeqCst) + 1).to_string();
    let mut s = st.lock().unwrap();
    let resp = match (method.as_str(), segs.as_slice()) {
        ("GET", ["api", "v1", "nodes", name]) => match s.nodes.get(*name) {
            Some(n) => ok(200, n),
            None => status_body(404, "NotFound", &format!("nodes \"{name}\" not found")),
        },
        ("PATCH", ["api", "v1", "nodes", name, "status"]) => {
            let strategic = match content_type.as_deref() {
                Some("application/strategic-merge-patch+json") => true,
                Some("application/merge-patch+json") => false,
                other => {
                    return Ok(status_body(
                        415,
                        "UnsupportedMediaType",
                        &format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                        ),
                    ));
                }
            };
            let Some(patch) = body.filter(Value::is_object) else {
                return Ok(status_body(
                    400,
                    "BadRequest",
                    "the patch is not a JSON object",
                ));
            };
            let Some(node) = s.nodes.get_mut(*name) else {
                return Ok(status_body(
                    404,
                    "NotFound",
                    &format!("nodes \"{name}\" not found"),
                ));
            };
            // Only status is writable through the status subresource.
            let status_patch = json!({"status": patch.get("status").cloned().unwrap_or(json!({}))});
            let mut updated = node.clone();
            if strategic {
                if let Err(e) = strategic_merge(&mut updated, &status_patch) {
                    return Ok(status_body(422, "Invalid", &e));
                }
            } else {
                merge_patch(&mut updated, &status_patch);
            }
            updated["metadata"]["resourceVersion"] = json!(bump());
            *node = updated.clone();
            ok(200, &updated)
        }
        ("POST", ["api", "v1", "namespaces", ns, "events"]) => {
            let Some(mut ev) = body.filter(Value::is_object) else {
                return Ok(status_body(
                    400,
                    "BadRequest",
                    "the body is not a JSON object",
                ));
            };
            match ev["metadata"]["namespace"].as_str() {
                None | Some("") => ev["metadata"]["namespace"] = json!(ns),
                Some(m) if m != *ns => {
                    return Ok(status_body(
                        400,
                        "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
            let Some(name) = ev["metadata"]["name"].as_str().map(String::from) else {
                return Ok(status_body(422, "Invalid", "metadata.name: Required value"));
            };
            if ev["involvedObject"].is_null() {
                return Ok(status_body(
                    422,
                    "Invalid",
                    "involvedObject: Required value",
                ));
            }
            let errs = legacy_validate_event(&ev);
            if !errs.is_empty() {
                return Ok(invalid_event(&name, &errs));
            }
            let key = (ns.to_string(), name.clone());
            if s.events.contains_key(&key) {
                return Ok(status_body(
                    409,
                    "AlreadyExists",
                    &format!("events \"{name}\" already exists"),
                ));
            }
            ev["metadata"]["uid"] = json!(format!("uid-ev-{:x}", fastrand::u64(..)));
            ev["metadata"]["resourceVersion"] = json!(bump());
            ev["metadata"]["creationTimestamp"] = json!(now_k8s());
            s.events.insert(key, ev.clone());
            ok(201, &ev)
        }
        ("PATCH", ["api", "v1", "namespaces", ns, "events", name]) => {
            let strategic = match content_type.as_deref() {
                Some("application/strategic-merge-patch+json") => true,
                Some("application/merge-patch+json") => false,
                _ => {
                    return Ok(status_body(
                        415,
                        "UnsupportedMediaType",
                        "unsupported patch type",
                    ));
                }
            };
            let Some(patch) = body.filter(Value::is_object) else {
                return Ok(status_body(
                    400,
                    "BadRequest",
                    "the patch is not a JSON object",
                ));
            };
            let Some(ev) = s.events.get_mut(&(ns.to_string(), name.to_string())) else {
                return Ok(status_body(
                    404,
                    "NotFound",
                    &format!("events \"{name}\" not found"),
                ));
            };
            let mut updated = ev.clone();
            if strategic {
                if let Err(e) = strategic_merge(&mut updated, &patch) {
                    return Ok(status_body(422, "Invalid", &e));
                }
            } else {
                merge_patch(&mut updated, &patch);
            }
            let errs = legacy_validate_event(&updated);
            if !errs.is_empty() {
                return Ok(invalid_event(name, &errs));
            }
            updated["metadata"]["resourceVersion"] = json!(bump());
            *ev = updated;
            ok(200, ev)
        }
        _ => status_body(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({method} {path})"),
        ),
    };
    Ok(resp)
}
