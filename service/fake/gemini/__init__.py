"""The fake Gemini (Google's Gemini Developer API, the parts a Gemini tenant's broker and its
browsers use): ephemeral tokens (`POST /{v1alpha,v1beta}/auth_tokens`) and the Live API
peer those tokens open, at Google's paths and in Google's shapes
(tests/schemas/gemini-live-subset.yaml), for dev mode (`token-broker dev --upstream
gemini`), tests and `token-broker fake-upstream`.

Modules: `shapes` (what it accepts), `status` (Google's error shape), `tokens` (issuing
tokens, spending their uses, the locked setup), `speech` (PCM in and out, voice activity),
`live` (one Live session), `routes` (`FakeGemini`: the state and the routes).
"""

from service.fake.gemini.routes import FakeGemini

__all__ = ["FakeGemini"]
