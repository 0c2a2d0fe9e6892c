//! Where netpipe-fast keeps state of its own (spool, listeners' shutdown files): never a
//! world-writable folder, so a default path cannot be planted by another local user.

use std::path::PathBuf;

/// This process's state directory (see [`state_root_for`]), for its effective user and
/// environment.
pub fn state_root() -> PathBuf {
    state_root_for(
        nix::unistd::geteuid().as_raw(),
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

/// `/var/lib/netpipe-fast` for root; `$XDG_STATE_HOME/netpipe-fast` for other users, else
/// `~/.local/state/netpipe-fast` (home from `HOME`, else the user database). Relative
/// `XDG_STATE_HOME` or `HOME` values are ignored, as the XDG base directory specification asks.
pub fn state_root_for(uid: u32, xdg_state_home: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    if uid == 0 {
        return PathBuf::from("/var/lib/netpipe-fast");
    }
    xdg_state_home
        .filter(|p| p.is_absolute())
        .or_else(|| {
            home.filter(|p| p.is_absolute())
                .or_else(|| {
                    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                        .ok()
                        .flatten()
                        .map(|u| u.dir)
                })
                .map(|h| h.join(".local/state"))
        })
        .map(|state| state.join("netpipe-fast"))
        // No home at all: a root-owned place the trust checks refuse if it is unusable.
        .unwrap_or_else(|| PathBuf::from(format!("/var/lib/netpipe-fast/user-{uid}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_users_get_private_places() {
        assert_eq!(
            state_root_for(0, None, None),
            PathBuf::from("/var/lib/netpipe-fast")
        );
        assert_eq!(
            state_root_for(1000, Some("/x/state".into()), Some("/home/u".into())),
            PathBuf::from("/x/state/netpipe-fast")
        );
        // A relative XDG_STATE_HOME is ignored.
        assert_eq!(
            state_root_for(1000, Some("rel".into()), Some("/home/u".into())),
            PathBuf::from("/home/u/.local/state/netpipe-fast")
        );
    }
}
