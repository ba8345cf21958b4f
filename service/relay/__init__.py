"""The relay (README "A policy the browser cannot bypass: the relay"): a WebSocket a
browser opens to the broker for a `client_channel: "relay"` call, through which the call's
events go both ways, policed.

Names, each with one meaning: a *relay* is one browser's WebSocket (its `relay_id` holds
the call's one relay slot in the store); the *relay replica* is the replica it reached;
the *supervisor* is the replica that supervises the call (holds its sideband).

- `policing`: what a browser's event becomes before it reaches the call (pure);
- `messages`: the messages replicas send each other on the store's pub/sub (pure);
- `hub`: one replica's relays, joined to their calls' supervisors across replicas.

The WebSocket itself is `service.web.relay` (the web layer owns starlette); the call's
supervisor is `service.calls.controller`, which gives the hub its calls. This package
imports neither.
"""
