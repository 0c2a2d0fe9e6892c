//! Encoders: the packet JSON writer and the formatting primitives it uses.
pub mod batch;
pub mod community_id;
pub mod hex;
pub mod json;
pub mod out;

pub use json::{max_message_bytes, FrameMeta, JsonEncoder};
