"""Deciding many images' verdicts in worker processes, for the rescan.

What a gate does before it signs (the image's scan read back from the layer cache, or made in
its bounded child; the match; VEX merged; the policy evaluated) needs no key and stores
nothing but the scan cache. A rescan of thousands of images spends most of its time there,
and in one process that is one core. :class:`DecidePool` runs that part in ``jobs`` worker
processes, each with a :class:`~appliance.rva.gate.GateSession` of its own (its advisory
cache, its compiled policy), and hands every image's decision back, in the order asked, to
the one process that signs, logs, attaches and records it (appliance/rescan.py). The key
never leaves that process (nor does a token's session); a decision made in a worker is the
one :func:`decide` makes in the rescan's own process, byte for byte (tested).

A worker is a fresh interpreter running this module (``python -m appliance.rva.pool``), as a
scan's child is: not a fork of a process that holds the policy engine and open database
connections, and nothing of the caller's own program is imported again. It confines itself
to the tenant boundary of the process that started it before it opens anything. The two
speak in frames (a 4-byte length, then a pickle) over the worker's standard input and
output; each worker holds one image at a time. A worker that dies (killed, out of memory)
takes only the image it held: that image is reported as not gated, with the exit status and
the end of the worker's error output, and is not indexed, so the next rescan gates it again;
a new worker takes the next image.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import pickle
import queue
import struct
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

from appliance import tenancy
from appliance.faults import fault
from appliance.home import Home
from appliance.match.service import RecordingAdvisories
from appliance.match.source import Probe
from appliance.rva.gate import Decided, GateSession
from appliance.scanner.jobchild import confine
from appliance.scanner.jobs import (
    ScanLimitError,
    StoppedScan,
    boundary_request,
    child_argv,
    ended,
    last_line,
    scan_bounded,
)
from appliance.scanner.result import ScanResult
from bundles.errors import StellaError, describe


@dataclass(frozen=True, slots=True)
class Prepared:
    """One image decided, or why it could not be: the decision (in its portable form when a
    worker made it) and what the match looked up in the knowledge (the package keys, CVE ids
    and probes the component index keeps; None when no snapshot is active)."""

    decided: Decided | None
    keys: frozenset[tuple[str, str]] | None = None
    cves: frozenset[str] | None = None
    probes: frozenset[Probe] | None = None
    error: str | None = None


def decide(home: Home, session: GateSession, image: str, *, at: datetime) -> Prepared:
    """Decide ``image`` as :func:`appliance.rva.gate.gate` would, through ``session``'s shared
    advisory cache, recording what the match looked up. A scan stopped by its bound is decided
    INDETERMINATE (``RISK.UNKNOWN.SCAN_LIMIT``); an image that cannot be decided gives the
    reason, one line."""
    fault("rescan.decide", subject=image)
    recording = RecordingAdvisories(session.source) if session.source is not None else None
    try:
        scan: ScanResult | StoppedScan
        try:  # bounded as every scan is; a cache hit reads no layer and needs no child
            scan = scan_bounded(home, image, audit=False)
        except ScanLimitError as e:
            scan = e.stopped
        decided = session.decide(scan, at=at, source=recording, record_scan=True)
    except (StellaError, OSError) as e:
        return Prepared(None, error=describe(e))
    if recording is None:
        return Prepared(decided)
    return Prepared(
        decided,
        keys=frozenset(recording.keys),
        cves=frozenset(recording.cves),
        probes=frozenset(recording.probes),
    )


WORKER_NICENESS: Final = 10

FRAME_LIMIT: Final = 256 << 20
"""The largest frame either side reads (a decision carries the image's SBOM and evidence)."""

_HEADER: Final = struct.Struct(">I")


class WorkerDied(Exception):
    """A worker process ended while it held an image."""


def _send(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """The next frame's message; EOFError at the end of the stream (or a cut frame)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("no frame")
    (size,) = _HEADER.unpack(header)
    if size > FRAME_LIMIT:
        raise EOFError(f"a frame of {size} bytes, above the limit of {FRAME_LIMIT}")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("a cut frame")
    return pickle.loads(data)  # noqa: S301 - our own worker, started by this process


class _Worker(threading.Thread):
    """One worker process and the thread in this process that feeds it images from the pool's
    queue, one at a time; a new process when the last one died."""

    def __init__(self, pool: DecidePool, n: int) -> None:
        super().__init__(name=f"decide-{n}", daemon=True)
        self.pool = pool
        self.process: subprocess.Popen[bytes] | None = None
        self.errors: IO[bytes] | None = None

    def run(self) -> None:
        try:
            while True:
                job = self.pool.jobs_queue.get()
                if job is None:
                    return
                future, image, at = job
                if self.pool.closing:  # a rescan stopped part-way: what is left is not decided
                    future.cancel()
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(self._ask(image, at))
                except WorkerDied as e:
                    future.set_result(
                        Prepared(
                            None,
                            error=f"the worker process deciding it ended: {e}; run "
                            "'stella rescan' again to gate it",
                        )
                    )
                except BaseException as e:  # never leave a caller waiting on a future
                    future.set_exception(e)
        finally:
            self._stop()

    def _start(self) -> subprocess.Popen[bytes]:
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the worker
        process = subprocess.Popen(
            child_argv(__name__),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            close_fds=True,
        )
        assert process.stdin is not None
        _send(process.stdin, ("start", *self.pool.start_args))
        return process

    def _ask(self, image: str, at: datetime) -> Prepared:
        if self.process is None:
            self.process = self._start()
        process = self.process
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            _send(process.stdin, ("decide", image, at))
            answer = _receive(process.stdout)
        except (OSError, EOFError, pickle.UnpicklingError) as e:
            raise WorkerDied(self._reap(e)) from e
        if not isinstance(answer, Prepared):
            raise WorkerDied(self._reap(ValueError(f"an answer of type {type(answer).__name__}")))
        return answer

    def _reap(self, error: BaseException) -> str:
        """Why the worker ended (it is killed if it still runs), and a new one next time."""
        process, self.process = self.process, None
        assert process is not None
        if process.poll() is None:
            process.kill()
        status = process.wait()
        _close_pipes(process)
        why = ended(status) if status else f"it stopped answering ({error})"
        tail = self._error_tail()
        return f"{why}{': ' + tail if tail else ''}"

    def _error_tail(self) -> str:
        if self.errors is None:
            return ""
        self.errors.seek(0, 2)
        self.errors.seek(max(0, self.errors.tell() - 400))
        tail = self.errors.read().decode("utf-8", "replace")
        self.errors.close()
        self.errors = None
        return last_line(tail)

    def _stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            assert process.stdin is not None
            try:
                process.stdin.close()  # the worker's end of input: it closes its session
                process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()
            _close_pipes(process)
        if self.errors is not None:
            self.errors.close()
            self.errors = None


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):  # a worker gone mid-write leaves a broken pipe
                pipe.close()


class DecidePool:
    """``jobs`` worker processes deciding images for one rescan (see the module docstring).
    :meth:`submit` a batch of images, then :meth:`collect` it: images are decided in the
    order submitted, so the next batch is decided while this process signs the last one.
    Workers start when the first image is submitted. Close it (or use ``with``)."""

    def __init__(self, home: Home, jobs: int) -> None:
        if jobs < 1:
            raise ValueError(f"{jobs} worker processes")
        self.start_args = (str(home.root), home.tenant, boundary_request(tenancy.current()))
        self.jobs_queue: queue.SimpleQueue[tuple[Future[Prepared], str, datetime] | None] = (
            queue.SimpleQueue()
        )
        self.closing = False
        self._workers = [_Worker(self, n) for n in range(jobs)]
        for worker in self._workers:
            worker.start()

    def submit(self, images: list[str], *, at: datetime) -> list[Future[Prepared]]:
        """Hand ``images`` to the workers."""
        futures: list[Future[Prepared]] = []
        for image in images:
            future: Future[Prepared] = Future()
            self.jobs_queue.put((future, image, at))
            futures.append(future)
        return futures

    def collect(self, futures: list[Future[Prepared]]) -> list[Prepared]:
        """The decisions of one submitted batch, in its order."""
        return [future.result() for future in futures]

    def close(self) -> None:
        """Let the workers finish what they hold, then stop them; images submitted and not
        yet taken are cancelled."""
        self.closing = True
        for _ in self._workers:
            self.jobs_queue.put(None)
        for worker in self._workers:
            worker.join()

    def __enter__(self) -> DecidePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> int:
    """A worker: decide each image asked for on standard input, answer on standard output,
    until its input ends."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed may cut into the frames
    try:
        kind, root, tenant, boundary = _receive(stdin)
    except EOFError:
        return 0
    assert kind == "start", kind
    # the rescan's own process signs and records every image, one at a time: it goes first
    # when the CPUs are busy, and the workers take the time it leaves
    os.nice(WORKER_NICENESS)
    confine(boundary)  # before anything is opened
    home = Home(Path(root), tenant)
    session: GateSession | None = None
    failure: str | None = None
    try:
        session = GateSession(home)
    except (StellaError, OSError) as e:
        failure = describe(e)  # each image is answered with it
    atexit.register(lambda: session.close() if session is not None else None)
    while True:
        try:
            kind, image, at = _receive(stdin)
        except EOFError:
            return 0
        if session is None:
            answer = Prepared(None, error=failure)
        else:
            answer = decide(home, session, image, at=at)
            if answer.decided is not None:
                answer = dataclasses.replace(answer, decided=answer.decided.portable())
        _send(stdout, answer)


if __name__ == "__main__":
    # run as the module proper, so what it pickles names appliance.rva.pool, not __main__
    from appliance.rva import pool

    sys.exit(pool.main())
