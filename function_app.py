"""Azure Functions entry point (Python v2 programming model).

Only builds the app and registers the blueprints of ``functions/``; the same file runs under the
real Functions host and under ``devtools.local_host``.
"""
import azure.functions as func

from functions import blueprints

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in blueprints():
    app.register_functions(blueprint)
