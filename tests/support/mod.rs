//! Shared support code of the integration tests. Each test binary that needs
//! it declares `mod support;` and uses only part of it, hence the
//! `dead_code` allowance in the submodules.

pub mod nats;
