//! A blocking std::fs [`Storage`], for the benchmark only: running the same
//! `Log` over plain pwrite/fdatasync separates what the log costs from what
//! the io_uring path costs. Never for the broker: every call blocks the
//! executor thread.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use rafka_core::io::{IoError, Storage, StorageFile};

#[derive(Debug, Clone, Copy, Default)]
pub struct StdStorage;

#[derive(Debug)]
pub struct StdFile {
    file: File,
    path: std::path::PathBuf,
}

impl StdFile {
    fn err(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> IoError + '_ {
        move |source| IoError::new(op, &self.path, source)
    }
}

fn err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> IoError + 'p {
    move |source| IoError::new(op, path, source)
}

impl StorageFile for StdFile {
    async fn write_at(&self, pos: u64, data: &[u8]) -> Result<(), IoError> {
        self.file.write_all_at(data, pos).map_err(self.err("write"))
    }

    async fn read_at(&self, pos: u64, len: usize) -> Result<Bytes, IoError> {
        let mut buf = vec![0u8; len];
        let mut filled = 0usize;
        while filled < len {
            let at = pos + filled as u64;
            let n = self
                .file
                .read_at(&mut buf[filled..], at)
                .map_err(self.err("read"))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(Bytes::from(buf))
    }

    async fn sync_data(&self) -> Result<(), IoError> {
        self.file.sync_data().map_err(self.err("fdatasync"))
    }

    async fn truncate(&self, len: u64) -> Result<(), IoError> {
        self.file.set_len(len).map_err(self.err("truncate"))
    }

    async fn size(&self) -> Result<u64, IoError> {
        let meta = self.file.metadata().map_err(self.err("stat"))?;
        Ok(meta.len())
    }

    async fn close(self) -> Result<(), IoError> {
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}

impl Storage for StdStorage {
    type File = StdFile;

    async fn open(&self, path: &Path) -> Result<StdFile, IoError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err("open", path))?;
        Ok(StdFile {
            file,
            path: path.to_path_buf(),
        })
    }

    async fn create_dir_all(&self, path: &Path) -> Result<(), IoError> {
        std::fs::create_dir_all(path).map_err(err("create_dir_all", path))
    }

    async fn list_dir(&self, path: &Path) -> Result<Vec<String>, IoError> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(path).map_err(err("list_dir", path))? {
            let entry = entry.map_err(err("list_dir", path))?;
            // Only rafka's own ASCII names matter to the log.
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    async fn exists(&self, path: &Path) -> Result<bool, IoError> {
        path.try_exists().map_err(err("exists", path))
    }

    async fn remove_file(&self, path: &Path) -> Result<(), IoError> {
        std::fs::remove_file(path).map_err(err("remove_file", path))
    }

    async fn remove_dir_all(&self, path: &Path) -> Result<(), IoError> {
        std::fs::remove_dir_all(path).map_err(err("remove_dir_all", path))
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), IoError> {
        std::fs::rename(from, to).map_err(err("rename", from))
    }

    async fn sync_dir(&self, path: &Path) -> Result<(), IoError> {
        File::open(path)
            .and_then(|dir| dir.sync_all())
            .map_err(err("sync_dir", path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_on_a_temp_dir() {
        let dir = std::env::temp_dir().join(format!("rafka-bench-std-{}", std::process::id()));
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(256 << 10)
            .make()
            .unwrap();
        ex.run(async {
            let s = StdStorage;
            s.create_dir_all(&dir).await.unwrap();
            let f = s.open(&dir.join("a.log")).await.unwrap();
            f.write_at(3, b"bytes").await.unwrap();
            assert_eq!(f.size().await.unwrap(), 8);
            assert_eq!(&f.read_at(2, 100).await.unwrap()[..], b"\0bytes");
            f.truncate(4).await.unwrap();
            assert_eq!(&f.read_at(0, 100).await.unwrap()[..], b"\0\0\0b");
            assert_eq!(s.list_dir(&dir).await.unwrap(), ["a.log"]);
            let err = s.remove_file(&dir.join("nope")).await.unwrap_err();
            assert_eq!(
                (err.op, err.kind()),
                ("remove_file", std::io::ErrorKind::NotFound)
            );
            s.remove_dir_all(&dir).await.unwrap();
            assert!(!s.exists(&dir).await.unwrap());
        });
    }
}
