//! Placeholder with the API the Kubernetes exporter will have.
use std::sync::Arc;
use std::time::Duration;

use crate::types::{Condition, Status};

/// Exporter options.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// --apiserver-override.
    pub apiserver_override: Option<String>,
    /// Node name.
    pub node_name: String,
    /// --apiserver-wait-timeout.
    pub wait_timeout: Duration,
    /// --apiserver-wait-interval.
    pub wait_interval: Duration,
    /// --k8s-exporter-heartbeat-period.
    pub heartbeat_period: Duration,
    /// --k8s-exporter-write-events.
    pub write_events: bool,
    /// --k8s-exporter-update-node-conditions.
    pub update_node_conditions: bool,
    /// --event-namespace.
    pub event_namespace: String,
    /// --kube-api-qps.
    pub qps: f32,
    /// --kube-api-burst.
    pub burst: u32,
    /// --restore-conditions.
    pub restore_conditions: bool,
    /// --delete-removed-conditions.
    pub delete_removed_conditions: bool,
}

/// Errors.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// Not built yet.
    #[error("the Kubernetes exporter is not built yet")]
    NotBuilt,
}

/// Stats.
#[derive(Debug, Default)]
pub struct KubeStats {}

/// Handle.
#[derive(Debug, Clone)]
pub struct KubeExporter {}

/// Resolves the node name.
pub fn resolve_node_name(hostname_override: Option<&str>) -> Result<String, KubeError> {
    Ok(hostname_override.unwrap_or("node").to_string())
}

impl KubeExporter {
    /// Starts.
    pub async fn start(
        _opts: KubeOptions,
        _types: Vec<String>,
    ) -> Result<(KubeExporter, Vec<Condition>), KubeError> {
        Err(KubeError::NotBuilt)
    }
    /// Reports.
    pub fn report(&self, _status: &Status) {}
    /// Ownership.
    pub fn set_owned_condition_types(&self, _types: Vec<String>) {}
    /// Shutdown.
    pub async fn shutdown(self, _deadline: Duration) {}
    /// Stats.
    pub fn stats(&self) -> Arc<KubeStats> {
        Arc::new(KubeStats {})
    }
}
