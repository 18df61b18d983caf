//! Segment bytes kept in RAM for `--storage memory`: each write is kept as the `Bytes` it
//! arrived in, so a reader gets a slice of it without a copy and nothing touches a file.

use std::sync::RwLock;

use bytes::Bytes;

/// The written chunks of one in-memory segment, in position order. A chunk always holds
/// whole batches: the writer writes nothing else.
#[derive(Debug, Default)]
pub struct MemorySegment {
    chunks: RwLock<Vec<(u64, Bytes)>>,
}

impl MemorySegment {
    /// Keeps `chunks` as written at `position`.
    ///
    /// # Panics
    /// If `position` is not where the previous write ended: the writer only appends.
    pub fn write_at(&self, position: u64, chunks: Vec<Bytes>) {
        let mut kept = self.chunks.write().expect("memory segment lock poisoned");
        let end = kept.last().map_or(0, |(at, chunk)| at + chunk.len() as u64);
        assert_eq!(position, end, "memory segments are written in order");
        let mut at = position;
        for chunk in chunks {
            let length = chunk.len() as u64;
            kept.push((at, chunk));
            at += length;
        }
    }

    /// The bytes from `position` to the end of the chunk holding it, limited to `end`.
    pub fn bytes_from(&self, position: u64, end: u64) -> Option<Bytes> {
        let kept = self.chunks.read().expect("memory segment lock poisoned");
        let after = kept.partition_point(|(at, _)| *at <= position);
        let (at, chunk) = kept.get(after.checked_sub(1)?)?;
        let from = usize::try_from(position - at).ok()?;
        let to = usize::try_from(end.saturating_sub(*at)).ok()?.min(chunk.len());
        (from < to).then(|| chunk.slice(from..to))
    }
}
