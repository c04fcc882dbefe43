"""The application: domain model, services, adapters and configuration.

Importable without the Functions host; ``functions/`` holds only thin triggers over it.
"""
