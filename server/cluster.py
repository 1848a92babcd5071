"""Who serves which lot: one owner process per lot, and commands forwarded to it.

    LocalCluster   the embedded default: one process, it owns every lot
    RedisCluster   any number of processes sharing Redis (and PostgreSQL)

A lot's owner holds a lease in Redis (``{prefix}:lease:{lot}`` = node, expiring after
:data:`LEASE_TTL_MS`) and renews it while it lives. The lease only decides who *should*
write; the store's ``expected_seq`` fence decides who *can*: a paused owner that
wakes up after a takeover finds its appends refused, never half-applied. A process
that receives a command for a lot it does not own sends it to the owner over the
owner's channel (``{prefix}:node:{node}``) and relays the answer; if nobody answers in
:data:`FORWARD_TIMEOUT` seconds the client gets ``unavailable`` and may retry with the
same ``bid_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from auction import Command

from . import wire
from .errors import ServerError
from .sequencer import Answer

log = logging.getLogger("bidhall.cluster")

LEASE_TTL_MS = 2000
#: How often an owner renews its leases and others look for lots nobody holds.
RENEW_EVERY = 0.4
FORWARD_TIMEOUT = 5.0
#: While a forwarded command waits, how often to check that its owner still listens.
LIVENESS_EVERY = 0.25

Reply = Callable[[Answer | ServerError], None]
OnRequest = Callable[[str, Command, Reply], None]

# Renew the leases this node holds. A lease that vanished (Redis restarted empty) is taken
# again: only one that another node holds now is lost.
_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not holder then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(lost, key)
  end
end
return lost
"""

