"""Load benchmark: `python -m bench` (see README, "Benchmark").

Starts fake Discord and fake EvoLink on loopback, runs the real bot as a subprocess against them,
fires a burst of /imagine, /animate and /edit jobs, and prints what the bot cost: EvoLink requests,
completion-to-delivery delays, Discord requests and 429s, memory and CPU. Not part of the tests:
it measures, it does not assert.
"""
