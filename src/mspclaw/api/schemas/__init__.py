"""Request and response bodies of the REST API, one module per domain like :mod:`mspclaw.api.routes`.

They make the OpenAPI document at ``/docs``: a class's name is its schema's name there, so renaming
one changes the published API.
"""
