"""The vector-store proxy: checks of the requests (pure) and the proxied call."""
