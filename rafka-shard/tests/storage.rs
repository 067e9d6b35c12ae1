//! GlommioStorage against a real temp dir, inside a small unpinned executor.

use std::future::Future;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::{LocalExecutorBuilder, Placement};
use rafka_core::io::{Storage, StorageFile};
use rafka_shard::storage::{GlommioStorage, WriteMode};

/// Small enough for an unprivileged RLIMIT_MEMLOCK (often 8 MiB or less).
const IO_MEMORY_BYTES: usize = 512 << 10;

fn run<F, Fut>(test: F)
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: Future<Output = ()>,
{
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .unwrap();
    ex.run(test(dir));
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn write_read_size_roundtrip() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let f = s.open(&dir.join("a.log")).await.unwrap();
        assert_eq!(f.size().await.unwrap(), 0);
        let data = pattern(100_000, 7);
        f.write_at(0, &data).await.unwrap();
        f.write_at(100_000, b"tail").await.unwrap();
        assert_eq!(f.size().await.unwrap(), 100_004);
        let back = f.read_at(0, 100_004).await.unwrap();
        assert_eq!(&back[..100_000], &data[..]);
        assert_eq!(&back[100_000..], b"tail");
        let mid = f.read_at(99_998, 4).await.unwrap();
        assert_eq!(&mid[..], &[data[99_998], data[99_999], b't', b'a']);
        f.sync_data().await.unwrap();
        f.close().await.unwrap();
        assert_eq!(std::fs::read(dir.join("a.log")).unwrap().len(), 100_004);
    });
}

#[test]
fn both_write_modes_store_the_same_bytes() {
    run(|dir| async move {
        let data = pattern(300_000, 3);
        for (mode, name) in [(WriteMode::Pwrite, "p"), (WriteMode::Uring, "u")] {
            let s = GlommioStorage::with_write_mode(mode);
            let f = s.open(&dir.join(name)).await.unwrap();
            f.write_at(0, &data[..200_000]).await.unwrap();
            f.write_at(200_000, &data[200_000..]).await.unwrap();
            f.write_at(10, b"overwritten").await.unwrap();
            f.sync_data().await.unwrap();
            f.close().await.unwrap();
        }
        let mut expected = data.clone();
        expected[10..21].copy_from_slice(b"overwritten");
        assert_eq!(std::fs::read(dir.join("p")).unwrap(), expected);
        assert_eq!(std::fs::read(dir.join("u")).unwrap(), expected);
    });
}

#[test]
fn overwrite_and_hole_read_back_exactly() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let f = s.open(&dir.join("h")).await.unwrap();
        f.write_at(0, b"abcdef").await.unwrap();
        f.write_at(2, b"XY").await.unwrap();
        f.write_at(10, b"Z").await.unwrap();
        let back = f.read_at(0, 64).await.unwrap();
        assert_eq!(&back[..], b"abXYef\0\0\0\0Z");
        f.close().await.unwrap();
    });
}

#[test]
fn read_past_eof_is_short_or_empty() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let f = s.open(&dir.join("short")).await.unwrap();
        f.write_at(0, b"0123456789").await.unwrap();
        assert_eq!(&f.read_at(6, 100).await.unwrap()[..], b"6789");
        assert_eq!(f.read_at(10, 5).await.unwrap().len(), 0);
        assert_eq!(f.read_at(1_000, 5).await.unwrap().len(), 0);
        assert_eq!(f.read_at(3, 0).await.unwrap().len(), 0);
        f.close().await.unwrap();
    });
}

#[test]
fn truncate_shrinks_and_extends_with_zeros() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let f = s.open(&dir.join("t")).await.unwrap();
        f.write_at(0, &pattern(4096, 1)).await.unwrap();
        f.truncate(1000).await.unwrap();
        assert_eq!(f.size().await.unwrap(), 1000);
        assert_eq!(
            &f.read_at(0, 4096).await.unwrap()[..],
            &pattern(4096, 1)[..1000]
        );
        f.truncate(1003).await.unwrap();
        assert_eq!(
            &f.read_at(999, 10).await.unwrap()[..],
            &[pattern(1000, 1)[999], 0, 0, 0]
        );
        f.close().await.unwrap();
    });
}

#[test]
fn reopen_keeps_existing_bytes() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let path = dir.join("keep");
        let f = s.open(&path).await.unwrap();
        f.write_at(0, b"persisted").await.unwrap();
        f.sync_data().await.unwrap();
        f.close().await.unwrap();
        let again = s.open(&path).await.unwrap();
        assert_eq!(again.size().await.unwrap(), 9);
        assert_eq!(&again.read_at(0, 9).await.unwrap()[..], b"persisted");
        again.close().await.unwrap();
    });
}

#[test]
fn rename_remove_exists() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let (from, to) = (dir.join("x.cleaned"), dir.join("x.log"));
        let f = s.open(&from).await.unwrap();
        f.write_at(0, b"swap").await.unwrap();
        f.close().await.unwrap();
        s.open(&to).await.unwrap().close().await.unwrap();

        s.rename(&from, &to).await.unwrap();
        assert!(!s.exists(&from).await.unwrap());
        assert!(s.exists(&to).await.unwrap());
        assert_eq!(std::fs::read(&to).unwrap(), b"swap");

        s.remove_file(&to).await.unwrap();
        assert!(!s.exists(&to).await.unwrap());
        let err = s.remove_file(&to).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(err.op, "remove_file");
        assert_eq!(err.path, to);
    });
}

