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
/// Capacity a connection's output buffer starts with, in bytes: room for a burst of small
/// frames before the buffer has to grow.
pub const OUTPUT_BYTES_INITIAL: usize = 16 * 1024;
/// (exchange, routing key) routes one connection remembers; past it the cache starts over,
/// so a publisher cycling through many keys costs memory in bounded steps.
pub const ROUTES_PER_CONNECTION_MAX: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Server (`server/`): sockets, buffers, timeouts and watchers.
// ---------------------------------------------------------------------------------------------

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
