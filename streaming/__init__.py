"""Live video of lots and tenders over WebRTC: WHIP in, WHEP out, an encoded relay between.

:mod:`streaming.sdp` checks what clients send, :mod:`streaming.relay` forwards encoded
frames from one publisher to many viewers, :mod:`streaming.http` speaks WHIP and WHEP.
"""
