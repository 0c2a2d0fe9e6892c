//! Traffic tools built on the library: `replay` (send capture files through a TX ring).
pub mod replay;
