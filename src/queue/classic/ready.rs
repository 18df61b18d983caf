//! Which ready message a classic queue hands out next: requeued ones first (redelivered),
//! then the log in offset order, or, in a priority queue, the highest priority first and
//! FIFO within a priority (`priority.rs`: offsets only, records read back on delivery).
//! Skips records that did not survive a restart and expired ones. Also the counts derived
//! from it (held, ready, read position). Reads the log only through its public API and the
//! queue's read-ahead; knows no frames, sockets or exchanges.

use std::sync::atomic::Ordering;

use super::Actor;
use crate::log::Record;
use crate::queue::api::DeathReason;
use crate::queue::message::MessageView;
use crate::queue::read_ahead::Read;

impl Actor {
    /// The next ready record: requeued ones first (redelivered), then the log in order.
    /// Skips records that did not survive a restart and expired ones.
    pub(super) fn next_ready(&mut self) -> Option<(Record, bool)> {
        if self.prioritized.is_some() {
            return self.next_by_priority();
        }
        loop {
            if let Some(offset) = self.requeued.pop_first() {
                if let Some(record) = self.read_one(offset) {
                    self.left_ready(&record);
                    if self.expired(&record) {
                        self.kill_record(&record, DeathReason::Expired);
                        continue;
                    }
                    return Some((record, true));
                }
                continue;
            }
            let record = self.pop_buffered()?;
            if self.expired(&record) {
                self.kill_record(&record, DeathReason::Expired);
                continue;
            }
            let redelivered = record.offset < self.delivered_below;
            return Some((record, redelivered));
        }
    }

    /// The record [`Actor::next_ready`] would hand out next, left where it is; expired ones
    /// included. Records lost in a restart in front of it are skipped for good.
    pub(super) fn peek_ready(&mut self) -> Option<Record> {
        if self.prioritized.is_some() {
            self.fill_prioritized();
            loop {
                let (offset, _) = self.prioritized.as_ref()?.index.first()?;
                if let Some(record) = self.fetch(offset) {
                    return Some(record);
                }
                // Unreadable: `next_ready` would skip it as well.
                self.prioritized.as_mut()?.index.pop_first();
            }
        }
        while let Some(&offset) = self.requeued.first() {
            if let Some(record) = self.read_one(offset) {
                return Some(record);
            }
            // Unreadable: `next_ready` would skip it as well.
            self.requeued.remove(&offset);
        }
        loop {
            let record = self.peek_head()?;
            if !self.lost_in_restart(&record) {
                return Some(record);
            }
            self.read_ahead.pop_front();
            self.transient_pending = self.transient_pending.saturating_sub(1);
        }
    }

    /// Removes `record`, which [`Actor::peek_ready`] returned.
    pub(super) fn pop_peeked(&mut self, record: &Record) {
        if let Some(prioritized) = &mut self.prioritized {
            prioritized.index.pop_first();
        } else if self.requeued.pop_first().is_none() {
            self.read_ahead.pop_front();
        }
        self.left_ready(record);
    }

    /// Reads one requeued message back from the log.
    pub(super) fn read_one(&self, offset: u64) -> Option<Record> {
        match self.options.log.read_records(offset, 1) {
            Ok(records) => records.into_iter().next().filter(|r| r.offset == offset),
            Err(error) => {
                tracing::error!(queue = %self.options.name, offset, %error, "requeued message unreadable");
                None
            }
        }
    }

    /// Reads the record at `offset` back for a priority queue's delivery.
    fn fetch(&mut self, offset: u64) -> Option<Record> {
        let prioritized = self.prioritized.as_mut()?;
        match prioritized.window.fetch(&self.options.log, offset) {
            Ok(record) => record,
            Err(error) => {
                tracing::error!(queue = %self.options.name, offset, %error, "ready message unreadable");
                None
            }
        }
    }

    /// Whether a record from before a restart was transient (and so did not survive it).
    pub(super) fn lost_in_restart(&self, record: &Record) -> bool {
        record.offset < self.options.restart_offset
            && !MessageView::parse(&record.header).is_some_and(|m| m.persistent)
    }

