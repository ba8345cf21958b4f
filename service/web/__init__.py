"""The HTTP edge (owns `starlette`): `app.create_app`, the composition root, handlers,
middleware, errors.
"""
