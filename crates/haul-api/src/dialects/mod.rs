//! Compatibility dialects: other download managers' HTTP APIs, each a thin translation layer over the one
//! job model (`haul_engine::service::Engine`). A dialect owns no state: a job made through one API is visible
//! to the same account through all the others, the native `/v1` included.

pub(crate) mod surge;
