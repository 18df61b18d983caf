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

/// Most offsets one segment spans: the writer rolls before a batch would start past it, so
/// every record's offset relative to its segment fits the index's `u32` even with a whole
/// batch after the last start. Sizes alone do not bound it: a compressed batch of empty
/// records takes far less than a byte per record.
pub const SEGMENT_RECORDS_MAX: u64 = u32::MAX as u64 - BATCH_RECORDS_MAX as u64;

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

/// Bytes of appends a log writer may have queued and not yet written (the records'
/// encoded size). Appenders wait beyond it, so a publisher can run at most this far ahead of
/// each queue it publishes to; a few milliseconds of the writer's work at disc or memory
/// speed, enough for group commit to gather whole batches.
pub const LOG_APPEND_QUEUE_BYTES_MAX: u32 = 8 * 1024 * 1024;

/// A segment map's pages behind its readers are handed back to the system in steps of this
/// many bytes (a multiple of any page size): what a reader keeps resident of a segment is at
/// most a few steps behind it ([`MAP_RESIDENT_LAG_STEPS`]), plus what it reads ahead.
pub const MAP_RESIDENT_STEP_BYTES: u64 = 2 * 1024 * 1024;
/// A reader hands back pages this many steps behind where it reads, not right up to it:
/// the records just below are still being delivered and would be faulted back in.
pub const MAP_RESIDENT_LAG_STEPS: u64 = 4;

/// In memory storage, allocations of at least this many bytes get a memory map of their
/// own, returned to the system when freed (glibc's default threshold, kept fixed).
pub const MALLOC_MMAP_THRESHOLD_BYTES: usize = 128 * 1024;

/// Bound of the io_uring thread's request queue: writers wait when it is full.
pub const URING_QUEUE_MAX: usize = 1024;

/// Submission queue entries of the io_uring ring.
pub const URING_ENTRIES: u32 = 256;

/// Longest consumer name kept in a log's offset store (bytes), matching AMQP's shortstr.
pub const CONSUMER_NAME_BYTES_MAX: usize = 255;

/// Most named consumers one log's offset store keeps; past it, commits of new names fail.
pub const CONSUMER_NAMES_PER_LOG_MAX: usize = 65_536;

/// Most acknowledged ranges (runs of settled offsets above a classic queue's floor) a queue
/// keeps and persists in its log's `acked` file: 16 bytes each, so the file stays under
/// 64 KiB and rewriting it on every queue tick stays cheap. Gaps between ranges come from
/// messages still unacked or requeued, so this many ranges covers thousands of unsettled
/// messages scattered among acked ones. Past it, further acks that would need a new range
/// are not persisted: after a crash they are redelivered from the floor, as before acks
/// were persisted (more redeliveries, never a lost message).
pub const ACKED_RANGES_MAX: usize = 4096;

/// Groups a log's writer hands to its sync task (`fsync always`) before they are synced, at
/// most: a full queue makes the writer wait for the disc.
pub const SYNC_QUEUED_GROUPS_MAX: usize = 64;

/// Buffers in one vectored write, at most: the kernel's `IOV_MAX`. A longer write is split.
/// Segment writes and socket writes both use it; one socket write carries hundreds of small
/// deliveries.
pub const IOVECS_MAX: usize = 1024;

/// Bodies at least this large (bytes) are referenced by a batch built for vectored writes
/// instead of being copied into it: below it, a copy costs less than one more iovec.
pub const SHARED_BODY_MIN_BYTES: usize = 4096;

/// Largest buffer (bytes) reserved up front for a vectored batch's record framing; it grows
/// past this only when the records need it.
pub const BATCH_RECORDS_RESERVE_BYTES_MAX: usize = 64 * 1024;

/// How often (ms) a log applies retention when nothing rolls, by default: age limits are
/// hours or days, so a minute's lateness frees nothing much later.
pub const RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 60_000;

/// Period (ms) of the writer's sync timer when the policy has no interval (`always`,
/// `never`): the timer then only wakes the writer, and rarely.
pub const SYNC_TIMER_IDLE_MS: u64 = 3_600_000;

/// Tombstones a `SeqMap` keeps before it considers a compaction, at least: compacting a few
/// costs more than it frees.
pub const SEQ_MAP_TOMBSTONES_KEPT_MIN: usize = 64;

