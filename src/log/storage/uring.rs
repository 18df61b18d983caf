//! The io_uring backend: one thread runs a tokio-uring runtime and serves positioned writes
//! and `fdatasync`s for every log, received over a bounded queue.
//!
//! tokio-uring is kept entirely inside this file: replacing it (with the `io-uring` crate,
//! say) changes nothing outside it.

use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::limits::IOVECS_MAX;
use tokio::sync::{mpsc, oneshot};

use super::{FileIo, IoFuture, SegmentFile};
use crate::limits::{URING_ENTRIES, URING_QUEUE_MAX};

enum Request {
    Adopt { id: u64, file: std::fs::File },
    Write { id: u64, position: u64, chunks: Vec<Bytes>, done: oneshot::Sender<io::Result<()>> },
    Sync { id: u64, done: oneshot::Sender<io::Result<()>> },
    Release { id: u64 },
}

/// Handle to the io_uring thread. Cloning shares the thread.
#[derive(Debug, Clone)]
pub struct UringIo {
    requests: mpsc::Sender<Request>,
    next_id: Arc<AtomicU64>,
}

impl UringIo {
    /// Starts the io_uring thread.
    ///
    /// # Errors
    /// When the kernel refuses to set up a ring (old kernel, seccomp, limits).
    pub fn start() -> io::Result<UringIo> {
        let (requests, receiver) = mpsc::channel(URING_QUEUE_MAX);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("warren-uring".into()).spawn(move || {
            let mut builder = tokio_uring::builder();
            builder.entries(URING_ENTRIES);
            let runtime = match tokio_uring::Runtime::new(&builder) {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            runtime.block_on(serve(receiver));
        })?;
        ready_rx.recv().map_err(|_| io::Error::other("io_uring thread ended at start"))??;
        Ok(UringIo { requests, next_id: Arc::new(AtomicU64::new(0)) })
    }
}

async fn serve(mut receiver: mpsc::Receiver<Request>) {
    let mut files: HashMap<u64, Rc<tokio_uring::fs::File>> = HashMap::new();
    while let Some(request) = receiver.recv().await {
        match request {
            Request::Adopt { id, file } => {
                files.insert(id, Rc::new(tokio_uring::fs::File::from_std(file)));
            }
            Request::Release { id } => {
                files.remove(&id);
            }
            Request::Write { id, position, chunks, done } => {
                let Some(file) = files.get(&id).cloned() else {
                    let _ = done.send(Err(io::Error::other("write to a released file")));
                    continue;
                };
                tokio_uring::spawn(async move {
                    let outcome = if chunks.len() == 1 {
                        let chunk = chunks.into_iter().next().unwrap_or_default();
                        file.write_all_at(chunk, position).await.0
                    } else {
                        write_vectored_all(&file, chunks, position).await
                    };
                    let _ = done.send(outcome);
                });
            }
            Request::Sync { id, done } => {
                let Some(file) = files.get(&id).cloned() else {
                    let _ = done.send(Err(io::Error::other("sync of a released file")));
                    continue;
                };
                tokio_uring::spawn(async move {
                    let _ = done.send(file.sync_data().await);
                });
            }
        }
    }
}

/// Writes `chunks` one after the other from `position` with vectored writes, resuming
/// after a short write.
async fn write_vectored_all(
    file: &tokio_uring::fs::File,
    mut chunks: Vec<Bytes>,
    mut position: u64,
) -> io::Result<()> {
    chunks.retain(|c| !c.is_empty());
    while !chunks.is_empty() {
        let rest = if chunks.len() > IOVECS_MAX { chunks.split_off(IOVECS_MAX) } else { Vec::new() };
        let (written, mut sent) = file.writev_at(chunks, position).await;
        let mut written = written?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        position += written as u64;
        let done = sent.iter().take_while(|c| {
            let whole = written >= c.len();
            if whole {
                written -= c.len();
            }
            whole
        });
        let done = done.count();
        sent.drain(..done);
        if let Some(first) = sent.first_mut() {
            bytes::Buf::advance(first, written);
        }
        sent.extend(rest);
        chunks = sent;
    }
    Ok(())
}

impl FileIo for UringIo {
    fn adopt(&self, file: &Arc<std::fs::File>) -> io::Result<Arc<dyn SegmentFile>> {
        // The ring owns its own descriptor so that its lifetime is the ring's business.
        let own = file.try_clone()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Never waits here (this runs inside async code): with the ring's queue full, the
        // adoption is sent by the file's first request instead, before that request.
        let pending_adopt = match self.requests.try_send(Request::Adopt { id, file: own }) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(Request::Adopt { file, .. })) => {
                Some(Arc::new(tokio::sync::Mutex::new(Some(file))))
            }
            Err(_) => return Err(io::Error::other("io_uring thread has stopped")),
        };
        let registration = Registration { id, requests: self.requests.clone(), pending_adopt };
        Ok(Arc::new(UringFile { registration: Arc::new(registration) }))
    }

    fn name(&self) -> &'static str {
        "uring"
    }
}

