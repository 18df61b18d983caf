//! Access model (stub while building).
pub mod erlang_term;
pub mod password;
pub mod permissions;
pub mod policies;
pub mod policy_merge;
pub mod users;
pub mod vhosts;
