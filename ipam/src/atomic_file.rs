//! Replacing a file atomically, for every writer of Jalur's files (the IPAM store, the
//! agent's CNI config and readiness mark, install-cni's binaries): a reader, and a process or
//! node that dies at any instant, sees the old content or the new, never a part of it.
//!
//! The new content goes to a temp file in the target's own directory (a rename never crosses
//! filesystems), which is given its mode, written and fsynced, then renamed over the target;
//! the directory is fsynced last so that the rename itself survives a power cut. If a step
//! fails, the temp file is removed. A temp file left by a process killed mid-write is for the
//! caller to clear: its name says whose it is ([`temp_path`], or the name given to
//! [`write_via_temp`]).

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The step of a write that failed, on which file or directory, and why.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}", path.display())]
pub struct WriteError {
    /// "cannot create", "cannot write", "cannot rename into place" (each with the temp file
    /// as `path`) or "cannot sync directory".
    pub op: &'static str,
    /// The temp file, or the directory.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

/// The bare OS error, as std's own file functions report it.
impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> io::Error {
        e.source
    }
}

/// The store's error, with the same `op` and `path`.
impl From<WriteError> for crate::Error {
    fn from(e: WriteError) -> crate::Error {
        crate::Error::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

/// The directory `path` is in (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// The temp file [`write()`] goes through for `path`: `.<file name>.tmp.<pid>`, beside it.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or(OsStr::new("file")));
    name.push(format!(".tmp.{}", std::process::id()));
    dir_of(path).join(name)
}

/// Replaces `path` with `data`, through the temp file [`temp_path`]. The file gets exactly
/// `mode` (permission bits, e.g. `0o644`; the umask does not narrow it).
pub fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), WriteError> {
    let tmp = temp_path(path);
    replace(path, &tmp, data, mode)
}

/// [`write()`] through a temp file of the caller's naming: `temp_name` (a file name, not a
/// path) in `path`'s directory. A file already there under that name is overwritten.
pub fn write_via_temp(
    path: &Path,
    temp_name: &OsStr,
    data: &[u8],
    mode: u32,
) -> Result<(), WriteError> {
    let tmp = dir_of(path).join(Path::new(temp_name).file_name().unwrap_or(temp_name));
    replace(path, &tmp, data, mode)
}

fn replace(path: &Path, tmp: &Path, data: &[u8], mode: u32) -> Result<(), WriteError> {
    let fail = |op, path: &Path| {
        let path = path.to_owned();
        move |source| WriteError { op, path, source }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(tmp)
        .map_err(fail("cannot create", tmp))?;
    // The umask may have narrowed the mode given at creation (or the file existed).
    let written = file
        .set_permissions(Permissions::from_mode(mode))
        .and_then(|()| file.write_all(data))
        .and_then(|()| file.sync_all())
        .map_err(fail("cannot write", tmp));
    drop(file);
    if let Err(e) =
        written.and_then(|()| fs::rename(tmp, path).map_err(fail("cannot rename into place", tmp)))
    {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    let dir = dir_of(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail("cannot sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn temp_file_is_hidden_beside_the_target_and_names_it_and_the_process() {
        let pid = std::process::id();
        assert_eq!(
            temp_path(Path::new("/etc/cni/net.d/10-jalur.conflist")),
            PathBuf::from(format!("/etc/cni/net.d/.10-jalur.conflist.tmp.{pid}"))
        );
        assert_eq!(
            temp_path(Path::new("ready")),
            PathBuf::from(format!("./.ready.tmp.{pid}"))
        );
    }

    #[test]
    fn creates_and_replaces_with_exactly_the_mode_given_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf");
        // 0666 is narrowed by any usual umask: the mode is set, not requested.
        write(&path, b"one\n", 0o666).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one\n");
        assert_eq!(mode(&path), 0o666);
        let before = fs::metadata(&path).unwrap().ino();
        write(&path, b"two", 0o755).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o755);
        // A new file took the old one's place; it was not rewritten in place.
        assert_ne!(fs::metadata(&path).unwrap().ino(), before);
        write(&path, b"", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(names(dir.path()), ["conf"]);
    }

    #[test]
    fn a_symlink_at_the_target_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, "theirs").unwrap();
        let path = dir.path().join("conf");
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        write(&path, b"ours", 0o644).unwrap();
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(fs::read(&path).unwrap(), b"ours");
        assert_eq!(fs::read(&elsewhere).unwrap(), b"theirs");
    }

    #[test]
    fn a_named_temp_file_overwrites_a_stale_one_of_that_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("allocations.json");
        let stale = dir.path().join("allocations.json.tmp.7");
        fs::write(&stale, "a longer half-written leftover").unwrap();
        write_via_temp(&path, OsStr::new("allocations.json.tmp.7"), b"{}", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(names(dir.path()), ["allocations.json"]);
        // A name with a directory in it stays in the target's directory.
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        write_via_temp(&path, OsStr::new("sub/x.tmp"), b"[]", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"[]");
        assert!(names(&sub).is_empty());
    }

    #[test]
    fn failures_name_the_step_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        // No directory: the temp file cannot be created.
        let path = dir.path().join("missing/conf");
        let e = write(&path, b"x", 0o644).unwrap_err();
        assert_eq!(e.op, "cannot create");
        assert_eq!(e.path, temp_path(&path));
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("cannot create"), "{e}");
        // A directory in the way: the rename fails and the temp file is removed.
        let path = dir.path().join("conf");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), "x").unwrap();
        let e = write(&path, b"x", 0o644).unwrap_err();
        assert_eq!(e.op, "cannot rename into place");
        assert_eq!(names(dir.path()), ["conf"]);
        // As an io::Error: the OS error itself; as the store's error: the same op and path.
        let raw = e.source.raw_os_error();
        let store: crate::Error = WriteError {
            op: e.op,
            path: e.path.clone(),
            source: io::Error::from_raw_os_error(raw.unwrap()),
        }
        .into();
        assert!(
            matches!(store, crate::Error::Io { op: "cannot rename into place", ref path, .. } if *path == e.path)
        );
        assert_eq!(io::Error::from(e).raw_os_error(), raw);
    }

    #[test]
    fn a_reader_sees_the_old_content_or_the_new_never_a_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf");
        let (a, b) = (vec![b'a'; 64 * 1024], vec![b'b'; 96 * 1024]);
        write(&path, &a, 0o644).unwrap();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut reads = 0;
                while !done.load(Ordering::Relaxed) {
                    let seen = fs::read(&path).unwrap();
                    assert!(
                        seen == a || seen == b,
                        "a torn read of {} bytes",
                        seen.len()
                    );
                    reads += 1;
                }
                reads
            });
            for i in 0..50 {
                write(&path, if i % 2 == 0 { &b } else { &a }, 0o644).unwrap();
            }
            done.store(true, Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
        assert_eq!(names(dir.path()), ["conf"]);
    }
}
