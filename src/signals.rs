//! SIGINT and SIGTERM for the commands that run until told to stop (capture, record, the
//! traffic tools): the first signal asks for an orderly end, a second one ends the process.

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Makes SIGINT and SIGTERM set `stop`; a second one of either ends the process at once
/// (exit code 1), so a capture stuck on a dead output can still be interrupted.
pub fn stop_on_signals(stop: &Arc<AtomicBool>) -> io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal set it.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(stop))?;
        signal_hook::flag::register(sig, Arc::clone(stop))?;
    }
    Ok(())
}