/// Default free disc space (bytes) below which publishers are blocked (RabbitMQ's
/// `disk_free_limit`, 50 MB).
pub const DISK_FREE_LIMIT_BYTES_DEFAULT: u64 = 50_000_000;

/// Background `fdatasync`s in flight at once, at most, of open segment files that are over
/// the open-file bound but pinned by unsynced writes (`log/storage/files.rs`): enough to
/// clear a burst of writes to many queues within a few sync times, few enough not to crowd
/// out the writers' own syncs.
pub const FILE_FLUSHES_MAX: usize = 8;

/// Bound on open files of a log whose backend has no broker-wide bound (tests, benches): its
/// active segment file, opened on first use and kept open, as before files were bounded.
pub const SEGMENT_FILES_OPEN_PER_LOG: usize = 1;

/// Bytes recovery reads from a segment file at once (4 MiB) while it checks batches: peak
/// memory of a recovery is this or the largest batch, whichever is larger, never the
/// segment.
pub const RECOVERY_WINDOW_BYTES: usize = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Queues (`queue/`): consumer state, read-ahead, command channels.
// ---------------------------------------------------------------------------------------------

/// Bytes a queue reads ahead from its log per refill (256 KiB), for a classic queue as a
/// whole and for each stream consumer: enough to batch log reads across many small
/// messages, small enough that many idle consumers hold little memory.
pub const READ_AHEAD_BYTES: usize = 256 * 1024;

/// How often a queue's task wakes on its own, in ms: it re-checks consumers whose sinks were
/// full, drops expired messages and persists its floor (classic) or stored consumer offsets
/// (stream). Bounds how stale a persisted position can be.
pub const QUEUE_TICK_MS: u64 = 50;

/// Cancelled named stream consumers one stream keeps while their channels may still ack
/// what they hold (a graceful shutdown cancels, then acks). Each is released once it holds
/// nothing or its channel closes; past this many, the oldest is dropped at the offset it
/// had stored, so a client cancelling in a loop without acking cannot grow the list.
pub const CANCELLED_STREAM_CONSUMERS_MAX: usize = 1024;

/// Rejected (or nacked) offsets one stream consumer remembers, in offsets: each holds the
/// consumer's stored offset back. RabbitMQ treats a rejected stream offset as settled, so
/// past this many the lowest is taken as settled and forgotten: a consumer that rejects
/// everything it reads keeps a bounded set (about 40 bytes each in a `BTreeSet`).
pub const STREAM_REJECTED_OFFSETS_MAX: usize = 4096;

/// Most earlier `x-message-ttl` values a classic queue remembers for the messages enqueued
/// under them (each policy change of its TTL adds one; those below the queue's floor are
/// forgotten). Past this the oldest is forgotten and its messages take the next one's TTL.
pub const QUEUE_EARLIER_TTLS_MAX: usize = 64;

/// Bound of a queue's command channel (consume, ack, reject, get...), in commands. A full
/// channel makes the callers wait, acks and rejects too: a channel's commands reach the
/// queue in the order it sent them, and a connection that settles faster than the queue
/// keeps up is slowed down rather than queued for without limit.
pub const QUEUE_COMMANDS_MAX: usize = 1024;

/// Bound of a queue's dead-letter channel, in messages: the dead messages on their way, in
/// order, to the task that routes them to the dead-letter exchange. A full channel makes
/// the queue's task wait before its next command, so a queue that dead-letters faster than
/// its dead-letter queues' logs take the messages is slowed down.
pub const DEAD_LETTERS_QUEUED_MAX: usize = 1024;

/// Most dead messages the dead-letter task routes before it waits for their appends to be
/// committed, in messages: one append per target queue per step, and at most this many
/// messages held in appends at a time.
pub const DEAD_LETTERS_BATCH_MAX: usize = 256;

/// Bytes a classic queue reads per step when it counts, at start, the transient records left
/// from before a restart (4 MiB): larger steps than read-ahead, as this runs once and reads
/// everything up to the restart offset.
pub const TRANSIENT_SCAN_BYTES: usize = 4 * 1024 * 1024;

