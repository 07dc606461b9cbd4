#!/bin/sh
# Regenerates deploy/configmap.yaml and the plugin item list of deploy/daemonset.yaml from
# config/*.json and config/plugin/*. The generator is the test that checks them, so the
# two can never disagree.
set -eu
cd "$(dirname "$0")/.."
UPDATE_DEPLOY=1 exec cargo test --test deploy_manifests generated_manifests_are_current
