//! Test harness: network namespaces and real routing daemons, cleaned up on
//! drop.