/// Bytes a priority queue reads from its log at once to deliver (64 KiB): its ready
/// messages are kept as offsets, and each delivery reads its record back; one read serves
/// the following deliveries of a run of one priority (or of priorities alternating close
/// together), and what it holds is released at the next read.
pub const PRIORITY_FETCH_BYTES: usize = 64 * 1024;

/// Bytes a queue with `x-max-length-bytes` reads per step when it counts the body bytes of
/// messages appended since it last looked, and of its whole backlog after a restart
/// (1 MiB): only the sizes are kept, each step's records are dropped before the next.
pub const READY_BYTES_SCAN_BYTES: usize = 1024 * 1024;

/// Largest buffer into which a connection's publishes write their record headers (64 KiB):
/// many record headers share one allocation. A larger header gets a buffer of its own size.
pub const MESSAGE_ARENA_BYTES: usize = 64 * 1024;
/// Smallest such buffer, for a connection that publishes slowly (1 KiB).
pub const MESSAGE_ARENA_BYTES_MIN: usize = 1024;
/// A header buffer filled faster than this (ms) is followed by one twice its size, any other
/// by one half its size.
pub const MESSAGE_ARENA_FAST_FILL_MS: u64 = 100;

// tokio refuses a zero interval and a zero-capacity channel: a queue could not start.
const _: () = assert!(QUEUE_TICK_MS > 0);
const _: () = assert!(QUEUE_COMMANDS_MAX > 0);
// Reads of zero bytes would still return one batch, but a zero bound says nothing.
const _: () = assert!(PRIORITY_FETCH_BYTES > 0 && READY_BYTES_SCAN_BYTES > 0);
const _: () = assert!(DEAD_LETTERS_QUEUED_MAX > 0);
// A batch is taken from the channel: it cannot be larger than what the channel holds.
const _: () = assert!(DEAD_LETTERS_BATCH_MAX > 0 && DEAD_LETTERS_BATCH_MAX <= DEAD_LETTERS_QUEUED_MAX);

// ---------------------------------------------------------------------------------------------
// Broker model (`broker/`): exchanges, bindings, definitions.
// ---------------------------------------------------------------------------------------------

/// Records the definitions journal (`definitions.journal`) takes before the broker may
/// compact it into a new snapshot; compaction waits until the journal also holds as many
/// records as the snapshot has entries, so its cost (in proportion to all definitions)
/// is spread over at least as many changes, and replay at start reads at most twice the
/// definitions. In records (one per durable declare, delete, bind or unbind), about 100
/// bytes each.
pub const DEFINITIONS_JOURNAL_RECORDS_MIN: u64 = 4096;

/// How often the broker looks for queues left unused past their `x-expires`, in ms: an
/// expired queue outlives its lease by at most this long.
pub const QUEUE_EXPIRY_SWEEP_INTERVAL_MS: u64 = 100;

/// How often a stream with `x-max-age` checks its oldest segment's age, in ms: a segment
/// is removed at most this long after it passes the age limit.
pub const STREAM_AGE_CHECK_INTERVAL_MS: u64 = 1000;

/// Largest `x-max-priority` a queue takes (larger values are lowered to it): a message's
/// priority is stored in one byte, and RabbitMQ caps it the same way.
pub const QUEUE_PRIORITY_MAX: u8 = u8::MAX;

/// Random characters (one byte each) after the prefix of a server-generated name
/// (`amq.gen-…`, `amq.ctag-…`), as RabbitMQ: 22 of 64 symbols give 132 random bits, so
/// generated names do not collide.
pub const GENERATED_NAME_RANDOM_BYTES: usize = 22;

// A zero interval would make the broker's periodic tasks panic or spin.
const _: () = assert!(QUEUE_EXPIRY_SWEEP_INTERVAL_MS > 0);
const _: () = assert!(STREAM_AGE_CHECK_INTERVAL_MS > 0);

/// Users the access model holds, at most: RabbitMQ sets no limit, but the whole access
/// state is rewritten on every change, so it must stay small (a user is about 200 bytes).
pub const ACCESS_USERS_MAX: usize = 10_000;

/// Vhosts the broker holds, at most: each has its own exchanges and tables, and the
/// access state is rewritten on every change.
pub const ACCESS_VHOSTS_MAX: usize = 4_096;