    /// Indexes everything ready up to the log's end by priority (a priority queue), reading
    /// it in read-ahead steps and keeping only offsets.
    pub(super) fn fill_prioritized(&mut self) {
        let Some(max) = self.options.max_priority else { return };
        // The last record indexed is kept through the next refill, so a read in the same
        // segment reuses its map instead of mapping it again.
        let mut _last: Option<Record> = None;
        loop {
            if self.read_ahead.is_empty() {
                if self.read_ahead.cursor() >= self.options.log.next_offset() {
                    break;
                }
                self.refill();
            }
            let Some(record) = self.read_ahead.pop_front() else { break };
            if self.lost_in_restart(&record) {
                self.transient_pending = self.transient_pending.saturating_sub(1);
                continue;
            }
            let priority = MessageView::parse(&record.header).map_or(0, |m| m.priority.min(max));
            if let Some(prioritized) = &mut self.prioritized {
                prioritized.index.push(priority, record.offset);
            }
            _last = Some(record);
        }
    }

    fn next_by_priority(&mut self) -> Option<(Record, bool)> {
        loop {
            let (record, requeued) = self.pop_prioritized()?;
            if self.expired(&record) {
                self.kill_record(&record, DeathReason::Expired);
                continue;
            }
            let redelivered = requeued || record.offset < self.delivered_below;
            return Some((record, redelivered));
        }
    }

    /// A priority queue's next ready record, whether it was requeued, taken out of the
    /// ready messages.
    fn pop_prioritized(&mut self) -> Option<(Record, bool)> {
        self.fill_prioritized();
        loop {
            let (offset, requeued) = self.prioritized.as_mut()?.index.pop_first()?;
            if let Some(record) = self.fetch(offset) {
                self.left_ready(&record);
                return Some((record, requeued));
            }
        }
    }

    /// The next record read (in priority order in a priority queue), reading more of the
    /// log when nothing read is left, and taken out of the ready messages. Requeued messages
    /// are not considered (but are in a priority queue); records lost in a restart are
    /// skipped.
    pub(super) fn pop_buffered(&mut self) -> Option<Record> {
        if self.prioritized.is_some() {
            return self.pop_prioritized().map(|(record, _)| record);
        }
        loop {
            if self.read_ahead.is_empty() {
                self.refill();
            }
            let record = self.read_ahead.pop_front()?;
            if self.lost_in_restart(&record) {
                self.transient_pending = self.transient_pending.saturating_sub(1);
                continue;
            }
            self.left_ready(&record);
            return Some(record);
        }
    }

    /// The first record of the log not handed out, reading more when nothing read is left.
    pub(super) fn peek_head(&mut self) -> Option<Record> {
        if self.read_ahead.is_empty() {
            self.refill();
        }
        self.read_ahead.front().cloned()
    }

    /// Reads ahead from the log, reporting what retention removed unread and what could
    /// not be read.
    pub(super) fn refill(&mut self) {
        let refill = self.read_ahead.refill(&self.options.log);
        if self.acked.skip_below > 0 {
            self.skip_acked();
        }
        self.count_read();
        if let Some(removed) = refill.removed {
            tracing::warn!(queue = %self.options.name, from = removed.start, to = removed.end, "messages removed by retention were skipped");
        }
        if let Read::Failed { error } = &refill.read {
            if !self.read_failed {
                tracing::warn!(queue = %self.options.name, %error, "read failed; tried again on each tick");
            }
            self.read_failed = true;
        }
        if let Read::Unreadable { offset, end, error } = refill.read {
            // A damaged batch is reported and skipped; corrupt data is never delivered.
            let lost = end - offset;
            self.stats.damaged.fetch_add(lost, Ordering::Relaxed);
            tracing::error!(queue = %self.options.name, first = offset, last = end - 1, lost, %error, "damaged batch skipped: messages lost");
        }
    }

    /// The lowest offset not yet handed out.
    pub(super) fn read_position(&self) -> u64 {
        let mut position = self.read_ahead.position();
        if let Some(lowest) = self.prioritized.as_ref().and_then(|p| p.index.lowest()) {
            position = position.min(lowest);
        }
        position
    }

    /// Ready messages read from the log but not handed out: read ahead, requeued, or
    /// indexed by priority.
    pub(super) fn held(&self) -> u64 {
        let indexed = self.prioritized.as_ref().map_or(0, |p| p.index.len());
        (self.read_ahead.len() + self.requeued.len()) as u64 + indexed
    }

    /// Ready messages, including those appended but not read yet, less the transient ones
    /// from before a restart not skipped yet.
    pub(super) fn ready_count(&self) -> u64 {
        (self.options.log.next_offset().saturating_sub(self.read_ahead.cursor()) + self.held())
            .saturating_sub(self.transient_pending)
    }
}
