//! Asserts that the hot paths allocate nothing per message once buffers are
//! warm: decoding a publish (method + header + body frames) from a read
//! buffer, and encoding a delivery into a write buffer.
//!
//! A counting global allocator lives only in this test binary. It counts
//! allocations made by the current thread while counting is switched on, so
//! the test harness's own threads do not disturb the result.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use warren::wire::amqp::{
    decode_frame, encode_content_frames, BasicDeliver, BasicProperties, BasicPublish, ContentHeader,
    FieldTable, FieldValue, Frame, Method, ShortStr,
};

struct CountingAlloc;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note_alloc() {
    // `try_with` avoids touching thread-locals during thread teardown.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
// GlobalAlloc contract; counting touches only thread-locals and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: the caller's contract for this method is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: the caller's contract for this method is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        // SAFETY: the caller's contract for this method is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for this method is passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Number of allocations `f` makes on this thread.
fn count_allocs(f: impl FnOnce()) -> u64 {
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(|a| a.get())
}

fn properties() -> BasicProperties {
    let mut headers = FieldTable::new();
    headers.insert(ShortStr::from_static("x-trace"), FieldValue::LongStr(Bytes::from_static(b"abc")));
    headers.insert(ShortStr::from_static("x-count"), FieldValue::I64(3));
    BasicProperties {
        content_type: Some(ShortStr::from_static("application/json")),
        delivery_mode: Some(2),
        headers: Some(headers),
        message_id: Some(ShortStr::from_static("m-1")),
        ..Default::default()
    }
}

/// Frames of one published message, as a client would send them.
fn publish_wire(body_len: usize, frame_max: u32) -> Vec<u8> {
    let body = vec![0xAB; body_len];
    let method = Method::BasicPublish(BasicPublish {
        exchange: ShortStr::from_static("amq.topic"),
        routing_key: ShortStr::from_static("orders.created.eu"),
        mandatory: true,
        ..Default::default()
    });
    let header = ContentHeader::new(60, body_len as u64, &properties());
    let mut buf = BytesMut::new();
    encode_content_frames(&mut buf, 1, &method, &header, &body, frame_max);
    buf.to_vec()
}

/// Decodes every frame in `read_buf`, touching the parts a broker uses.
fn drain(read_buf: &mut BytesMut, frame_max: u32) -> usize {
    let mut frames = 0;
    while let Some(frame) = decode_frame(read_buf, frame_max).expect("valid frames") {
        match frame {
            Frame::Method { method: Method::BasicPublish(p), .. } => {
                assert_eq!(p.routing_key.as_bytes(), b"orders.created.eu");
            }
            Frame::Header { header, .. } => assert!(header.is_persistent()),
            Frame::Body { payload, .. } => assert!(!payload.is_empty()),
            other => panic!("unexpected frame {other:?}"),
        }
        frames += 1;
    }
    frames
}

fn check_publish_decode(body_len: usize) {
    const FRAME_MAX: u32 = 4096;
    const MESSAGES: usize = 500;
    let wire = publish_wire(body_len, FRAME_MAX);
    let mut read_buf = BytesMut::with_capacity(64 * 1024);
    // Warm up: the first split of a fresh BytesMut allocates its shared
    // header once; afterwards the buffer is reused in place.
    for _ in 0..10 {
        read_buf.extend_from_slice(&wire);
        drain(&mut read_buf, FRAME_MAX);
    }
    let mut frames = 0;
    let allocs = count_allocs(|| {
        for _ in 0..MESSAGES {
            // Simulates a socket read appending into the read buffer.
            read_buf.extend_from_slice(&wire);
            frames += drain(&mut read_buf, FRAME_MAX);
        }
    });
    assert!(frames >= 3 * MESSAGES);
    assert_eq!(allocs, 0, "allocations decoding {MESSAGES} publishes of {body_len} B");
}

#[test]
fn publish_decode_allocates_nothing_small_body() {
    check_publish_decode(16);
}

#[test]
fn publish_decode_allocates_nothing_multi_frame_body() {
    check_publish_decode(10_000);
}

#[test]
fn deliver_encode_allocates_nothing() {
    const FRAME_MAX: u32 = 131_072;
    // What the broker stores per message: raw header bytes and body bytes.
    let header = ContentHeader::new(60, 1024, &properties());
    let body = Bytes::from(vec![7u8; 1024]);
    let consumer_tag = ShortStr::try_from(String::from("amq.ctag-abc123")).unwrap();
    let exchange = ShortStr::try_from(String::from("amq.topic")).unwrap();
    let routing_key = ShortStr::try_from(String::from("orders.created.eu")).unwrap();
    let mut write_buf = BytesMut::with_capacity(64 * 1024);

    let deliver = |tag: u64, out: &mut BytesMut| {
        let method = Method::BasicDeliver(BasicDeliver {
            consumer_tag: consumer_tag.clone(),
            delivery_tag: tag,
            redelivered: false,
            exchange: exchange.clone(),
            routing_key: routing_key.clone(),
        });
        encode_content_frames(out, 1, &method, &header, &body, FRAME_MAX);
    };
    // Warm up (first clones of Vec-backed Bytes promote them to shared).
    for tag in 0..10 {
        deliver(tag, &mut write_buf);
        write_buf.clear();
    }
    let allocs = count_allocs(|| {
        for tag in 10..1010 {
            deliver(tag, &mut write_buf);
            // Simulates the socket write draining the buffer.
            write_buf.clear();
        }
    });
    assert_eq!(allocs, 0, "allocations encoding 1000 deliveries");
}

#[test]
fn counter_sees_allocations() {
    let n = count_allocs(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(32));
    });
    assert_eq!(n, 1);
}
