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
