//! The store's one test binary: the `Store` contract, each test written once and run on every backend (SQLite on
//! a fresh file, PostgreSQL on a fresh database of one server shared by the whole binary), and what only the
//! SQLite backend has. `cargo test -p haul-store -- sqlite` runs the SQLite half, `-- postgres` the other.

#[macro_use]
mod harness;

mod accounts;
mod archive;
mod claims;
mod downloads;
mod idempotency;
mod nodes;
mod playlists;
mod rules;
mod sqlite_only;
mod webhooks;
