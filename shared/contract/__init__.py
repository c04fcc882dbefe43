"""The HTTP contract as pydantic models: request bodies are parsed by them, responses shaped by
them, and ``/api/openapi.json`` is generated from them plus the one route table
(:mod:`shared.contract.routes`). Enums come from the domain and the catalogs, never retyped.
"""
