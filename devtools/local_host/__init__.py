"""A small local Azure Functions host (Core Tools cannot be installed here).

It loads a ``func.FunctionApp`` and serves its functions from the azure-functions library's own
metadata: HTTP triggers (route templates, methods, auth levels), Storage queue triggers and
output bindings against Azurite (host.json ``extensions.queues`` semantics, poison queues), and
timer triggers (NCRONTAB). See ``python -m devtools.local_host --help``.

In process (tests)::

    with LocalHost(app, settings={...}, host_config={...}) as host:
        requests.get(host.url + "/api/health")
        host.fire("revalidate").result(10)

As a subprocess (e2e)::

    proc = start_local_host_process(env={"AzureWebJobsStorage": ...})
    ...
    proc.stop()
"""
from devtools.local_host.host import LocalHost
from devtools.local_host.host_config import HostConfig, QueuesOptions
from devtools.local_host.invocation import InvocationLog, InvocationRecord
from devtools.local_host.process import LocalHostProcess, start_local_host_process

__all__ = ["LocalHost", "HostConfig", "QueuesOptions", "InvocationLog", "InvocationRecord",
           "LocalHostProcess", "start_local_host_process"]