/// Permission entries (user × vhost) held, at most; each holds three compiled
/// expressions of at most [`ACCESS_REGEX_COMPILED_BYTES_MAX`].
pub const ACCESS_PERMISSIONS_MAX: usize = 100_000;

/// Topic permission entries (user × vhost × exchange) held, at most.
pub const ACCESS_TOPIC_PERMISSIONS_MAX: usize = 100_000;

/// Policies held over all vhosts, at most: finding a queue's policy tries each of its
/// vhost's policies, so their number bounds the cost of every declare.
pub const ACCESS_POLICIES_MAX: usize = 10_000;

/// Longest user name (bytes): certificate logins use a subject DN as the name, which can be
/// long, but names are kept in every connection's and channel's listing.
pub const ACCESS_USER_NAME_BYTES_MAX: usize = 1024;

/// Longest vhost name (bytes): `connection.open` carries it as a shortstr.
pub const ACCESS_VHOST_NAME_BYTES_MAX: usize = 255;

/// Longest policy name (bytes), like the names of queues and exchanges it applies to.
pub const ACCESS_POLICY_NAME_BYTES_MAX: usize = 255;

/// Longest vhost description (bytes): free text shown in listings.
pub const ACCESS_DESCRIPTION_BYTES_MAX: usize = 4096;

/// Most tags on one user or vhost: tags are a handful of words; more is a mistake.
pub const ACCESS_TAGS_MAX: usize = 64;

/// Longest regular expression accepted (bytes) for a permission, topic permission or
/// policy pattern: real ones are a few dozen bytes.
pub const ACCESS_PATTERN_BYTES_MAX: usize = 4096;

/// Largest compiled size (bytes) of one regular expression: repetition counts can make a
/// short expression compile into megabytes (`a{1000}{1000}`); the `regex` crate refuses
/// past this, so one bad pattern cannot eat the broker's memory.
pub const ACCESS_REGEX_COMPILED_BYTES_MAX: usize = 1024 * 1024;

// A vhost name fits in connection.open's shortstr.
const _: () = assert!(ACCESS_VHOST_NAME_BYTES_MAX <= 255);
const _: () = assert!(ACCESS_PATTERN_BYTES_MAX < ACCESS_REGEX_COMPILED_BYTES_MAX);

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
pub const OUTPUT_BYTES_INITIAL: usize = 4 * 1024;
/// (exchange, routing key) routes one connection remembers; past it the cache starts over,
/// so a publisher cycling through many keys costs memory in bounded steps.
pub const ROUTES_PER_CONNECTION_MAX: usize = 1024;
/// Bytes of publishes and settlements (records, acked offsets, their bookkeeping) one
/// transaction holds until `tx.commit` (256 MiB): room for one message of
/// [`MESSAGE_BYTES_MAX`] with room to spare, and what a transactional client that never
/// commits can make the broker keep. RabbitMQ has no such limit; past it the channel is
/// closed with 406 PRECONDITION_FAILED.
pub const TX_HELD_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Entries a channel's map of touched queues (consumed or got from) holds before it first
/// drops those of deleted queues: below it a prune frees little. After a prune the next
/// one comes at twice the live entries, so the map holds at most twice the live queues the
/// channel touched (or this many), however many queues it saw come and go.
pub const TOUCHED_QUEUES_PRUNE_MIN: usize = 64;

// ---------------------------------------------------------------------------------------------
// Server (`server/`): sockets, buffers, timeouts and watchers.
// ---------------------------------------------------------------------------------------------

/// The share of the process's open-descriptor limit that segment files may hold, as a
/// divisor (2: half): the rest is left for sockets, listeners and short-lived files (maps
/// being made, offset stores, definitions).
pub const SEGMENT_FILES_DESCRIPTOR_DIVISOR: u64 = 2;

/// Segment files the logs may keep open at least, in files, however low the descriptor
/// limit: fewer would close and reopen files on every write under light load.
pub const SEGMENT_FILES_OPEN_MIN: usize = 64;

/// The share of the kernel's limit on a process's memory maps (`vm.max_map_count`) that
/// segment maps may hold, as a divisor (2: half): the rest is for thread stacks, the
/// allocator's arenas and libraries (`log::maps`).
pub const SEGMENT_MAPS_MAP_COUNT_DIVISOR: u64 = 2;

