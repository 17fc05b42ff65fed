"""A bounded byte pipe between a reader thread (source COPY out) and the writer (target COPY in).

The pipe is an OS pipe: psycopg2 hands the reader's file one `write` per row, and a
`BufferedWriter` over the pipe takes those at C speed (no Python frame per row) and blocks
when the pipe is full, so memory stays bounded at about three chunks whatever the table size.
The writer side reads ~1 MiB at a time through `PipeReader`, which counts bytes for progress
and stops the COPY when the load is cancelled.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO

from core.fullload.model import Cancelled

CHUNK = 1 << 20  # bytes per read/write hand-over
JOIN_TIMEOUT_S = 30.0
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class PipeReader:
    """The writer's file: `read(n)` returns what the pipe holds (b'' at end), counting bytes."""

    def __init__(self, fd: int, cancel: threading.Event) -> None:
        self._fd = fd
        self._cancel = cancel
        self.bytes_read = 0

    def read(self, size: int = CHUNK) -> bytes:
        """Up to `size` bytes; raises Cancelled when the load is stopping (psycopg2 then aborts the COPY)."""
        if self._cancel.is_set():
            raise Cancelled()
        data = os.read(self._fd, size if size > 0 else CHUNK)
        if self._cancel.is_set():
            raise Cancelled()
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class BytePipe:
    """An OS pipe sized to one chunk, with a buffered file for the reader and a PipeReader for the writer."""

    def __init__(self, cancel: threading.Event, chunk: int = CHUNK) -> None:
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_fd, _F_SETPIPE_SZ, chunk)
        self.sink: BinaryIO = open(write_fd, "wb", buffering=chunk)  # noqa: SIM115 - closed in close_sink
        self.source = PipeReader(read_fd, cancel)

    def close_sink(self) -> None:
        """End of data for the writer (flushes what is buffered, unless the writer is gone)."""
        with contextlib.suppress(OSError, ValueError):
            self.sink.close()

    def close_source(self) -> None:
        """Close the writer's end: a reader blocked on a full pipe gets BrokenPipeError and stops."""
        self.source.close()


def pump(
    produce: Callable[[BinaryIO], None],
    consume: Callable[[PipeReader], int],
    cancel: threading.Event,
    stop_producer: Callable[[], None],
    on_open: Callable[[PipeReader], None] | None = None,
) -> int:
    """Run `produce(sink)` in a thread and `consume(source)` here; the consumer's row count.

    An error of the producer wins over the consumer's (the consumer then only saw a short
    stream), except a broken pipe, which means the consumer stopped first.
    """
    pipe = BytePipe(cancel)
    if on_open:
        on_open(pipe.source)
    failure: list[BaseException] = []

    def run_producer() -> None:
        try:
            produce(pipe.sink)
            pipe.sink.flush()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer's thread
            failure.append(exc)
        finally:
            pipe.close_sink()

    thread = threading.Thread(target=run_producer, name="fullload-reader", daemon=True)
    thread.start()
    consumer_error: BaseException | None = None
    rows = 0
    try:
        rows = consume(pipe.source)
    except BaseException as exc:  # noqa: BLE001 - decided below, after the producer stopped
        consumer_error = exc
        stop_producer()
    finally:
        pipe.close_source()
        thread.join(JOIN_TIMEOUT_S)
    _raise_failure(failure, consumer_error)
    if thread.is_alive():
        raise TimeoutError("the source reader did not finish")
    return rows


def _raise_failure(failure: list[BaseException], consumer_error: BaseException | None) -> None:
    """The producer's error if it had one (not a broken pipe: that means the consumer stopped first),
    else the consumer's; nothing when both ran through."""
    producer_error = failure[0] if failure else None
    if producer_error is not None and not isinstance(producer_error, BrokenPipeError):
        raise producer_error
    if consumer_error is not None:
        raise consumer_error


_END = object()
_POLL_S = 0.2


def _drain(buffer: queue.Queue, cancel: threading.Event, producer: threading.Thread) -> Iterator[list]:
    """The batches in `buffer` until the end mark, or until the producer's thread ended and the buffer is empty;
    Cancelled when the load is stopping."""
    while True:
        if cancel.is_set():
            raise Cancelled()
        try:
            item = buffer.get(timeout=_POLL_S)
        except queue.Empty:
            if not producer.is_alive() and buffer.empty():
                return
            continue
        if item is _END:
            return
        yield item


def pump_batches(
    produce: Callable[[Callable[[list], None]], None],
    consume: Callable[[Iterator[list]], int],
    cancel: threading.Event,
    stop_producer: Callable[[], None],
    depth: int = 4,
) -> int:
    """Like `pump`, for row batches: `produce(put)` in a thread, `consume(batches)` here, `depth` batches buffered."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()
    failure: list[BaseException] = []

    def put(item: object) -> None:
        while not buffer_put(item):
            if stopped.is_set():
                raise BrokenPipeError("the writer stopped")

    def buffer_put(item: object) -> bool:
        try:
            buffer.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            return False

    def run_producer() -> None:
        try:
            produce(put)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer's thread
            failure.append(exc)
        finally:
            with contextlib.suppress(BrokenPipeError):
                put(_END)

    thread = threading.Thread(target=run_producer, name="fullload-reader", daemon=True)
    thread.start()
    consumer_error: BaseException | None = None
    rows = 0
    try:
        rows = consume(_drain(buffer, cancel, thread))
    except BaseException as exc:  # noqa: BLE001 - decided below, after the producer stopped
        consumer_error = exc
        stop_producer()
    finally:
        stopped.set()
        thread.join(JOIN_TIMEOUT_S)
    _raise_failure(failure, consumer_error)
    return rows
