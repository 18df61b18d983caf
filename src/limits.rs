//! Every resource bound of Warren in one place: each limit has a unit in its name and a line
//! on why it is what it is. Relations between limits are asserted at compile time.

// ---------------------------------------------------------------------------------------------
// Log core (`log/`) and the sorted deque (`seq_map`).
// ---------------------------------------------------------------------------------------------

/// Default size at which a segment is sealed and a new one started (256 MiB): large enough
/// that a segment holds minutes of traffic, small enough that retention frees space in
/// useful steps.
pub const SEGMENT_BYTES_DEFAULT: u64 = 256 * 1024 * 1024;

/// Smallest segment size accepted from configuration. Tests use this to roll often.
pub const SEGMENT_BYTES_MIN: u64 = 4 * 1024;

/// Largest segment size accepted. File positions inside a segment are stored as `u32` in the
/// index, and a segment may overshoot its limit by at most one batch.
pub const SEGMENT_BYTES_MAX: u64 = 2 * 1024 * 1024 * 1024;

/// Most runtime worker threads accepted from configuration: more than any machine Warren
/// targets has cores, few enough that a typo cannot start thousands of threads.
pub const WORKER_THREADS_MAX: usize = 1024;

/// Largest batch the writer ever produces or a reader accepts (256 MiB). A single record may
/// not exceed it; anything larger is refused at append time.
pub const BATCH_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// Largest message body accepted (128 MiB, RabbitMQ's default `max_message_size`). A
/// message is one log record, so it must fit in a batch.
pub const MESSAGE_BYTES_MAX: u64 = 128 * 1024 * 1024;

/// The writer closes a batch once it holds this many bytes of records (1 MiB). Larger
/// batches amortise headers and syscalls no further, and a bigger batch holds readers back.
pub const BATCH_BYTES_TARGET: usize = 1024 * 1024;

/// The writer closes a batch once it holds this many records, so that a flood of tiny
/// records still reaches readers in bounded steps.
pub const BATCH_RECORDS_MAX: usize = 16 * 1024;

/// Default distance between two sparse index entries: a read at any offset scans at most
/// this many bytes past the entry its binary search found.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4 * 1024;

/// Bound of a log writer's queue of pending appends. A full queue makes appenders wait,
/// which is how backpressure reaches producers.
pub const LOG_APPEND_QUEUE_MAX: usize = 4096;

/// Bound of the io_uring thread's request queue: writers wait when it is full.
pub const URING_QUEUE_MAX: usize = 1024;

/// Submission queue entries of the io_uring ring.
pub const URING_ENTRIES: u32 = 256;

/// Longest consumer name kept in a log's offset store (bytes), matching AMQP's shortstr.
pub const CONSUMER_NAME_BYTES_MAX: usize = 255;

/// Most named consumers one log's offset store keeps; past it, commits of new names fail.
pub const CONSUMER_NAMES_PER_LOG_MAX: usize = 65_536;

// ---------------------------------------------------------------------------------------------
// Queues (`queue/`): consumer state, read-ahead, command channels.
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Broker model (`broker/`): exchanges, bindings, definitions.
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// AMQP gateway (`amqp/`): what the connection and channel state machines negotiate and keep.
// ---------------------------------------------------------------------------------------------

/// Largest channel number a client may use (RabbitMQ's default `channel_max`).
pub const CHANNEL_MAX: u16 = 2047;
/// Largest frame the server accepts, framing included (RabbitMQ's default).
pub const FRAME_MAX_BYTES: u32 = 131_072;
/// Smallest frame_max a client may ask for (the spec's frame-min-size).
pub const FRAME_MIN_BYTES: u32 = 4096;
/// Heartbeat interval the server proposes, in seconds (RabbitMQ's default).
pub const HEARTBEAT_S: u16 = 60;
/// Bound of the queue of deliveries waiting for a connection's attention: a full queue
/// makes the queues' tasks wait, which is how a slow consumer's socket slows delivery.
pub const CONSUMER_EVENTS_MAX: usize = 4096;
/// Bodies up to this size are copied into the output buffer; larger ones are written from
/// where they are stored.
pub const INLINE_BODY_MAX: usize = 256;

// ---------------------------------------------------------------------------------------------
// Server (`server/`): sockets, buffers, timeouts and watchers.
// ---------------------------------------------------------------------------------------------

