"""The session policy: its model, how it is parsed, and `apply_policy`, a pure function (README
"Policy").
"""
