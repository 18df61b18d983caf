//! The fallback backend: positioned writes and `fdatasync` on tokio's blocking thread pool.
//! Works on every kernel and under seccomp profiles that forbid io_uring.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use super::{FileIo, IoFuture, SegmentFile};

/// Positioned writes on the blocking pool.
#[derive(Debug, Clone, Copy)]
pub struct ThreadedIo;

impl FileIo for ThreadedIo {
    fn adopt(&self, file: &Arc<std::fs::File>) -> io::Result<Arc<dyn SegmentFile>> {
        Ok(Arc::new(ThreadedFile { file: Arc::clone(file) }))
    }

    fn name(&self) -> &'static str {
        "threads"
    }
}

#[derive(Debug)]
struct ThreadedFile {
    file: Arc<std::fs::File>,
}

async fn blocking(job: impl FnOnce() -> io::Result<()> + Send + 'static) -> io::Result<()> {
    tokio::task::spawn_blocking(job).await.map_err(io::Error::other)?
}

impl SegmentFile for ThreadedFile {
    fn write_all_at(&self, position: u64, chunks: Vec<Bytes>) -> IoFuture {
        let file = Arc::clone(&self.file);
        Box::pin(blocking(move || {
            let mut at = position;
            for chunk in &chunks {
                file.write_all_at(chunk, at)?;
                at += chunk.len() as u64;
            }
            Ok(())
        }))
    }

    fn sync_data(&self) -> IoFuture {
        let file = Arc::clone(&self.file);
        Box::pin(blocking(move || file.sync_data()))
    }
}
