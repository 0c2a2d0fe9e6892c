//! `--user NAME`: give up root once the packet sockets are open, as `tcpdump -Z` does.
//!
//! The user is looked up before any socket is opened (a typo fails fast, before the
//! interface is touched); the switch happens after every ring is open and bound, and before
//! the output is opened, so the output file is created by the unprivileged user. Order
//! matters: supplementary groups and the group go first, because once the user id is not 0
//! the process may no longer change either (`setgroups(2)`, `setgid(2)`). glibc applies each
//! of these calls to every thread of the process, but the switch happens before the capture
//! threads start anyway.

use nix::unistd::{self, Gid, Uid, User};
use std::ffi::CString;
use std::fmt;

/// Exit code when `--user` names no user, or the switch to it fails.
pub const USER_EXIT_CODE: i32 = 15;

/// A user to switch to, resolved from its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Why `--user` could not be honoured.
#[derive(Debug)]
pub enum PrivilegeError {
    /// No such user in the user database.
    NoSuchUser(String),
    /// The user database could not be read.
    Lookup { name: String, error: nix::Error },
    /// One of the calls that switch user failed (`what` names it).
    Switch {
        name: String,
        what: &'static str,
        error: nix::Error,
    },
    /// The switch seemed to work but the process can still become root again.
    StillPrivileged(String),
}

impl PrivilegeError {
    pub fn exit_code(&self) -> i32 {
        USER_EXIT_CODE
    }
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::NoSuchUser(name) => {
                write!(f, "--user {name:?}: no such user")
            }
            PrivilegeError::Lookup { name, error } => {
                write!(f, "--user {name:?}: cannot look the user up: {error}")
            }
            PrivilegeError::Switch { name, what, error } => write!(
                f,
                "--user {name:?}: {what} failed: {error} (switching user needs root or \
                 CAP_SETUID and CAP_SETGID)"
            ),
            PrivilegeError::StillPrivileged(name) => write!(
                f,
                "--user {name:?}: the process could still regain root after the switch; \
                 refusing to go on"
            ),
        }
    }
}

impl std::error::Error for PrivilegeError {}

impl TargetUser {
    /// Looks `name` up in the user database (`getpwnam_r`).
    pub fn lookup(name: &str) -> Result<TargetUser, PrivilegeError> {
        match User::from_name(name) {
            Ok(Some(user)) => Ok(TargetUser {
                name: name.to_owned(),
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            }),
            Ok(None) => Err(PrivilegeError::NoSuchUser(name.to_owned())),
            // A name with a NUL byte, for example.
            Err(nix::Error::EINVAL) => Err(PrivilegeError::NoSuchUser(name.to_owned())),
            Err(error) => Err(PrivilegeError::Lookup {
                name: name.to_owned(),
                error,
            }),
        }
    }

    /// Drops to this user for good: supplementary groups (the user's own, from the group
    /// database), then the group id, then the user id (real, effective and saved all change,
    /// because the process runs as root). Then checks that root cannot be regained.
    pub fn switch(&self) -> Result<(), PrivilegeError> {
        let fail = |what: &'static str| {
            move |error| PrivilegeError::Switch {
                name: self.name.clone(),
                what,
                error,
            }
        };
        let gid = Gid::from_raw(self.gid);
        let uid = Uid::from_raw(self.uid);
        let c_name = CString::new(self.name.as_str())
            .map_err(|_| PrivilegeError::NoSuchUser(self.name.clone()))?;
        let groups = unistd::getgrouplist(&c_name, gid).map_err(fail("getgrouplist"))?;
        unistd::setgroups(&groups).map_err(fail("setgroups"))?;
        unistd::setgid(gid).map_err(fail("setgid"))?;
        unistd::setuid(uid).map_err(fail("setuid"))?;
        // Dropping to root itself is a no-op, not a failure.
        if self.uid != 0 && unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(PrivilegeError::StillPrivileged(self.name.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found() {
        let root = TargetUser::lookup("root").expect("every system has root");
        assert_eq!((root.uid, root.gid), (0, 0));
    }

    #[test]
    fn unknown_user_is_a_clear_error() {
        let err = TargetUser::lookup("no-such-user-netpipe-fast").unwrap_err();
        assert_eq!(err.exit_code(), USER_EXIT_CODE);
        assert_eq!(
            err.to_string(),
            "--user \"no-such-user-netpipe-fast\": no such user"
        );
        assert!(matches!(
            TargetUser::lookup("a\0b"),
            Err(PrivilegeError::NoSuchUser(_))
        ));
    }
}
