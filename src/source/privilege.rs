//! `--user NAME`: give up root once the packet sockets are open, as `tcpdump -Z` does.
//!
//! The user is looked up before any socket is opened (a typo fails fast, before the
//! interface is touched); the switch happens after every ring is open and bound, and before
//! the output is opened, so the output file is created by the unprivileged user. Order
//! matters: supplementary groups and the group go first, because once the user id is not 0
//! the process may no longer change either (`setgroups(2)`, `setgid(2)`). glibc applies each
//! of these calls to every thread of the process, but the switch happens before the capture
//! threads start anyway.
//!
//! Changing the user ids is not enough on its own: a process started as a non-root user that
//! holds ambient or file capabilities (systemd `AmbientCapabilities=`, `setcap` on the binary)
//! keeps them through `setuid(2)`, because the kernel clears capabilities only when the ids
//! move away from 0 (capabilities(7), "Effect of user ID changes on capabilities"). So the
//! switch also empties every capability set itself: the bounding set first (that needs
//! CAP_SETPCAP, which the later steps give up), then the ambient set, then the user ids, then
//! permitted, effective and inheritable through `capset(2)`, and finally sets no_new_privs so
//! no `execve(2)` can gain anything back. It then reads `/proc/self/task/*/status` and refuses
//! to go on (exit 15) unless CapPrm, CapEff and CapAmb are 0 in every thread. Capability sets
//! are per thread, which is why the switch must run before any other thread exists.

use nix::unistd::{self, Gid, Uid, User};
use rustix::thread::{self as rthread, CapabilitySet, CapabilitySets};
use std::ffi::CString;
use std::fmt;

/// Exit code when `--user` names no user, or the switch to it fails.
pub const USER_EXIT_CODE: i32 = crate::exit::USER_SWITCH as i32;

/// A user to switch to, resolved from its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUser {
    /// The user name as given.
    pub name: String,
    /// Its user ID.
    pub uid: u32,
    /// Its primary group ID.
    pub gid: u32,
}

/// Why `--user` could not be honoured.
#[derive(Debug)]
pub enum PrivilegeError {
    /// No such user in the user database.
    NoSuchUser(String),
    /// The user database could not be read.
    Lookup {
        /// The user name as given.
        name: String,
        /// Its error.
        error: nix::Error,
    },
    /// One of the calls that switch user failed (`what` names it).
    Switch {
        /// The user name as given.
        name: String,
        /// The call that failed (`setgroups`, `setgid`, `setuid`).
        what: &'static str,
        /// Its error.
        error: nix::Error,
    },
    /// The switch seemed to work but the process can still become root again.
    StillPrivileged(String),
    /// A capability call failed (`what` names it).
    Capabilities {
        /// The user name as given.
        name: String,
        /// The call that failed.
        what: &'static str,
        /// Its error.
        error: rustix::io::Errno,
    },
    /// After the drop a thread still holds a capability (`detail` quotes the status lines).
    CapabilitiesLeft {
        /// The user name as given.
        name: String,
        /// The status lines that show the capability.
        detail: String,
    },
}

