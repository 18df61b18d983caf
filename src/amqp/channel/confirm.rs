//! Publisher confirms: a channel in confirm mode numbers its publishes, and each is acked
//! once every queue it reached has it committed (or nacked if one could not take it). Acks
//! go out as one `multiple` ack up to the lowest publish still pending; nacks one by one.

use std::collections::BTreeSet;

use bytes::BytesMut;

use super::{Channel, Context};
use crate::amqp::connection::{Connection, PublishDone};
use crate::amqp::reply::{ProtocolError, Reply};
use crate::wire::amqp::{encode_method_frame, BasicAck, BasicNack, ConfirmSelectOk};

/// A channel's confirm mode and the publishes it has yet to confirm.
pub(super) struct Confirms {
    /// `confirm.select` was received.
    enabled: bool,
    /// Sequence number of the next publish.
    next: u64,
    /// Publish sequence numbers not yet confirmed.
    unconfirmed: BTreeSet<u64>,
    /// Nacked sequence numbers not yet covered by a `multiple` ack.
    nacked: BTreeSet<u64>,
    /// Every publish up to this one has been acked or nacked.
    acked_through: u64,
}

impl Default for Confirms {
    fn default() -> Confirms {
        Confirms {
            enabled: false,
            next: 1,
            unconfirmed: BTreeSet::new(),
            nacked: BTreeSet::new(),
            acked_through: 0,
        }
    }
}

impl Confirms {
    /// Whether the channel is in confirm mode.
    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The sequence number of a publish, in confirm mode; it is unconfirmed until
    /// [`Confirms::done`].
    pub(super) fn take_seq(&mut self) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        let seq = self.next;
        self.next += 1;
        self.unconfirmed.insert(seq);
        Some(seq)
    }

    /// Publish `seq` has completed; a failed one is nacked at once.
    fn done(&mut self, out: &mut BytesMut, number: u16, seq: u64, ok: bool) {
        self.unconfirmed.remove(&seq);
        if !ok {
            self.nacked.insert(seq);
            let nack = BasicNack { delivery_tag: seq, multiple: false, requeue: false };
            encode_method_frame(out, number, &nack.into());
        }
    }

    /// Acks every publish below the lowest still pending that is not acked yet: one
    /// `multiple` ack, or one ack each around the nacked ones.
    fn ack(&mut self, out: &mut BytesMut, number: u16) {
        let through = self.unconfirmed.first().map_or(self.next, |low| *low) - 1;
        if through <= self.acked_through {
            return;
        }
        let nacked = self.nacked.range(self.acked_through + 1..=through).next().is_some();
        if nacked {
            for seq in (self.acked_through + 1)..=through {
                if !self.nacked.remove(&seq) {
                    let ack = BasicAck { delivery_tag: seq, multiple: false };
                    encode_method_frame(out, number, &ack.into());
                }
            }
        } else {
            let ack = BasicAck { delivery_tag: through, multiple: true };
            encode_method_frame(out, number, &ack.into());
        }
        self.acked_through = through;
    }
}

impl Channel {
    /// `confirm.select`.
    pub(super) fn confirm_select(&mut self, cx: &mut Context<'_>, nowait: bool) -> Result<(), Reply> {
        if self.tx.enabled() {
            return Err(ProtocolError::TxToConfirm.into());
        }
        self.confirms.enabled = true;
        self.stats.confirm.store(true, std::sync::atomic::Ordering::Relaxed);
        if !nowait {
            cx.out.method(self.number(), &ConfirmSelectOk::default().into());
        }
        Ok(())
    }
}

impl Connection {
    /// Sends the confirms of completed publishes: nacks one by one at once, acks as one
    /// `multiple` ack up to the lowest publish still pending on the channel.
    pub fn publish_done(&mut self, done: PublishDone) {
        let mut touched: Vec<u16> = Vec::new();
        for (number, seq) in done.confirms {
            let Some(channel) = self.channels.get_mut(&number).filter(|c| !c.closing) else { continue };
            channel.confirms.done(&mut self.out, number, seq, done.ok);
            if !touched.contains(&number) {
                touched.push(number);
            }
        }
        for number in touched {
            let Some(channel) = self.channels.get_mut(&number) else { continue };
            let before = channel.confirms.acked_through;
            channel.confirms.ack(&mut self.out, number);
            let counters = &channel.stats.messages;
            crate::broker::connections::MessageCounters::add(
                &counters.confirm,
                channel.confirms.acked_through - before,
            );
        }
    }
}
