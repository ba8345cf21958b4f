"""Talking to OpenAI (or Azure, or the built-in fake) with the tenant's server-held key."""