_RELEASE = """
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""


class NotOwner(Exception):
    """The process asked to run a command does not own the lot (any more)."""


def new_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class LocalCluster:
    """One process: it owns every lot, nothing is forwarded."""

    distributed = False

    def __init__(self) -> None:
        self.node = new_node_id()

    async def start(self, on_request: OnRequest) -> None:
        pass

    async def close(self) -> None:
        pass

    async def claim(self, lot_id: str) -> bool:
        return True

    async def renew(self, lot_ids: Iterable[str]) -> set[str]:
        return set()

    async def holders(self, lot_ids: list[str]) -> dict[str, str | None]:
        return dict.fromkeys(lot_ids, self.node)

    async def owner(self, lot_id: str) -> str | None:
        return self.node

    def forget_owner(self, lot_id: str) -> None:
        pass

    async def request(self, node: str, lot_id: str, command: Command) -> Answer:
        raise NotOwner(lot_id)

    async def release(self, lot_ids: Iterable[str]) -> None:
        pass


class RedisCluster:
    """Leases and forwarding through Redis. See the module docstring."""

    distributed = True

    def __init__(self, url: str, *, prefix: str = "bidhall") -> None:
        self.node = new_node_id()
        self.url = url
        self.prefix = prefix
        self._redis: aioredis.Redis | None = None
        self._on_request: OnRequest | None = None
        self._listener: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[Answer | ServerError]]] = {}
        self._owners: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ keys
    def _lease(self, lot_id: str) -> str:
        return f"{self.prefix}:lease:{lot_id}"

    def _channel(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise ServerError("unavailable", "the cluster is not started")
        return self._redis

    # ------------------------------------------------------------------ lifecycle
    async def start(self, on_request: OnRequest) -> None:
        self._on_request = on_request
        self._redis = aioredis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2,
                                        health_check_interval=5)
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise ServerError("unavailable", f"cannot reach Redis at {self.url}: {exc}") from exc
        self._renew_script = self._redis.register_script(_RENEW)
        self._release_script = self._redis.register_script(_RELEASE)
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        for task in list(self._tasks):
            task.cancel()
        if self._redis is not None:
            await self._redis.aclose()

    # ------------------------------------------------------------------ leases
    async def claim(self, lot_id: str) -> bool:
        """Take the lease of ``lot_id`` if nobody holds it."""
        try:
            won = await self.redis.set(self._lease(lot_id), self.node, nx=True,
                                       px=LEASE_TTL_MS)
        except (RedisError, OSError) as exc:
            log.warning("cannot claim %s: %s", lot_id, exc)
            return False
        if won:
            self._owners[lot_id] = self.node
        return bool(won)

    async def renew(self, lot_ids: Iterable[str]) -> set[str]:
        """Extend the leases this node holds (taking back vanished ones); the lots whose
        lease another node holds now."""
        keys = [self._lease(lot_id) for lot_id in lot_ids]
        if not keys:
            return set()
        lost = await self._renew_script(keys=keys, args=[self.node, LEASE_TTL_MS])
        prefix = len(self._lease(""))
        return {_text(key)[prefix:] for key in lost}

    async def holders(self, lot_ids: list[str]) -> dict[str, str | None]:
        if not lot_ids:
            return {}
        values = await self.redis.mget([self._lease(lot_id) for lot_id in lot_ids])
        return {lot_id: _text(v) if v else None for lot_id, v in zip(lot_ids, values,
                                                                     strict=True)}

    async def owner(self, lot_id: str) -> str | None:
        cached = self._owners.get(lot_id)
        if cached is not None:
            return cached
        try:
            value = await self.redis.get(self._lease(lot_id))
        except (RedisError, OSError) as exc:
            log.warning("cannot look up the owner of %s: %s", lot_id, exc)
            raise ServerError("unavailable", "the lot's server cannot be found; "
                              "retry with the same bid_id") from exc
        if value is None:
            return None
        self._owners[lot_id] = owner = _text(value)
        return owner

    def forget_owner(self, lot_id: str) -> None:
        self._owners.pop(lot_id, None)

    async def release(self, lot_ids: Iterable[str]) -> None:
        keys = [self._lease(lot_id) for lot_id in lot_ids]
        if keys:
            with contextlib.suppress(RedisError, OSError):
                await self._release_script(keys=keys, args=[self.node])

    # ------------------------------------------------------------------ forwarding
    async def request(self, node: str, lot_id: str, command: Command) -> Answer:
        """Run ``command`` at ``node`` (the owner). ``NotOwner`` if it does not own the lot;
        ``ServerError("unavailable")`` if it cannot be reached or does not answer in time."""
        request_id = secrets.token_hex(8)
        future: asyncio.Future[Answer | ServerError] = (
            asyncio.get_running_loop().create_future())
        self._pending[request_id] = (node, future)
        message = wire.encode_command(command)
        payload = msgspec.json.encode({"t": "req", "id": request_id, "from": self.node,
                                       "lot": lot_id, "cmd": message})
        channel = self._channel(node)
        try:
            receivers = await self.redis.publish(channel, payload)
            if not receivers:  # nobody listens there: that owner is gone, and so are the
                self._abandon(node)  # answers to what was sent to it before
                raise NotOwner(lot_id)
            outcome = await self._await_answer(future, node, channel)
        except TimeoutError:  # first: TimeoutError is an OSError
            raise ServerError("unavailable", "the lot's server did not answer in time; "
                              "retry with the same bid_id") from None
        except (RedisError, OSError) as exc:
            log.warning("cannot forward a command for %s to %s: %s", lot_id, node, exc)
            raise ServerError("unavailable", "the lot's server cannot be reached; "
                              "retry with the same bid_id") from exc
        finally:
            self._pending.pop(request_id, None)
        if isinstance(outcome, ServerError):
            if outcome.code == "wrong_owner":
                raise NotOwner(lot_id)
            raise outcome
        return outcome

    async def _listen(self) -> None:
        """Requests for lots this node owns, and answers to requests it sent."""
        backoff = 0.1
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self._channel(self.node))
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self._receive(msgspec.json.decode(message["data"]))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("node channel lost (%s); reconnecting", exc)
                # Requests sent meanwhile may never be answered: fail them now.
                for _, future in self._pending.values():
                    if not future.done():
                        future.set_result(ServerError("unavailable"))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _await_answer(self, future: asyncio.Future[Answer | ServerError], node: str,
                            channel: str) -> Answer | ServerError:
        """The answer from ``node``; while waiting, check now and then that it still listens,
        so a request caught by its death fails in a fraction of a second, not the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FORWARD_TIMEOUT
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError
            try:
                return await asyncio.wait_for(asyncio.shield(future), min(left, LIVENESS_EVERY))
            except TimeoutError:
                listeners = await self.redis.pubsub_numsub(channel)
                if not listeners or not listeners[0][1]:
                    self._abandon(node)
                    return await future

    def _abandon(self, node: str) -> None:
        """``node`` is gone: whatever it was asked gets ``unavailable`` now, not after the
        timeout (the command may or may not have run; the bid_id makes the retry safe)."""
        gone = ServerError("unavailable", "the lot's server stopped; retry with the same bid_id")
        for to, future in self._pending.values():
            if to == node and not future.done():
                future.set_result(gone)

    def _receive(self, data: dict[str, Any]) -> None:
        if data.get("t") == "rep":
            pending = self._pending.get(data.get("id", ""))
            if pending is not None and not pending[1].done():
                pending[1].set_result(wire.decode_answer(data))
            return
        if data.get("t") != "req" or self._on_request is None:
            return
        sender, request_id, lot_id = data["from"], data["id"], data["lot"]

        def reply(outcome: Answer | ServerError) -> None:
            payload = msgspec.json.encode({"t": "rep", "id": request_id,
                                           **wire.encode_answer(outcome)})
            self._spawn(self._publish(self._channel(sender), payload))

        try:
            command = wire.decode_command(data["cmd"])
        except ValueError as exc:
            reply(ServerError("bad_message", str(exc)))
            return
        self._on_request(lot_id, command, reply)

    async def _publish(self, channel: str, payload: bytes) -> None:
        try:
            await self.redis.publish(channel, payload)
        except (RedisError, OSError) as exc:
            log.warning("could not answer over %s: %s", channel, exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