/// Segment maps the logs may keep at least, however low the kernel's limit.
pub const SEGMENT_MAPS_MIN: usize = 256;

/// Segment maps the logs may keep when the kernel's limit cannot be read: half of Linux's
/// default of 65,530.
pub const SEGMENT_MAPS_DEFAULT: usize = 32_765;

/// Segment files the logs may keep open when the descriptor limit cannot be read: half of
/// the common default soft limit of 1,024.
pub const SEGMENT_FILES_OPEN_DEFAULT: usize = 512;

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
pub const READ_BUFFER_BYTES: usize = 8 * 1024;
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
/// After a write, a connection's output buffer with less than this many bytes of capacity
/// left is grown by [`OUTPUT_RESERVE_BYTES`], so that encoding frames seldom reallocates.
pub const OUTPUT_CAPACITY_BYTES_MIN: usize = 4096;
/// Bytes reserved in a connection's output buffer when it runs low, after a write of at least
/// a quarter of it.
pub const OUTPUT_RESERVE_BYTES: usize = 16 * 1024;
/// Bytes reserved after a smaller write: a quiet connection holds a small buffer.
pub const OUTPUT_QUIET_RESERVE_BYTES: usize = 4 * 1024;
/// Buffer for the bytes a client sends after the server's close-ok, which are read and
/// dropped, in bytes: small, since a well-behaved client sends nothing more.
pub const DRAIN_BUFFER_BYTES: usize = 512;
/// Pause after a failed `accept`, in milliseconds, so that running out of file descriptors
/// does not spin the listener.
pub const ACCEPT_RETRY_DELAY_MS: u64 = 50;
/// Longest wait at shutdown for connections to send their close, hear the close-ok and
/// requeue what they held, in milliseconds; the broker's logs are closed once they are all
/// done, or after this. Longer than one close-ok wait, so a client that answers in time is
/// never cut off.
pub const CONNECTIONS_CLOSE_TIMEOUT_MS: u64 = 5_000;
/// How often the resource alarms read memory use and free disc space, in milliseconds.
pub const ALARM_CHECK_INTERVAL_MS: u64 = 500;
/// Least growth of the bytes in-memory logs hold that wakes the memory alarm between its
/// checks: near the limit, a check per write would keep the alarm's task busy for nothing.
pub const MEMORY_ALARM_WAKE_BYTES_MIN: u64 = 1024 * 1024;
/// Bytes in-memory logs let go of (chunks below queues' floors, deleted segments) after which
/// the alarm's next check hands the allocator's free pages back to the system
/// (`malloc_trim`), so that a drained backlog leaves the broker's resident memory. A trim
/// walks every arena: often enough to follow a drain, rarely enough to cost nothing.
pub const MEMORY_TRIM_RELEASED_BYTES_MIN: u64 = 32 * 1024 * 1024;
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
const _: () = assert!(CLOSE_OK_TIMEOUT_MS + CONNECTION_TICK_INTERVAL_MS < CONNECTIONS_CLOSE_TIMEOUT_MS);
// A heartbeat is due every heartbeat/2 of silence; for the shortest heartbeat (1 s) the
// timer must run more often than that.
const _: () = assert!(CONNECTION_TICK_INTERVAL_MS < 1000 / 2);
const _: () = assert!(MEMORY_LIMIT_TENTHS_OF_RAM >= 1 && MEMORY_LIMIT_TENTHS_OF_RAM <= 10);

// ---------------------------------------------------------------------------------------------
// Bench (`bench/`): the load generator's own bounds.
// ---------------------------------------------------------------------------------------------

