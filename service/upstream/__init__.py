"""Talking to OpenAI or Azure with the tenant's server-held key: one client, one error mapping
(owns `httpx`).
"""
