//! Secrets: the password type that never prints, and password files (`--password-file`),
//! read with the checks a file holding a credential deserves.

use std::fmt;
use std::io;

/// A password that never shows in `Debug` output (nor anywhere else this crate prints).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// The password from `--password-file FILE` (or its environment variable): the first line,
/// without its line end. The file is named in errors; its content never is.
pub fn read_password_file(path: &std::path::Path) -> Result<Secret, String> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let cannot = |e: io::Error| format!("cannot read the password file {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    // A file another user can change could hand us a password of their choosing; pipes and
    // other non-files (`--password-file <(pass show broker)`) have no such owner to check.
    if meta.file_type().is_file() {
        let euid = nix::unistd::geteuid().as_raw();
        if meta.uid() != euid && meta.uid() != 0 {
            return Err(format!(
                "the password file {} belongs to uid {}, not to you or root; refusing to use it",
                path.display(),
                meta.uid()
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "the password file {} is writable by group or others (mode {:o}); refusing to \
                 use it (chmod 600)",
                path.display(),
                meta.mode() & 0o7777
            ));
        }
        if meta.mode() & 0o044 != 0 {
            eprintln!(
                "netpipe-fast: warning: the password file {} is readable by group or others \
                 (mode {:o}); chmod 600 keeps it private",
                path.display(),
                meta.mode() & 0o7777
            );
        }
    }
    let mut text = Vec::new();
    // The first line is all that is used; a huge file is not read whole.
    file.take(64 * 1024)
        .read_to_end(&mut text)
        .map_err(cannot)?;
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    if first.is_empty() {
        return Err(format!(
            "the password file {} is empty (the password is its first line)",
            path.display()
        ));
    }
    String::from_utf8(first.to_vec())
        .map(Secret)
        .map_err(|_| format!("the password file {} is not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_files_others_can_change_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\nignored\n").expect("write");
        let mode = |m| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m));
        mode(0o600).expect("chmod");
        assert_eq!(read_password_file(&path).map(|s| s.0), Ok("s3cret".into()));
        mode(0o622).expect("chmod");
        let e = read_password_file(&path).map(|s| s.0).unwrap_err();
        assert!(e.contains("writable by group or others"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        mode(0o600).expect("chmod");
        if nix::unistd::geteuid().as_raw() == 0 {
            // Planted by another user: refused even though root could read it.
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).expect("chown");
            let e = read_password_file(&path).map(|s| s.0).unwrap_err();
            assert!(e.contains("belongs to uid 65534"), "{e}");
        }
    }

    #[test]
    fn password_file_first_line() {
        let dir = std::env::temp_dir().join(format!("np-pwfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let f = dir.join("pw");
        std::fs::write(&f, "s3cr/et@x\r\nsecond line\n").expect("write");
        assert_eq!(
            read_password_file(&f).map(|s| s.0),
            Ok("s3cr/et@x".to_string())
        );
        std::fs::write(&f, "\n").expect("write");
        let e = read_password_file(&f).map(|s| s.0).unwrap_err();
        assert!(e.contains("is empty"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
        let e = read_password_file(&dir.join("none"))
            .map(|s| s.0)
            .unwrap_err();
        assert!(e.starts_with("cannot read the password file"), "{e}");
    }
}
