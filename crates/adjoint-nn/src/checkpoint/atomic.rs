//! Atomic file replacement: write a temporary sibling, fsync it, rename it over the target,
//! fsync the directory.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes temporary files of concurrent writes within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces the file at `path` with what `write` writes, atomically: at every moment `path`
/// holds either its previous content (or does not exist) or the complete new content.
///
/// `write` writes into a new temporary file in the same directory (`.<name>.tmp-<pid>-<n>`);
/// the file is flushed and fsynced, renamed over `path` (an atomic replacement on POSIX file
/// systems), and on Unix the directory is fsynced so that the rename itself survives a crash.
/// If `write` or any step before the rename fails, the temporary file is removed and `path`
/// is untouched. (A crash can leave a stray temporary file behind; it is never read, and the
/// next successful write to the same path does not depend on it.)
///
/// ```
/// use adjoint_nn::checkpoint::write_atomically;
/// use std::io::Write;
///
/// let path = std::env::temp_dir().join(format!("adjoint-atomic-doc-{}", std::process::id()));
/// write_atomically(&path, |w| w.write_all(b"old")).unwrap();
/// let failed = write_atomically(&path, |w| {
///     w.write_all(b"half of the new")?;
///     Err(std::io::Error::other("the writer failed midway"))
/// });
/// assert!(failed.is_err());
/// assert_eq!(std::fs::read(&path).unwrap(), b"old");
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn write_atomically(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let path = path.as_ref();
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    let written = write_and_sync(file, write).and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        // Best effort: the write already failed, and a leftover temporary file is harmless.
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(&dir)
}

/// Runs `write` on a buffered `file`, flushes it and fsyncs it.
fn write_and_sync(
    file: File,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let mut buffered = BufWriter::new(file);
    write(&mut buffered)?;
    let file = buffered.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Fsyncs a directory so that a rename inside it is durable (Unix; a no-op elsewhere, where
/// directories cannot be opened as files).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
