"""A TCP proxy in front of a real redis-server that adds latency, for the
"auth never waits" test (test_auth_async.py) and benchmark (bench/auth_async.py).

Every chunk a client sends is forwarded `delay` seconds after it arrived
(so every round trip gets `delay` longer, without limiting throughput:
chunks of one connection keep their order and several can be in flight);
a chunk that contains one of `marker_delays`' byte strings is held that
many seconds instead (e.g. {b"alice": 2.0}: only commands about alice are
slow). Replies are passed back at once. Runs its own asyncio loop in a
thread: start() returns the port to connect to; stop() closes everything.
`seen(marker)` counts the chunks that contained it (to wait, by polling,
until a slow command is on its way)."""

import asyncio
import socket
import threading
import time


class RedisDelayProxy:
    def __init__(self, upstream_port, delay=0.0, marker_delays=None, host="127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.delay = delay
        self.marker_delays = dict(marker_delays or {})
        self.port = None
        self._seen = {}
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._server = None

    def seen(self, marker):
        with self._lock:
            return self._seen.get(marker, 0)

    def _hold_for(self, chunk):
        hold = self.delay
        for marker, seconds in self.marker_delays.items():
            if marker in chunk:
                with self._lock:
                    self._seen[marker] = self._seen.get(marker, 0) + 1
                hold = max(hold, seconds)
        return hold

    async def _client(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        queue = asyncio.Queue()

        async def receive():
            while True:
                chunk = await reader.read(65536)
                await queue.put((time.monotonic() + self._hold_for(chunk) if chunk else 0, chunk))
                if not chunk:
                    return

        async def forward():
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    up_writer.close()
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                up_writer.write(chunk)
                await up_writer.drain()

        async def back():
            while True:
                chunk = await up_reader.read(65536)
                if not chunk:
                    writer.close()
                    return
                writer.write(chunk)
                await writer.drain()

        tasks = [asyncio.ensure_future(t) for t in (receive(), forward(), back())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except Exception:
            pass
        # Either side gone: let the rest drain briefly, then close both.
        await asyncio.sleep(0)
        for t in tasks:
            if not t.done():
                t.cancel()
        for w in (writer, up_writer):
            try:
                w.close()
            except Exception:
                pass

    def start(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._client, sock=sock))
            ready.set()
            self._loop.run_forever()
            self._server.close()
            self._loop.run_until_complete(self._server.wait_closed())
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self.port

    def stop(self):
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
