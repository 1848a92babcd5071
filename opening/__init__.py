"""The pure core of no-meeting bid openings: tenders, sealed envelopes, receipts.

No I/O, no clock, no randomness of its own: commands carry their time and callers pass
random bytes in. May use ``cryptography``.
"""
