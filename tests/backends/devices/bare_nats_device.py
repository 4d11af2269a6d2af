"""A device written against docs/wire-protocol.md only: bare nats-py, no mcastlab import.

Usage: python bare_nats_device.py NATS_URL PREFIX IDENTITY COUNT
Subscribes to the identity's inbox subject, prints one JSON line {"subscribed": subject}, then for each of
COUNT messages acknowledges it (an empty reply to the reply subject, when there is one) and prints
{"payload", "msg_id", "attempt", "redelivery", "sent_at", "acked"}; ignores interest probes; finally prints
{"modules": [...]} listing the top-level packages it had loaded.
"""

import asyncio
import json
import sys

import nats

SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


def subject_for(prefix: str, identity: str) -> str:
    """The wire contract's rule: keep [A-Za-z0-9_-], %XX (upper-case hex) every other UTF-8 byte."""
    return prefix + "." + "".join(chr(b) if chr(b) in SAFE else f"%{b:02X}" for b in identity.encode("utf-8"))


async def main(url: str, prefix: str, identity: str, count: int) -> None:
    nc = await nats.connect(url)
    got = asyncio.Queue()

    async def on_message(msg):
        if msg.headers and "Mcast-Probe" in msg.headers:
            return  # an mcastlab inbox's subscription probe: not a message for this device
        if msg.reply:
            await nc.publish(msg.reply, b"")  # the acknowledgement
        attempt, redelivery, sent_hex, msg_id = msg.headers["Mcast-Msg"].split(" ", 3)
        await got.put({"payload": msg.data.decode(), "msg_id": msg_id, "attempt": int(attempt),
                       "redelivery": redelivery == "1", "sent_at": float.fromhex(sent_hex),
                       "acked": bool(msg.reply)})

    subject = subject_for(prefix, identity)
    await nc.subscribe(subject, cb=on_message)
    await nc.flush()
    print(json.dumps({"subscribed": subject}), flush=True)
    for _ in range(count):
        print(json.dumps(await asyncio.wait_for(got.get(), 30)), flush=True)
    await nc.drain()
    print(json.dumps({"modules": sorted({m.split(".")[0] for m in sys.modules})}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