#[test]
fn dirs_create_list_sync_remove() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let part = dir.join("data").join("topic-0");
        s.create_dir_all(&part).await.unwrap();
        s.create_dir_all(&part).await.unwrap(); // idempotent, like mkdir -p
        for name in [
            "00000000000000000010.log",
            "00000000000000000000.log",
            "leader-epoch-checkpoint",
        ] {
            s.open(&part.join(name))
                .await
                .unwrap()
                .close()
                .await
                .unwrap();
        }
        s.create_dir_all(&part.join("sub")).await.unwrap();
        let names = s.list_dir(&part).await.unwrap();
        assert_eq!(
            names,
            [
                "00000000000000000000.log",
                "00000000000000000010.log",
                "leader-epoch-checkpoint",
                "sub"
            ]
        );
        s.sync_dir(&part).await.unwrap();
        s.remove_dir_all(&dir.join("data")).await.unwrap();
        assert!(!s.exists(&part).await.unwrap());
        assert_eq!(s.list_dir(&dir).await.unwrap(), Vec::<String>::new());
    });
}

#[test]
fn errors_carry_op_and_path() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let missing = dir.join("nope");
        let err = s.list_dir(&missing).await.unwrap_err();
        assert_eq!(
            (err.op, err.path.as_path(), err.kind()),
            ("list_dir", missing.as_path(), ErrorKind::NotFound)
        );
        let err = s.sync_dir(&missing).await.unwrap_err();
        assert_eq!((err.op, err.kind()), ("open_dir", ErrorKind::NotFound));
        assert_eq!(err.path, missing);
        let err = s.rename(&missing, &dir.join("b")).await.unwrap_err();
        assert_eq!((err.op, err.kind()), ("rename", ErrorKind::NotFound));
        let in_missing = missing.join("f.log");
        let err = s.open(&in_missing).await.unwrap_err();
        assert_eq!((err.op, err.kind()), ("open", ErrorKind::NotFound));
        assert_eq!(err.path, in_missing);
        let shown = err.to_string();
        assert!(
            shown.starts_with("open ") && shown.contains("f.log"),
            "{shown}"
        );
        let err = s.remove_dir_all(&missing).await.unwrap_err();
        assert_eq!(
            (err.op, err.kind()),
            ("remove_dir_all", ErrorKind::NotFound)
        );
    });
}

#[test]
fn open_on_a_directory_fails_with_path() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let err = s.open(&dir).await.unwrap_err();
        assert_eq!(err.op, "open");
        assert_eq!(err.path, dir);
        assert_eq!(err.source.raw_os_error(), Some(21)); // EISDIR
    });
}

/// The descriptor must be the file's own, since fetch hands it to sendfile.
#[test]
fn raw_fd_names_the_open_file() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let path = dir.join("fd.log");
        let f = s.open(&path).await.unwrap();
        let fd = f.raw_fd().unwrap();
        let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert_eq!(target, std::fs::canonicalize(&path).unwrap());
        f.close().await.unwrap();
    });
}

/// Readers hold `Rc<File>`: a deleted segment stays readable while shared,
/// and the last owner can still close explicitly.
#[test]
fn shared_file_outlives_removal_and_closes_once() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let path = dir.join("seg.log");
        let f = Rc::new(s.open(&path).await.unwrap());
        f.write_at(0, b"still here").await.unwrap();
        let reader = Rc::clone(&f);
        drop(f);
        s.remove_file(&path).await.unwrap();
        assert!(!s.exists(&path).await.unwrap());
        assert_eq!(&reader.read_at(0, 64).await.unwrap()[..], b"still here");
        let last = Rc::try_unwrap(reader).unwrap();
        last.close().await.unwrap();
        assert_eq!(s.list_dir(&dir).await.unwrap(), Vec::<String>::new());
    });
}

/// Dropping without close must not leak or panic: glommio queues the close,
/// and the next trip through the reactor releases the descriptor.
#[test]
fn drop_without_close_releases_the_fd() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let path: &Path = &dir.join("dropped");
        let f = s.open(path).await.unwrap();
        f.write_at(0, b"kept").await.unwrap();
        let fd_link = format!("/proc/self/fd/{}", f.raw_fd().unwrap());
        let canonical = std::fs::canonicalize(path).unwrap();
        assert_eq!(std::fs::read_link(&fd_link).unwrap(), canonical);
        drop(f);
        s.sync_dir(&dir).await.unwrap(); // io_uring round trips
        assert_ne!(std::fs::read_link(&fd_link).ok(), Some(canonical));
        let again = s.open(path).await.unwrap();
        assert_eq!(&again.read_at(0, 10).await.unwrap()[..], b"kept");
        again.close().await.unwrap();
    });
}

#[test]
fn large_write_spans_many_pages_exactly() {
    run(|dir| async move {
        let s = GlommioStorage::new();
        let f = s.open(&dir.join("big")).await.unwrap();
        let data = pattern(3 << 20, 99); // larger than the executor's io memory
        f.write_at(5, &data).await.unwrap();
        assert_eq!(f.size().await.unwrap(), (3 << 20) + 5);
        let back = f.read_at(5, 3 << 20).await.unwrap();
        assert!(back[..] == data[..]);
        f.close().await.unwrap();
    });
}
