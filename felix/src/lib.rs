//! The dataplane agent (tortie-node): desired state in, kernel routes out.
//! Built under the dataplane issue.
