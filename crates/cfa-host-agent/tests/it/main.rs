//! `cfa-host-agent` against a real receiver on loopback and, where Docker is needed, the real
//! engine (`scripts/install-docker`): an OOM kill reaches the receiver once and signed
//! (`oom.rs`, with the built binary), events survive a receiver outage and agent restarts
//! without duplicates (`outage.rs`, with the library's `agent::run`), and the receiver refuses
//! what is not signed with its secret (`delivery.rs`, no Docker). Without an engine the Docker
//! tests print one line and pass, except under `CI=true`, where they fail.

mod delivery;
mod oom;
mod outage;
mod support;
