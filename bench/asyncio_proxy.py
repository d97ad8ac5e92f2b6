#!/usr/bin/env python3
"""A small implementation of socketproxy's protocol, version 1, in Python asyncio.

The benchmarks' peer for the cost of a poll and of a detached session: what
a straightforward implementation in another runtime spends. It speaks the
hellos of ../docs/protocol.md version 1 (NEW, RESUME with and without an
ack, CLOSE), keeps each session's output from the latest ack (acknowledged
delivery, at most BUFFER bytes beyond it) or, streaming, the most recent
BUFFER bytes, stops reading a destination whose output does not fit, and
expires detached sessions after the idle timeout. No framed attachments,
no admin port, no limits but the hello's: not a server to expose.

    python3 bench/asyncio_proxy.py PORT DESTINATION_PORT [IDLE_SECONDS]
"""

import asyncio
import hmac
import secrets
import sys

BUFFER = 1 << 20
HELLO_BYTES = 512
HELLO_SECONDS = 10
READ_BYTES = 65536


class Session:
    __slots__ = (
        "id", "secret", "reader", "writer", "out", "base", "input", "closed",
        "client", "client_sent", "acked", "room", "expiry", "ended",
    )

    def __init__(self, reader, writer):
        self.id = secrets.token_urlsafe(12)
        self.secret = secrets.token_urlsafe(16)
        self.reader = reader
        self.writer = writer
        self.out = bytearray()  # retained output, from offset `base`
        self.base = 0
        self.input = 0
        self.closed = False
        self.client = None  # the attached client's writer
        self.client_sent = 0  # the output offset sent to it
        self.acked = None  # its ack (acknowledged delivery), or None (streaming)
        self.room = asyncio.Event()
        self.expiry = None
        self.ended = False

    @property
    def end(self):
        return self.base + len(self.out)

    def send_more(self):
        """Writes what the attached client may have of the output."""
        if self.client is None:
            return
        limit = self.end if self.acked is None else min(self.end, self.acked + BUFFER)
        if limit > self.client_sent:
            self.client.write(bytes(self.out[self.client_sent - self.base:limit - self.base]))
            self.client_sent = limit

    def release(self):
        """Streaming: sent output is let go, oldest first, to leave room for a read."""
        if self.acked is None:
            drop = min(len(self.out) - (BUFFER - READ_BYTES), self.client_sent - self.base)
            if drop > 0:
                del self.out[:drop]
                self.base += drop
        if len(self.out) < BUFFER:
            self.room.set()


sessions = {}


async def pump(session):
    """Destination to session: read while the output fits."""
    try:
        while True:
            while len(session.out) >= BUFFER:
                session.room.clear()
                session.release()
                if len(session.out) >= BUFFER:
                    await session.room.wait()
                if session.ended:
                    return
            data = await session.reader.read(READ_BYTES)
            if not data:
                break
            session.out += data
            session.send_more()
            session.release()
            client = session.client
            if client is not None:
                # A slow client slows the destination instead of growing a queue.
                try:
                    await client.drain()
                except (ConnectionError, OSError):
                    pass
            if session.ended:
                return
    except (ConnectionError, OSError):
        pass
    session.closed = True
    if session.client is not None and session.client_sent == session.end:
        session.client.close()


def end_session(session):
    sessions.pop(session.id, None)
    session.ended = True
    session.room.set()  # the pump, if it waits for room, sees the end
    if session.expiry is not None:
        session.expiry.cancel()
    session.writer.close()
    if session.client is not None:
        session.client.close()


def detach(session, writer, idle):
    if session.client is not writer:
        return
    session.client = None
    if session.closed and session.client_sent == session.end:
        end_session(session)
        return
    session.expiry = asyncio.get_running_loop().call_later(idle, end_session, session)


async def handle(reader, writer, destination, idle):
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\n"), HELLO_SECONDS)
    except asyncio.TimeoutError:
        writer.write(b"ERR timeout no hello\n")
        writer.close()
        return
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.write(b"ERR bad-request hello too long or cut short\n")
        writer.close()
        return
    fields = line.rstrip(b"\r\n").decode("ascii", "replace").split(" ")
    verb = fields[0]
    if verb == "NEW" and len(fields) == 1:
        try:
            target_reader, target_writer = await asyncio.open_connection("127.0.0.1", destination)
        except OSError:
            writer.write(b"ERR unreachable destination\n")
            writer.close()
            return
        session = Session(target_reader, target_writer)
        sessions[session.id] = session
        asyncio.create_task(pump(session))
        ack = None
    elif verb in ("RESUME", "CLOSE") and len(fields) in (3, 4):
        session = sessions.get(fields[1])
        given = fields[2].encode("utf-8", "replace")
        if session is None or not hmac.compare_digest(session.secret.encode(), given):
            writer.write(b"ERR auth unknown session or wrong secret\n")
            writer.close()
            return
        if verb == "CLOSE":
            end_session(session)
            writer.write(f"BYE {session.id}\n".encode())
            writer.close()
            return
        ack = int(fields[3]) if len(fields) == 4 and fields[3].isascii() and fields[3].isdigit() else None
        if len(fields) == 4 and ack is None:
            writer.write(b"ERR bad-request bad ack\n")
            writer.close()
            return
        if ack is not None and ack < session.base:
            writer.write(f"ERR gap {session.base}\n".encode())
            writer.close()
            return
        if ack is not None and ack > session.client_sent:
            writer.write(f"ERR ack {session.client_sent}\n".encode())
            writer.close()
            return
    else:
        writer.write(b"ERR bad-request unknown hello\n")
        writer.close()
        return
    # Attach: the newest client wins.
    if session.expiry is not None:
        session.expiry.cancel()
        session.expiry = None
    if session.client is not None:
        session.client.close()
    start = session.client_sent if ack is None else ack
    if ack is not None:
        # Output before the ack is the client's: let it go.
        del session.out[:ack - session.base]
        session.base = ack
        session.room.set()
    session.client = writer
    session.acked = ack
    limit = session.end if ack is None else min(session.end, ack + BUFFER)
    pending = bytes(session.out[start - session.base:limit - session.base])
    session.client_sent = limit
    session.release()  # streaming: what was sent may make room for the pump
    state = "closed" if session.closed else "open"
    reply = f"OK {session.id} {session.secret} {session.input} {start} {len(pending)} {state}\n"
    writer.write(reply.encode() + pending)
    if session.closed and session.client_sent == session.end:
        writer.close()
        end_session(session)
        return
    try:
        while True:
            data = await reader.read(READ_BYTES)
            if not data or session.client is not writer:
                break
            session.writer.write(data)
            await session.writer.drain()
            session.input += len(data)
    except (ConnectionError, OSError):
        pass
    detach(session, writer, idle)
    writer.close()


async def main():
    port, destination = int(sys.argv[1]), int(sys.argv[2])
    idle = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, destination, idle), "127.0.0.1", port, limit=HELLO_BYTES,
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
