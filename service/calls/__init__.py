"""Call control (README "Call control"): the broker places WebRTC calls and holds them."""
