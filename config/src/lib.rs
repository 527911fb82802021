//! Tortie's typed configuration: the files users write, loaded with serde
//! and the `config` crate, validated with errors that name the field, the
//! value and what is allowed.
