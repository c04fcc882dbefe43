"""Naming the blocking policy: the follow-up that reads the tenant's sign-in log when its entry arrives.

Each message is handled in a CONSUMER span continuing the ``traceparent`` of the test that asked."""
import logging

import azure.functions as func

from shared import names, telemetry
from shared.bootstrap import services

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="msg", queue_name=names.EXPLANATIONS_QUEUE, connection=names.STORAGE_CONNECTION)
def explanation_worker(msg: func.QueueMessage) -> None:
    text = msg.get_body().decode("utf-8")
    result = telemetry.consume(names.EXPLANATIONS_QUEUE, text, lambda: services().explanations.process(text),
                               message_id=msg.id, dequeue_count=msg.dequeue_count)
    log.info("explanation message %s: %s", msg.id, result.value)


@bp.queue_trigger(arg_name="msg", queue_name=names.EXPLANATIONS_QUEUE + "-poison", connection=names.STORAGE_CONNECTION)
def explanation_poison(msg: func.QueueMessage) -> None:
    text = msg.get_body().decode("utf-8")
    result = telemetry.consume(names.EXPLANATIONS_QUEUE + "-poison", text,
                               lambda: services().explanations.process_poison(text), message_id=msg.id,
                               dequeue_count=msg.dequeue_count)
    log.warning("poison explanation message %s: %s", msg.id, result.value)