/// How often a run checks its actors and end conditions, in ms: short enough that the end
/// of a run and a failed actor are noticed at once, long enough to be cheap.
pub const BENCH_TICK_MS: u64 = 50;
/// Connections opened concurrently during set-up: bounds the handshakes in flight, so that
/// setting up thousands of connections opens them in waves rather than all at once.
pub const BENCH_CONNECT_PARALLELISM_MAX: usize = 64;
/// Draining after the window ends once no delivery arrived for this long, in ms: anything
/// still in flight after it is taken as lost rather than slow.
pub const BENCH_DRAIN_IDLE_MS: u64 = 2_000;
/// How long the end of a run waits for each actor to stop, in ms, before reporting it as
/// stuck: a stopping actor needs at most one close handshake.
pub const BENCH_ACTOR_STOP_TIMEOUT_MS: u64 = 10_000;
/// Bytes reserved in the read buffer before each socket read (and the initial size of both
/// buffers): one read takes many deliveries or confirms at once.
pub const BENCH_READ_CHUNK_BYTES: usize = 256 * 1024;
/// How long a synchronous set-up request (declare, bind, consume) waits for its reply, in ms:
/// a broker that does not answer fails the run instead of hanging it.
pub const BENCH_RPC_TIMEOUT_MS: u64 = 30_000;
/// How long closing a connection waits for `connection.close-ok`, in ms: closing is a
/// courtesy, so a silent broker only delays the end of a run this much.
pub const BENCH_CLOSE_WAIT_MS: u64 = 2_000;
/// Bytes of publishes a producer queues in its write buffer before handing it to the
/// socket: large enough to amortise the write call, and the buffer stays this size (plus
/// one message) whatever the rate.
pub const BENCH_WRITE_BATCH_BYTES: usize = 128 * 1024;
/// How long a stopping producer waits for its outstanding confirms, in ms.
pub const BENCH_CONFIRM_WAIT_MS: u64 = 5_000;
/// How often a stopping producer checks whether its confirms are in, in ms.
pub const BENCH_CONFIRM_POLL_MS: u64 = 100;
/// Statistics shards at most; actors beyond this share them round-robin, which keeps
/// memory flat with thousands of connections.
pub const BENCH_SHARDS_MAX: usize = 16;
/// Largest latency recorded, in µs (one hour); larger values saturate. Bounds the size of
/// every latency histogram.
pub const BENCH_LATENCY_US_MAX: u64 = 3_600_000_000;
/// How often the suite samples a broker's resident memory (`--pid`), in ms.
pub const BENCH_RSS_SAMPLE_INTERVAL_MS: u64 = 100;

// Draining notices idleness only if it looks more than once within the idle time.
const _: () = assert!(BENCH_TICK_MS < BENCH_DRAIN_IDLE_MS);
// A stopping producer looks for its confirms more than once before giving up on them.
const _: () = assert!(BENCH_CONFIRM_POLL_MS < BENCH_CONFIRM_WAIT_MS);
// An actor told to exit closes its connection, which must fit in the time it is given.
const _: () = assert!(BENCH_CLOSE_WAIT_MS < BENCH_ACTOR_STOP_TIMEOUT_MS);

// ---------------------------------------------------------------------------------------------
// Management gateway (`management/`) and its HTTP listener (`server/http_listener.rs`).
// ---------------------------------------------------------------------------------------------

/// Largest HTTP request head (request line and headers) the management listener reads, in
/// bytes. Management clients send a few hundred bytes; a longer head is refused with 400.
pub const HTTP_HEADER_BYTES_MAX: usize = 64 * 1024;

/// Largest HTTP request body, in bytes: a definitions import or a published message must
/// fit (RabbitMQ's default `management.http.max_body_size` is 20 MB).
pub const HTTP_BODY_BYTES_MAX: usize = 20 * 1024 * 1024;

/// An idle keep-alive HTTP connection is closed after this many milliseconds of silence.
pub const HTTP_IDLE_TIMEOUT_MS: u64 = 60_000;

/// Management HTTP connections open at once; further ones wait to be accepted. Each holds
/// at most one request in memory.
pub const HTTP_CONNECTIONS_MAX: usize = 256;

/// Largest `page_size` of a paginated list, RabbitMQ's limit (its error text names it).
pub const HTTP_PAGE_SIZE_MAX: usize = 500;

/// Most messages one `POST /api/queues/{v}/{q}/get` returns; each is held in the response.
pub const HTTP_GET_COUNT_MAX: u64 = 10_000;

/// How often the management API samples every object's message totals; its rates are the
/// change between the last two samples (RabbitMQ's `collect_statistics_interval`, 5 s).
pub const RATE_SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// What `GET /api/nodes` reports as `proc_total`: Erlang's default process limit. Warren's
/// tasks have no such cap, but clients require the field; `proc_used` is the live tasks.
pub const HTTP_REPORTED_PROCESS_LIMIT: u64 = 1_048_576;

