//! Integration tests: real dumps from real Ruby, checked against heapy and against the truth
//! Ruby itself recorded while writing them; backends against real servers.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod auth;
mod bad_input;
mod deploy;
mod heapy_differential;
mod object_storage;
mod postgres_catalog;
mod real_dump;
mod reap_differential;
mod scylla_store;
mod slot_reuse;
mod tidy;
