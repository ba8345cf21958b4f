"""The Realtime session as the broker sees it: the normalized model, GA/beta codecs, strict
JSON checks (pure).
"""
