//! Pipelined group commit for `fsync always` on disc. The writer hands each written group to
//! this task and goes on writing the next one while the `fdatasync` of the previous is in
//! flight; a disc then writes one group while it syncs another, instead of doing one after
//! the other.
//!
//! Groups that queue up while a sync is in flight are covered by one `fdatasync` of the
//! file they were written to, then committed (made visible to readers) and answered, in the
//! order they were written. At most one sync is in flight, so commits never overtake each
//! other. A group never shares a sync with a group of an earlier segment file: before the
//! writer rolls to a new segment it waits for this task to drain ([`SyncQueue::drain`]) and
//! syncs the rest of the old file itself.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use super::segment::Segment;
use super::storage::SegmentFile;
use super::writer::{commit, Answer, Pending};
use super::{Error, Shared};
use crate::limits::SYNC_QUEUED_GROUPS_MAX;

enum Job {
    /// A written group: sync `file`, then commit `batches` and send `answers`.
    Group { file: Arc<dyn SegmentFile>, segment: Arc<Segment>, batches: Vec<Pending>, answers: Vec<Answer> },
    /// Answered once every group handed over before it is committed or failed.
    Drain(oneshot::Sender<()>),
}

/// The writer's side of the sync task.
pub struct SyncQueue {
    jobs: mpsc::Sender<Job>,
    failure: Arc<OnceLock<String>>,
}

impl SyncQueue {
    /// Starts the sync task of the log behind `shared` on the current runtime. It stops when
    /// the queue is dropped.
    pub fn start(shared: Arc<Shared>) -> SyncQueue {
        let (jobs, receiver) = mpsc::channel(SYNC_QUEUED_GROUPS_MAX);
        let failure = Arc::new(OnceLock::new());
        tokio::spawn(serve(shared, receiver, Arc::clone(&failure)));
        SyncQueue { jobs, failure }
    }

    /// Why a sync failed, once one has: the log then takes no more appends.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Hands over a group written to `segment` through `file`. If the task is gone, the
    /// group's appenders get an error.
    pub async fn hand_over(
        &self,
        file: Arc<dyn SegmentFile>,
        segment: Arc<Segment>,
        batches: Vec<Pending>,
        answers: Vec<Answer>,
    ) {
        if let Err(mpsc::error::SendError(Job::Group { answers, .. })) =
            self.jobs.send(Job::Group { file, segment, batches, answers }).await
        {
            for (done, _) in answers {
                let _ = done.send(Err(Error::Failed { reason: "the log's sync task has stopped".into() }));
            }
        }
    }

    /// Waits until every group handed over so far is synced and committed (or failed).
    pub async fn drain(&self) {
        let (done, drained) = oneshot::channel();
        if self.jobs.send(Job::Drain(done)).await.is_ok() {
            let _ = drained.await;
        }
    }
}

async fn serve(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Job>, failure: Arc<OnceLock<String>>) {
    let mut jobs = Vec::new();
    while let Some(first) = receiver.recv().await {
        jobs.push(first);
        while let Ok(next) = receiver.try_recv() {
            jobs.push(next);
        }
        // Every group here was written to the newest file named, before this sync starts.
        let newest = jobs.iter().rev().find_map(|job| match job {
            Job::Group { file, segment, .. } => Some((Arc::clone(file), Arc::clone(segment))),
            Job::Drain(_) => None,
        });
        let outcome = match (failure.get(), newest) {
            (Some(reason), _) => Err(reason.clone()),
            (None, Some((file, segment))) => file.sync_data().await.map_err(|source| {
                let path = segment.path().unwrap_or(Path::new(""));
                let error = Error::io("syncing segment", path, source);
                tracing::error!(%error, "log writer failed; the log accepts no more appends");
                failure.get_or_init(|| error.to_string()).clone()
            }),
            (None, None) => Ok(()),
        };
        for job in jobs.drain(..) {
            match job {
                Job::Group { batches, answers, .. } => match &outcome {
                    Ok(()) => {
                        commit(&shared, batches);
                        for (done, ack) in answers {
                            let _ = done.send(Ok(ack));
                        }
                    }
                    Err(reason) => {
                        for (done, _) in answers {
                            let _ = done.send(Err(Error::Failed { reason: reason.clone() }));
                        }
                    }
                },
                Job::Drain(done) => {
                    let _ = done.send(());
                }
            }
        }
    }
}
