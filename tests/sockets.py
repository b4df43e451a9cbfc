"""The WebSocket test client every socket test uses: Channels' communicator with timeouts for a loaded machine.

Channels waits one second for a handshake or a message by default; on a 2-core CI machine running QEMU guests
beside the suite that is sometimes too little, and a test then fails for the machine's sake, not the code's.
Only waits that expect something get longer: `receive_nothing` keeps its caller's timeout.
"""

from __future__ import annotations

from channels.testing import WebsocketCommunicator

PATIENCE_S = 10.0


class Communicator(WebsocketCommunicator):
    async def connect(self, timeout: float = PATIENCE_S):
        return await super().connect(timeout)

    async def receive_from(self, timeout: float = PATIENCE_S):
        return await super().receive_from(timeout)

    async def receive_json_from(self, timeout: float = PATIENCE_S):
        return await super().receive_json_from(timeout)

    async def receive_output(self, timeout: float = PATIENCE_S):
        return await super().receive_output(timeout)
