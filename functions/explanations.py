"""Naming the blocking policy: the follow-up that reads the tenant's sign-in log when its entry arrives."""
import logging

import azure.functions as func

from shared import names
from shared.bootstrap import services

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.queue_trigger(arg_name="msg", queue_name=names.EXPLANATIONS_QUEUE, connection=names.STORAGE_CONNECTION)
def explanation_worker(msg: func.QueueMessage) -> None:
    result = services().explanations.process(msg.get_body().decode("utf-8"))
    log.info("explanation message %s: %s", msg.id, result.value)


@bp.queue_trigger(arg_name="msg", queue_name=names.EXPLANATIONS_QUEUE + "-poison", connection=names.STORAGE_CONNECTION)
def explanation_poison(msg: func.QueueMessage) -> None:
    result = services().explanations.process_poison(msg.get_body().decode("utf-8"))
    log.warning("poison explanation message %s: %s", msg.id, result.value)