/// A file adopted by the ring. Each request's future holds the registration until its
/// answer arrives, so the `Release` sent when the last holder drops it always follows every
/// request for the file, even when the log let go of the file (the bound on open files
/// closed it) while a write or `fdatasync` was in flight.
#[derive(Debug)]
struct UringFile {
    registration: Arc<Registration>,
}

#[derive(Debug)]
struct Registration {
    id: u64,
    requests: mpsc::Sender<Request>,
    /// The descriptor to adopt when `adopt` found the ring's queue full: the first request
    /// to take it sends the adoption, and every request waits for that before its own.
    pending_adopt: Option<Arc<tokio::sync::Mutex<Option<std::fs::File>>>>,
}

impl UringFile {
    fn call(&self, make: impl FnOnce(oneshot::Sender<io::Result<()>>) -> Request) -> IoFuture {
        let (done, answer) = oneshot::channel();
        let request = make(done);
        let registration = Arc::clone(&self.registration);
        Box::pin(async move {
            let stopped = || io::Error::other("io_uring thread has stopped");
            let requests = &registration.requests;
            if let Some(pending) = &registration.pending_adopt {
                let mut pending = pending.lock().await;
                if let Some(file) = pending.take() {
                    let id = registration.id;
                    requests.send(Request::Adopt { id, file }).await.map_err(|_| stopped())?;
                }
            }
            requests.send(request).await.map_err(|_| stopped())?;
            let outcome = answer.await.map_err(|_| stopped())?;
            // The registration (and with the last one, the release) outlives the answer.
            drop(registration);
            outcome
        })
    }
}

impl SegmentFile for UringFile {
    fn write_all_at(&self, position: u64, chunks: Vec<Bytes>) -> IoFuture {
        let id = self.registration.id;
        self.call(move |done| Request::Write { id, position, chunks, done })
    }

    fn sync_data(&self) -> IoFuture {
        let id = self.registration.id;
        self.call(move |done| Request::Sync { id, done })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Requests already queued for this file are served before the release, in order.
        let request = Request::Release { id: self.id };
        if let Err(mpsc::error::TrySendError::Full(request)) = self.requests.try_send(request) {
            let requests = self.requests.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move { requests.send(request).await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::UringIo;
    use crate::log::storage::FileIo;

    /// A request made before its handle is dropped is served: the release follows it.
    #[tokio::test]
    async fn a_request_outlives_its_handle() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a");
        let file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&path).expect("open");
        let io = UringIo::start().expect("io_uring");
        let handle = io.adopt(&Arc::new(file)).expect("adopt");
        let write = handle.write_all_at(0, vec![Bytes::from_static(b"kept")]);
        let sync = handle.sync_data();
        drop(handle);
        write.await.expect("write after the handle was dropped");
        sync.await.expect("sync after the handle was dropped");
        assert_eq!(std::fs::read(&path).expect("read"), b"kept");
    }
}
