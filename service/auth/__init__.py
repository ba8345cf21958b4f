"""Who is calling: bearer JWTs verified per tenant (`tokens.Authenticator`) and the JWKS cache
(owns `jwt`).
"""
