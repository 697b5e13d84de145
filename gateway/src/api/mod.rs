//! The gateway's local HTTP API and the client the CLI uses. The routes are
//! documented in `gateway/openapi.yaml` (served at `/v1/openapi.yaml`).

pub mod client;
pub mod server;
pub mod wire;
