//! Exporters: where statuses go (DESIGN.md section 2). They never block the monitors.

pub mod kube;