/// Time a client has to send the protocol header and finish the handshake (`connection.open`),
/// in milliseconds: long enough for a slow client, short enough that idle sockets do not pile up.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// How long a `connection.close` sent by the server waits for its close-ok, and how long a
/// close-ok sent by the server waits for the client to close its socket, in milliseconds.
pub const CLOSE_OK_TIMEOUT_MS: u64 = 3_000;
/// Period of a connection's timer, in milliseconds: how often its deadlines (handshake,
/// heartbeats, close-ok) are checked, and so how late one of them may fire.
pub const CONNECTION_TICK_INTERVAL_MS: u64 = 250;
/// Publishes in flight per connection (appends not yet done) before its socket stops being
/// read: the bound on what one publisher can have queued in the logs' writers.
pub const PUBLISHES_IN_FLIGHT_MAX: usize = 8192;
/// Consumer events turned into frames per turn before the socket is written, so that
/// deliveries reach the client in steps and other work is not starved.
pub const EVENTS_PER_TURN_MAX: usize = 512;
/// Read buffer of a quiet connection, in bytes: every connection has one, so it is small
/// (1,000 connections hold 16 MiB).
pub const READ_BUFFER_BYTES: usize = 16 * 1024;
/// Read buffer of a busy connection (its last read filled at least
/// [`BUSY_READ_BYTES_MIN`]), in bytes: many frames per read system call.
pub const BUSY_READ_BUFFER_BYTES: usize = 256 * 1024;
/// A read of at least this many bytes marks the connection busy, so that its next buffer is
/// [`BUSY_READ_BUFFER_BYTES`].
pub const BUSY_READ_BYTES_MIN: usize = READ_BUFFER_BYTES / 2;
/// The read buffer is grown once less than this many bytes are free in it, so that a read
/// never has only a sliver of space.
pub const READ_SPARE_BYTES_MIN: usize = READ_BUFFER_BYTES / 4;
/// Output is written once this many bytes are queued, so that a connection's buffered output
/// stays bounded however many deliveries are waiting for it.
pub const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Buffers handed to one vectored write: the kernel's `IOV_MAX`, so one system call carries
/// hundreds of small deliveries.
pub const IOVECS_MAX: usize = 1024;
/// After a write, a connection's output buffer with less than this many bytes of capacity
/// left is grown by [`OUTPUT_RESERVE_BYTES`], so that encoding frames seldom reallocates.
pub const OUTPUT_CAPACITY_BYTES_MIN: usize = 4096;
/// Bytes reserved in a connection's output buffer when it runs low.
pub const OUTPUT_RESERVE_BYTES: usize = 16 * 1024;
/// Buffer for the bytes a client sends after the server's close-ok, which are read and
/// dropped, in bytes: small, since a well-behaved client sends nothing more.
pub const DRAIN_BUFFER_BYTES: usize = 512;
/// Pause after a failed `accept`, in milliseconds, so that running out of file descriptors
/// does not spin the listener.
pub const ACCEPT_RETRY_DELAY_MS: u64 = 50;
/// Time connections get after shutdown starts to send their close and requeue what they held,
/// in milliseconds, before the broker's logs are closed.
pub const SHUTDOWN_GRACE_MS: u64 = 200;
/// How often the resource alarms read memory use and free disc space, in milliseconds.
pub const ALARM_CHECK_INTERVAL_MS: u64 = 500;
/// Default memory limit of the resource alarm, in tenths of the machine's RAM (0.4, RabbitMQ's
/// classic `vm_memory_high_watermark`).
pub const MEMORY_LIMIT_TENTHS_OF_RAM: u64 = 4;
/// RAM assumed when the machine's total cannot be read, in bytes.
pub const TOTAL_MEMORY_BYTES_FALLBACK: u64 = 8 * 1024 * 1024 * 1024;

const _: () = assert!(READ_SPARE_BYTES_MIN < READ_BUFFER_BYTES);
const _: () = assert!(BUSY_READ_BYTES_MIN <= READ_BUFFER_BYTES);
const _: () = assert!(BUSY_READ_BUFFER_BYTES >= READ_BUFFER_BYTES);
const _: () = assert!(OUTPUT_CAPACITY_BYTES_MIN <= OUTPUT_RESERVE_BYTES);
// A deadline can only be met if the timer looks at it more often than it expires.
const _: () = assert!(CONNECTION_TICK_INTERVAL_MS < CLOSE_OK_TIMEOUT_MS);
const _: () = assert!(CONNECTION_TICK_INTERVAL_MS < HANDSHAKE_TIMEOUT_MS);
// A heartbeat is due every heartbeat/2 of silence; for the shortest heartbeat (1 s) the
// timer must run more often than that.
const _: () = assert!(CONNECTION_TICK_INTERVAL_MS < 1000 / 2);
const _: () = assert!(MEMORY_LIMIT_TENTHS_OF_RAM >= 1 && MEMORY_LIMIT_TENTHS_OF_RAM <= 10);

// ---------------------------------------------------------------------------------------------
// Bench (`bench/`): the load generator's own bounds.
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Relations between the limits above, checked at compile time.
// ---------------------------------------------------------------------------------------------

const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT);
const _: () = assert!(SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);
// A segment can be one whole batch longer than its limit; positions must still fit in u32.
const _: () = assert!(SEGMENT_BYTES_MAX + BATCH_BYTES_MAX <= u32::MAX as u64);
const _: () = assert!((BATCH_BYTES_TARGET as u64) < BATCH_BYTES_MAX);
// A message plus its stored headers (at most a few KiB beside the body) fits in one batch.
const _: () = assert!(MESSAGE_BYTES_MAX + 1024 * 1024 < BATCH_BYTES_MAX);
const _: () = assert!((INDEX_INTERVAL_BYTES_DEFAULT as u64) <= SEGMENT_BYTES_MIN);
const _: () = assert!(FRAME_MIN_BYTES <= FRAME_MAX_BYTES);
// A frame never carries more than a batch.
const _: () = assert!((FRAME_MAX_BYTES as u64) < BATCH_BYTES_MAX);
