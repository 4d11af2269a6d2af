"""``kind: presence`` — chat users: presence with a short TTL, joins and leaves, room broadcasts.

Users alternate online sessions (``session_mean`` seconds, exponential) and offline gaps
(``offline_mean``). A session starts with a register into a room (rooms have Zipf popularity
``room_skew``), heartbeats every ``heartbeat.period`` and ends by a leave (unregister) or — for
``drop_fraction`` of sessions — a drop (the connection dies, the TTL expires the user). Users switch
rooms (re-register) every ``room_switch_mean`` seconds on average. Operators: ``room_message``
(multicast to a room), ``announcement`` (multicast to everyone online) and ``members_query``
(enumerate a room).
"""

# ruff: noqa: RUF009 - spec()/rate() return dataclasses.field(...) with scenario metadata

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from mcastlab.workloads._schema import spec
from mcastlab.workloads.arrivals import rate
from mcastlab.workloads.context import OFFLINE, ONLINE, Context
from mcastlab.workloads.kinds._common import Heartbeat, payload


@dataclass(frozen=True, slots=True)
class Presence:
    """Parameters of the user-presence workload."""

    kind: Literal["presence"]
    cohort_mode: ClassVar[bool] = False  # the cohort engine (mcastlab.workloads.cohort) can run it
    users: int = spec(5_000, doc="number of users", min=1)
    rooms: int = spec(200, doc="number of chat rooms", min=1)
    room_skew: float = spec(1.0, doc="Zipf exponent of room popularity (0: uniform)", min=0)
    ttl: float = spec(60.0, doc="presence TTL, seconds", gt=0)
    heartbeat: Heartbeat = spec(Heartbeat(20.0, 0.2), doc="presence heartbeat")
    online_fraction: float = spec(0.6, doc="share of users online at the start", min=0, max=1)
    join_window: float = spec(30.0, doc="initial users join within this many seconds", min=0)
    session_mean: float = spec(600.0, doc="mean online session, seconds", gt=0)
    offline_mean: float = spec(300.0, doc="mean offline gap, seconds", gt=0)
    drop_fraction: float = spec(0.2, doc="sessions that end by a drop instead of a leave", min=0, max=1)
    room_switch_mean: float = spec(300.0, doc="mean seconds in a room before switching", gt=0)
    room_message: Any = rate(5.0, "room broadcasts per second")
    announcement: Any = rate(1 / 120, "announcements to all online users per second")
    members_query: Any = rate(10.0, "room member enumerates per second")
    payload_bytes: int = spec(200, doc="message size", min=1)
    mode: Literal["publish", "ack"] | None = spec(None, doc="delivery mode (default: the config's)")

    def check(self, key: str, source: str) -> None:
        self.heartbeat.check_against(self.ttl, key, source)

    def capacity(self, duration: float) -> int:
        """Most identities registered at once (about)."""
        return self.users

    def filters(self) -> dict[str, str]:
        """No filter text comes from scenario values (rooms are numbered)."""
        return {}

    def multicast_streams(self) -> dict[str, Any]:
        """The workload's multicast streams and their arrival schedules (for "too short" warnings)."""
        return {"room_message": self.room_message, "announcement": self.announcement}

    def planned_deaths(self) -> int:
        return 0  # dropped sessions linger until their TTL, but are not deaths

    def estimate(self, duration: float, batch: int = 1) -> dict[str, float]:
        """Expected identities and frame rows (ops, deliveries) of a run, for the memory guard."""
        online = self.users * self.online_fraction
        beats = online * duration / self.heartbeat.period
        messages = self.room_message.mean_rate * duration
        deliveries = messages * online / self.rooms + self.announcement.mean_rate * duration * online
        ops = self.users + beats + messages + self.members_query.mean_rate * duration
        return {"identities": self.users, "ops": ops, "deliveries": deliveries}

    def setup(self, ctx: Context) -> None:
        """Create the users and schedule sessions and operator streams."""
        rng = ctx.rng("presence:sessions")
        rooms = [f"room-{i:03d}" for i in range(self.rooms)]
        weights = 1.0 / np.arange(1, self.rooms + 1) ** self.room_skew
        cumulative = np.cumsum(weights / weights.sum())
        hb = self.heartbeat
        clients = ("web", "mobile", "desktop")

        def room(r: np.random.Generator) -> str:
            return rooms[min(int(np.searchsorted(cumulative, r.random(), side="right")), self.rooms - 1)]

        codes = [
            ctx.identity(
                f"user-{i:05d}",
                {"status": "online", "room": room(rng), "client": clients[i % 3]},
                period=hb.period,
                jitter=hb.jitter,
            )
            for i in range(self.users)
        ]

        def join(t: float, code: int) -> None:
            if ctx.state[code] != OFFLINE:
                return
            md = dict(ctx.truth.meta[code], room=room(rng))
            ctx.boot(t, code, md, stream="join")
            g = ctx.gen[code]
            ctx.at(t + float(rng.exponential(self.session_mean)), end_session, code, g)
            ctx.at(t + float(rng.exponential(self.room_switch_mean)), switch, code, g)

        def end_session(t: float, code: int, g: int) -> None:
            if ctx.gen[code] != g or ctx.state[code] != ONLINE:
                return
            if rng.random() < self.drop_fraction:
                ctx.go_offline(code)  # dropped: the registration lingers until its TTL expires
            else:
                ctx.leave(t, code)
            ctx.at(t + float(rng.exponential(self.offline_mean)), join, code)

        def switch(t: float, code: int, g: int) -> None:
            if ctx.gen[code] != g or ctx.state[code] != ONLINE:
                return
            md = dict(ctx.truth.meta[code], room=room(rng))
            ctx.register(t, code, md, stream="room_switch")
            ctx.at(t + float(rng.exponential(self.room_switch_mean)), switch, code, g)

        first = rng.random(self.users) < self.online_fraction
        starts = np.where(
            first,
            rng.uniform(0, max(self.join_window, 1e-9), self.users),
            rng.exponential(self.offline_mean, self.users),
        )
        for i in np.argsort(starts, kind="stable"):
            ctx.at(float(starts[i]), join, codes[i])

        compile_ = ctx.coord.compile
        by_room = {r: compile_(f'room == "{r}"') for r in rooms}
        everyone = compile_('status == "online"')
        pick = ctx.rng("presence:rooms")
        chat = payload("chat", self.payload_bytes)
        news = payload("announcement", self.payload_bytes)
        ctx.stream(
            self.room_message,
            lambda t: ctx.multicast(t, by_room[room(pick)], chat, stream="room_message", mode=self.mode),
            name="room_message",
        )
        ctx.stream(
            self.announcement,
            lambda t: ctx.multicast(t, everyone, news, stream="announcement", mode=self.mode),
            name="announcement",
        )
        ctx.stream(
            self.members_query,
            lambda t: ctx.enumerate(t, by_room[room(pick)], stream="members_query"),
            name="members_query",
        )


__all__ = ["Presence"]
