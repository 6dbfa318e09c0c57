"""The engine: a turn reads the message once, then safety, understanding, dialogue, matching and the reply.

Build it with `assistant.build` (one place wires everything from `Settings`); `assistant.web` serves it.
"""
