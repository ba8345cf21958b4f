"""Gemini Live ephemeral tokens (README "Gemini Live"): `POST /v1alpha/auth_tokens` in
Google's shape, the role's policy applied to the token's `bidiGenerateContentSetup`, and the
whole setup locked upstream.

    schema.py    the fields of the setup the broker knows; snake_case → camelCase
    times.py     RFC 3339 timestamps in, Google's spelling out
    request.py   the request body, checked and normalized (pure)
    policy.py    the role's policy applied to the setup (pure)
    locking.py   the token sent upstream: uses 1, bounded expiry, no fieldMask (pure)
    errors.py    the broker's errors in Google's shape (pure)
    minting.py   the mint: the broker's shared steps around the above and the upstream call
"""
