"""Shared plumbing for the interop scripts in this folder.

Every script takes the broker's AMQP URL as argv[1], exits 0 when every check passed and
non-zero with a message on stderr otherwise. A watchdog ends the process if the whole run
takes longer than its deadline, so a broker that never answers cannot hang a test.
"""

import os
import sys
import threading
import traceback
import uuid

# The whole run of one script, in seconds.
DEADLINE = float(os.environ.get("WARREN_CLIENT_DEADLINE", "20"))
# How long one wait for an expected message may take.
WAIT = 5.0


class CheckFailed(Exception):
    """A check on the broker's behaviour did not hold."""


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def expect_equal(actual, expected, what):
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def unique(prefix):
    """A name no other run uses: the prefix, the process id and a random part."""
    return f"warren-test.{prefix}.{os.getpid()}.{uuid.uuid4().hex[:12]}"


_AT_FAILURE = []


def at_failure(cleanup):
    """Registers cleanup() to run (best effort) if the script fails, so that a failed run
    leaves no named queues or exchanges behind on a shared broker."""
    _AT_FAILURE.append(cleanup)


def _clean_up_after_failure():
    for cleanup in reversed(_AT_FAILURE):
        try:
            cleanup()
        except BaseException:  # noqa: BLE001 - best effort only
            pass


def _watchdog(name, seconds):
    def expire():
        sys.stderr.write(f"{name}: FAILED: no result within {seconds:.0f} s (deadline)\n")
        sys.stderr.flush()
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    return timer


def url_from_argv(name):
    if len(sys.argv) != 2:
        sys.stderr.write(f"usage: {name} AMQP_URL\n")
        sys.exit(2)
    return sys.argv[1]


def run(name, main, deadline=DEADLINE):
    """Runs main(url) under the watchdog and turns its outcome into the exit status."""
    url = url_from_argv(name)
    _watchdog(name, deadline)
    try:
        main(url)
    except CheckFailed as error:
        sys.stderr.write(f"{name}: FAILED: {error}\n")
        sys.stderr.flush()
        _clean_up_after_failure()
        os._exit(1)
    except BaseException:  # noqa: BLE001 - any error is a failed run
        sys.stderr.write(f"{name}: FAILED with an exception:\n{traceback.format_exc()}")
        sys.stderr.flush()
        _clean_up_after_failure()
        os._exit(1)
    sys.stdout.write(f"{name}: OK\n")
    sys.stdout.flush()
    # Skip interpreter teardown: client threads still winding down cannot delay the exit.
    os._exit(0)
