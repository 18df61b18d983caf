//! Throughput of the hot paths: parsing a publish (method + header + body
//! frames) and serializing a delivery, with 16 B and 1 KiB bodies.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use warren::wire::amqp::{
    decode_frame, encode_content_frames, BasicDeliver, BasicProperties, BasicPublish, ContentHeader, Frame,
    Method, ShortStr,
};

const FRAME_MAX: u32 = 131_072;
const BODY_SIZES: [usize; 2] = [16, 1024];
/// Messages per benchmark iteration, so buffer bookkeeping is amortised.
const BATCH: usize = 64;
/// Frames per message: method, header, one body frame.
const FRAMES_PER_MESSAGE: usize = 3;

fn properties() -> BasicProperties {
    BasicProperties {
        content_type: Some(ShortStr::from_static("application/octet-stream")),
        delivery_mode: Some(2),
        ..Default::default()
    }
}

fn publish_wire(body_len: usize) -> Vec<u8> {
    let method = Method::BasicPublish(BasicPublish {
        exchange: ShortStr::from_static("amq.topic"),
        routing_key: ShortStr::from_static("orders.created.eu"),
        ..Default::default()
    });
    let header = ContentHeader::new(60, body_len as u64, &properties());
    let mut buf = BytesMut::new();
    for _ in 0..BATCH {
        encode_content_frames(&mut buf, 1, &method, &header, &vec![1; body_len], FRAME_MAX);
    }
    buf.to_vec()
}

fn parse_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_publish");
    for size in BODY_SIZES {
        let wire = publish_wire(size);
        let mut read_buf = BytesMut::with_capacity(wire.len() * 2);
        group.throughput(Throughput::Elements((BATCH * FRAMES_PER_MESSAGE) as u64));
        group.bench_with_input(BenchmarkId::new("frames", size), &wire, |b, wire| {
            b.iter(|| {
                read_buf.extend_from_slice(wire);
                let mut n = 0usize;
                while let Some(frame) = decode_frame(&mut read_buf, FRAME_MAX).unwrap_or(None) {
                    if let Frame::Body { payload, .. } = &frame {
                        n += payload.len();
                    }
                    black_box(frame);
                }
                n
            });
        });
    }
    group.finish();
}

fn serialize_deliver(c: &mut Criterion) {
    let mut group = c.benchmark_group("serialize_deliver");
    for size in BODY_SIZES {
        let header = ContentHeader::new(60, size as u64, &properties());
        let body = Bytes::from(vec![1u8; size]);
        let consumer_tag = ShortStr::from_static("amq.ctag-0123456789");
        let exchange = ShortStr::from_static("amq.topic");
        let routing_key = ShortStr::from_static("orders.created.eu");
        let mut write_buf = BytesMut::with_capacity(BATCH * (size + 256));
        group.throughput(Throughput::Elements((BATCH * FRAMES_PER_MESSAGE) as u64));
        group.bench_function(BenchmarkId::new("frames", size), |b| {
            let mut tag = 0u64;
            b.iter(|| {
                write_buf.clear();
                for _ in 0..BATCH {
                    tag += 1;
                    let method = Method::BasicDeliver(BasicDeliver {
                        consumer_tag: consumer_tag.clone(),
                        delivery_tag: tag,
                        redelivered: false,
                        exchange: exchange.clone(),
                        routing_key: routing_key.clone(),
                    });
                    encode_content_frames(&mut write_buf, 1, &method, &header, &body, FRAME_MAX);
                }
                black_box(write_buf.len())
            });
        });
    }
    group.finish();
}

// criterion_group! generates an undocumented function.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, parse_publish, serialize_deliver);
}
criterion_main!(group::benches);
