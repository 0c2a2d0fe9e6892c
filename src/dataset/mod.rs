//! Datasets from recorded CSVs: `netpipe-fast dataset prepare` (the original's
//! `prepare_dataset.py`, kept file names, metadata keys and label rule).
//!
//! Streaming in three passes so memory is bounded by the number of columns, not rows:
//! 1. read every input's header row and build the union of columns (first-seen order);
//! 2. copy every row into the full CSV under that union, label it, and note per column whether
//!    it ever holds a value and whether every value is a number;
//! 3. read the full CSV back and write the clean CSV from the columns pass 2 found
//!    numeric-ready.
//!
//! Outputs are written to a temporary file in the same directory and renamed into place, so a
//! crash never leaves half a CSV.

pub mod prepare;

pub use prepare::{
    is_number, LabelRule, PrepareConfig, PrepareError, PrepareReport, RowProblem, RowProblemKind,
};