// ---------------------------------------------------------------------------------------------
// Relations between the limits above, checked at compile time.
// ---------------------------------------------------------------------------------------------

const _: () = assert!(LOG_APPEND_QUEUE_BYTES_MAX as usize >= BATCH_BYTES_TARGET);
const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT);
const _: () = assert!(SEGMENT_BYTES_DEFAULT <= SEGMENT_BYTES_MAX);
// A segment can be one whole batch longer than its limit; positions must still fit in u32.
const _: () = assert!(SEGMENT_BYTES_MAX + BATCH_BYTES_MAX <= u32::MAX as u64);
// A batch starting at the last relative offset a segment takes still ends inside u32.
const _: () = assert!(SEGMENT_RECORDS_MAX + BATCH_RECORDS_MAX as u64 <= u32::MAX as u64);
const _: () = assert!((BATCH_BYTES_TARGET as u64) < BATCH_BYTES_MAX);
// A message plus its stored headers (at most a few KiB beside the body) fits in one batch.
const _: () = assert!(MESSAGE_BYTES_MAX + 1024 * 1024 < BATCH_BYTES_MAX);
const _: () = assert!((INDEX_INTERVAL_BYTES_DEFAULT as u64) <= SEGMENT_BYTES_MIN);
const _: () = assert!(FRAME_MIN_BYTES <= FRAME_MAX_BYTES);
// A transaction holds at least one message of the largest size, with its stored headers.
const _: () = assert!(MESSAGE_BYTES_MAX + 1024 * 1024 <= TX_HELD_BYTES_MAX as u64);
// A frame never carries more than a batch.
const _: () = assert!((FRAME_MAX_BYTES as u64) < BATCH_BYTES_MAX);
// Recovery reads at least a batch header at a time.
const _: () = assert!(RECOVERY_WINDOW_BYTES as u64 >= 64 && RECOVERY_WINDOW_BYTES as u64 <= BATCH_BYTES_MAX);
const _: () = assert!(FILE_FLUSHES_MAX > 0 && SEGMENT_FILES_OPEN_PER_LOG > 0);
const _: () = assert!(SEGMENT_FILES_DESCRIPTOR_DIVISOR > 0);
const _: () = assert!(
    SEGMENT_MAPS_MAP_COUNT_DIVISOR > 0 && SEGMENT_MAPS_MIN > 0 && SEGMENT_MAPS_MIN <= SEGMENT_MAPS_DEFAULT
);
const _: () = assert!(SEGMENT_FILES_OPEN_MIN > 0 && SEGMENT_FILES_OPEN_MIN <= SEGMENT_FILES_OPEN_DEFAULT);
// One management request (its head and body) is bounded by what a connection may hold.
const _: () = assert!(HTTP_HEADER_BYTES_MAX < HTTP_BODY_BYTES_MAX);

// ---------------------------------------------------------------------------------------------
// `warren ctl`: the management API client.
// ---------------------------------------------------------------------------------------------

/// The largest HTTP answer `warren ctl` reads, in bytes: a definitions export of a large
/// broker (tens of thousands of queues) fits many times over; anything larger is refused
/// rather than held in memory.
pub const CTL_RESPONSE_BYTES_MAX: usize = 512 * 1024 * 1024;
/// The largest header block of an HTTP answer, in bytes.
pub const CTL_RESPONSE_HEAD_BYTES_MAX: usize = 64 * 1024;
/// How long `warren ctl` waits for one HTTP exchange (connect, send, answer), in seconds,
/// unless `--timeout` says otherwise; rabbitmqctl's default timeout.
pub const CTL_TIMEOUT_SECONDS_DEFAULT: u64 = 60;
/// How often `warren ctl await_startup` asks whether the API answers, in milliseconds.
pub const CTL_AWAIT_POLL_MS: u64 = 250;

// An await poll is shorter than the shortest wait one can ask for (one second).
const _: () = assert!(CTL_AWAIT_POLL_MS < 1000);
const _: () = assert!(CTL_RESPONSE_HEAD_BYTES_MAX < CTL_RESPONSE_BYTES_MAX);
