//! Upstream node-problem-detector's configs and manifests, vendored in
//! `tests/data/upstream/` (Apache-2.0; see the README there). The one place tests find them.
#![allow(dead_code)]

use std::path::PathBuf;

/// `tests/data/upstream` of this repository. Panics when it is missing: the compatibility
/// data is part of the repository and the tests that use it must not skip.
pub fn dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/upstream");
    assert!(
        d.join("config").is_dir() && d.join("deployment").is_dir(),
        "{}: upstream test data missing (config/ and deployment/ are checked in)",
        d.display()
    );
    d
}

/// Upstream's monitor configs (`config/*.json`).
pub fn config_dir() -> PathBuf {
    dir().join("config")
}

/// Upstream's deployment manifests (`deployment/*.yaml`).
pub fn deployment_dir() -> PathBuf {
    dir().join("deployment")
}