impl PrivilegeError {
    /// The process exit code for this error (`capture --user` failures share one).
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
            PrivilegeError::Capabilities { name, what, error } => {
                write!(f, "--user {name:?}: {what} failed: {error}")
            }
            PrivilegeError::CapabilitiesLeft { name, detail } => write!(
                f,
                "--user {name:?}: capabilities are still held after the drop ({detail}); \
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

    /// Drops to this user for good and gives up every capability: the bounding set (when
    /// CAP_SETPCAP allows), the ambient set, then supplementary groups (the user's own, from
    /// the group database), the group id, the user id (real, effective and saved all change
    /// when the process runs as root), then the permitted, effective and inheritable sets, and
    /// sets no_new_privs. Then checks that root cannot be regained and that no thread holds a
    /// capability. Says what happened to the bounding set.
    pub fn switch(&self) -> Result<SwitchReport, PrivilegeError> {
        let fail = |what: &'static str| {
            move |error| PrivilegeError::Switch {
                name: self.name.clone(),
                what,
                error,
            }
        };
        let cap_fail = |what: &'static str| {
            move |error| PrivilegeError::Capabilities {
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
        // First, while CAP_SETPCAP may still be effective (it goes with the uid change).
        let bounding_set_emptied = drop_bounding_set().map_err(cap_fail("PR_CAPBSET_DROP"))?;
        rthread::clear_ambient_capability_set().map_err(cap_fail("PR_CAP_AMBIENT_CLEAR_ALL"))?;
        // A process already running as the user (a non-root launcher that handed it
        // capabilities) needs no change of ids, and may lack CAP_SETGID/CAP_SETUID to make
        // one: a call that would change nothing is skipped, and a refused setgroups is
        // accepted when the process holds no group the user lacks (it only has less).
        let mut have_groups = unistd::getgroups().map_err(fail("getgroups"))?;
        let mut want_groups = groups.clone();
        have_groups.sort_unstable_by_key(|g| g.as_raw());
        have_groups.dedup();
        want_groups.sort_unstable_by_key(|g| g.as_raw());
        want_groups.dedup();
        if have_groups != want_groups {
            match unistd::setgroups(&groups) {
                Ok(()) => {}
                Err(nix::Error::EPERM) if have_groups.iter().all(|g| groups.contains(g)) => {}
                Err(e) => return Err(fail("setgroups")(e)),
            }
        }
        let rg = unistd::getresgid().map_err(fail("getresgid"))?;
        if [rg.real, rg.effective, rg.saved] != [gid; 3] {
            unistd::setgid(gid).map_err(fail("setgid"))?;
        }
        let ru = unistd::getresuid().map_err(fail("getresuid"))?;
        if [ru.real, ru.effective, ru.saved] != [uid; 3] {
            unistd::setuid(uid).map_err(fail("setuid"))?;
        }
        let none = CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        };
        // Lowering capabilities is always allowed (capset(2)).
        rthread::set_capabilities(None, none).map_err(cap_fail("capset"))?;
        rthread::set_no_new_privs(true).map_err(cap_fail("PR_SET_NO_NEW_PRIVS"))?;
        // Dropping to root itself is a no-op, not a failure.
        if self.uid != 0 && unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(PrivilegeError::StillPrivileged(self.name.clone()));
        }
        if let Some(detail) = capabilities_left() {
            return Err(PrivilegeError::CapabilitiesLeft {
                name: self.name.clone(),
                detail,
            });
        }
        Ok(SwitchReport {
            bounding_set_emptied,
        })
    }
}

/// What [`TargetUser::switch`] did beyond the checked minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchReport {
    /// False when the process had no CAP_SETPCAP, so the bounding set could not be lowered
    /// (harmless once no_new_privs is set: no `execve` can raise anything up to it).
    pub bounding_set_emptied: bool,
}

/// Drops every capability from the bounding set; false (and nothing changed) when the
/// process lacks CAP_SETPCAP. The loop runs up to the first number the kernel does not know
/// (`EINVAL`), so capabilities newer than this build are dropped too.
fn drop_bounding_set() -> rustix::io::Result<bool> {
    for cap in 0..64u32 {
        let one = CapabilitySet::from_bits_retain(1u64 << cap);
        match rthread::capability_is_in_bounding_set(one) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(rustix::io::Errno::INVAL) => break,
            Err(e) => return Err(e),
        }
        match rthread::remove_capability_from_bounding_set(one) {
            Ok(()) => {}
            Err(rustix::io::Errno::PERM) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The capability lines of every thread that still holds one in CapPrm, CapEff or CapAmb
/// (read from `/proc/self/task/*/status`, so a thread started too early is caught); `None`
/// when all are 0. A status that cannot be read counts as held: the check must fail closed.
fn capabilities_left() -> Option<String> {
    let tasks = match std::fs::read_dir("/proc/self/task") {
        Ok(t) => t,
        Err(e) => return Some(format!("cannot read /proc/self/task: {e}")),
    };
    let mut held = Vec::new();
    for task in tasks {
        let path = match task {
            Ok(t) => t.path().join("status"),
            Err(e) => return Some(format!("cannot read /proc/self/task: {e}")),
        };
        let status = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            // The thread ended between the listing and the read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Some(format!("cannot read {}: {e}", path.display())),
        };
        for field in ["CapPrm:", "CapEff:", "CapAmb:"] {
            match status.lines().find_map(|l| l.strip_prefix(field)) {
                Some(v) if u64::from_str_radix(v.trim(), 16) == Ok(0) => {}
                Some(v) => held.push(format!("{} {field} {}", path.display(), v.trim())),
                None => held.push(format!("{} has no {field} line", path.display())),
            }
        }
    }
    if held.is_empty() {
        None
    } else {
        Some(held.join(", "))
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
