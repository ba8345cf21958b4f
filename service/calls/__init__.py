"""Call control (DESIGN.md section 8): the broker places WebRTC calls and holds them."""
