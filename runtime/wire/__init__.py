"""The wire: what every ember process shares to talk to the others.

The protocol (``.proto`` and its generated code), gRPC channels and servers, the token, TLS,
the task channel's framing and the metrics report format. Bytes in, bytes out: nothing here
knows what a task, an owner, a node or a head is, so every process can import it.
"""
