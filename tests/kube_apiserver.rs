//! The test API server rejects what the real one rejects and merges like it (raw HTTP).

#[path = "support/apiserver.rs"]
mod apiserver;

use apiserver::ApiServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends one HTTP/1.1 request; returns the status code and the JSON body.
async fn call(s: &ApiServer, method: &str, path: &str, ctype: &str, body: &str) -> (u16, Value) {
    let mut c = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    let code = out[9..12].parse().unwrap();
    let (_, b) = out.split_once("\r\n\r\n").unwrap();
    (code, serde_json::from_str(b).unwrap_or(Value::Null))
}

const SMP: &str = "application/strategic-merge-patch+json";

#[tokio::test]
async fn node_status_patch_semantics() {
    let s = ApiServer::start().await;
    s.add_node("n");
    let rv0 = s.node("n")["metadata"]["resourceVersion"].clone();
    let patch = json!({"status": {"conditions": [
        {"type": "KernelDeadlock", "status": "True", "reason": "DockerHung"},
        {"type": "Ready", "message": "merged"}
    ]}});
    let (code, node) = call(
        &s,
        "PATCH",
        "/api/v1/nodes/n/status",
        SMP,
        &patch.to_string(),
    )
    .await;
    assert_eq!(code, 200);
    assert_ne!(node["metadata"]["resourceVersion"], rv0);
    // Merged by type: Ready keeps its status and gets the new message.
    let ready = s.condition("n", "Ready").unwrap();
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["message"], "merged");
    assert_eq!(
        s.condition("n", "KernelDeadlock").unwrap()["reason"],
        "DockerHung"
    );
    assert!(s.condition("n", "MemoryPressure").is_some());

    let del = json!({"status": {"conditions": [{"type": "KernelDeadlock", "$patch": "delete"}]}});
    let (code, _) = call(&s, "PATCH", "/api/v1/nodes/n/status", SMP, &del.to_string()).await;
    assert_eq!(code, 200);
    assert!(s.condition("n", "KernelDeadlock").is_none());

    let (code, st) = call(
        &s,
        "PATCH",
        "/api/v1/nodes/n/status",
        "application/json",
        "{}",
    )
    .await;
    assert_eq!(code, 415);
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["reason"], "UnsupportedMediaType");
    let (code, _) = call(&s, "PATCH", "/api/v1/nodes/n/status", SMP, "{not json").await;
    assert_eq!(code, 400);
    let (code, st) = call(&s, "PATCH", "/api/v1/nodes/other/status", SMP, "{}").await;
    assert_eq!((code, st["reason"].as_str()), (404, Some("NotFound")));
    let nokey = json!({"status": {"conditions": [{"status": "True"}]}});
    let (code, _) = call(
        &s,
        "PATCH",
        "/api/v1/nodes/n/status",
        SMP,
        &nokey.to_string(),
    )
    .await;
    assert_eq!(code, 422);
    let (code, _) = call(&s, "GET", "/api/v1/nodes/n?resourceVersion=0", "", "").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn event_create_and_patch_semantics() {
    let s = ApiServer::start().await;
    let ev = json!({"metadata": {"name": "n.1"}, "involvedObject": {"kind": "Node", "name": "n"},
                    "reason": "R", "message": "m", "count": 1});
    let (code, created) = call(
        &s,
        "POST",
        "/api/v1/namespaces/default/events",
        "application/json",
        &ev.to_string(),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());
    let (code, st) = call(
        &s,
        "POST",
        "/api/v1/namespaces/default/events",
        "application/json",
        &ev.to_string(),
    )
    .await;
    assert_eq!((code, st["reason"].as_str()), (409, Some("AlreadyExists")));
    let (code, _) = call(
        &s,
        "POST",
        "/api/v1/namespaces/other/events",
        "application/json",
        &json!({"metadata": {"name": "x", "namespace": "default"}, "involvedObject": {}})
            .to_string(),
    )
    .await;
    assert_eq!(code, 400);
    let (code, patched) = call(
        &s,
        "PATCH",
        "/api/v1/namespaces/default/events/n.1",
        SMP,
        r#"{"count":2}"#,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(patched["count"], 2);
    assert_eq!(patched["message"], "m");
    let (code, _) = call(
        &s,
        "PATCH",
        "/api/v1/namespaces/default/events/missing",
        SMP,
        r#"{"count":2}"#,
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(s.requests().len(), 5);
}

#[tokio::test]
async fn event_involved_object_namespace_must_match_as_on_the_real_api_server() {
    let s = ApiServer::start().await;
    let post = |ns: &str, ev: Value| {
        let path = format!("/api/v1/namespaces/{ns}/events");
        let s = &s;
        async move { call(s, "POST", &path, "application/json", &ev.to_string()).await }
    };
    let ev = |name: &str, io: Value| json!({"metadata": {"name": name}, "involvedObject": io, "reason": "R", "message": "m"});
    // A Node reference without a namespace: only "default" (or no namespace) is allowed.
    let node = json!({"kind": "Node", "name": "n"});
    assert_eq!(post("default", ev("a", node.clone())).await.0, 201);
    let (code, st) = post("npd", ev("b", node.clone())).await;
    assert_eq!((code, st["reason"].as_str()), (422, Some("Invalid")));
    let msg = st["message"].as_str().unwrap();
    assert!(
        msg.contains("involvedObject.namespace") && msg.contains("does not match event.namespace"),
        "{msg}"
    );
    // With a namespace: it must be the event's namespace.
    let in_npd = json!({"kind": "Node", "name": "n", "namespace": "npd"});
    assert_eq!(post("npd", ev("c", in_npd.clone())).await.0, 201);
    assert_eq!(post("default", ev("d", in_npd)).await.0, 422);
    let in_default = json!({"kind": "Node", "name": "n", "namespace": "default"});
    assert_eq!(post("default", ev("e", in_default.clone())).await.0, 201);
    assert_eq!(post("npd", ev("f", in_default)).await.0, 422);
    // New-style events (eventTime set): an empty reference namespace is allowed in
    // kube-system too, and the reporting fields are required.
    let mut new_style = ev("g", node.clone());
    new_style["eventTime"] = json!("2024-01-01T00:00:00.000000Z");
    let (code, st) = post("kube-system", new_style.clone()).await;
    assert_eq!(code, 422);
    let msg = st["message"].as_str().unwrap();
    assert!(msg.contains("reportingComponent: Required value"), "{msg}");
    new_style["reportingComponent"] = json!("npd");
    new_style["reportingInstance"] = json!("n");
    new_style["action"] = json!("Detected");
    assert_eq!(post("kube-system", new_style.clone()).await.0, 201);
    new_style["metadata"]["name"] = json!("h");
    assert_eq!(post("npd", new_style).await.0, 422);
    // A patch is validated too, on the patched object.
    let (code, _) = call(
        &s,
        "PATCH",
        "/api/v1/namespaces/default/events/a",
        SMP,
        r#"{"involvedObject":{"namespace":"npd"}}"#,
    )
    .await;
    assert_eq!(code, 422);
    let (code, patched) = call(
        &s,
        "PATCH",
        "/api/v1/namespaces/default/events/a",
        SMP,
        r#"{"count":2}"#,
    )
    .await;
    assert_eq!((code, patched["count"].as_u64()), (200, Some(2)));
    assert_eq!(s.events().len(), 4);
}
