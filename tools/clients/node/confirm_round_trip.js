// amqplib round trip: a confirm channel publishes N messages (each with a callback) and
// waits for every confirm; a consumer on a second connection receives them with manual
// acks (prefetch 10). Checks that every publish was acked by the broker, that the consumer
// gets every message once, in publishing order, with its body and properties, and that the
// queue is empty afterwards.
//
// Usage: node confirm_round_trip.js AMQP_URL   (exit 0: all checks passed)

'use strict';

const crypto = require('node:crypto');
const amqp = require('amqplib');

const N = 200;
const DEADLINE_MS = 20000;
const WAIT_MS = 5000;

function fail(message) {
  process.stderr.write(`confirm_round_trip: FAILED: ${message}\n`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function expectEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

function unique(prefix) {
  return `warren-test.${prefix}.${process.pid}.${crypto.randomBytes(6).toString('hex')}`;
}

function bodyOf(i) {
  // Bodies of varying sizes, one larger than a typical frame to force body splitting.
  const size = i === N - 1 ? 300000 : i % 17;
  return Buffer.from(`message ${i}:${'#'.repeat(size)}`);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function publishAll(url, queue) {
  const connection = await amqp.connect(url, { timeout: WAIT_MS });
  try {
    const channel = await connection.createConfirmChannel();
    const declared = await channel.assertQueue(queue, { durable: false, autoDelete: false });
    expectEqual(declared.queue, queue, 'declared queue name');

    const acks = new Array(N).fill(null);
    for (let i = 0; i < N; i++) {
      channel.publish(
        '',
        queue,
        bodyOf(i),
        {
          contentType: 'text/plain',
          messageId: `id-${i}`,
          headers: { index: i, parity: i % 2 === 0 ? 'even' : 'odd' },
          persistent: i % 2 === 0,
        },
        (err) => {
          acks[i] = err ? `nack: ${err}` : 'ack';
        },
      );
    }
    await withTimeout(channel.waitForConfirms(), WAIT_MS, 'waitForConfirms');
    const notAcked = acks.map((a, i) => [a, i]).filter(([a]) => a !== 'ack');
    check(notAcked.length === 0, `publishes not acked: ${JSON.stringify(notAcked.slice(0, 5))}`);

    const after = await channel.checkQueue(queue);
    expectEqual(after.messageCount, N, 'messages in the queue after the confirms');
    await channel.close();
  } finally {
    await connection.close();
  }
}

async function consumeAll(url, queue) {
  const connection = await amqp.connect(url, { timeout: WAIT_MS });
  try {
    const channel = await connection.createChannel();
    await channel.prefetch(10);
    const received = [];
    let consumerTag;
    const done = new Promise((resolve, reject) => {
      channel
        .consume(
          queue,
          (msg) => {
            if (msg === null) {
              reject(new Error('the broker cancelled the consumer'));
              return;
            }
            received.push(msg);
            channel.ack(msg);
            if (received.length === N) resolve();
          },
          { noAck: false },
        )
        .then((ok) => {
          consumerTag = ok.consumerTag;
        }, reject);
    });
    await withTimeout(done, WAIT_MS * 2, `receiving ${N} messages (got ${received.length})`);
    await channel.cancel(consumerTag);

    expectEqual(received.length, N, 'messages received');
    received.forEach((msg, i) => {
      check(msg.content.equals(bodyOf(i)), `body of message ${i} differs (got ${msg.content.length} bytes, first: ${msg.content.subarray(0, 20)})`);
      expectEqual(msg.properties.messageId, `id-${i}`, `message id of message ${i} (order)`);
      expectEqual(msg.properties.contentType, 'text/plain', `content type of message ${i}`);
      expectEqual(msg.properties.headers, { index: i, parity: i % 2 === 0 ? 'even' : 'odd' }, `headers of message ${i}`);
      expectEqual(msg.properties.deliveryMode, i % 2 === 0 ? 2 : 1, `delivery mode of message ${i}`);
      expectEqual(msg.fields.routingKey, queue, `routing key of message ${i}`);
      expectEqual(msg.fields.exchange, '', `exchange of message ${i}`);
      check(!msg.fields.redelivered, `message ${i} is not flagged redelivered`);
    });
    // Delivery tags count up from 1 on a fresh channel.
    expectEqual(
      received.map((m) => m.fields.deliveryTag),
      Array.from({ length: N }, (_, i) => i + 1),
      'delivery tags',
    );

    // Acks are asynchronous; the queue is empty once the broker has processed them.
    const deadline = Date.now() + WAIT_MS;
    let left;
    for (;;) {
      left = (await channel.checkQueue(queue)).messageCount;
      if (left === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expectEqual(left, 0, 'messages left after acking them all');
    const empty = await channel.get(queue, { noAck: true });
    expectEqual(empty, false, 'basic.get on the drained queue');

    await channel.deleteQueue(queue);
    await channel.close();
  } finally {
    await connection.close();
  }
}

async function main() {
  const url = process.argv[2];
  if (!url) {
    process.stderr.write('usage: node confirm_round_trip.js AMQP_URL\n');
    process.exit(2);
  }
  const watchdog = setTimeout(() => fail(`no result within ${DEADLINE_MS} ms (deadline)`), DEADLINE_MS);
  watchdog.unref();
  const queue = unique('amqplib');
  await publishAll(url, queue);
  await consumeAll(url, queue);
  process.stdout.write('confirm_round_trip: OK\n');
  process.exit(0);
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
