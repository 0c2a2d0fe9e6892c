//! Creating the files the user names for output (`-o PATH`, `-w FILE`): the process often
//! runs as root and the path often lies in a shared folder, so no symbolic link is followed,
//! new files are private, and an existing file is emptied only when it is ours alone.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Opens `path` to write output into (a `-w` capture, an `-o` JSON file): created mode 0600 without following a symbolic
/// link; an existing regular file is emptied only if this user owns it and it has one link;
/// FIFOs and character devices are written as they are.
pub fn open_for_writing(path: &Path) -> io::Result<File> {
    let named = |what: String| io::Error::new(io::ErrorKind::PermissionDenied, what);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                named(format!(
                    "{}: is a symbolic link; not followed (give the real path)",
                    path.display()
                ))
            } else {
                io::Error::new(e.kind(), format!("{}: {e}", path.display()))
            }
        })?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if kind.is_file() {
        let euid = nix::unistd::geteuid().as_raw();
        if meta.uid() != euid {
            return Err(named(format!(
                "{}: exists and is owned by uid {}, not by this user (uid {euid}); not \
                 overwritten",
                path.display(),
                meta.uid()
            )));
        }
        if meta.nlink() > 1 {
            return Err(named(format!(
                "{}: exists with {} hard links; not overwritten",
                path.display(),
                meta.nlink()
            )));
        }
        file.set_len(0)?;
    } else if !(kind.is_fifo() || kind.is_char_device()) {
        return Err(named(format!(
            "{}: not a regular file, FIFO or character device",
            path.display()
        )));
    }
    Ok(file)
}
